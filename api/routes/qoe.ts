/** QoE: minute time series with a group-by (qoe_minute), and per-view rows (qoe_views). */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { ApiError, ErrorBody, PageBody, PageQuery, TimeRangeQuery, decodeCursor, numeric, page, timeRange } from '../params.js';

const GROUP_BY = { none: "'all'", cdn: 'cdn', device_category: 'device_category', country: 'country', asn: 'toString(asn)', content_id: 'content_id' } as const;
const DIMS = ['cdn', 'device_category', 'country', 'content_id'] as const;

const Num = Type.Union([Type.Number(), Type.Null()]);
export const QoePoint = Type.Object({
  t: Type.Number({ description: 'Bucket start, epoch ms' }),
  series: Type.String({ description: 'Value of the group-by column ("all" without one)' }),
  concurrent_viewers: Num, views_started: Num, plays: Num, views_ended: Num,
  vsf_pct: Num, ebvs_pct: Num, playback_failure_pct: Num,
  startup_p50_ms: Num, startup_p95_ms: Num,
  rebuffer_pct: Num, rebuffer_per_min: Num, avg_bitrate_kbps: Num, watch_ms: Num, fatal_errors: Num,
});

const TsQuery = Type.Object({
  ...TimeRangeQuery,
  step: Type.Optional(Type.Integer({ minimum: 60, maximum: 86_400, multipleOf: 60, default: 60, description: 'Bucket size in seconds (whole minutes).' })),
  group_by: Type.Optional(Type.Union(Object.keys(GROUP_BY).map((k) => Type.Literal(k)), { default: 'none' })),
  cdn: Type.Optional(Type.String()), device_category: Type.Optional(Type.String()), country: Type.Optional(Type.String()), content_id: Type.Optional(Type.String()),
});

/**
 * Same formulas as the qoe_minute_all view (ratios of sums, nearest-rank startup percentiles) but
 * summed over the requested group and bucket, so percentiles come from the pooled samples rather
 * than from an average of per-group percentiles. Concurrent viewers: mean per minute in the bucket.
 */
export function qoeSeriesSql(db: string, groupExpr: string, filters: string): string {
  return `
SELECT toUnixTimestamp(toStartOfInterval(window_start, INTERVAL {step:UInt32} SECOND)) * 1000 AS t, ${groupExpr} AS series,
  sum(concurrent_viewers) / uniqExact(window_start) AS concurrent_viewers, sum(views_started) AS views_started, sum(plays) AS plays, sum(views_ended) AS views_ended,
  if(sum(views_ended) = 0, NULL, 100 * sum(vsf_views) / sum(views_ended)) AS vsf_pct,
  if(sum(views_ended) = 0, NULL, 100 * sum(ebvs_views) / sum(views_ended)) AS ebvs_pct,
  if(sum(views_ended) = 0, NULL, 100 * (sum(vsf_views) + sum(playback_failure_views)) / sum(views_ended)) AS playback_failure_pct,
  arraySort(groupArrayArray(startup_ms_samples)) AS samples,
  if(length(samples) = 0, NULL, samples[toUInt64(greatest(1, ceil(0.5 * length(samples))))]) AS startup_p50_ms,
  if(length(samples) = 0, NULL, samples[toUInt64(greatest(1, ceil(0.95 * length(samples))))]) AS startup_p95_ms,
  sum(playing_ms) + sum(rebuffer_ms) + sum(seek_ms) AS watch_ms,
  if(watch_ms = 0, NULL, 100 * sum(rebuffer_ms) / watch_ms) AS rebuffer_pct,
  if(watch_ms = 0, NULL, sum(rebuffer_count) / (watch_ms / 60000)) AS rebuffer_per_min,
  if(sum(playing_ms) = 0, NULL, sum(bitrate_kbps_ms) / sum(playing_ms)) AS avg_bitrate_kbps,
  sum(fatal_errors) AS fatal_errors
FROM ${db}.qoe_minute FINAL
WHERE window_start >= toDateTime({from:Float64}) AND window_start < toDateTime({to:Float64})${filters}
GROUP BY t, series ORDER BY t, series
LIMIT 100000
SETTINGS prefer_column_name_to_alias = 1`;
}

const ViewRow = Type.Object({
  view_id: Type.String(), viewer_id: Type.String(), account_id: Type.String(), content_id: Type.String(), stream_type: Type.String(),
  cdn: Type.String(), device_category: Type.String(), country: Type.String(), asn: Type.Number(),
  view_start: Type.String(), view_end: Type.String(), ended: Type.Number(), dropped: Type.Number(), outcome: Type.String(), error_code: Type.String(),
  startup_ms: Num, watch_ms: Type.Number(), playing_ms: Type.Number(), rebuffer_ms: Type.Number(), rebuffer_count: Type.Number(),
  rebuffer_pct: Num, weighted_avg_bitrate_kbps: Num, startup_score: Num, smoothness_score: Num, playback_success_score: Num, is_final: Type.Number(),
});
const VIEW_COLS = Object.keys(ViewRow.properties);
const VIEW_NUM = ['asn', 'ended', 'dropped', 'startup_ms', 'watch_ms', 'playing_ms', 'rebuffer_ms', 'rebuffer_count', 'is_final'];

const ViewsQuery = Type.Object({
  ...TimeRangeQuery, ...PageQuery,
  outcome: Type.Optional(Type.Union(['play', 'vsf', 'ebvs', 'business_exception', 'playback_failure'].map((o) => Type.Literal(o)))),
  cdn: Type.Optional(Type.String()), country: Type.Optional(Type.String()), account_id: Type.Optional(Type.String()),
});

export function qoeRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Static<typeof TsQuery> }>('/v1/qoe/timeseries', {
    config: { role: 'viewer' },
    schema: {
      tags: ['qoe'], querystring: TsQuery,
      description: 'QoE per bucket (from the one-minute aggregates), optionally one series per cdn, device_category, country, asn or content_id, with optional filters.',
      response: { 200: Type.Object({ step: Type.Number(), group_by: Type.String(), points: Type.Array(QoePoint) }), 400: ErrorBody },
    },
  }, async (req) => {
    const q = req.query;
    const r = timeRange(q, ctx.now());
    const step = q.step ?? 60;
    if ((r.toMs - r.fromMs) / (step * 1000) > 10_000) throw new ApiError(400, 'bad_request', 'step: too many buckets for the range (max 10000); raise step', 'step');
    const groupBy = (q.group_by ?? 'none') as keyof typeof GROUP_BY;
    const params: Record<string, unknown> = { from: r.from, to: r.to, step };
    let filters = '';
    for (const d of DIMS) if (q[d] !== undefined) { filters += ` AND ${d} = {${d}:String}`; params[d] = q[d]; }
    const rows = await queryRows<Record<string, unknown>>(ctx.ch, qoeSeriesSql(ctx.db, GROUP_BY[groupBy], filters), params);
    const points = rows.map(({ samples: _s, ...p }) => p);
    numeric(points, ['t', 'concurrent_viewers', 'views_started', 'plays', 'views_ended', 'startup_p50_ms', 'startup_p95_ms', 'watch_ms', 'fatal_errors']);
    return { step, group_by: groupBy, points };
  });

  app.get<{ Querystring: Static<typeof ViewsQuery> }>('/v1/qoe/views', {
    config: { role: 'viewer' },
    schema: { tags: ['qoe'], querystring: ViewsQuery, description: 'Views that started in the range, newest first (per-view QoE from qoe_views).', response: { 200: PageBody(ViewRow), 400: ErrorBody } },
  }, async (req) => {
    const q = req.query;
    const r = timeRange(q, ctx.now());
    const limit = q.limit ?? 100;
    const offset = decodeCursor(q.cursor);
    const params: Record<string, unknown> = { from: r.from, to: r.to, limit: limit + 1, offset };
    let filters = '';
    for (const d of ['outcome', 'cdn', 'country', 'account_id'] as const) if (q[d] !== undefined) { filters += ` AND ${d} = {${d}:String}`; params[d] = q[d]; }
    const rows = await queryRows<Record<string, unknown>>(ctx.ch,
      `SELECT ${VIEW_COLS.join(', ')} FROM ${ctx.db}.qoe_views FINAL
       WHERE view_start >= fromUnixTimestamp64Milli(toInt64({from:Float64} * 1000)) AND view_start < fromUnixTimestamp64Milli(toInt64({to:Float64} * 1000))${filters}
       ORDER BY view_start DESC, view_id LIMIT {limit:UInt32} OFFSET {offset:UInt32}`, params);
    return page(numeric(rows, VIEW_NUM), offset, limit);
  });

  app.get<{ Params: { view_id: string } }>('/v1/qoe/views/:view_id', {
    config: { role: 'viewer' },
    schema: { tags: ['qoe'], params: Type.Object({ view_id: Type.String({ minLength: 1, maxLength: 128 }) }), response: { 200: ViewRow, 404: ErrorBody } },
  }, async (req) => {
    const rows = await queryRows<Record<string, unknown>>(ctx.ch, `SELECT ${VIEW_COLS.join(', ')} FROM ${ctx.db}.qoe_views FINAL WHERE view_id = {id:String} ORDER BY version DESC LIMIT 1`, { id: req.params.view_id });
    if (rows.length === 0) throw new ApiError(404, 'not_found', `no view ${req.params.view_id}`);
    return numeric(rows, VIEW_NUM)[0];
  });
}
