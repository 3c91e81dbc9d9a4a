/**
 * The metric catalog (issue 18): every metric that the API, the Grafana panels and the alert rules
 * show is defined ONCE here — name, unit, definition in words, formula as a ratio of sums, grain,
 * dimensions, the tables it reads and a worked example — and the SQL they run is generated from
 * it (`metricSql`, `measureSql`, `nearestRankSql`). docs/metrics.md is generated from it
 * (scripts/metrics-doc.ts; tests/metrics-catalog.test.ts checks the committed file is current),
 * and tests/metrics-catalog.test.ts greps api/, alerts/ and grafana/src for formula fragments
 * written anywhere else.
 *
 * Pure: strings only, no I/O (contracts/ may be imported by every layer).
 *
 * Vocabulary. A *source* is a table (or a sub-query) at one grain; a *measure* is an additive
 * aggregate over its rows (a sum, a count, or a concatenation of sample arrays), so partial rows
 * per source partition and per time bucket add up; a *metric* is a function of measures: a ratio
 * of sums, a sum, or a nearest-rank percentile of the samples.
 *
 * Percentiles: ONE method everywhere, nearest rank: p_q = sorted[ceil(q·n)] (1-based, at least the
 * first), exact and mergeable from concatenated samples. ClickHouse's quantileExact differs
 * whenever q·n is whole (it returns sorted[q·n + 1]); quantileExactInclusive interpolates.
 */

export type Grain = 'minute' | 'view_end' | 'account_period' | 'payment_minute' | 'case';

export interface Measure {
  /** Aggregate SQL over the source's rows. */
  sql: string;
  /** How partial aggregates combine: 'sum' (sum of partial sums) or 'samples' (concatenate arrays). */
  combine: 'sum' | 'samples';
}

export interface Source {
  grain: Grain;
  /**
   * FROM clause: a sub-query over the table(s) read with FINAL, rows matching `where`; `by` are
   * extra grouping columns of sources that pre-aggregate (account_period: one row per account and by).
   */
  from: (db: string, where?: string, by?: readonly string[]) => string;
  /** Event-time column a period filters on. */
  time: string;
  tables: string[];
  dimensions: string[];
  measures: Record<string, Measure>;
  words: string;
}

const sum = (sql: string): Measure => ({ sql, combine: 'sum' });

export const SOURCES: Record<Grain, Source> = {
  minute: {
    grain: 'minute',
    from: (db, where = '1') => `(SELECT * FROM ${db}.qoe_minute FINAL WHERE ${where})`,
    time: 'window_start',
    tables: ['qoe_minute'],
    dimensions: ['cdn', 'device_category', 'country', 'asn', 'content_id'],
    words: 'real time: one-minute rows from heartbeat deltas, attributed to the minute of the event',
    measures: {
      // DOMAIN §3: watch = startup + playing + rebuffer + seek; a view that never played adds its wait.
      watch_ms: sum('sum(startup_wait_ms) + sum(playing_ms) + sum(rebuffer_ms) + sum(seek_ms)'),
      startup_wait_ms: sum('sum(startup_wait_ms)'),
      playing_ms: sum('sum(playing_ms)'),
      rebuffer_ms: sum('sum(rebuffer_ms)'),
      rebuffer_count: sum('sum(rebuffer_count)'),
      bitrate_kbps_ms: sum('sum(bitrate_kbps_ms)'),
      views_ended: sum('sum(views_ended)'),
      views_started: sum('sum(views_started)'),
      plays: sum('sum(plays)'),
      vsf_views: sum('sum(vsf_views)'),
      ebvs_views: sum('sum(ebvs_views)'),
      playback_failure_views: sum('sum(playback_failure_views)'),
      failed_views: sum('sum(vsf_views) + sum(playback_failure_views)'),
      fatal_errors: sum('sum(fatal_errors)'),
      concurrent_viewer_minutes: sum('sum(concurrent_viewers)'),
      startup_samples: { sql: 'groupArrayArray(startup_ms_samples)', combine: 'samples' },
    },
  },
  view_end: {
    grain: 'view_end',
    from: (db, where = '1') => `(SELECT * FROM ${db}.qoe_views FINAL WHERE is_final = 1 AND ${where})`,
    time: 'view_end',
    tables: ['qoe_views'],
    dimensions: ['cdn', 'device_category', 'country', 'asn', 'content_id'],
    words: 'reporting (Mux "by view end"): final views, counted in the period their view ends',
    measures: {
      watch_ms: sum('sum(watch_ms)'),
      playing_ms: sum('sum(playing_ms)'),
      rebuffer_ms: sum('sum(rebuffer_ms)'),
      rebuffer_count: sum('sum(rebuffer_count)'),
      bitrate_kbps_ms: sum('sum(ifNull(weighted_avg_bitrate_kbps, 0) * playing_ms)'),
      views_ended: sum('count()'),
      plays: sum("countIf(outcome IN ('play', 'playback_failure'))"),
      vsf_views: sum("countIf(outcome = 'vsf')"),
      ebvs_views: sum("countIf(outcome = 'ebvs')"),
      playback_failure_views: sum("countIf(outcome = 'playback_failure')"),
      failed_views: sum("countIf(outcome IN ('vsf', 'playback_failure'))"),
      startup_samples: { sql: 'groupArrayIf(startup_ms, startup_ms IS NOT NULL)', combine: 'samples' },
    },
  },
  payment_minute: {
    grain: 'payment_minute',
    from: (db, where = '1') => `(SELECT * FROM ${db}.kpi_payments_1m FINAL WHERE ${where})`,
    time: 'window_start',
    tables: ['kpi_payments_1m'],
    dimensions: ['method', 'plan', 'og_tier', 'country'],
    words: 'one-minute payment rows by method, plan, og_tier and country',
    measures: {
      attempts: sum('sum(attempts)'),
      failed: sum('sum(failed)'),
      net_usd_micros: sum('sum(net_usd_micros)'),
    },
  },
  account_period: {
    grain: 'account_period',
    // One row per account over the period (distinct accounts cannot be summed across hours).
    from: (db, where = '1', by = []) =>
      `(SELECT ${by.map((b) => `${b}, `).join('')}account_id, max(paid) AS paid, sum(net_usd_micros) AS net_usd_micros FROM ${db}.account_activity_1h FINAL WHERE ${where} GROUP BY ${by.map((b) => `${b}, `).join('')}account_id)`,
    time: 'hour',
    tables: ['account_activity_1h'],
    dimensions: [],
    words: 'one row per account active in the period (any playback, payment or gift), from account_activity_1h',
    measures: {
      active_accounts: sum('count()'),
      payers: sum('countIf(paid = 1)'),
      net_payers: sum('countIf(net_usd_micros > 0)'),
      net_usd_micros: sum('sum(net_usd_micros)'),
    },
  },
  case: {
    grain: 'case',
    from: (db, where = '1') => `(SELECT * FROM ${db}.safety_cases FINAL WHERE ${where})`,
    time: 'action_time',
    tables: ['safety_cases'],
    dimensions: ['policy', 'severity'],
    words: 'one row per moderation case (its latest state), counted on the day of its action',
    measures: {
      tta_samples: { sql: 'groupArrayIf(toFloat64(time_to_action_ms), violation = 1)', combine: 'samples' },
      appeal_decision_samples: { sql: 'groupArrayIf(toFloat64(time_to_appeal_decision_ms), time_to_appeal_decision_ms IS NOT NULL)', combine: 'samples' },
    },
  },
};

export type MetricKind =
  | { kind: 'ratio'; num: string; den: string; scale: number }
  | { kind: 'sum'; measure: string; scale: number }
  | { kind: 'nearest_rank'; samples: string; q: number; scale: number };

export interface MetricDef {
  name: string;
  unit: string;
  /** Definition in words. */
  words: string;
  /** The formula in words, as a ratio of sums. */
  formula: string;
  kind: MetricKind;
  /** Sources (grains) it is defined on; the same formula on each. */
  grains: Grain[];
  /** A worked example: inputs and the result. */
  example: string;
  /** Where it is shown (API route field, Grafana panel, alert metric): filled in by the surfaces' tests. */
  surfaces: string[];
}

const ratio = (num: string, den: string, scale = 1): MetricKind => ({ kind: 'ratio', num, den, scale });
const total = (measure: string, scale = 1): MetricKind => ({ kind: 'sum', measure, scale });
const rank = (samples: string, q: number, scale = 1): MetricKind => ({ kind: 'nearest_rank', samples, q, scale });

export const CATALOG: MetricDef[] = [
  {
    name: 'rebuffer_pct',
    unit: '%',
    grains: ['minute', 'view_end'],
    kind: ratio('rebuffer_ms', 'watch_ms', 100),
    words:
      'Share of watch time spent rebuffering. Watch time is startup + playing + rebuffering + seeking (paused excluded); a view that never played counts its wait from view start to its end as startup (DOMAIN §3).',
    formula: '100 × Σ rebuffer_ms ÷ Σ watch_ms, watch_ms = startup (or wait) + playing + rebuffer + seek',
    example: 'A view with 2 s startup, 53 s playing, 5 s rebuffering and a view that failed after a 5 s wait: 100 × 5 ÷ (2 + 53 + 5 + 5) = 7.69 %.',
    surfaces: [
      '/v1/qoe/timeseries rebuffer_pct',
      '/v1/qoe/views-summary rebuffer_pct',
      '/v1/production/shows rebuffer_pct (per show, by view end)',
      'Grafana QoE "Rebuffer % by CDN" and "QoE by CDN and country"',
      'Grafana production "Shows: issues beside engagement"',
      'alert qoe_rebuffer_pct',
    ],
  },
  {
    name: 'rebuffer_per_min',
    unit: '/min',
    grains: ['minute', 'view_end'],
    kind: ratio('rebuffer_count', 'watch_ms', 60_000),
    words: 'Rebuffering events per minute of watch time (same watch time as rebuffer_pct).',
    formula: 'Σ rebuffer_count ÷ (Σ watch_ms ÷ 60,000)',
    example: '2 rebuffers in 60 s of watch time: 2 ÷ 1 = 2 per minute.',
    surfaces: ['/v1/qoe/timeseries rebuffer_per_min', '/v1/qoe/views-summary rebuffer_per_min'],
  },
  {
    name: 'watch_hours',
    unit: 'h',
    grains: ['minute', 'view_end'],
    kind: total('watch_ms', 1 / 3_600_000),
    words: 'Watch time in hours (startup or wait + playing + rebuffering + seeking).',
    formula: 'Σ watch_ms ÷ 3,600,000',
    example: '60,000 ms + 5,000 ms of two views: 65,000 ÷ 3,600,000 = 0.01806 h.',
    surfaces: ['/v1/qoe/timeseries watch_ms', '/v1/qoe/views-summary watch_ms'],
  },
  {
    name: 'playing_hours',
    unit: 'h',
    grains: ['minute', 'view_end'],
    kind: total('playing_ms', 1 / 3_600_000),
    words: 'Time spent playing (not paused, not stalled, not seeking), in hours.',
    formula: 'Σ playing_ms ÷ 3,600,000',
    example: '1,800,000 ms of playing: 0.5 h.',
    surfaces: [
      'alert engagement_playing_hours',
      '/v1/qoe/timeseries playing_hours',
      '/v1/qoe/views-summary playing_hours',
      '/v1/production/shows playing_hours',
      'Grafana production "Shows: issues beside engagement"',
    ],
  },
  {
    name: 'vsf_pct',
    unit: '%',
    grains: ['minute', 'view_end'],
    kind: ratio('vsf_views', 'views_ended', 100),
    words: 'Video start failures (a fatal, non-business error before the first frame) as a share of views that ended.',
    formula: '100 × Σ vsf_views ÷ Σ views_ended',
    example: '3 VSF among 60 ended views: 100 × 3 ÷ 60 = 5 %.',
    surfaces: [
      '/v1/qoe/timeseries vsf_pct',
      '/v1/qoe/views-summary vsf_pct',
      'Grafana QoE "VSF % and playback failures %" and "QoE by CDN and country"',
      'alert qoe_vsf_pct',
    ],
  },
  {
    name: 'ebvs_pct',
    unit: '%',
    grains: ['minute', 'view_end'],
    kind: ratio('ebvs_views', 'views_ended', 100),
    words: 'Exits before video start (ended before the first frame without a fatal error) as a share of views that ended.',
    formula: '100 × Σ ebvs_views ÷ Σ views_ended',
    example: '6 EBVS among 60 ended views: 10 %.',
    surfaces: ['/v1/qoe/timeseries ebvs_pct', '/v1/qoe/views-summary ebvs_pct'],
  },
  {
    name: 'playback_failure_pct',
    unit: '%',
    grains: ['minute', 'view_end'],
    kind: ratio('failed_views', 'views_ended', 100),
    words: 'Views that failed (VSF, or a fatal non-business error after the first frame) as a share of views that ended.',
    formula: '100 × Σ (vsf_views + playback_failure_views) ÷ Σ views_ended',
    example: '3 VSF and 1 failure after play among 60 ended views: 100 × 4 ÷ 60 = 6.67 %.',
    surfaces: [
      '/v1/qoe/timeseries playback_failure_pct',
      '/v1/qoe/views-summary playback_failure_pct',
      '/v1/production/shows playback_failure_pct',
      'Grafana QoE "VSF % and playback failures %"',
    ],
  },
  {
    name: 'fatal_errors',
    unit: 'errors',
    grains: ['minute'],
    kind: total('fatal_errors'),
    words: 'Views whose first fatal, non-business error happened in the period (real time).',
    formula: 'Σ fatal_errors',
    example: '4 views with a fatal error in a minute: 4.',
    surfaces: ['/v1/qoe/timeseries fatal_errors', 'alert qoe_fatal_errors'],
  },
  {
    name: 'startup_p50_ms',
    unit: 'ms',
    grains: ['minute', 'view_end'],
    kind: rank('startup_samples', 0.5),
    words: 'Median startup time (first frame − view start) of views that played; nearest rank.',
    formula: 'sorted(startup_ms)[ceil(0.5 × n)]',
    example: 'Samples 900, 1000, 1200, 4000 (n = 4): ceil(2) = 2nd = 1000 ms (quantileExact would give 1200).',
    surfaces: ['/v1/qoe/timeseries startup_p50_ms', '/v1/qoe/views-summary startup_p50_ms', 'Grafana QoE "Startup p50 / p95"'],
  },
  {
    name: 'startup_p95_ms',
    unit: 'ms',
    grains: ['minute', 'view_end'],
    kind: rank('startup_samples', 0.95),
    words: '95th percentile of startup time of views that played; nearest rank.',
    formula: 'sorted(startup_ms)[ceil(0.95 × n)]',
    example: '20 samples 900, 950, …, 1850: ceil(19) = 19th = 1800 ms (quantileExact: the 20th, 1850).',
    surfaces: [
      '/v1/qoe/timeseries startup_p95_ms',
      '/v1/qoe/views-summary startup_p95_ms',
      'Grafana QoE "Startup p50 / p95"',
      'alert qoe_startup_p95_s (÷ 1000)',
    ],
  },
  {
    name: 'avg_bitrate_kbps',
    unit: 'kbps',
    grains: ['minute', 'view_end'],
    kind: ratio('bitrate_kbps_ms', 'playing_ms'),
    words: 'Average bitrate weighted by playing time.',
    formula: 'Σ (kbps × ms played) ÷ Σ playing_ms',
    example: '2,000 ms at 26,000 kbps and 4,000 ms at 27,000: 160e6 ÷ 6,000 = 26,667 kbps.',
    surfaces: ['/v1/qoe/timeseries avg_bitrate_kbps', '/v1/qoe/views-summary avg_bitrate_kbps'],
  },
  {
    name: 'payment_failure_pct',
    unit: '%',
    grains: ['payment_minute'],
    kind: ratio('failed', 'attempts', 100),
    words: 'Failed charge attempts as a share of charge attempts (cancel, refund and chargeback are not attempts).',
    formula: '100 × Σ failed ÷ Σ attempts',
    example: '1 failed of 5 attempts: 20 %.',
    surfaces: [
      '/v1/business/payments and /v1/business/hourly failure_rate (÷ 100)',
      'Grafana business "Payment failure %"',
      'alert business_payment_failure_pct',
    ],
  },
  {
    name: 'revenue_usd',
    unit: 'USD',
    grains: ['payment_minute'],
    kind: total('net_usd_micros', 1e-6),
    words: 'Net revenue: succeeded charges minus refunds and chargebacks, in USD.',
    formula: 'Σ net_usd_micros ÷ 10^6',
    example: 'Gross 28.73 − refunds 4.99 − chargebacks 0.75 = 22.99 USD.',
    surfaces: ['/v1/business/hourly revenue_usd', 'Grafana business "Net revenue (USD)" and "Hourly KPIs"', 'alert business_revenue_usd'],
  },
  {
    name: 'payers',
    unit: 'accounts',
    grains: ['account_period'],
    kind: total('payers'),
    words: 'Accounts with at least one succeeded charge in the period, whatever was refunded later (DOMAIN §4 "paying accounts").',
    formula: 'count of accounts with a succeeded charge',
    example: 'a1 paid 9.99 then was refunded 9.99; a2 paid 3.75: payers = 2.',
    surfaces: ['/v1/business/hourly payers', 'Grafana business "Hourly KPIs"'],
  },
  {
    name: 'net_payers',
    unit: 'accounts',
    grains: ['account_period'],
    kind: total('net_payers'),
    words: 'Accounts whose net revenue in the period is positive (refunds and chargebacks subtracted).',
    formula: 'count of accounts with Σ net_usd_micros > 0',
    example: 'a1 paid 9.99 then was refunded 9.99 (net 0); a2 paid 3.75: net payers = 1.',
    surfaces: ['/v1/business/hourly net_payers', 'Grafana business "Hourly KPIs"'],
  },
  {
    name: 'active_accounts',
    unit: 'accounts',
    grains: ['account_period'],
    kind: total('active_accounts'),
    words: 'Distinct accounts with any playback, payment or gift in the period.',
    formula: 'count of distinct active accounts',
    example: 'a1 played, a2 paid, a3 gifted: 3.',
    surfaces: ['/v1/business/hourly active_accounts', 'Grafana business "Hourly KPIs"'],
  },
  {
    name: 'payer_rate_pct',
    unit: '%',
    grains: ['account_period'],
    kind: ratio('payers', 'active_accounts', 100),
    words: 'Payers as a share of active accounts.',
    formula: '100 × payers ÷ active_accounts',
    example: '2 payers among 5 active accounts: 40 %.',
    surfaces: ['/v1/business/hourly payer_rate (÷ 100)', 'Grafana business "Hourly KPIs" payer_rate (÷ 100)', 'alert business_payer_rate_pct'],
  },
  {
    name: 'arppu_usd',
    unit: 'USD',
    grains: ['account_period'],
    kind: ratio('net_usd_micros', 'payers', 1e-6),
    words: 'Average revenue per paying account (payers).',
    formula: 'Σ net_usd_micros ÷ 10^6 ÷ payers',
    example: 'Revenue 22.99 USD, 3 payers: 7.6633 USD.',
    surfaces: ['/v1/business/hourly arppu_usd', 'Grafana business "Hourly KPIs"'],
  },
  {
    name: 'arpu_usd',
    unit: 'USD',
    grains: ['account_period'],
    kind: ratio('net_usd_micros', 'active_accounts', 1e-6),
    words: 'Average revenue per active account.',
    formula: 'Σ net_usd_micros ÷ 10^6 ÷ active_accounts',
    example: 'Revenue 22.99 USD, 5 active accounts: 4.598 USD.',
    surfaces: ['/v1/business/hourly arpu_usd', 'Grafana business "Hourly KPIs"'],
  },
  {
    name: 'median_time_to_action_ms',
    unit: 'ms',
    grains: ['case'],
    kind: rank('tta_samples', 0.5),
    words: 'Median time from the first report or detection to the enforcement action (actions other than none); nearest rank.',
    formula: 'sorted(time_to_action_ms)[ceil(0.5 × n)]',
    example: 'TTA 0, 60,000, 600,000, 1,800,000 (n = 4): 2nd = 60,000 ms.',
    surfaces: ['/v1/safety/summary median_time_to_action_ms', 'Grafana safety "Time to action, median and p90"'],
  },
  {
    name: 'p90_time_to_action_ms',
    unit: 'ms',
    grains: ['case'],
    kind: rank('tta_samples', 0.9),
    words: '90th percentile of time to action; nearest rank.',
    formula: 'sorted(time_to_action_ms)[ceil(0.9 × n)]',
    example: 'TTA 0, 60,000, 600,000, 1,800,000: ceil(3.6) = 4th = 1,800,000 ms.',
    surfaces: ['/v1/safety/summary p90_time_to_action_ms', 'Grafana safety "Time to action, median and p90"'],
  },
  {
    name: 'median_time_to_appeal_decision_ms',
    unit: 'ms',
    grains: ['case'],
    kind: rank('appeal_decision_samples', 0.5),
    words: 'Median time from appeal to decision; nearest rank.',
    formula: 'sorted(time_to_appeal_decision_ms)[ceil(0.5 × n)]',
    example: '1,000,000 and 7,200,000: 1st = 1,000,000 ms.',
    surfaces: ['/v1/safety/summary median_time_to_appeal_decision_ms'],
  },
];

export const METRIC: Record<string, MetricDef> = Object.fromEntries(CATALOG.map((m) => [m.name, m]));

/** Nearest-rank percentile of a samples array expression: sorted[ceil(q·n)], NULL when empty. */
export function nearestRankSql(samples: string, q: number): string {
  return `if(length(${samples}) = 0, NULL, arrayElement(arraySort(${samples}), toUInt64(greatest(1, ceil(${q} * length(${samples}))))))`;
}

/** Nearest rank in TypeScript (the same rule): sorted[ceil(q·n)], 1-based. */
export function nearestRank(samples: readonly number[], q: number): number | null {
  if (samples.length === 0) return null;
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil(q * s.length))) - 1]!;
}

/**
 * How a metric's measures are read: 'rows' aggregates the source's rows (source.measures);
 * 'partials' combines columns of partial aggregates named `alias(measure)` (sum / groupArrayArray);
 * 'columns' reads such columns as they are (one row already holds the whole aggregate).
 */
export type Level = 'rows' | 'partials' | 'columns';
export const P = (m: string) => `p_${m}`;

export function measureSql(grain: Grain, measure: string, level: Level = 'rows', alias: (m: string) => string = P): string {
  const m = SOURCES[grain].measures[measure];
  if (!m) throw new Error(`no measure ${measure} on grain ${grain}`);
  if (level === 'rows') return m.sql;
  if (level === 'columns') return alias(measure);
  return m.combine === 'sum' ? `sum(${alias(measure)})` : `groupArrayArray(${alias(measure)})`;
}

/** The measures a metric needs. */
export function measuresOf(metric: MetricDef): string[] {
  const k = metric.kind;
  return k.kind === 'ratio' ? [k.num, k.den] : k.kind === 'sum' ? [k.measure] : [k.samples];
}

const num = (x: number) => String(x);

/**
 * A metric's SQL expression on a grain. `level` as in measureSql. Ratios are NULL when the
 * denominator is 0; percentiles are NULL without samples; `scale` multiplies the result.
 */
export function metricSql(name: string, grain: Grain, level: Level = 'rows', alias?: (m: string) => string): string {
  const metric = METRIC[name];
  if (!metric) throw new Error(`no metric ${name} in the catalog`);
  if (!metric.grains.includes(grain)) throw new Error(`metric ${name} is not defined on grain ${grain}`);
  const ms = (m: string) => measureSql(grain, m, level, alias);
  const k = metric.kind;
  // A scale below 1 that is the inverse of a whole number (1 / 3,600,000, 1e-6) divides by it: exact in SQL.
  const inv = (s: number) => Math.round(1 / s);
  const scaled = (e: string, s: number) => (s === 1 ? e : s < 1 && Math.abs(1 / s - inv(s)) < 1e-6 ? `${e} / ${num(inv(s))}` : `${num(s)} * ${e}`);
  if (k.kind === 'ratio') return `if((${ms(k.den)}) = 0, NULL, ${scaled(`(${ms(k.num)}) / (${ms(k.den)})`, k.scale)})`;
  if (k.kind === 'sum') return scaled(`(${ms(k.measure)})`, k.scale);
  return scaled(nearestRankSql(`(${ms(k.samples)})`, k.q), k.scale);
}

/** `measure AS alias` for every measure of the given metrics (partial aggregates of an inner query). */
export function partialsSql(grain: Grain, metrics: readonly string[], alias: (m: string) => string = P, extra: readonly string[] = []): string {
  const ms = [...new Set([...metrics.flatMap((n) => measuresOf(METRIC[n]!)), ...extra])];
  return ms.map((m) => `${measureSql(grain, m)} AS ${alias(m)}`).join(', ');
}

const GRAIN_TITLE: Record<Grain, string> = {
  minute: 'real time (`qoe_minute`, by event minute)',
  view_end: 'by view end (`qoe_views`, final views)',
  payment_minute: 'payments (`kpi_payments_1m`)',
  account_period: 'accounts (`account_activity_1h`, one row per account and period)',
  case: 'moderation cases (`safety_cases`)',
};

function kindText(k: MetricKind): string {
  if (k.kind === 'ratio') return `ratio of sums: Σ ${k.num} ÷ Σ ${k.den}${k.scale === 1 ? '' : ` × ${k.scale}`}`;
  if (k.kind === 'sum') return `sum: Σ ${k.measure}${k.scale === 1 ? '' : ` × ${k.scale}`}`;
  return `nearest rank: sorted(${k.samples})[ceil(${k.q} × n)]`;
}

/** docs/metrics.md, generated (scripts/metrics-doc.ts; tests/metrics-catalog.test.ts checks it is current). */
export function metricsDoc(): string {
  const lines: string[] = [
    '# Metrics (generated from the catalog)',
    '',
    '<!-- GENERATED by scripts/metrics-doc.ts from contracts/metrics-catalog.ts: do not edit. -->',
    '',
    'Every metric that the API, the Grafana panels and the alert rules show is defined once, in',
    '`contracts/metrics-catalog.ts`; their SQL is generated from it (`metricSql`), and so are the views of',
    'migration 016 (`scripts/metric-views.ts`). `tests/metrics-catalog.test.ts` fails when a formula is',
    'written in api/, alerts/ or grafana/src outside the catalog, or when this file or migration 016 is',
    'stale. Percentiles: one method everywhere, **nearest rank**, sorted[ceil(q·n)] (1-based); ClickHouse',
    '`quantileExact` returns sorted[q·n + 1] when q·n is whole and `quantileExactInclusive` interpolates,',
    'so neither is used. Real-time and by-view-end QoE use the same formulas on two grains.',
    '',
    '## Sources (grains) and their measures',
    '',
  ];
  for (const s of Object.values(SOURCES)) {
    lines.push(
      `### ${GRAIN_TITLE[s.grain]}`,
      '',
      `${s.words}. Tables: ${s.tables.map((t) => `\`${t}\``).join(', ')}. Dimensions: ${s.dimensions.length ? s.dimensions.map((d) => `\`${d}\``).join(', ') : 'none'}. Period column: \`${s.time}\`.`,
      '',
    );
    lines.push('| measure | SQL over the rows |', '|---|---|');
    for (const [name, m] of Object.entries(s.measures)) lines.push(`| ${name} | \`${m.sql.replaceAll('|', '\\|')}\` |`);
    lines.push('');
  }
  lines.push('## Metrics', '');
  for (const m of CATALOG) {
    lines.push(
      `### ${m.name} (${m.unit})`,
      '',
      m.words,
      '',
      `- Formula: ${m.formula} (${kindText(m.kind)}).`,
      `- Grains: ${m.grains.map((g) => GRAIN_TITLE[g]).join('; ')}.`,
      `- Tables: ${[...new Set(m.grains.flatMap((g) => SOURCES[g].tables))].map((t) => `\`${t}\``).join(', ')}.`,
      `- Worked example: ${m.example}`,
      `- Shown by: ${m.surfaces.join('; ')}.`,
      '',
    );
  }
  lines.push(
    '## Not yet in the catalog',
    '',
    'Business KPIs defined in their views and documented here by hand until they move into the catalog:',
    'gross revenue, refunds and chargebacks (shown apart and subtracted), coin top-ups, gift coins and',
    'value (quantity × unit_coins; × coin_value_usd_micros), DAU / MAU (`uniqExact` over',
    '`account_activity_1h`), top creators and gifters per creator (`kpi_creator_gifts_1d`), gift',
    "concentration (share of a creator's gift value from the top 20 % of its gifters, by value,",
    'rounded up), growth versus the previous hour and the same hour of the previous 7 days',
    '(`kpi_business_growth_1h`). Money is kept in USD micro-dollars (Int64), converted per event with the',
    'fixed reference rates of `contracts/fx-rates.ts` (also written to the `fx_rates` table); a payment in a',
    'currency without a rate goes to `late_events` with reason `unknown_currency`. Churn, safety and',
    'production definitions: docs/churn.md, docs/safety.md, docs/production.md.',
    '',
  );
  return lines.join('\n');
}
