/** Business KPIs: hourly headline KPIs, growth, and payments by a dimension. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { metricSql } from '../../contracts/metrics-catalog.js';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { cacheHeaders, sealedUntil } from '../http-cache.js';
import { LateEvents, lateEvents, lateEventsSql, takeLateEvents } from '../late.js';
import { ErrorBody, TimeRangeQuery, numeric, timeRange } from '../params.js';

const Num = Type.Union([Type.Number(), Type.Null()]);
const Range = Type.Object({ ...TimeRangeQuery });

const HOURLY_COLS = [
  'revenue_usd',
  'gross_usd',
  'refunds_usd',
  'chargebacks_usd',
  'topups',
  'topup_usd',
  'payment_failure_rate',
  'gifts',
  'gift_coins',
  'gift_value_usd',
  'active_accounts',
  'payers',
  'net_payers',
  'arpu_usd',
  'arppu_usd',
  'payer_rate',
] as const;
const HourRow = Type.Object({ t: Type.Number(), ...Object.fromEntries(HOURLY_COLS.map((c) => [c, Num])) });

const GROWTH_COLS = [
  'revenue_usd',
  'active_accounts',
  'payer_rate',
  'payment_failure_rate',
  'prev_hour_revenue_usd',
  'same_hour_7d_avg_revenue_usd',
  'same_hour_7d_avg_payer_rate',
  'growth_vs_prev_hour',
  'growth_vs_7d_same_hour',
] as const;
const GrowthRow = Type.Object({ t: Type.Number(), ...Object.fromEntries(GROWTH_COLS.map((c) => [c, Num])) });

const BY = ['method', 'plan', 'og_tier', 'country'] as const;
const PaymentsQuery = Type.Object({
  ...TimeRangeQuery,
  by: Type.Union(
    BY.map((b) => Type.Literal(b)),
    { description: 'Dimension to group payments by.' },
  ),
  granularity: Type.Optional(Type.Union([Type.Literal('range'), Type.Literal('hour'), Type.Literal('day')], { default: 'range' })),
});
const PAY_COLS = ['attempts', 'succeeded', 'failed', 'failure_rate', 'gross_usd', 'refunds_usd', 'chargebacks_usd', 'net_usd', 'topups', 'topup_usd'] as const;
const PayRow = Type.Object({ t: Num, key: Type.String(), ...Object.fromEntries(PAY_COLS.map((c) => [c, Type.Number()])) });

export function businessRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Static<typeof Range> }>(
    '/v1/business/hourly',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['business'],
        querystring: Range,
        description:
          'Headline KPIs per hour (kpi_business_1h): revenue, refunds, ARPU, ARPPU, payers (accounts with a succeeded charge), net payers (net revenue > 0), payer rate (payers ÷ active), gifts. Default range: last 24 h.',
        response: { 200: Type.Object({ hours: Type.Array(HourRow), late_events: LateEvents }), 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const r = timeRange(req.query, ctx.now(), 86_400_000);
      // The sealed point as the API caches it (at most a second old): an older point only moves
      // hours from the closed side to the open side, the answer is the same.
      const sealedMs = await sealedUntil(ctx, 'business', 'business_1h');
      cacheHeaders(reply, r.toMs <= sealedMs);
      // Closed hours from kpi_business_1h_closed (migration 017), the open ones from the view, each
      // side only when the range has hours there: the view re-aggregates payments, gifts and
      // account-hours (about 17 ms in ClickHouse even for an empty range on the 10 M bench data),
      // so a wholly sealed range does not plan it at all.
      const fromHourMs = Math.floor(r.fromMs / 3_600_000) * 3_600_000;
      const sides = [
        ...(sealedMs > fromHourMs
          ? [
              `SELECT hour, ${HOURLY_COLS.join(', ')} FROM ${ctx.db}.kpi_business_1h_closed FINAL
         WHERE hour >= toStartOfHour(toDateTime({from:Float64})) AND hour < least(toDateTime({to:Float64}), toDateTime({sealed:UInt32}))`,
            ]
          : []),
        ...(r.toMs > Math.max(fromHourMs, sealedMs)
          ? [
              `SELECT hour, ${HOURLY_COLS.join(', ')} FROM ${ctx.db}.kpi_business_1h
         WHERE hour >= greatest(toStartOfHour(toDateTime({from:Float64})), toDateTime({sealed:UInt32})) AND hour < toDateTime({to:Float64})`,
            ]
          : []),
      ];
      // The late events of the period ride along on every hour (lateEventsSql): one query less.
      const late = lateEventsSql(ctx, 'business');
      const rows = sides.length
        ? await queryRows<Record<string, unknown>>(
            ctx.ch,
            `SELECT toUnixTimestamp(hour) * 1000 AS t, ${HOURLY_COLS.join(', ')}, ${late.sql} AS late_events FROM (
         ${sides.join('\n         UNION ALL\n         ')})
       ORDER BY hour`,
            { ...late.params, from: r.from, to: r.to, sealed: Math.floor(sealedMs / 1000) },
          )
        : [];
      const lateN = await takeLateEvents(rows, () => lateEvents(ctx, 'business', r.from, r.to));
      return { hours: numeric(rows, ['t', 'topups', 'gifts', 'gift_coins', 'active_accounts', 'payers', 'net_payers']), late_events: lateN };
    },
  );

  app.get<{ Querystring: Static<typeof Range> }>(
    '/v1/business/growth',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['business'],
        querystring: Range,
        description:
          'Revenue and payer rate versus the previous hour and the same hour of the previous 7 days (kpi_business_growth_1h). Default range: last 24 h.',
        response: { 200: Type.Object({ hours: Type.Array(GrowthRow), late_events: LateEvents }), 400: ErrorBody },
      },
    },
    async (req) => {
      const r = timeRange(req.query, ctx.now(), 86_400_000);
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT toUnixTimestamp(hour) * 1000 AS t, ${GROWTH_COLS.join(', ')} FROM ${ctx.db}.kpi_business_growth_1h
       WHERE hour >= toStartOfHour(toDateTime({from:Float64})) AND hour < toDateTime({to:Float64}) ORDER BY hour`,
        { from: r.from, to: r.to },
      );
      return { hours: numeric(rows, ['t', 'active_accounts']), late_events: await lateEvents(ctx, 'business', r.from, r.to) };
    },
  );

  app.get<{ Querystring: Static<typeof PaymentsQuery> }>(
    '/v1/business/payments',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['business'],
        querystring: PaymentsQuery,
        description:
          'Payments (attempts, failures, gross, refunds, chargebacks, net, top-ups in USD) by method, plan, og_tier or country, over the range or per hour/day. Default range: last 24 h.',
        response: { 200: Type.Object({ by: Type.String(), rows: Type.Array(PayRow), late_events: LateEvents }), 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      const r = timeRange(q, ctx.now(), 86_400_000);
      const g = q.granularity ?? 'range';
      const tExpr =
        g === 'range' ? 'NULL' : g === 'hour' ? 'toUnixTimestamp(toStartOfHour(window_start)) * 1000' : 'toUnixTimestamp(toStartOfDay(window_start)) * 1000';
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT ${tExpr} AS t, toString(${q.by}) AS key, sum(attempts) AS attempts, sum(succeeded) AS succeeded, sum(failed) AS failed,
         ifNull(${metricSql('payment_failure_pct', 'payment_minute')} / 100, 0) AS failure_rate,
         sum(gross_usd_micros) / 1e6 AS gross_usd, sum(refunds_usd_micros) / 1e6 AS refunds_usd, sum(chargebacks_usd_micros) / 1e6 AS chargebacks_usd,
         sum(net_usd_micros) / 1e6 AS net_usd, sum(topups) AS topups, sum(topup_usd_micros) / 1e6 AS topup_usd
       FROM ${ctx.db}.kpi_payments_1m FINAL
       WHERE window_start >= toDateTime({from:Float64}) AND window_start < toDateTime({to:Float64})
       GROUP BY t, key ORDER BY t, net_usd DESC, key LIMIT 10000 SETTINGS prefer_column_name_to_alias = 1`,
        { from: r.from, to: r.to },
      );
      return {
        by: q.by,
        rows: numeric(rows, ['t', 'attempts', 'succeeded', 'failed', 'topups']),
        late_events: await lateEvents(ctx, 'business', r.from, r.to),
      };
    },
  );
}
