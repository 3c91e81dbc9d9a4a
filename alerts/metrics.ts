/**
 * The catalogue of metrics rules can name. Each metric is parameterised SQL over the derived
 * tables that evaluates a whole RANGE of evaluation times in one query (like Prometheus'
 * query_range): times t_i = t_first + i · step_s for i = 0..n, each with its event-time window
 * [t_i − window_s, t_i) and the same window shifted back k days, k = 0..days (k = 0 is the current
 * window, k = 1..7 the baseline). It returns one row per (i, k, group labels...) with `value` and
 * `volume`. A single evaluation is the range n = 0.
 *
 * How: the source rows are first aggregated per time bucket and group (partial sums, sample
 * arrays), then each bucket row is fanned out to the (i, k) pairs whose window holds it
 * (`pairs(ts)`), and the pairs are aggregated again. So a day of 1-minute steps costs one scan
 * instead of 1,440 queries, and each window is computed exactly as its own query would.
 * Parameters: {t_first:Int64} (unix s), {step_s:UInt32}, {n:UInt32}, {window_s:UInt32},
 * {days:UInt16}, {asof_s:Int64}. Group labels are interpolated only from each metric's fixed
 * `labels` list (validated by rules.ts).
 *
 * As of t (issue 18): tables whose closed rows can be re-fired by late events (kpi_payments_1m,
 * account_activity_1h, safety_events_1m) are read through `asOf`: a row that was re-fired is read,
 * for evaluation time t_i, in its latest revision known before the cut t_i + asof_s (its
 * `<table>_history`, migration 018); a row never re-fired is the table's row. So a replay sees
 * what the live evaluation saw, however many late firings came after it (docs/alerting.md).
 */
import { P, measureSql, metricSql, partialsSql } from '../contracts/metrics-catalog.js';

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
  /** Range SQL: rows (i, k, group labels..., value, volume). */
  sql(db: string, groupBy: readonly string[]): string;
}

const F = '{t_first:Int64}';
const S = '{step_s:UInt32}';
const N = '{n:UInt32}';
const W = '{window_s:UInt32}';
const D = '{days:UInt16}';
const A = '{asof_s:Int64}';

/** Rows of `col` (DateTime) that can fall in some window of the range (a pre-filter; pairs() is exact). */
function inRange(col: string): string {
  return `${col} >= toDateTime(${F} - ${W} - 86400 * ${D}) AND ${col} < toDateTime(${F} + ${S} * ${N})`;
}

/**
 * The (i, k) pairs whose window holds a bucket starting at `ts` (DateTime): t_i − k·day − window ≤ ts
 * < t_i − k·day, i.e. i·step ∈ (u, u + window] with u = ts + k·day − t_first.
 */
function pairs(ts: string): string {
  const u = `(toInt64(toUnixTimestamp(${ts})) + 86400 * toInt64(k) - ${F})`;
  const lo = `greatest(toInt64(0), toInt64(floor(${u} / ${S})) + 1)`;
  const hi = `least(toInt64(floor((${u} + ${W}) / ${S})), toInt64(${N}))`;
  return `arrayJoin(arrayFlatten(arrayMap(k -> arrayMap(i -> (toUInt32(i), toUInt16(k)), range(toUInt64(${lo}), toUInt64(greatest(${hi} + 1, ${lo})))), range(toUInt32(${D}) + 1))))`;
}

const sel = (g: readonly string[]) => g.map((x) => `${x}, `).join('');
const grp = (g: readonly string[]) => g.map((x) => `, ${x}`).join('');

/** Window tables whose closed rows late firings rewrite: their row key and value columns (migrations 003, 005, 018). */
const REFIRED = {
  kpi_payments_1m: {
    time: 'window_start',
    key: ['window_start', 'method', 'plan', 'og_tier', 'country'],
    values: [
      'attempts',
      'succeeded',
      'failed',
      'gross_usd_micros',
      'refunds_usd_micros',
      'chargebacks_usd_micros',
      'net_usd_micros',
      'topups',
      'topup_usd_micros',
    ],
  },
  account_activity_1h: { time: 'hour', key: ['hour', 'account_id'], values: ['played', 'paid', 'gifted', 'net_usd_micros', 'gift_usd_micros'] },
  safety_events_1m: {
    time: 'window_start',
    key: ['window_start', 'event_type', 'policy', 'severity', 'detection_source', 'action_type', 'outcome', 'target_type'],
    values: ['events'],
  },
} as const;
export type RefiredTable = keyof typeof REFIRED;
/** The row key of a re-fired table's rows and of its history (without known_at). */
export const refiredKey = (table: RefiredTable): string[] => [...REFIRED[table].key, 'src_topic', 'src_partition'];

/**
 * The rows of a re-fired window table in range, each with the cuts it is read at: `vf` < cut ≤
 * `vt` (Float64 unix s). A row never re-fired (no history) is read at every cut (−inf, +inf). A
 * re-fired row is read from its history instead, each revision from its known_at (exclusive) to
 * the next revision's (inclusive); before its first revision (a key new to a closed window) it is
 * not read at all. Columns: the row key and value columns.
 */
function asOf(db: string, table: RefiredTable): string {
  const { time } = REFIRED[table];
  const key = refiredKey(table).join(', ');
  const cols = [...refiredKey(table), ...REFIRED[table].values].join(', ');
  const kn = 'toFloat64(toUnixTimestamp64Milli(known_at)) / 1000';
  return `SELECT ${cols}, -inf AS vf, inf AS vt FROM ${db}.${table} FINAL
      WHERE ${inRange(time)} AND (${key}) NOT IN (SELECT ${key} FROM ${db}.${table}_history WHERE ${inRange(time)})
    UNION ALL
    SELECT ${cols}, ${kn} AS vf,
      leadInFrame(${kn}, 1, inf) OVER (PARTITION BY ${key} ORDER BY known_at ASC ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS vt
    FROM ${db}.${table}_history FINAL WHERE ${inRange(time)}`;
}

/** After pairs(): keeps the (i, k) pairs whose cut t_i + asof_s reads the row (vf < cut ≤ vt). */
const asOfCut = `${F} + ${S} * toInt64(ik.1) + ${A}`;
const readAtCut = `vf < ${asOfCut} AND ${asOfCut} <= vt`;

/**
 * The generic range query: `inner` aggregates the source per (ts, group labels) into partial
 * columns; `outer` computes value and volume from them per (i, k, group labels). With `asOfRows`,
 * the inner rows carry (vf, vt) and each (i, k) keeps those its cut reads.
 */
function ranged(inner: string, g: readonly string[], outer: string, having = '', asOfRows = false): string {
  return `SELECT ik.1 AS i, ik.2 AS k, ${sel(g)}${outer}
    FROM (SELECT *, ${pairs('ts')} AS ik FROM (${inner}))${asOfRows ? ` WHERE ${readAtCut}` : ''}
    GROUP BY i, k${grp(g)}${having ? ` HAVING ${having}` : ''}`;
}

/**
 * Jira issue history (production_issue_history, every event's state) with, per state row, `upd`
 * (its `updated`, unix s as Float64), `next_upd` (the next state's, +inf for the newest: the row
 * is the state as of t for upd < t ≤ next_upd), `created_s` and `deleted_s` (the issue's first
 * deletion time, +inf if never deleted). Equal `updated`: the first in the log (lowest offset)
 * wins, as in the processor. Deletion rows are not states.
 */
function issueHistory(db: string): string {
  return `SELECT *, toFloat64(toUnixTimestamp64Milli(updated)) / 1000 AS upd, toFloat64(toUnixTimestamp64Milli(created)) / 1000 AS created_s,
      leadInFrame(toFloat64(toUnixTimestamp64Milli(updated)) / 1000, 1, inf) OVER (PARTITION BY issue_key ORDER BY updated ASC, version DESC ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_upd
    FROM (SELECT *, ifNull(min(toFloat64(toUnixTimestamp64Milli(deleted_time)) / 1000) OVER (PARTITION BY issue_key), inf) AS deleted_s
      FROM ${db}.production_issue_history FINAL)
    WHERE deleted = 0`;
}

/**
 * The evaluation steps i (0..n) whose time t_i = t_first + i · step lies in (lo, hi] (Float64
 * unix s), as one arrayJoin.
 */
function stepsIn(lo: string, hi: string): string {
  const a = `greatest(toInt64(0), toInt64(floor((${lo} - ${F}) / ${S})) + 1)`;
  const b = `least(toInt64(${N}), toInt64(floor((least(${hi}, 1e12) - ${F}) / ${S})))`;
  return `toUInt32(arrayJoin(range(toUInt64(${a}), toUInt64(greatest(${b} + 1, ${a})))))`;
}

const minutes = `(${W} / 60)`;
const frontier = (table: string, col: string, sizeS: number) => (db: string) =>
  `SELECT count() AS n, toUnixTimestamp(max(${col})) + ${sizeS} AS t FROM ${db}.${table}`;

const QOE_LABELS = ['cdn', 'device_category', 'country'] as const;
const qoe = (name: string, description: string, unit: string, windowMs: number, partials: string, outer: string): MetricDef => ({
  name,
  description,
  unit,
  labels: QOE_LABELS,
  defaultWindowMs: windowMs,
  align: 'minute',
  baseline: true,
  frontierSql: frontier('qoe_minute', 'window_start', 60),
  sql: (db, g) =>
    ranged(`SELECT window_start AS ts, ${sel(g)}${partials} FROM ${db}.qoe_minute FINAL WHERE ${inRange('window_start')} GROUP BY ts${grp(g)}`, g, outer),
});

const PAY_LABELS = ['method', 'plan', 'country'] as const;
const pay = (name: string, description: string, unit: string, windowMs: number, outer: string): MetricDef => ({
  name,
  description,
  unit,
  labels: PAY_LABELS,
  defaultWindowMs: windowMs,
  align: 'minute',
  baseline: true,
  frontierSql: frontier('kpi_payments_1m', 'window_start', 60),
  sql: (db, g) =>
    ranged(
      `SELECT window_start AS ts, ${sel(g)}vf, vt, ${partialsSql('payment_minute', ['revenue_usd', 'payment_failure_pct'])}
    FROM (${asOf(db, 'kpi_payments_1m')}) GROUP BY ts${grp(g)}, vf, vt`,
      g,
      outer,
      '',
      true,
    ),
});

/** A catalogued metric over the partial aggregates of one (i, k) window (contracts/metrics-catalog.ts). */
const rt = (name: string) => metricSql(name, 'minute', 'partials');
const cvVolume = `sum(${P('concurrent_viewer_minutes')}) / ${minutes}`;

const safety = (name: string, description: string, filter: string, windowMs: number): MetricDef => ({
  name,
  description,
  unit: 'events',
  labels: ['policy', 'severity'],
  defaultWindowMs: windowMs,
  align: 'minute',
  baseline: true,
  frontierSql: null,
  sql: (db, g) =>
    ranged(
      `SELECT window_start AS ts, ${sel(g)}vf, vt, sumIf(events, ${filter}) AS ev
    FROM (${asOf(db, 'safety_events_1m')}) GROUP BY ts${grp(g)}, vf, vt HAVING ev > 0`,
      g,
      'toFloat64(sum(ev)) AS value, toFloat64(sum(ev)) AS volume',
      '',
      true,
    ),
});

const list: MetricDef[] = [
  qoe(
    'qoe_rebuffer_pct',
    "Rebuffer time as % of watch time (startup or wait + playing + rebuffer + seek: the catalog's rebuffer_pct); volume = average concurrent viewers.",
    '%',
    60_000,
    partialsSql('minute', ['rebuffer_pct'], P, ['concurrent_viewer_minutes']),
    `${rt('rebuffer_pct')} AS value, ${cvVolume} AS volume`,
  ),
  qoe(
    'qoe_vsf_pct',
    "Video start failures as % of views ended in the window (the catalog's vsf_pct); volume = views ended.",
    '%',
    300_000,
    partialsSql('minute', ['vsf_pct']),
    `${rt('vsf_pct')} AS value, toFloat64(sum(${P('views_ended')})) AS volume`,
  ),
  qoe(
    'qoe_startup_p95_s',
    "Startup time p95 (nearest rank, the catalog's startup_p95_ms) in seconds over views started in the window; volume = startup samples.",
    's',
    300_000,
    partialsSql('minute', ['startup_p95_ms']),
    `${rt('startup_p95_ms')} / 1000 AS value, toFloat64(sum(length(${P('startup_samples')}))) AS volume`,
  ),
  qoe(
    'qoe_fatal_errors',
    "Fatal playback errors in the window (the catalog's fatal_errors); volume = average concurrent viewers.",
    'errors',
    3_600_000,
    partialsSql('minute', ['fatal_errors'], P, ['concurrent_viewer_minutes']),
    `toFloat64(${rt('fatal_errors')}) AS value, ${cvVolume} AS volume`,
  ),
  qoe(
    'engagement_playing_hours',
    "Playing time in hours in the window (the catalog's playing_hours); volume = average concurrent viewers.",
    'h',
    3_600_000,
    partialsSql('minute', ['playing_hours'], P, ['concurrent_viewer_minutes']),
    `${rt('playing_hours')} AS value, ${cvVolume} AS volume`,
  ),
  pay(
    'business_revenue_usd',
    "Net revenue in USD (gross − refunds − chargebacks: the catalog's revenue_usd); volume = payment attempts.",
    'USD',
    3_600_000,
    `${metricSql('revenue_usd', 'payment_minute', 'partials')} AS value, toFloat64(sum(${P('attempts')})) AS volume`,
  ),
  pay(
    'business_payment_failure_pct',
    "Failed payment attempts as % of attempts (the catalog's payment_failure_pct); volume = attempts.",
    '%',
    900_000,
    `${metricSql('payment_failure_pct', 'payment_minute', 'partials')} AS value, toFloat64(sum(${P('attempts')})) AS volume`,
  ),
  {
    name: 'business_payer_rate_pct',
    description: "Payers (accounts with a succeeded charge) as % of active accounts in the hour (the catalog's payer_rate_pct); volume = active accounts.",
    unit: '%',
    labels: [],
    defaultWindowMs: 3_600_000,
    align: 'hour',
    baseline: true,
    // An hour is evaluated once the business processor's minute stream has passed its end.
    frontierSql: frontier('kpi_payments_1m', 'window_start', 60),
    sql: (
      db,
    ) => `SELECT i, k, ${metricSql('payer_rate_pct', 'account_period')} AS value, toFloat64(${measureSql('account_period', 'active_accounts')}) AS volume FROM (
      SELECT ik.1 AS i, ik.2 AS k, account_id, max(paid) AS paid, sum(net_usd_micros) AS net_usd_micros FROM (
        SELECT *, ${pairs('ts')} AS ik FROM (
          SELECT hour AS ts, account_id, vf, vt, max(paid) AS paid, sum(net_usd_micros) AS net_usd_micros FROM (${asOf(db, 'account_activity_1h')}) GROUP BY ts, account_id, vf, vt))
        WHERE ${readAtCut}
      GROUP BY i, k, account_id) GROUP BY i, k`,
  },
  safety(
    'safety_reports_actions',
    'User reports, detections and moderation actions in the window.',
    `event_type IN ('report_created', 'action_taken')`,
    3_600_000,
  ),
  safety(
    'safety_critical_actions',
    'Moderation actions (other than none) with critical severity in the window.',
    `event_type = 'action_taken' AND severity = 'critical' AND action_type != 'none'`,
    900_000,
  ),
  {
    name: 'pipeline_late_events',
    description: 'Events that arrived after their window closed (late_events), by the processor watermark at detection.',
    unit: 'events',
    labels: ['processor'],
    defaultWindowMs: 900_000,
    align: 'minute',
    baseline: true,
    frontierSql: null,
    sql: (db, g) =>
      ranged(
        `SELECT toDateTime(watermark) AS ts, ${sel(g)}count() AS c FROM ${db}.late_events FINAL WHERE ${inRange('toDateTime(watermark)')} GROUP BY ts${grp(g)}`,
        g,
        'toFloat64(sum(c)) AS value, toFloat64(sum(c)) AS volume',
      ),
  },
  {
    // As of t (issue 18): an issue counts at t when it was created in [t − window, t), was open and
    // critical in some state the log holds with `updated` < t, and was not deleted before t. So an
    // issue opened and resolved between two evaluation steps counts at the next step, and a
    // replay sees exactly what a live evaluation saw (it never reads the issue's latest row).
    name: 'production_new_critical_issues',
    description: 'Jira issues created in the window that were open and critical at some time before the evaluation time (issue history as of t).',
    unit: 'issues',
    labels: ['issue_key', 'show_name', 'project_key'],
    defaultWindowMs: 3_600_000,
    align: 'minute',
    baseline: false,
    frontierSql: null,
    sql: (db, g) => {
      const iv = issueHistory(db);
      return `SELECT i, toUInt16(0) AS k, ${sel(g)}toFloat64(count()) AS value, toFloat64(count()) AS volume FROM (
        SELECT *, ${stepsIn('greatest(first_oc, c_s)', `least(c_s + ${W}, d_s)`)} AS i FROM (
          SELECT issue_key, argMin(show_name, upd) AS show_name, argMin(project_key, upd) AS project_key, min(upd) AS first_oc,
            any(created_s) AS c_s, any(deleted_s) AS d_s
          FROM (SELECT * FROM (${iv}) WHERE is_open = 1 AND is_critical = 1 AND upd < least(deleted_s, toFloat64(${F} + ${S} * ${N}))
            AND created_s >= ${F} - ${W} AND created_s < ${F} + ${S} * ${N})
          GROUP BY issue_key))
        GROUP BY i${grp(g)}`;
    },
  },
  {
    // As of t (issue 18): each issue's state at t is its history row with the greatest
    // (updated, first offset) among rows with updated < t; a deletion before t removes it.
    name: 'production_issue_cost_usd',
    description: 'Largest cost impact (USD) of a Jira issue open as of the evaluation time (issue history as of t).',
    unit: 'USD',
    labels: ['issue_key', 'show_name', 'project_key'],
    defaultWindowMs: 60_000,
    align: 'minute',
    baseline: false,
    frontierSql: null,
    sql: (db, g) => `SELECT i, toUInt16(0) AS k, ${sel(g)}max(cost_impact_usd) AS value, toFloat64(count()) AS volume FROM (
        SELECT *, ${stepsIn('upd', 'least(next_upd, deleted_s)')} AS i FROM (${issueHistory(db)})
        WHERE deleted = 0 AND is_open = 1 AND upd < least(next_upd, deleted_s) AND upd < ${F} + ${S} * ${N} AND least(next_upd, deleted_s) >= ${F})
      GROUP BY i${grp(g)}`,
  },
  {
    // Day D counts the accounts scored `high` on D that were not `high` on D − 1 (not scored on
    // D − 1 = new to the scoring, also an entry). NULL (no observation, not in the baseline) when
    // D − 1 was not scored: on the first scored day every high account would look like an entry.
    // The frontier is the newest day in churn_score_days, so (after the settle delay and day
    // alignment) day D is evaluated once D + 1 is scored — when the job no longer rescores D.
    name: 'churn_high_risk_entries',
    description:
      'Accounts whose churn risk level (churn_scores) became high on the day: high on D, not high (or not scored) on D − 1; volume = accounts scored on D.',
    unit: 'accounts',
    labels: [],
    defaultWindowMs: 86_400_000,
    align: 'day',
    baseline: true,
    requiresTable: 'churn_scores',
    frontierSql: frontier('churn_score_days', 'toDateTime(day)', 86400),
    sql: (
      db,
    ) => `SELECT i, k, if(min(prev_day) IN (SELECT day FROM ${db}.churn_score_days), toFloat64(sum(entries)), NULL) AS value, toFloat64(sum(scored)) AS volume FROM (
      SELECT ik.1 AS i, ik.2 AS k, prev_day, entries, scored FROM (
        SELECT *, ${pairs('ts')} AS ik FROM (
          SELECT toDateTime(a.day) AS ts, min(a.day) - 1 AS prev_day, countIf(a.level = 'high' AND b.level != 'high') AS entries, count() AS scored
          FROM (SELECT day, account_id, level FROM ${db}.churn_scores FINAL WHERE ${inRange('toDateTime(day)')}) AS a
          LEFT JOIN (SELECT day + 1 AS next_day, account_id, level FROM ${db}.churn_scores FINAL
            WHERE toDateTime(day) >= toDateTime(${F} - ${W} - 86400 * (${D} + 1)) AND toDateTime(day) < toDateTime(${F} + ${S} * ${N})) AS b
            ON b.account_id = a.account_id AND b.next_day = a.day
          GROUP BY ts)))
      GROUP BY i, k`,
  },
];

export const METRICS: Record<string, MetricDef> = Object.fromEntries(list.map((m) => [m.name, m]));

export function alignMs(align: Align): number {
  return align === 'minute' ? 60_000 : align === 'hour' ? 3_600_000 : 86_400_000;
}
