/** Creators and gifts: top creators by gift value, a creator's gifters, gift concentration. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { sealedUntil } from '../http-cache.js';
import { LateEvents, lateEvents, lateEventsSql, takeLateEvents } from '../late.js';
import { ErrorBody, PageBody, PageQuery, TimeRangeQuery, decodeCursor, numeric, page, timeRange } from '../params.js';

const TopQuery = Type.Object({ ...TimeRangeQuery, ...PageQuery });
const CreatorRow = Type.Object({
  creator_id: Type.String(),
  gift_value_usd: Type.Number(),
  coins: Type.Number(),
  gifts: Type.Number(),
  gifters: Type.Number(),
  top20_gifter_share: Type.Number({ description: "Share of the creator's gift value from its top 20 % of gifters (by value)." }),
});
const GifterRow = Type.Object({ sender_account_id: Type.String(), gift_value_usd: Type.Number(), coins: Type.Number(), gifts: Type.Number() });
/** A page of rows with the gifts of the period left out as late (business processor, gifts only). */
const LatePage = <T extends ReturnType<typeof Type.Object>>(item: T) => Type.Object({ ...PageBody(item).properties, late_events: LateEvents });
const lateGifts = (ctx: ApiContext, r: { from: string; to: string }) => lateEvents(ctx, 'business', r.from, r.to, undefined, ['gifts']);
const lateGiftsSql = (ctx: ApiContext) => lateEventsSql(ctx, 'business', undefined, ['gifts']);

/** The range's closed whole hours [lo, hi), epoch seconds, and whether the range has minutes outside them. */
interface ClosedHours {
  lo: number;
  hi: number;
  minutes: boolean;
}

/**
 * The range's closed whole hours, read from the gift rollups (migration 021): `lo`, the first whole
 * hour of the range; `hi`, the end of the last whole hour before the gift rollups' sealed point
 * (at least lo). Rows of [lo, hi) come from the rollups, the rest of the range from kpi_gifts_1m.
 * The sealed point is the API's cached one (at most a second old): an older point only moves
 * hours from the rollups to the minute rows, the same integer sums. Computed here rather than in
 * SQL so that a wholly sealed range (the default last 24 h once its hours have closed, with
 * whole-hour bounds) plans and runs no FINAL over the minute rows at all: their side's filter
 * cannot use the index to skip the closed hours, so it read every minute row of the range.
 */
async function closedHoursOf(ctx: ApiContext, r: { from: string; to: string }): Promise<ClosedHours> {
  const sealedS = Math.floor((await sealedUntil(ctx, 'business', 'gifts_1h')) / 1000);
  const from = Number(r.from);
  const to = Number(r.to);
  const lo = Math.floor((Math.ceil(from) + 3599) / 3600) * 3600;
  const hi = Math.max(lo, Math.min(Math.floor(Math.floor(to) / 3600) * 3600, sealedS));
  return { lo, hi, minutes: from < lo || to > hi };
}
const closedHours = 'toDateTime({lo:UInt32}) AS lo, toDateTime({hi:UInt32}) AS hi';
const hoursParams = (h: ClosedHours) => ({ lo: h.lo, hi: h.hi });
const minuteRows = (db: string, extra: string) => `${db}.kpi_gifts_1m FINAL
  WHERE window_start >= toDateTime({from:Float64}) AND window_start < toDateTime({to:Float64}) AND (window_start < lo OR window_start >= hi)${extra}`;

/**
 * Per (creator, sender) sums over the range; the building block of every creator query. Closed
 * hours from kpi_gifts_sender_1h (sorted by creator: a creator filter reads that creator's rows
 * only), the rest from kpi_gifts_1m (only when the range has minutes outside the closed hours);
 * integer sums, so the same totals as kpi_gifts_1m alone.
 */
const perSender = (db: string, h: ClosedHours, extra = '') => `
  SELECT creator_id, sender_account_id, sum(value_usd_micros) AS v, sum(coins) AS c, sum(gifts) AS g
  FROM (
    SELECT creator_id, sender_account_id, value_usd_micros, coins, gifts FROM ${db}.kpi_gifts_sender_1h FINAL WHERE hour >= lo AND hour < hi${extra}${
      h.minutes
        ? `
    UNION ALL
    SELECT creator_id, sender_account_id, value_usd_micros, coins, gifts FROM ${minuteRows(db, extra)}`
        : ''
    })
  GROUP BY creator_id, sender_account_id`;

/** Per creator sums over the range: closed hours from kpi_gifts_creator_1h (one row per hour and creator), the rest from kpi_gifts_1m. */
const perCreator = (db: string, h: ClosedHours) => `
  SELECT creator_id, sum(value_usd_micros) AS v
  FROM (
    SELECT creator_id, value_usd_micros FROM ${db}.kpi_gifts_creator_1h FINAL WHERE hour >= lo AND hour < hi${
      h.minutes
        ? `
    UNION ALL
    SELECT creator_id, value_usd_micros FROM ${minuteRows(db, '')}`
        : ''
    })
  GROUP BY creator_id`;

export function creatorRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Static<typeof TopQuery> }>(
    '/v1/creators/top',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['creators'],
        querystring: TopQuery,
        description: 'Creators by gift value in the range (default last 24 h), with gifters and gift concentration.',
        response: { 200: LatePage(CreatorRow), 400: ErrorBody },
      },
    },
    async (req) => {
      const r = timeRange(req.query, ctx.now(), 86_400_000);
      const limit = req.query.limit ?? 100;
      const offset = decodeCursor(req.query.cursor);
      // The page's creators first (their totals need no per-sender rows), then per-sender sums for
      // those creators only: the per-(creator, sender) aggregation, the largest cost, shrinks to the
      // page's share of the rows. Same totals, same order (gift_value_usd DESC, creator_id). Two
      // queries: the page's creators as a constant list (and the closed hours' bounds as
      // constants) cost less than the page as a subquery of the second, which ClickHouse ran once
      // per branch of its UNION (10 M-event bench data, ClickHouse alone: 49 ms → 7 + 38 ms). The
      // late gifts of the range ride along (lateEventsSql).
      const base = { from: r.from, to: r.to };
      const h = await closedHoursOf(ctx, r);
      const [pg] = await queryRows<{ ids: string[] }>(
        ctx.ch,
        `WITH ${closedHours}
       SELECT groupArray(creator_id) AS ids
       FROM (SELECT creator_id FROM (${perCreator(ctx.db, h)}) ORDER BY v / 1e6 DESC, creator_id LIMIT {limit:UInt32} OFFSET {offset:UInt32})`,
        { ...base, ...hoursParams(h), limit: limit + 1, offset },
      );
      const late = lateGiftsSql(ctx);
      const rows = pg!.ids.length
        ? await queryRows<Record<string, unknown>>(
            ctx.ch,
            `WITH ${closedHours}
       SELECT creator_id, sum(v) / 1e6 AS gift_value_usd, sum(c) AS coins, sum(g) AS gifts, count() AS gifters,
         if(sum(v) = 0, 0, arraySum(arraySlice(arrayReverseSort(groupArray(v)), 1, toUInt32(ceil(count() * 0.2)))) / sum(v)) AS top20_gifter_share,
         ${late.sql} AS late_events
       FROM (${perSender(ctx.db, h, ' AND creator_id IN {ids:Array(String)}')}) GROUP BY creator_id ORDER BY gift_value_usd DESC, creator_id`,
            { ...late.params, ...base, ...hoursParams(h), ids: pg!.ids },
          )
        : [];
      const lateN = await takeLateEvents(rows, () => lateGifts(ctx, r));
      return { ...page(numeric(rows, ['coins', 'gifts', 'gifters']), offset, limit), late_events: lateN };
    },
  );

  app.get<{ Params: { creator_id: string }; Querystring: Static<typeof TopQuery> }>(
    '/v1/creators/:creator_id/gifters',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['creators'],
        params: Type.Object({ creator_id: Type.String({ minLength: 1, maxLength: 128 }) }),
        querystring: TopQuery,
        description: "A creator's gifters by value (default last 24 h).",
        response: { 200: LatePage(GifterRow), 400: ErrorBody },
      },
    },
    async (req) => {
      const r = timeRange(req.query, ctx.now(), 86_400_000);
      const limit = req.query.limit ?? 100;
      const offset = decodeCursor(req.query.cursor);
      const h = await closedHoursOf(ctx, r);
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `WITH ${closedHours}
       SELECT sender_account_id, v / 1e6 AS gift_value_usd, c AS coins, g AS gifts FROM (${perSender(ctx.db, h, ' AND creator_id = {creator:String}')})
       ORDER BY gift_value_usd DESC, sender_account_id LIMIT {limit:UInt32} OFFSET {offset:UInt32}`,
        { from: r.from, to: r.to, ...hoursParams(h), creator: req.params.creator_id, limit: limit + 1, offset },
      );
      return { ...page(numeric(rows, ['coins', 'gifts']), offset, limit), late_events: await lateGifts(ctx, r) };
    },
  );

  app.get<{ Querystring: Static<typeof TopQuery> }>(
    '/v1/creators/concentration',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['creators'],
        querystring: Type.Object({ ...TimeRangeQuery }),
        description: 'Platform-wide gift concentration in the range: share of gift value from the top 20 % of gifters and from the top 20 % of creators.',
        response: {
          200: Type.Object({
            gift_value_usd: Type.Number(),
            gifters: Type.Number(),
            creators: Type.Number(),
            top20_gifter_share: Type.Number(),
            top20_creator_share: Type.Number(),
            late_events: LateEvents,
          }),
          400: ErrorBody,
        },
      },
    },
    async (req) => {
      const r = timeRange(req.query, ctx.now(), 86_400_000);
      const h = await closedHoursOf(ctx, r);
      const [row] = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `WITH ${closedHours},
         s AS (${perSender(ctx.db, h)}),
         g AS (SELECT sender_account_id, sum(v) AS v FROM s GROUP BY sender_account_id),
         c AS (SELECT creator_id, sum(v) AS v FROM s GROUP BY creator_id)
       SELECT (SELECT sum(v) FROM g) / 1e6 AS gift_value_usd, (SELECT count() FROM g) AS gifters, (SELECT count() FROM c) AS creators,
         (SELECT if(sum(v) = 0, 0, arraySum(arraySlice(arrayReverseSort(groupArray(v)), 1, toUInt32(ceil(count() * 0.2)))) / sum(v)) FROM g) AS top20_gifter_share,
         (SELECT if(sum(v) = 0, 0, arraySum(arraySlice(arrayReverseSort(groupArray(v)), 1, toUInt32(ceil(count() * 0.2)))) / sum(v)) FROM c) AS top20_creator_share`,
        { from: r.from, to: r.to, ...hoursParams(h) },
      );
      return {
        ...numeric([row!], ['gifters', 'creators', 'gift_value_usd', 'top20_gifter_share', 'top20_creator_share'])[0],
        late_events: await lateGifts(ctx, r),
      };
    },
  );
}
