/**
 * StreamPulse dashboards as code. Every panel's SQL is executed by tests/grafana/grafana.test.ts
 * (macros expanded as the plugin does) against tables filled through the processors; `expect`
 * lists the columns each panel needs. PromQL panels (the pipeline's own metrics, from the
 * provisioned Prometheus datasource) are parsed by promtool and their metric names checked
 * against lib/metrics.ts by tests/ops/prometheus-rules.test.ts.
 */
import { DashboardBuilder, TextBoxVariableBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelBuilder as TimeseriesPanel } from '@grafana/grafana-foundation-sdk/timeseries';
import { PanelBuilder as StatPanel } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as TablePanel } from '@grafana/grafana-foundation-sdk/table';
import { metricSql, nearestRankSql } from '../../contracts/metrics-catalog.js';
import { DataqueryBuilder as PromQueryBuilder } from '@grafana/grafana-foundation-sdk/prometheus';
import { CH, ClickHouseQueryBuilder } from './clickhouse-query.js';

/** The provisioned Prometheus datasource (grafana/provisioning/datasources/prometheus.yaml). */
export const PROM = { type: 'prometheus', uid: 'streampulse-prometheus' };

/** A catalogued metric's SQL over the source rows (contracts/metrics-catalog.ts: the one definition). */
const rt = (name: string) => metricSql(name, 'minute');
const ve = (name: string) => metricSql(name, 'view_end');

export interface PanelSpec {
  title: string;
  kind: 'timeseries' | 'stat' | 'table';
  /** ClickHouse SQL; empty for a PromQL panel. */
  sql: string;
  /** Columns the panel reads (ClickHouse panels). */
  expect: string[];
  unit?: string;
  /** PromQL queries of a Prometheus panel, each with its legend. */
  promql?: Array<{ expr: string; legend: string }>;
}

export interface DashboardSpec {
  uid: string;
  title: string;
  panels: PanelSpec[];
  /**
   * Slice variables (text boxes, empty = everything) that the panels on the slice's table filter
   * on: an alert's explanation links here with `var-<name>=<value>` (alerts/explain.ts).
   */
  variables?: string[];
}

/**
 * ` AND …` filtering on the slice variables: `${v:sqlstring}` is the variable quoted and escaped by
 * Grafana; an empty variable filters nothing. show_name goes through the catalog (raw_catalog).
 */
function sliced(vars: readonly string[]): string {
  return vars
    .map((v) =>
      v === 'show_name'
        ? ` AND (\${show_name:sqlstring} = '' OR content_id IN (SELECT content_id FROM raw_catalog WHERE show_name = \${show_name:sqlstring}))`
        : ` AND (\${${v}:sqlstring} = '' OR toString(${v}) = \${${v}:sqlstring})`,
    )
    .join('');
}
const QOE_VARS = ['cdn', 'device_category', 'country', 'asn', 'content_id', 'show_name'];
const PAY_VARS = ['method', 'plan', 'country'];
const QS = sliced(QOE_VARS);
const PS = sliced(PAY_VARS);

const ts = (title: string, sql: string, expect: string[], unit?: string): PanelSpec => ({ title, kind: 'timeseries', sql, expect, unit });
const stat = (title: string, sql: string, expect: string[], unit?: string): PanelSpec => ({ title, kind: 'stat', sql, expect, unit });
const table = (title: string, sql: string, expect: string[]): PanelSpec => ({ title, kind: 'table', sql, expect });
/** A Prometheus time series panel: [expr, legend] pairs. */
const prom = (title: string, unit: string, ...queries: Array<[string, string]>): PanelSpec => ({
  title,
  kind: 'timeseries',
  sql: '',
  expect: [],
  unit,
  promql: queries.map(([expr, legend]) => ({ expr, legend })),
});
/** Grafana's rate window: at least four scrapes whatever the zoom. */
const RI = '$__rate_interval';

const QOE_BUCKET = `FROM qoe_minute FINAL WHERE $__timeFilter(window_start)${QS} GROUP BY time ORDER BY time`;

export const DASHBOARDS: DashboardSpec[] = [
  {
    uid: 'streampulse-qoe',
    title: 'StreamPulse · QoE',
    variables: QOE_VARS,
    panels: [
      ts('Concurrent viewers', `SELECT $__timeInterval(window_start) AS time, sum(concurrent_viewers) / uniqExact(window_start) AS viewers ${QOE_BUCKET}`, [
        'time',
        'viewers',
      ]),
      ts(
        'Rebuffer % by CDN',
        `SELECT $__timeInterval(window_start) AS time, cdn, ${rt('rebuffer_pct')} AS rebuffer_pct FROM qoe_minute FINAL WHERE $__timeFilter(window_start)${QS} GROUP BY time, cdn ORDER BY time`,
        ['time', 'cdn', 'rebuffer_pct'],
        'percent',
      ),
      ts(
        'Startup p50 / p95 (ms)',
        `SELECT $__timeInterval(window_start) AS time, ${rt('startup_p50_ms')} AS p50_ms, ${rt('startup_p95_ms')} AS p95_ms ${QOE_BUCKET}`,
        ['time', 'p50_ms', 'p95_ms'],
        'ms',
      ),
      ts(
        'VSF % and playback failures %',
        `SELECT $__timeInterval(window_start) AS time, ${rt('vsf_pct')} AS vsf_pct, ${rt('playback_failure_pct')} AS playback_failure_pct ${QOE_BUCKET}`,
        ['time', 'vsf_pct', 'playback_failure_pct'],
        'percent',
      ),
      table(
        'QoE by CDN and country (views ended in range)',
        `SELECT cdn, country, count() AS views, countIf(outcome = 'vsf') AS vsf, ${ve('rebuffer_pct')} AS rebuffer_pct, ${ve('vsf_pct')} AS vsf_pct, ${ve('startup_p95_ms')} AS startup_p95_ms FROM qoe_views FINAL WHERE is_final = 1 AND $__timeFilter(view_end)${QS} GROUP BY cdn, country ORDER BY views DESC LIMIT 50`,
        ['cdn', 'country', 'views', 'rebuffer_pct'],
      ),
    ],
  },
  {
    uid: 'streampulse-business',
    title: 'StreamPulse · Business',
    variables: PAY_VARS,
    panels: [
      ts(
        'Net revenue (USD)',
        `SELECT $__timeInterval(window_start) AS time, sum(net_usd_micros) / 1e6 AS revenue_usd FROM kpi_payments_1m FINAL WHERE $__timeFilter(window_start)${PS} GROUP BY time ORDER BY time`,
        ['time', 'revenue_usd'],
        'currencyUSD',
      ),
      ts(
        'Revenue by method',
        `SELECT $__timeInterval(window_start) AS time, method, sum(net_usd_micros) / 1e6 AS revenue_usd FROM kpi_payments_1m FINAL WHERE $__timeFilter(window_start)${PS} GROUP BY time, method ORDER BY time`,
        ['time', 'method', 'revenue_usd'],
        'currencyUSD',
      ),
      ts(
        'Payment failure %',
        `SELECT $__timeInterval(window_start) AS time, ${metricSql('payment_failure_pct', 'payment_minute')} AS payment_failure_pct FROM kpi_payments_1m FINAL WHERE $__timeFilter(window_start)${PS} GROUP BY time ORDER BY time`,
        ['time', 'payment_failure_pct'],
        'percent',
      ),
      table(
        'Hourly KPIs',
        `SELECT hour, revenue_usd, refunds_usd, active_accounts, payers, net_payers, arpu_usd, arppu_usd, payer_rate FROM kpi_business_1h WHERE $__timeFilter(hour) ORDER BY hour DESC`,
        ['hour', 'revenue_usd', 'arpu_usd', 'payer_rate'],
      ),
      stat('Active accounts (range)', `SELECT uniqExact(account_id) AS active_accounts FROM account_activity_1h FINAL WHERE $__timeFilter(hour)`, [
        'active_accounts',
      ]),
    ],
  },
  {
    uid: 'streampulse-creators',
    title: 'StreamPulse · Creators and gifts',
    panels: [
      ts(
        'Gift value (USD)',
        `SELECT $__timeInterval(window_start) AS time, sum(value_usd_micros) / 1e6 AS gift_value_usd FROM kpi_gifts_1m FINAL WHERE $__timeFilter(window_start) GROUP BY time ORDER BY time`,
        ['time', 'gift_value_usd'],
        'currencyUSD',
      ),
      table(
        'Top creators',
        `SELECT creator_id, sum(v) / 1e6 AS gift_value_usd, count() AS gifters, if(sum(v) = 0, 0, arraySum(arraySlice(arrayReverseSort(groupArray(v)), 1, toUInt32(ceil(count() * 0.2)))) / sum(v)) AS top20_gifter_share FROM (SELECT creator_id, sender_account_id, sum(value_usd_micros) AS v FROM kpi_gifts_1m FINAL WHERE $__timeFilter(window_start) GROUP BY creator_id, sender_account_id) GROUP BY creator_id ORDER BY gift_value_usd DESC LIMIT 20`,
        ['creator_id', 'gift_value_usd', 'gifters', 'top20_gifter_share'],
      ),
    ],
  },
  {
    uid: 'streampulse-safety',
    title: 'StreamPulse · Trust and safety',
    panels: [
      ts(
        'Reports and actions',
        `SELECT $__timeInterval(window_start) AS time, sumIf(events, event_type = 'report_created') AS reports, sumIf(events, event_type = 'action_taken' AND action_type != 'none') AS actions FROM safety_events_1m FINAL WHERE $__timeFilter(window_start) GROUP BY time ORDER BY time`,
        ['time', 'reports', 'actions'],
      ),
      table(
        'By policy',
        `SELECT policy, sumIf(events, event_type = 'report_created') AS reports, sumIf(events, event_type = 'action_taken') AS actions FROM safety_events_1m FINAL WHERE $__timeFilter(window_start) GROUP BY policy ORDER BY reports DESC`,
        ['policy', 'reports', 'actions'],
      ),
      stat(
        'Time to action, median and p90 (ms)',
        `SELECT ${metricSql('median_time_to_action_ms', 'case')} AS median_time_to_action_ms, ${metricSql('p90_time_to_action_ms', 'case')} AS p90_time_to_action_ms FROM safety_cases FINAL WHERE $__timeFilter(action_time)`,
        ['median_time_to_action_ms', 'p90_time_to_action_ms'],
        'ms',
      ),
      stat('Safety score (overall)', `SELECT safety_score FROM safety_score_overall`, ['safety_score']),
    ],
  },
  {
    uid: 'streampulse-production',
    title: 'StreamPulse · Production',
    panels: [
      stat('Open issues / open critical', `SELECT open_issues, open_critical FROM production_open_critical`, ['open_issues', 'open_critical']),
      table(
        'Shows: issues beside engagement',
        `SELECT show_name, open_issues, open_critical, cost_impact_usd_total, open_cost_impact_usd, resolved_cost_impact_usd, delay_days_total, views, playing_hours, rebuffer_pct, playback_failure_pct FROM production_show_overview ORDER BY open_critical DESC, cost_impact_usd_total DESC LIMIT 50`,
        ['show_name', 'open_issues', 'cost_impact_usd_total'],
      ),
      table(
        'Open issues',
        `SELECT issue_key, severity, show_name, status, cost_impact_usd, updated FROM production_issues_current WHERE is_open = 1 ORDER BY updated DESC LIMIT 100`,
        ['issue_key', 'severity', 'show_name'],
      ),
    ],
  },
  {
    uid: 'streampulse-pipeline',
    title: 'StreamPulse · Pipeline health',
    panels: [
      ts(
        'Raw events ingested per interval',
        `SELECT $__timeInterval(event_time) AS time, count() AS playback_events FROM raw_playback WHERE $__timeFilter(event_time) GROUP BY time ORDER BY time`,
        ['time', 'playback_events'],
      ),
      ts(
        'Ingest delay p95 (s)',
        `SELECT $__timeInterval(event_time) AS time, ${nearestRankSql("groupArray(dateDiff('millisecond', event_time, ingested_at))", 0.95)} / 1000 AS delay_p95_s FROM raw_playback WHERE $__timeFilter(event_time) GROUP BY time ORDER BY time`,
        ['time', 'delay_p95_s'],
        's',
      ),
      ts(
        'Late events per kind',
        `SELECT $__timeInterval(event_time) AS time, arrayElement(splitByChar('.', src_topic), -1) AS kind, count() AS late_events FROM late_events FINAL WHERE $__timeFilter(event_time) GROUP BY time, kind ORDER BY time`,
        ['time', 'kind', 'late_events'],
      ),
      table(
        'Rows per table',
        `SELECT table, sum(rows) AS rows, max(modification_time) AS last_write FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table ORDER BY table`,
        ['table', 'rows', 'last_write'],
      ),
      // The pipeline's own metrics (Prometheus). Lag, delay and stalls come from the pipeline
      // monitor, possibly in several processes: max over instances, as the alert rules do.
      prom('Consumer lag (records)', 'short', ['max by (processor) (sum by (processor, instance) (streampulse_consumer_lag_records))', '{{processor}}']),
      prom('Consumer lag (age of the oldest waiting record)', 's', ['max by (processor) (streampulse_consumer_lag_seconds)', '{{processor}}']),
      prom('Watermark delay (now − event-time watermark)', 's', ['max by (processor, topic) (streampulse_watermark_delay_seconds)', '{{processor}} {{topic}}']),
      prom('Stalled partitions (records waiting, checkpoint not moving)', 's', [
        'max by (processor, topic, partition) (streampulse_processor_stalled_seconds) > 0',
        '{{processor}} {{topic}}/{{partition}}',
      ]),
      prom(
        'Events in, rows out (per second)',
        'short',
        [`sum by (processor) (rate(streampulse_consumed_events_total[${RI}]))`, 'in: {{processor}}'],
        [`sum by (table) (rate(streampulse_sink_rows_total[${RI}]))`, 'rows out: {{table}}'],
      ),
      prom(
        'Late events, late firings and dead letters (per second)',
        'short',
        [`sum by (processor) (rate(streampulse_late_events_total[${RI}]))`, 'late: {{processor}}'],
        [`sum by (processor, kind) (rate(streampulse_late_firings_total[${RI}]))`, 'late firings: {{processor}} {{kind}}'],
        [`sum by (processor, error_class) (rate(streampulse_dead_letters_total[${RI}]))`, 'dead letters: {{processor}} {{error_class}}'],
      ),
      prom(
        'Commit cycle and checkpoint p95',
        's',
        [`histogram_quantile(0.95, sum by (le, processor) (rate(streampulse_commit_cycle_duration_seconds_bucket[${RI}])))`, 'commit cycle: {{processor}}'],
        [`histogram_quantile(0.95, sum by (le, processor) (rate(streampulse_checkpoint_duration_seconds_bucket[${RI}])))`, 'checkpoint: {{processor}}'],
      ),
      prom(
        'Checkpoint size (state bytes) and rows per commit cycle (p95)',
        'bytes',
        ['sum by (processor) (streampulse_checkpoint_size_bytes)', 'state: {{processor}}'],
        [`histogram_quantile(0.95, sum by (le, processor) (rate(streampulse_commit_cycle_rows_bucket[${RI}])))`, 'rows/cycle: {{processor}}'],
      ),
      prom(
        'ClickHouse insert p95 and errors',
        's',
        [`histogram_quantile(0.95, sum by (le, table) (rate(streampulse_sink_duration_seconds_bucket[${RI}])))`, 'p95: {{table}}'],
        [`sum by (table) (rate(streampulse_sink_errors_total[${RI}]))`, 'errors/s: {{table}}'],
      ),
      prom('Dependency outages (seconds unavailable per second)', 'percentunit', [
        `max by (dependency) (rate(streampulse_dependency_unavailable_seconds_total[${RI}]))`,
        '{{dependency}}',
      ]),
      prom(
        'Ingest requests by status (per second)',
        'reqps',
        [`sum by (status) (rate(streampulse_ingest_requests_total[${RI}]))`, '{{status}}'],
        [`sum by (reason) (rate(streampulse_ingest_rejected_requests_total[${RI}]))`, 'refused: {{reason}}'],
      ),
    ],
  },
];

export function buildDashboard(spec: DashboardSpec): object {
  const b = new DashboardBuilder(spec.title)
    .uid(spec.uid)
    .tags(['streampulse', 'generated'])
    .refresh('30s')
    .time({ from: 'now-6h', to: 'now' })
    .timezone('utc');
  for (const v of spec.variables ?? [])
    b.withVariable(new TextBoxVariableBuilder(v).label(v).description(`Slice filter on ${v} (empty: all); set by alert explanation links`).defaultValue(''));
  for (const p of spec.panels) {
    const panel = p.kind === 'timeseries' ? new TimeseriesPanel() : p.kind === 'stat' ? new StatPanel() : new TablePanel();
    panel.title(p.title);
    if (p.promql) {
      panel.datasource(PROM);
      p.promql.forEach((q, i) =>
        panel.withTarget(
          new PromQueryBuilder()
            .refId(String.fromCharCode(65 + i))
            .datasource(PROM)
            .expr(q.expr)
            .legendFormat(q.legend)
            .range(),
        ),
      );
    } else panel.datasource(CH).withTarget(new ClickHouseQueryBuilder(p.sql, p.kind === 'timeseries' ? 'timeseries' : 'table'));
    panel.span(p.kind === 'table' ? 24 : 12).height(8);
    if (p.unit) panel.unit(p.unit);
    b.withPanel(panel);
  }
  return b.build();
}
