/**
 * Grafana-managed alert rules mirroring the default rules (DOMAIN §8), in the file-provisioning
 * format (groups:). Each query returns one numeric `value` column (rows labelled by string columns
 * become separate alert instances); B reduces, C compares with the threshold.
 */
import { metricSql } from '../../contracts/metrics-catalog.js';
import { CH } from './clickhouse-query.js';

export interface RuleSpec {
  uid: string;
  title: string;
  sql: string;
  /** Seconds before now that $__timeFilter covers. */
  rangeS: number;
  op: 'gt' | 'lt';
  threshold: number;
  for: string;
  severity: 'critical' | 'warning';
}

export const RULES: RuleSpec[] = [
  {
    uid: 'sp-qoe-rebuffer-cdn',
    title: 'Rebuffer % above 2 % (1 min, ≥ 50 viewers) by CDN',
    rangeS: 120,
    op: 'gt',
    threshold: 2,
    for: '3m',
    severity: 'warning',
    sql: `SELECT cdn, if(sum(concurrent_viewers) < 50, 0, ifNull(${metricSql('rebuffer_pct', 'minute')}, 0)) AS value FROM qoe_minute FINAL WHERE $__timeFilter(window_start) AND window_start = (SELECT max(window_start) FROM qoe_minute WHERE $__timeFilter(window_start)) GROUP BY cdn`,
  },
  {
    uid: 'sp-qoe-vsf',
    title: 'VSF % above 5 % over 5 min',
    rangeS: 300,
    op: 'gt',
    threshold: 5,
    for: '0s',
    severity: 'critical',
    sql: `SELECT ifNull(${metricSql('vsf_pct', 'minute')}, 0) AS value FROM qoe_minute FINAL WHERE $__timeFilter(window_start)`,
  },
  {
    uid: 'sp-qoe-startup-p95',
    title: 'Startup p95 above 4 s over 5 min',
    rangeS: 300,
    op: 'gt',
    threshold: 4000,
    for: '0s',
    severity: 'warning',
    sql: `SELECT ifNull(${metricSql('startup_p95_ms', 'minute')}, 0) AS value FROM qoe_minute FINAL WHERE $__timeFilter(window_start)`,
  },
  {
    uid: 'sp-biz-payment-failures',
    title: 'Payment failure rate above 10 % over 15 min',
    rangeS: 900,
    op: 'gt',
    threshold: 10,
    for: '0s',
    severity: 'warning',
    sql: `SELECT ifNull(${metricSql('payment_failure_pct', 'payment_minute')}, 0) AS value FROM kpi_payments_1m FINAL WHERE $__timeFilter(window_start)`,
  },
  {
    uid: 'sp-biz-revenue-drop',
    title: 'Hourly revenue more than 15 % below the same hour’s 7-day average',
    rangeS: 8 * 86_400,
    op: 'lt',
    threshold: -0.15,
    for: '0s',
    severity: 'warning',
    sql: `SELECT ifNull(argMax(growth_vs_7d_same_hour, hour), 0) AS value FROM kpi_business_growth_1h WHERE $__timeFilter(hour) AND hour < toStartOfHour(now())`,
  },
  {
    uid: 'sp-safety-volume',
    title: 'More than 50 reports or actions in an hour',
    rangeS: 3600,
    op: 'gt',
    threshold: 50,
    for: '0s',
    severity: 'warning',
    sql: `SELECT sumIf(events, event_type IN ('report_created', 'action_taken')) AS value FROM safety_events_1m FINAL WHERE $__timeFilter(window_start)`,
  },
  {
    uid: 'sp-safety-critical-action',
    title: 'Critical-severity moderation action',
    rangeS: 300,
    op: 'gt',
    threshold: 0,
    for: '0s',
    severity: 'critical',
    sql: `SELECT sumIf(events, event_type = 'action_taken' AND severity = 'critical') AS value FROM safety_events_1m FINAL WHERE $__timeFilter(window_start)`,
  },
  {
    uid: 'sp-infra-fatal-errors',
    title: 'More than 100 fatal playback errors in an hour',
    rangeS: 3600,
    op: 'gt',
    threshold: 100,
    for: '0s',
    severity: 'critical',
    sql: `SELECT sum(fatal_errors) AS value FROM qoe_minute FINAL WHERE $__timeFilter(window_start)`,
  },
  {
    uid: 'sp-prod-new-critical',
    title: 'New critical Jira issue',
    rangeS: 600,
    op: 'gt',
    threshold: 0,
    for: '0s',
    severity: 'critical',
    sql: `SELECT count() AS value FROM production_issues_current WHERE is_critical = 1 AND is_open = 1 AND $__timeFilter(created)`,
  },
  {
    uid: 'sp-prod-cost',
    title: 'Issue cost impact above $50,000',
    rangeS: 86_400,
    op: 'gt',
    threshold: 50_000,
    for: '0s',
    severity: 'warning',
    sql: `SELECT ifNull(max(cost_impact_usd), 0) AS value FROM production_issues_current WHERE is_open = 1`,
  },
];

export function buildRuleGroups(): object {
  const expr = { type: '__expr__', uid: '__expr__' };
  return {
    apiVersion: 1,
    groups: [
      {
        orgId: 1,
        name: 'streampulse-defaults',
        folder: 'StreamPulse',
        interval: '1m',
        rules: RULES.map((r) => ({
          uid: r.uid,
          title: r.title,
          condition: 'C',
          for: r.for,
          noDataState: 'OK',
          execErrState: 'Error',
          labels: { severity: r.severity, source: 'streampulse' },
          annotations: { summary: `${r.title}: {{ $values.B.Value }}` },
          data: [
            {
              refId: 'A',
              relativeTimeRange: { from: r.rangeS, to: 0 },
              datasourceUid: CH.uid,
              model: {
                refId: 'A',
                datasource: CH,
                pluginVersion: '4.11.0',
                editorType: 'sql',
                queryType: 'table',
                format: 1,
                intervalMs: 60_000,
                maxDataPoints: 43_200,
                rawSql: r.sql,
              },
            },
            { refId: 'B', datasourceUid: '__expr__', model: { refId: 'B', type: 'reduce', expression: 'A', reducer: 'last', datasource: expr } },
            {
              refId: 'C',
              datasourceUid: '__expr__',
              model: { refId: 'C', type: 'threshold', expression: 'B', conditions: [{ evaluator: { type: r.op, params: [r.threshold] } }], datasource: expr },
            },
          ],
        })),
      },
    ],
  };
}
