/**
 * Alerts that explain themselves (issue 22): when an alert starts firing, `explainAlert` ranks the
 * slices of every dimension of its metric by their contribution to the deviation from the
 * baseline (contribution.ts: rate and mix effects for ratios, own change for sums) and adds
 * context from the other lenses for the top slice: concurrent viewers and views in it, the shows
 * most watched there, engagement, revenue and payment failures against their own baselines, and
 * the open Jira issues on those shows as of the firing time.
 *
 * Everything is computed in ClickHouse over the derived tables, on bounded time ranges (the
 * alert's period and the same period on the baseline days) with `max_execution_time`, from the
 * metric catalog's measures (contracts/metrics-catalog.ts): no formula is written here.
 *
 * Periods: current = [activeAt − window, firingAt), i.e. every window the condition held in before
 * the alert fired (at most 6 h, ending at the firing time); baseline = the same period 1..D days
 * earlier (D = the rule's baseline_days, else 7), averaged over the days that have data; when no
 * baseline day has data, the period just before the current one.
 */
import { METRIC, SOURCES, measureSql, type Grain } from '../contracts/metrics-catalog.js';
import { queryRows, type ClickHouse } from '../sinks/clickhouse/client.js';
import { rankContributions, type Contribution, type ContributionKind, type SliceMeasures } from './contribution.js';
import type { Rule } from './rules.js';
import type { AlertState } from './state-machine.js';

/** Alert metrics that can be explained: the catalog metric and grain they are. */
export const EXPLAINABLE: Record<string, { metric: string; grain: Grain; dashboard: string }> = {
  qoe_rebuffer_pct: { metric: 'rebuffer_pct', grain: 'minute', dashboard: 'streampulse-qoe' },
  qoe_vsf_pct: { metric: 'vsf_pct', grain: 'minute', dashboard: 'streampulse-qoe' },
  qoe_fatal_errors: { metric: 'fatal_errors', grain: 'minute', dashboard: 'streampulse-qoe' },
  engagement_playing_hours: { metric: 'playing_hours', grain: 'minute', dashboard: 'streampulse-qoe' },
  business_revenue_usd: { metric: 'revenue_usd', grain: 'payment_minute', dashboard: 'streampulse-business' },
  business_payment_failure_pct: { metric: 'payment_failure_pct', grain: 'payment_minute', dashboard: 'streampulse-business' },
};

/** The show of a title (raw_catalog), a dimension of the QoE grains beside the table's own. */
const SHOW = 'show_name';
const DAY_S = 86_400;
const MAX_PERIOD_S = 6 * 3600;
const PREV = 255;

export interface ExplainSlice {
  dimension: string;
  value: string;
  /** Share of the change carried by the slice (1 = all of it; can exceed 1 when others offset). */
  share: number;
  /** Share of the traffic (ratio: current denominator; sum: baseline total). */
  weight: number;
  excess_share: number;
  contribution: number;
  rate_effect: number;
  mix_effect: number;
  current: number | null;
  baseline: number | null;
}

export interface Lens {
  metric: string;
  unit: string;
  scope: string;
  current: number | null;
  baseline: number | null;
  change_pct: number | null;
}

export interface Explanation {
  version: 1;
  metric: string;
  unit: string;
  kind: ContributionKind;
  /** Labels the alert's group fixes (the rule's group_by); slices are within them. */
  within: Record<string, string>;
  period: { from: string; to: string };
  /** Baseline days averaged (1 = the day before …); [] with `previous_period`. */
  baseline_days: number[];
  previous_period: boolean;
  current: number | null;
  baseline: number | null;
  change: number;
  dimensions: string[];
  top: ExplainSlice[];
  context: {
    slice: { dimension: string; value: string } | null;
    avg_concurrent_viewers: number | null;
    views_started: number | null;
    top_shows: Array<{ show_name: string; playing_hours: number; avg_concurrent_viewers: number }>;
    lenses: Lens[];
    jira: Array<{ issue_key: string; show_name: string; severity: string; status: string; age_hours: number; cost_impact_usd: number }>;
  };
  /** Grafana dashboard link with the alert's period and slice as variables (settings.grafana_url + path). */
  grafana: string;
  computed_ms: number;
}

const iso = (s: number) => new Date(s * 1000).toISOString();
const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));

function dimensionsOf(grain: Grain): string[] {
  return [...SOURCES[grain].dimensions, ...(grain === 'minute' ? [SHOW] : [])];
}

/**
 * Rows (dim, val, p, m_<measure>…) of a grain between lo and b: p = 0 for [a, b), p = k for the
 * same period k days earlier (k = 1..days), p = 255 for the period just before [a, b). Filters
 * and dimensions are column names of the grain (validated by the caller against its fixed list).
 */
function slicesSql(
  db: string,
  grain: Grain,
  measures: readonly string[],
  dims: readonly string[],
  filters: readonly string[],
  timeout: number,
  days: number,
): string {
  const src = SOURCES[grain];
  const t = src.time;
  const ts = `toInt64(toUnixTimestamp(${t}))`;
  const L = '({b:Int64} - {a:Int64})';
  // The periods as explicit time ranges, so the primary key (time first) reads only their granules.
  const range = (lo: string, hi: string) => `(${t} >= toDateTime(${lo}) AND ${t} < toDateTime(${hi}))`;
  const where = [
    range(`{a:Int64} - ${L}`, '{b:Int64}'),
    ...Array.from({ length: days }, (_, i) => range(`{a:Int64} - ${DAY_S * (i + 1)}`, `{b:Int64} - ${DAY_S * (i + 1)}`)),
  ].join(' OR ');
  const needShow = dims.includes(SHOW) || filters.includes(SHOW);
  const own = filters.filter((f) => f !== SHOW);
  const base = src.from(db, [`(${where})`, ...own.map((f) => `toString(${f}) = {f_${f}:String}`)].join(' AND '));
  const rows = needShow
    ? `(SELECT s.*, if(c.show_name = '', s.content_id, c.show_name) AS ${SHOW} FROM ${base} AS s LEFT JOIN (SELECT content_id, any(show_name) AS show_name FROM ${db}.raw_catalog GROUP BY content_id) AS c ON c.content_id = s.content_id${filters.includes(SHOW) ? ` WHERE ${SHOW} = {f_${SHOW}:String}` : ''})`
    : base;
  const dv = dims.length ? `arrayJoin([${dims.map((d) => `tuple('${d}', toString(${d}))`).join(', ')}])` : `tuple('all', 'all')`;
  const p = `multiIf(${ts} >= {a:Int64}, 0, ${ts} >= {a:Int64} - ${L}, ${PREV}, intDiv({b:Int64} - 1 - ${ts}, ${DAY_S}))`;
  return `SELECT dv.1 AS dim, dv.2 AS val, p, ${measures.map((m) => `toFloat64(${measureSql(grain, m)}) AS m_${m}`).join(', ')}
    FROM (SELECT *, ${dv} AS dv, toUInt16(${p}) AS p FROM ${rows})
    GROUP BY dim, val, p SETTINGS max_execution_time = ${timeout}`;
}

interface PeriodRow {
  dim: string;
  val: string;
  p: number;
  m: Record<string, number>;
}

async function slices(
  ch: ClickHouse,
  grain: Grain,
  measures: readonly string[],
  dims: readonly string[],
  filters: Record<string, string>,
  a: number,
  b: number,
  days: number,
  timeout: number,
): Promise<PeriodRow[]> {
  const allowed = new Set(dimensionsOf(grain));
  for (const c of [...dims, ...Object.keys(filters)]) if (!allowed.has(c)) throw new Error(`${c} is not a dimension of ${grain}`);
  const rows = await queryRows<Record<string, unknown>>(ch, slicesSql(ch.database, grain, measures, dims, Object.keys(filters), timeout, days), {
    a,
    b,
    ...Object.fromEntries(Object.entries(filters).map(([k, v]) => [`f_${k}`, v])),
  });
  return rows.map((r) => ({ dim: String(r.dim), val: String(r.val), p: Number(r.p), m: Object.fromEntries(measures.map((m) => [m, num(r[`m_${m}`])])) }));
}

/** Which baseline periods have data: the days among 1..days with rows, else the previous period. */
function baselinePeriods(rows: readonly PeriodRow[], days: number): { ps: number[]; previous: boolean } {
  const have = new Set(rows.map((r) => r.p));
  const ps = Array.from({ length: days }, (_, i) => i + 1).filter((k) => have.has(k));
  if (ps.length > 0) return { ps, previous: false };
  return have.has(PREV) ? { ps: [PREV], previous: true } : { ps: [], previous: false };
}

/** Current and baseline (mean of the baseline periods) per (dim, val) for the given measures. */
function fold(
  rows: readonly PeriodRow[],
  ps: readonly number[],
  measures: readonly string[],
): Map<string, { dim: string; val: string; cur: Record<string, number>; base: Record<string, number> }> {
  const out = new Map<string, { dim: string; val: string; cur: Record<string, number>; base: Record<string, number> }>();
  const zero = () => Object.fromEntries(measures.map((m) => [m, 0]));
  const inBase = new Set(ps);
  for (const r of rows) {
    if (r.p !== 0 && !inBase.has(r.p)) continue;
    const k = `${r.dim}\u0000${r.val}`;
    let e = out.get(k);
    if (!e) out.set(k, (e = { dim: r.dim, val: r.val, cur: zero(), base: zero() }));
    for (const m of measures) {
      if (r.p === 0) e.cur[m]! += r.m[m]!;
      else e.base[m]! += r.m[m]! / ps.length;
    }
  }
  return out;
}

/** Value of a catalog metric from folded measures (ratio / sum; percentiles are not explained). */
function metricValue(name: string, m: Record<string, number>): number | null {
  const k = METRIC[name]!.kind;
  if (k.kind === 'sum') return k.scale * m[k.measure]!;
  if (k.kind === 'ratio') return m[k.den]! > 0 ? k.scale * (m[k.num]! / m[k.den]!) : null;
  return null;
}

function measuresOfMetric(name: string): { kind: ContributionKind; num: string; den: string | null; scale: number } {
  const k = METRIC[name]!.kind;
  if (k.kind === 'ratio') return { kind: 'ratio', num: k.num, den: k.den, scale: k.scale };
  if (k.kind === 'sum') return { kind: 'sum', num: k.measure, den: null, scale: k.scale };
  throw new Error(`${name} is a percentile: no contribution analysis`);
}

export interface ExplainOptions {
  /** Top slices returned (default 5). */
  limit?: number;
  /** max_execution_time of each query, seconds (default 10). */
  timeoutS?: number;
  /** Prefix of the Grafana link (settings.grafana_url); without it the link is a path. */
  grafanaUrl?: string;
}

/** True when the rule's metric can be explained (a ratio or sum of the catalog with dimensions). */
export function explainable(rule: Rule): boolean {
  return rule.metric in EXPLAINABLE;
}

/** The explanation of a firing alert (see the header). */
export async function explainAlert(
  ch: ClickHouse,
  rule: Rule,
  alert: Pick<AlertState, 'labels' | 'activeAtMs' | 'firingAtMs'>,
  opts: ExplainOptions = {},
): Promise<Explanation> {
  const t0 = performance.now();
  const spec = EXPLAINABLE[rule.metric];
  if (!spec) throw new Error(`alert metric ${rule.metric} has no contribution analysis`);
  const timeout = opts.timeoutS ?? 10;
  const b = Math.floor((alert.firingAtMs ?? alert.activeAtMs) / 1000);
  const a = Math.max(b - MAX_PERIOD_S, Math.floor((alert.activeAtMs - rule.windowMs) / 1000));
  const days = rule.condition.kind === 'threshold' ? 7 : rule.condition.baselineDays;
  const within = Object.fromEntries(rule.groupBy.map((g) => [g, alert.labels[g] ?? '']));
  const dims = dimensionsOf(spec.grain).filter((d) => !(d in within));
  const m = measuresOfMetric(spec.metric);
  const extra = spec.grain === 'minute' ? ['concurrent_viewer_minutes', 'views_started'] : [];
  const measures = [...new Set([m.num, ...(m.den ? [m.den] : []), ...extra])];
  const rows = await slices(ch, spec.grain, measures, dims, within, a, b, days, timeout);
  const { ps, previous } = baselinePeriods(rows, days);
  const folded = [...fold(rows, ps, measures).values()];
  const input: SliceMeasures[] = folded.map((f) => ({
    dimension: f.dim,
    value: f.val,
    n1: f.cur[m.num]!,
    n0: f.base[m.num]!,
    d1: m.den ? f.cur[m.den]! : 0,
    d0: m.den ? f.base[m.den]! : 0,
  }));
  const ranked = rankContributions(m.kind, ps.length ? input : input.map((s) => ({ ...s, n0: 0, d0: 0 })), m.scale, opts.limit ?? 5);
  const top = ranked.top;
  const minutes = (b - a) / 60;
  const slice = top[0] ? { dimension: top[0].dimension, value: top[0].value } : null;

  // ---- context of the top slice ----
  const sliceFilter = { ...within, ...(slice ? { [slice.dimension]: slice.value } : {}) };
  const mine = slice ? folded.find((f) => f.dim === slice.dimension && f.val === slice.value) : null;
  const ctx: Explanation['context'] = { slice, avg_concurrent_viewers: null, views_started: null, top_shows: [], lenses: [], jira: [] };
  if (mine && spec.grain === 'minute') {
    ctx.avg_concurrent_viewers = mine.cur.concurrent_viewer_minutes! / minutes;
    ctx.views_started = mine.cur.views_started!;
  }
  // Shows most watched in the slice (QoE grains), by playing time in the period.
  const qoeFilter = Object.fromEntries(Object.entries(sliceFilter).filter(([k]) => dimensionsOf('minute').includes(k)));
  if (spec.grain === 'minute' || Object.keys(qoeFilter).length > 0) {
    const byShow = await slices(ch, 'minute', ['playing_ms', 'concurrent_viewer_minutes'], [SHOW], qoeFilter, a, b, 0, timeout);
    ctx.top_shows = byShow
      .filter((r) => r.p === 0)
      .sort((x, y) => y.m.playing_ms! - x.m.playing_ms! || x.val.localeCompare(y.val))
      .slice(0, 3)
      .map((r) => ({
        show_name: r.val,
        playing_hours: (METRIC.playing_hours!.kind as { scale: number }).scale * r.m.playing_ms!,
        avg_concurrent_viewers: r.m.concurrent_viewer_minutes! / minutes,
      }));
  }
  // Other lenses over the same period and baseline, in the slice when their grain has its dimensions.
  const lens = async (metric: string, grain: Grain) => {
    const own = new Set(dimensionsOf(grain));
    const f = Object.fromEntries(Object.entries(sliceFilter).filter(([k]) => own.has(k)));
    const scoped = Object.keys(sliceFilter).every((k) => own.has(k));
    const mm = measuresOfMetric(metric);
    const ms = [mm.num, ...(mm.den ? [mm.den] : [])];
    const r = await slices(ch, grain, ms, [], f, a, b, days, timeout);
    const bp = baselinePeriods(r, days);
    const tot = fold(r, bp.ps, ms).get('all\u0000all');
    const cur = tot ? metricValue(metric, tot.cur) : null;
    const base = tot && bp.ps.length ? metricValue(metric, tot.base) : null;
    ctx.lenses.push({
      metric,
      unit: METRIC[metric]!.unit,
      scope: scoped
        ? Object.entries(f)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ') || 'all'
        : `all (${
            Object.entries(f)
              .map(([k, v]) => `${k}=${v}`)
              .join(', ') || 'no slice dimension here'
          })`,
      current: cur,
      baseline: base,
      change_pct: cur !== null && base !== null && base !== 0 ? (100 * (cur - base)) / Math.abs(base) : null,
    });
  };
  await lens('playing_hours', 'minute');
  await lens('revenue_usd', 'payment_minute');
  await lens('payment_failure_pct', 'payment_minute');
  // Open Jira issues on those shows as of the firing time (production_issue_history: each issue's
  // state with the greatest `updated` before t, not deleted before t).
  const shows = [...new Set([...(slice?.dimension === SHOW ? [slice.value] : []), ...ctx.top_shows.map((s) => s.show_name)])];
  if (shows.length) {
    const jira = await queryRows<Record<string, unknown>>(
      ch,
      `SELECT issue_key, argMax(show_name, (updated, version)) AS show, argMax(severity, (updated, version)) AS sev, argMax(status, (updated, version)) AS st,
        argMax(is_open, (updated, version)) AS open, max(deleted) AS del, toUnixTimestamp64Milli(min(created)) AS created_ms, argMax(cost_impact_usd, (updated, version)) AS cost
      FROM ${ch.database}.production_issue_history FINAL
      WHERE updated < fromUnixTimestamp64Milli(toInt64({t:Int64} * 1000)) AND show_name IN {shows:Array(String)}
      GROUP BY issue_key HAVING open = 1 AND del = 0 AND show IN {shows:Array(String)}
      ORDER BY multiIf(sev = 'critical', 0, sev = 'high', 1, sev = 'medium', 2, 3), created_ms DESC, issue_key LIMIT 10
      SETTINGS max_execution_time = ${timeout}`,
      { t: b, shows },
    );
    ctx.jira = jira.map((r) => ({
      issue_key: String(r.issue_key),
      show_name: String(r.show),
      severity: String(r.sev),
      status: String(r.st),
      age_hours: Math.round((b * 1000 - num(r.created_ms)) / 36_000) / 100,
      cost_impact_usd: num(r.cost),
    }));
  }

  const vars = { ...within, ...(slice ? { [slice.dimension]: slice.value } : {}) };
  const grafana = `${opts.grafanaUrl ?? ''}/d/${spec.dashboard}?from=${a * 1000}&to=${b * 1000}${Object.entries(vars)
    .map(([k, v]) => `&var-${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('')}`;
  return {
    version: 1,
    metric: spec.metric,
    unit: METRIC[spec.metric]!.unit,
    kind: m.kind,
    within,
    period: { from: iso(a), to: iso(b) },
    baseline_days: previous ? [] : ps,
    previous_period: previous,
    current: ranked.totals.current,
    baseline: ps.length ? ranked.totals.baseline : null,
    change: ranked.totals.change,
    dimensions: dims,
    top: top.map(view),
    context: ctx,
    grafana,
    computed_ms: Math.round(performance.now() - t0),
  };
}

function view(c: Contribution): ExplainSlice {
  return {
    dimension: c.dimension,
    value: c.value,
    share: c.share,
    weight: c.weight,
    excess_share: c.excessShare,
    contribution: c.contribution,
    rate_effect: c.rateEffect,
    mix_effect: c.mixEffect,
    current: c.current,
    baseline: c.baseline,
  };
}

/** One line per top slice, for Slack and logs: `country=IN: 96 % of the change (1.2 % → 14.0 %; 30 % of traffic)`. */
export function explanationLines(e: Explanation, n = 3): string[] {
  const f = (v: number | null) => (v === null ? 'n/a' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  return e.top
    .slice(0, n)
    .map(
      (s) =>
        `${s.dimension}=${s.value}: ${(100 * s.share).toFixed(0)} % of the change (${f(s.baseline)} → ${f(s.current)} ${e.unit}; ${(100 * s.weight).toFixed(0)} % of the traffic)`,
    );
}
