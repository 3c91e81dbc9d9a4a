/**
 * The catalogue of metrics rules can name. Each metric is parameterised SQL over the derived
 * tables that returns one row per (k, group labels...) with `value` and `volume`, for the
 * event-time window [t_end − window_s, t_end) shifted back k days, k = 0..{days}. k = 0 is the
 * current window; k = 1..7 are the same window on the previous days (the baseline), all in one
 * query. Parameters: {t_end:DateTime}, {window_s:UInt32}, {days:UInt16}. Group labels are
 * interpolated only from each metric's fixed `labels` list (validated by rules.ts).
 */
export type Align = 'minute' | 'hour' | 'day';

export interface MetricDef {
  name: string;
  description: string;
  unit: string;
  labels: readonly string[];
  defaultWindowMs: number;
  /** Evaluation times (and so windows) are aligned to this. */
  align: Align;
  /** Whether the previous-days shift makes sense (false for current-state metrics). */
  baseline: boolean;
  /** SQL giving (n, t): row count and the unix end (seconds) of the newest window with data; null = the global frontier. */
  frontierSql: ((db: string) => string) | null;
  /** Skip the metric (logged once) while this table does not exist. */
  requiresTable?: string;
  sql(db: string, groupBy: readonly string[]): string;
}

/** Rows of `col` (DateTime) inside one of the k-shifted windows. */
function inWindows(col: string): string {
  return `${col} >= {t_end:DateTime} - toIntervalSecond({window_s:UInt32} + 86400 * {days:UInt16}) AND ${col} < {t_end:DateTime}
    AND (toInt64(toUnixTimestamp({t_end:DateTime})) - toInt64(toUnixTimestamp(${col})) - 1) % 86400 < {window_s:UInt32}`;
}
function kOf(col: string): string {
  return `intDiv(toInt64(toUnixTimestamp({t_end:DateTime})) - toInt64(toUnixTimestamp(${col})) - 1, 86400) AS k`;
}
const sel = (g: readonly string[]) => g.map((x) => `${x}, `).join('');
const grp = (g: readonly string[]) => ['k', ...g].join(', ');
const minutes = `({window_s:UInt32} / 60)`;
const frontier = (table: string, col: string, sizeS: number) => (db: string) => `SELECT count() AS n, toUnixTimestamp(max(${col})) + ${sizeS} AS t FROM ${db}.${table}`;

const QOE_LABELS = ['cdn', 'device_category', 'country'] as const;
const qoe = (name: string, description: string, unit: string, windowMs: number, expr: string): MetricDef => ({
  name, description, unit, labels: QOE_LABELS, defaultWindowMs: windowMs, align: 'minute', baseline: true,
  frontierSql: frontier('qoe_minute', 'window_start', 60),
  sql: (db, g) => `SELECT ${kOf('window_start')}, ${sel(g)}${expr}
    FROM ${db}.qoe_minute FINAL WHERE ${inWindows('window_start')} GROUP BY ${grp(g)}`,
});
const watchMs = 'sum(playing_ms) + sum(rebuffer_ms) + sum(seek_ms)';
const avgConcurrent = `sum(concurrent_viewers) / ${minutes}`;

const PAY_LABELS = ['method', 'plan', 'country'] as const;
const pay = (name: string, description: string, unit: string, windowMs: number, expr: string): MetricDef => ({
  name, description, unit, labels: PAY_LABELS, defaultWindowMs: windowMs, align: 'minute', baseline: true,
  frontierSql: frontier('kpi_payments_1m', 'window_start', 60),
  sql: (db, g) => `SELECT ${kOf('window_start')}, ${sel(g)}${expr}
    FROM ${db}.kpi_payments_1m FINAL WHERE ${inWindows('window_start')} GROUP BY ${grp(g)}`,
});

const safety = (name: string, description: string, filter: string, windowMs: number): MetricDef => ({
  name, description, unit: 'events', labels: ['policy', 'severity'], defaultWindowMs: windowMs, align: 'minute', baseline: true,
  frontierSql: null,
  sql: (db, g) => `SELECT ${kOf('window_start')}, ${sel(g)}toFloat64(sumIf(events, ${filter})) AS value, toFloat64(sumIf(events, ${filter})) AS volume
    FROM ${db}.safety_events_1m FINAL WHERE ${inWindows('window_start')} GROUP BY ${grp(g)} HAVING value > 0`,
});

const list: MetricDef[] = [
  qoe('qoe_rebuffer_pct', 'Rebuffer time as % of watch time (playing + rebuffer + seek); volume = average concurrent viewers.', '%', 60_000,
    `if(${watchMs} = 0, NULL, 100 * sum(rebuffer_ms) / (${watchMs})) AS value, ${avgConcurrent} AS volume`),
  qoe('qoe_vsf_pct', 'Video start failures as % of views ended in the window; volume = views ended.', '%', 300_000,
    `if(sum(views_ended) = 0, NULL, 100 * sum(vsf_views) / sum(views_ended)) AS value, toFloat64(sum(views_ended)) AS volume`),
  qoe('qoe_startup_p95_s', 'Startup time p95 (nearest rank) in seconds over views started in the window; volume = startup samples.', 's',
    300_000, `arraySort(groupArrayArray(startup_ms_samples)) AS samples,
    if(length(samples) = 0, NULL, samples[toUInt64(greatest(1, ceil(0.95 * length(samples))))] / 1000) AS value, toFloat64(length(samples)) AS volume`),
  qoe('qoe_fatal_errors', 'Fatal playback errors in the window; volume = average concurrent viewers.', 'errors', 3_600_000,
    `toFloat64(sum(fatal_errors)) AS value, ${avgConcurrent} AS volume`),
  qoe('engagement_playing_hours', 'Playing time in hours in the window; volume = average concurrent viewers.', 'h', 3_600_000,
    `sum(playing_ms) / 3600000 AS value, ${avgConcurrent} AS volume`),
  pay('business_revenue_usd', 'Net revenue in USD (gross − refunds − chargebacks); volume = payment attempts.', 'USD', 3_600_000,
    `sum(net_usd_micros) / 1e6 AS value, toFloat64(sum(attempts)) AS volume`),
  pay('business_payment_failure_pct', 'Failed payment attempts as % of attempts; volume = attempts.', '%', 900_000,
    `if(sum(attempts) = 0, NULL, 100 * sum(failed) / sum(attempts)) AS value, toFloat64(sum(attempts)) AS volume`),
  {
    name: 'business_payer_rate_pct', description: 'Paying accounts (net revenue > 0) as % of active accounts in the hour; volume = active accounts.',
    unit: '%', labels: [], defaultWindowMs: 3_600_000, align: 'hour', baseline: true,
    // An hour is evaluated once the business processor's minute stream has passed its end.
    frontierSql: frontier('kpi_payments_1m', 'window_start', 60),
    sql: (db) => `SELECT k, 100 * countIf(net > 0) / count() AS value, toFloat64(count()) AS volume FROM (
      SELECT ${kOf('hour')}, account_id, sum(net_usd_micros) AS net FROM ${db}.account_activity_1h FINAL
      WHERE ${inWindows('hour')} GROUP BY k, account_id) GROUP BY k`,
  },
  safety('safety_reports_actions', 'User reports, detections and moderation actions in the window.', `event_type IN ('report_created', 'action_taken')`, 3_600_000),
  safety('safety_critical_actions', 'Moderation actions (other than none) with critical severity in the window.', `event_type = 'action_taken' AND severity = 'critical' AND action_type != 'none'`, 900_000),
  {
    name: 'pipeline_late_events', description: 'Events that arrived after their window closed (late_events), by the processor watermark at detection.',
    unit: 'events', labels: ['processor'], defaultWindowMs: 900_000, align: 'minute', baseline: true, frontierSql: null,
    sql: (db, g) => `SELECT ${kOf('toDateTime(watermark)')}, ${sel(g)}toFloat64(count()) AS value, toFloat64(count()) AS volume
      FROM ${db}.late_events FINAL WHERE ${inWindows('toDateTime(watermark)')} GROUP BY ${grp(g)}`,
  },
  {
    name: 'production_new_critical_issues', description: 'Open critical Jira issues created in the window (current issue state).',
    unit: 'issues', labels: ['issue_key', 'show_name', 'project_key'], defaultWindowMs: 3_600_000, align: 'minute', baseline: false, frontierSql: null,
    sql: (db, g) => `SELECT 0 AS k, ${sel(g)}toFloat64(count()) AS value, toFloat64(count()) AS volume FROM ${db}.production_issues FINAL
      WHERE deleted = 0 AND is_open = 1 AND is_critical = 1 AND created >= {t_end:DateTime} - toIntervalSecond({window_s:UInt32}) AND created < {t_end:DateTime}
      GROUP BY ${grp(g)}`,
  },
  {
    name: 'production_issue_cost_usd', description: 'Largest cost impact (USD) of an open Jira issue updated before the evaluation time.',
    unit: 'USD', labels: ['issue_key', 'show_name', 'project_key'], defaultWindowMs: 60_000, align: 'minute', baseline: false, frontierSql: null,
    sql: (db, g) => `SELECT 0 AS k, ${sel(g)}max(cost_impact_usd) AS value, toFloat64(count()) AS volume FROM ${db}.production_issues FINAL
      WHERE deleted = 0 AND is_open = 1 AND updated < {t_end:DateTime} GROUP BY ${grp(g)}`,
  },
  {
    // Day D counts the accounts scored `high` on D that were not `high` on D − 1 (not scored on
    // D − 1 = new to the scoring, also an entry). NULL (no observation, not in the baseline) when
    // D − 1 was not scored: on the first scored day every high account would look like an entry.
    // The frontier is the newest day in churn_score_days, so (after the settle delay and day
    // alignment) day D is evaluated once D + 1 is scored — when the job no longer rescores D.
    name: 'churn_high_risk_entries', description: 'Accounts whose churn risk level (churn_scores) became high on the day: high on D, not high (or not scored) on D − 1; volume = accounts scored on D.',
    unit: 'accounts', labels: [], defaultWindowMs: 86_400_000, align: 'day', baseline: true, requiresTable: 'churn_scores',
    frontierSql: frontier('churn_score_days', 'toDateTime(day)', 86400),
    sql: (db) => `SELECT k, if(prev_day IN (SELECT day FROM ${db}.churn_score_days), toFloat64(entries), NULL) AS value, toFloat64(scored) AS volume FROM (
      SELECT ${kOf('toDateTime(a.day)')}, min(a.day) - 1 AS prev_day, countIf(a.level = 'high' AND b.level != 'high') AS entries, count() AS scored
      FROM (SELECT day, account_id, level FROM ${db}.churn_scores FINAL WHERE ${inWindows('toDateTime(day)')}) AS a
      LEFT JOIN (SELECT day + 1 AS next_day, account_id, level FROM ${db}.churn_scores FINAL
        WHERE toDateTime(day) >= {t_end:DateTime} - toIntervalSecond({window_s:UInt32} + 86400 * ({days:UInt16} + 1)) AND toDateTime(day) < {t_end:DateTime}) AS b
        ON b.account_id = a.account_id AND b.next_day = a.day
      GROUP BY k)`,
  },
];

export const METRICS: Record<string, MetricDef> = Object.fromEntries(list.map((m) => [m.name, m]));

export function alignMs(align: Align): number {
  return align === 'minute' ? 60_000 : align === 'hour' ? 3_600_000 : 86_400_000;
}
