/** QoE: minute time series with a group-by (qoe_minute), and per-view rows (qoe_views). */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { P, SOURCES, measureSql, metricSql, type Grain } from '../../contracts/metrics-catalog.js';
import { M, QOE_MEASURES, SERIES_STORED_RANKS, qoeRollupPlan, sealedSql } from '../../sinks/clickhouse/rollups.js';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { cacheHeaders, sealedUntil } from '../http-cache.js';
import { LateEvents, lateEvents, lateEventsSql, takeLateEvents } from '../late.js';
import { ApiError, ErrorBody, PageBody, PageQuery, TimeRangeQuery, decodeCursor, numeric, page, timeRange } from '../params.js';

const GROUP_BY = { none: "'all'", cdn: 'cdn', device_category: 'device_category', country: 'country', asn: 'toString(asn)', content_id: 'content_id' } as const;
const DIMS = ['cdn', 'device_category', 'country', 'content_id'] as const;

const Num = Type.Union([Type.Number(), Type.Null()]);
export const QoePoint = Type.Object({
  t: Type.Number({ description: 'Bucket start, epoch ms' }),
  series: Type.String({ description: 'Value of the group-by column ("all" without one)' }),
  concurrent_viewers: Num,
  views_started: Num,
  plays: Num,
  views_ended: Num,
  vsf_pct: Num,
  ebvs_pct: Num,
  playback_failure_pct: Num,
  startup_p50_ms: Num,
  startup_p95_ms: Num,
  rebuffer_pct: Num,
  rebuffer_per_min: Num,
  avg_bitrate_kbps: Num,
  watch_ms: Num,
  watch_hours: Num,
  playing_hours: Num,
  fatal_errors: Num,
});

const TsQuery = Type.Object({
  ...TimeRangeQuery,
  step: Type.Optional(Type.Integer({ minimum: 60, maximum: 86_400, multipleOf: 60, default: 60, description: 'Bucket size in seconds (whole minutes).' })),
  group_by: Type.Optional(
    Type.Union(
      Object.keys(GROUP_BY).map((k) => Type.Literal(k)),
      { default: 'none' },
    ),
  ),
  cdn: Type.Optional(Type.String()),
  device_category: Type.Optional(Type.String()),
  country: Type.Optional(Type.String()),
  content_id: Type.Optional(Type.String()),
});

/** Metrics every QoE answer gives, real time and by view end, from the catalog (contracts/metrics-catalog.ts). */
const QOE_METRICS = [
  'vsf_pct',
  'ebvs_pct',
  'playback_failure_pct',
  'startup_p50_ms',
  'startup_p95_ms',
  'rebuffer_pct',
  'rebuffer_per_min',
  'avg_bitrate_kbps',
  'watch_hours',
  'playing_hours',
] as const;
const metricCols = (grain: Grain) => QOE_METRICS.map((m) => `${metricSql(m, grain)} AS ${m}`).join(',\n  ');

/**
 * The catalog's formulas (ratios of sums, nearest-rank startup percentiles) over the requested
 * group and bucket, so percentiles come from the pooled samples rather than from an average of
 * per-group percentiles. Concurrent viewers: mean per minute in the bucket.
 */
export function qoeSeriesSql(db: string, groupExpr: string, filters: string, extraCols = ''): string {
  const m = (x: string) => measureSql('minute', x);
  return `
SELECT toUnixTimestamp(toStartOfInterval(window_start, INTERVAL {step:UInt32} SECOND)) * 1000 AS t, ${groupExpr} AS series,
  ${m('concurrent_viewer_minutes')} / uniqExact(window_start) AS concurrent_viewers, ${m('views_started')} AS views_started, ${m('plays')} AS plays, ${m('views_ended')} AS views_ended,
  ${metricCols('minute')},
  ${m('watch_ms')} AS watch_ms, ${m('fatal_errors')} AS fatal_errors${extraCols}
FROM ${SOURCES.minute.from(db, 'window_start >= toDateTime({from:Float64}) AND window_start < toDateTime({to:Float64})')}
WHERE 1${filters}
GROUP BY t, series ORDER BY t, series
LIMIT 100000
SETTINGS prefer_column_name_to_alias = 1`;
}

/**
 * The same series with closed buckets read from qoe_minute_rollup (migration 017): buckets of
 * `rollupStep` seconds wholly inside the range and closed (before the rollup's sealed_until) come
 * from the rollup, every other minute (the range's ragged ends, the open tail) from qoe_minute
 * FINAL; both give each measure's value over their rows, combined at the catalog's 'partials'
 * level, so the numbers are those of qoeSeriesSql. `lo` / `hiCap`: the range's first and last
 * whole rollup bucket bounds (epoch seconds). Only for group-bys and filters on the rollup's
 * dimensions (qoeRollupStep). `dim` (qoeRollupPlan: no filters, group-by none or one of those
 * dimensions): the rollup side reads qoe_series_rollup (migration 022), one row per bucket and
 * value of the group-by, instead of every cdn × device × country row of qoe_minute_rollup.
 *
 * `split`: the bound between rollup and source known beforehand (`{hi:UInt32}`, epoch seconds, as
 * qoeSeries reads it), with either side left out when it holds no minute of the range. Without it
 * the bound is the sealed point read inside the query (a scalar subquery), and the qoe_minute side
 * is planned and run even when the whole range is sealed: 10-25 CPU-ms per call on the 10 M-event
 * bench data for no rows (measured at load 15-20, SELECT 1 costing 2-3).
 *
 * `storedRanks` (qoe_series_rollup read at its own step, `{step}` = `rollupStep`): each point of a
 * sealed bucket is one rollup row, so its startup percentiles are the row's stored ones
 * (migration 024) and its samples are not read; points of qoe_minute minutes (no rollup row in
 * their bucket: the ragged ends and the open tail are outside [lo, hi)) sort their samples.
 */
export function qoeRollupSeriesSql(
  db: string,
  groupExpr: string,
  filters: string,
  rollupStep: number,
  split?: { rollup: boolean; source: boolean },
  dim: string | null = null,
  storedRanks = false,
  extraCols = '',
): string {
  const stored = storedRanks && dim !== null;
  const hi = split
    ? 'toDateTime({hi:UInt32})'
    : `greatest(toDateTime({lo:UInt32}), least(toDateTime({hiCap:UInt32}), ${sealedSql(db, 'qoe', dim === null ? `qoe_${rollupStep}` : `qoe_series_${rollupStep}`)}))`;
  const pm = (x: string) => measureSql('minute', x, 'partials');
  // With stored ranks the rollup rows bring their percentiles and no samples, the source rows their samples and no percentiles.
  const rollupCols = stored
    ? [...QOE_MEASURES.map((m) => (m === 'startup_samples' ? `CAST([] AS Array(UInt64)) AS ${P(m)}` : P(m))), ...SERIES_STORED_RANKS.map(M)].join(', ')
    : QOE_MEASURES.map(P).join(', ');
  const noRanks = stored ? `, ${SERIES_STORED_RANKS.map((m) => `CAST(NULL AS Nullable(UInt64)) AS ${M(m)}`).join(', ')}` : '';
  const branches: string[] = [];
  if ((split?.rollup ?? true) && dim === null)
    branches.push(`
  SELECT bucket AS ts, ${groupExpr} AS series, minutes, ${QOE_MEASURES.map(P).join(', ')}
  FROM ${db}.qoe_minute_rollup FINAL
  WHERE step = ${rollupStep} AND bucket >= toDateTime({lo:UInt32}) AND bucket < ${hi}${filters}`);
  // One row per bucket and value of the group-by (no filters): qoe_series_rollup (migration 022).
  if ((split?.rollup ?? true) && dim !== null)
    branches.push(`
  SELECT bucket AS ts, value AS series, minutes, ${rollupCols}
  FROM ${db}.qoe_series_rollup FINAL
  WHERE step = ${rollupStep} AND dim = '${dim}' AND bucket >= toDateTime({lo:UInt32}) AND bucket < ${hi}`);
  if (split?.source ?? true)
    branches.push(`
  SELECT window_start AS ts, ${groupExpr} AS series, [window_start] AS minutes, ${QOE_MEASURES.map((m) => `${measureSql('minute', m)} AS ${P(m)}`).join(', ')}${noRanks}
  FROM ${SOURCES.minute.from(db, `window_start >= toDateTime({from:Float64}) AND window_start < toDateTime({to:Float64}) AND (window_start < toDateTime({lo:UInt32}) OR window_start >= ${hi})`)}
  WHERE 1${filters}
  GROUP BY ts, series`);
  const storedRank = new Set<string>(stored ? SERIES_STORED_RANKS : []);
  const metric = (m: string) => (storedRank.has(m) ? `ifNull(max(${M(m)}), ${metricSql(m, 'minute', 'partials')})` : metricSql(m, 'minute', 'partials'));
  return `
SELECT toUnixTimestamp(toStartOfInterval(ts, INTERVAL {step:UInt32} SECOND)) * 1000 AS t, series,
  ${pm('concurrent_viewer_minutes')} / uniqExactArray(minutes) AS concurrent_viewers, ${pm('views_started')} AS views_started, ${pm('plays')} AS plays, ${pm('views_ended')} AS views_ended,
  ${QOE_METRICS.map((m) => `${metric(m)} AS ${m}`).join(',\n  ')},
  ${pm('watch_ms')} AS watch_ms, ${pm('fatal_errors')} AS fatal_errors${extraCols}
FROM (${branches.join('\n  UNION ALL')})
GROUP BY t, series ORDER BY t, series
LIMIT 100000
SETTINGS prefer_column_name_to_alias = 1`;
}

/**
 * Runs a QoE series (timeseries, the live snapshot) from the rollups where they answer
 * (qoeRollupPlan), else from qoe_minute; `params` has from, to (epoch seconds) and step. The
 * rollup's sealed point is read first (one small query), so the query names constant bounds and
 * reads only the minutes of qoe_minute the rollup does not hold. `extra`: columns added to every
 * point with their parameters (the route's late events, lateEventsSql).
 */
export async function qoeSeries(
  ctx: ApiContext,
  groupBy: keyof typeof GROUP_BY,
  filterDims: readonly string[],
  filters: string,
  params: Record<string, unknown>,
  extra: { sql: string; params: Record<string, unknown> } = { sql: '', params: {} },
): Promise<Record<string, unknown>[]> {
  const step = Number(params.step);
  const plan = qoeRollupPlan(step, groupBy, filterDims);
  const fromS = Math.floor(Number(params.from));
  const toS = Math.floor(Number(params.to));
  if (plan !== null) {
    const g = plan.step;
    const lo = Math.ceil(fromS / g) * g;
    const hiCap = Math.floor(toS / g) * g;
    if (hiCap > lo) {
      // The sealed point as the API caches it (at most a second old): an older point only moves
      // minutes from the rollup side to the source side of the query, the answer is the same.
      const sealedS = Math.floor((await sealedUntil(ctx, 'qoe', plan.sealed)) / 1000);
      const hi = Math.max(lo, Math.min(hiCap, sealedS));
      const split = { rollup: hi > lo, source: Number(params.from) < lo || Number(params.to) > hi };
      if (split.rollup || split.source)
        return queryRows(ctx.ch, qoeRollupSeriesSql(ctx.db, GROUP_BY[groupBy], filters, g, split, plan.dim, step === g, extra.sql), {
          ...extra.params,
          ...params,
          lo,
          hiCap,
          hi,
        });
    }
  }
  return queryRows(ctx.ch, qoeSeriesSql(ctx.db, GROUP_BY[groupBy], filters, extra.sql), { ...extra.params, ...params });
}

/** QoE by view end (Mux reporting): final views bucketed by the time of their end, same metrics. */
export function qoeViewsSummarySql(db: string, groupExpr: string, filters: string): string {
  const m = (x: string) => measureSql('view_end', x);
  return `
SELECT toUnixTimestamp(toStartOfInterval(view_end, INTERVAL {step:UInt32} SECOND)) * 1000 AS t, ${groupExpr} AS series,
  ${m('views_ended')} AS views_ended, ${m('plays')} AS plays, ${m('vsf_views')} AS vsf_views, ${m('ebvs_views')} AS ebvs_views, ${m('playback_failure_views')} AS playback_failure_views,
  ${metricCols('view_end')},
  ${m('watch_ms')} AS watch_ms, ${m('playing_ms')} AS playing_ms, ${m('rebuffer_ms')} AS rebuffer_ms
FROM ${SOURCES.view_end.from(db, 'view_end >= fromUnixTimestamp64Milli(toInt64({from:Float64} * 1000)) AND view_end < fromUnixTimestamp64Milli(toInt64({to:Float64} * 1000))')}
WHERE 1${filters}
GROUP BY t, series ORDER BY t, series
LIMIT 100000
SETTINGS prefer_column_name_to_alias = 1`;
}

export const QoeViewsPoint = Type.Object({
  t: Type.Number({ description: 'Bucket start (views ending in it), epoch ms' }),
  series: Type.String({ description: 'Value of the group-by column ("all" without one)' }),
  views_ended: Num,
  plays: Num,
  vsf_views: Num,
  ebvs_views: Num,
  playback_failure_views: Num,
  vsf_pct: Num,
  ebvs_pct: Num,
  playback_failure_pct: Num,
  startup_p50_ms: Num,
  startup_p95_ms: Num,
  rebuffer_pct: Num,
  rebuffer_per_min: Num,
  avg_bitrate_kbps: Num,
  watch_hours: Num,
  playing_hours: Num,
  watch_ms: Num,
  playing_ms: Num,
  rebuffer_ms: Num,
});

const ViewRow = Type.Object({
  view_id: Type.String(),
  viewer_id: Type.String(),
  account_id: Type.String(),
  content_id: Type.String(),
  stream_type: Type.String(),
  cdn: Type.String(),
  device_category: Type.String(),
  country: Type.String(),
  asn: Type.Number(),
  view_start: Type.String(),
  view_end: Type.String(),
  ended: Type.Number(),
  dropped: Type.Number(),
  outcome: Type.String(),
  error_code: Type.String(),
  startup_ms: Num,
  watch_ms: Type.Number(),
  playing_ms: Type.Number(),
  rebuffer_ms: Type.Number(),
  rebuffer_count: Type.Number(),
  rebuffer_pct: Num,
  weighted_avg_bitrate_kbps: Num,
  startup_score: Num,
  smoothness_score: Num,
  playback_success_score: Num,
  is_final: Type.Number(),
});
const VIEW_COLS = Object.keys(ViewRow.properties);
const VIEW_NUM = ['asn', 'ended', 'dropped', 'startup_ms', 'watch_ms', 'playing_ms', 'rebuffer_ms', 'rebuffer_count', 'is_final'];

const ViewsQuery = Type.Object({
  ...TimeRangeQuery,
  ...PageQuery,
  outcome: Type.Optional(Type.Union(['play', 'vsf', 'ebvs', 'business_exception', 'playback_failure'].map((o) => Type.Literal(o)))),
  cdn: Type.Optional(Type.String()),
  country: Type.Optional(Type.String()),
  account_id: Type.Optional(Type.String()),
});

/** Range, step, grouping and dimension filters of a QoE series route (timeseries, views-summary). */
function seriesQuery(q: Static<typeof TsQuery>, nowMs: number) {
  const r = timeRange(q, nowMs);
  const step = q.step ?? 60;
  if ((r.toMs - r.fromMs) / (step * 1000) > 10_000)
    throw new ApiError(400, 'bad_request', 'step: too many buckets for the range (max 10000); raise step', 'step');
  const groupBy = (q.group_by ?? 'none') as keyof typeof GROUP_BY;
  const params: Record<string, unknown> = { from: r.from, to: r.to, step };
  let filters = '';
  const filterDims: string[] = [];
  for (const d of DIMS)
    if (q[d] !== undefined) {
      filters += ` AND ${d} = {${d}:String}`;
      params[d] = q[d];
      filterDims.push(d);
    }
  return { r, step, groupBy, params, filters, filterDims };
}

export function qoeRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Static<typeof TsQuery> }>(
    '/v1/qoe/timeseries',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['qoe'],
        querystring: TsQuery,
        description:
          'QoE per bucket (from the one-minute aggregates), optionally one series per cdn, device_category, country, asn or content_id, with optional filters.',
        response: { 200: Type.Object({ step: Type.Number(), group_by: Type.String(), points: Type.Array(QoePoint), late_events: LateEvents }), 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const { r, step, groupBy, params, filters, filterDims } = seriesQuery(req.query, ctx.now());
      // The late events of the period ride along on every point (lateEventsSql): one query less.
      const late = lateEventsSql(ctx, 'qoe');
      const points = await qoeSeries(ctx, groupBy, filterDims, filters, params, { sql: `, ${late.sql} AS late_events`, params: late.params });
      const lateN = await takeLateEvents(points, () => lateEvents(ctx, 'qoe', r.from, r.to));
      // Closed when every minute of the range is sealed (minute rollup: closed in event time).
      cacheHeaders(reply, r.toMs <= (await sealedUntil(ctx, 'qoe', 'qoe_60')));
      numeric(points, ['t', 'concurrent_viewers', 'views_started', 'plays', 'views_ended', 'startup_p50_ms', 'startup_p95_ms', 'watch_ms', 'fatal_errors']);
      return { step, group_by: groupBy, points, late_events: lateN };
    },
  );

  app.get<{ Querystring: Static<typeof TsQuery> }>(
    '/v1/qoe/views-summary',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['qoe'],
        querystring: TsQuery,
        description:
          'QoE by view end (Mux reporting numbers): final views bucketed by the time they ended, optionally one series per cdn, device_category, country, asn or content_id, with optional filters (the same as /v1/qoe/timeseries). Same formulas (the metric catalog).',
        response: {
          200: Type.Object({ step: Type.Number(), group_by: Type.String(), points: Type.Array(QoeViewsPoint), late_events: LateEvents }),
          400: ErrorBody,
        },
      },
    },
    async (req) => {
      const { r, step, groupBy, params, filters } = seriesQuery(req.query, ctx.now());
      const rows = await queryRows<Record<string, unknown>>(ctx.ch, qoeViewsSummarySql(ctx.db, GROUP_BY[groupBy], filters), params);
      numeric(rows, [
        't',
        'views_ended',
        'plays',
        'vsf_views',
        'ebvs_views',
        'playback_failure_views',
        'startup_p50_ms',
        'startup_p95_ms',
        'watch_ms',
        'playing_ms',
        'rebuffer_ms',
      ]);
      // Events late for the minute rows still merge into their views; only expired views' events are left out.
      return { step, group_by: groupBy, points: rows, late_events: await lateEvents(ctx, 'qoe', r.from, r.to, ['view_expired']) };
    },
  );

  app.get<{ Querystring: Static<typeof ViewsQuery> }>(
    '/v1/qoe/views',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['qoe'],
        querystring: ViewsQuery,
        description: 'Views that started in the range, newest first (per-view QoE from qoe_views).',
        response: { 200: Type.Object({ ...PageBody(ViewRow).properties, late_events: LateEvents }), 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      const r = timeRange(q, ctx.now());
      const limit = q.limit ?? 100;
      const offset = decodeCursor(q.cursor);
      const params: Record<string, unknown> = { from: r.from, to: r.to, limit: limit + 1, offset };
      let filters = '';
      for (const d of ['outcome', 'cdn', 'country', 'account_id'] as const)
        if (q[d] !== undefined) {
          filters += ` AND ${d} = {${d}:String}`;
          params[d] = q[d];
        }
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT ${VIEW_COLS.join(', ')} FROM ${ctx.db}.qoe_views FINAL
       WHERE view_start >= fromUnixTimestamp64Milli(toInt64({from:Float64} * 1000)) AND view_start < fromUnixTimestamp64Milli(toInt64({to:Float64} * 1000))${filters}
       ORDER BY view_start DESC, view_id LIMIT {limit:UInt32} OFFSET {offset:UInt32}`,
        params,
      );
      // As views-summary: events late for the minute rows still merge into their views; only expired views' are left out.
      return { ...page(numeric(rows, VIEW_NUM), offset, limit), late_events: await lateEvents(ctx, 'qoe', r.from, r.to, ['view_expired']) };
    },
  );

  app.get<{ Params: { view_id: string } }>(
    '/v1/qoe/views/:view_id',
    {
      config: { role: 'viewer' },
      schema: { tags: ['qoe'], params: Type.Object({ view_id: Type.String({ minLength: 1, maxLength: 128 }) }), response: { 200: ViewRow, 404: ErrorBody } },
    },
    async (req) => {
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT ${VIEW_COLS.join(', ')} FROM ${ctx.db}.qoe_views FINAL WHERE view_id = {id:String} ORDER BY version DESC LIMIT 1`,
        { id: req.params.view_id },
      );
      if (rows.length === 0) throw new ApiError(404, 'not_found', `no view ${req.params.view_id}`);
      return numeric(rows, VIEW_NUM)[0];
    },
  );
}
