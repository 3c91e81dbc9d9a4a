/**
 * Churn: per-account 7/28-day features with the signals behind them, and cohorts.
 * Built on churn_account_daily (007); the processor does not write risk scores yet (docs/churn.md
 * "features+score rows and cohorts still to do"), so these endpoints return the documented
 * features and a count of risk signals, not the logistic score. When a score table lands, add its
 * score, level and top reasons here.
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { ErrorBody, PageBody, PageQuery, badParam, decodeCursor, numeric, page } from '../params.js';

const Num = Type.Union([Type.Number(), Type.Null()]);
const AsOf = { as_of: Type.Optional(Type.String({ format: 'date', description: 'UTC day the features are computed at (default: today).' })) };

/** Signals, each a documented churn driver (docs/churn.md), in the order they are listed. */
const SIGNALS: Array<[string, string]> = [
  ['inactive_7d', 'days_since_last_view >= 7'],
  ['watch_decline', 'playing_hours_28d > 0 AND trend < 0.5'],
  ['payment_failures', 'payment_failures_28d > 0'],
  ['auto_renew_off', "auto_renew = 0 AND plan NOT IN ('', 'free')"],
  ['downgrades', 'downgrades_28d > 0'],
  ['rebuffering', 'rebuffer_pct_7d >= 2'],
  ['playback_failures', 'failures_7d > 0'],
];

export const churnFeaturesSql = (db: string) => `
SELECT account_id,
  if(max(last_view_time) IS NULL, NULL, dateDiff('day', toDate(max(last_view_time)), d)) AS days_since_last_view,
  sumIf(views, day > d - 7) AS views_7d, sum(views) AS views_28d,
  uniqExactIf(day, views > 0 AND day > d - 7) AS active_days_7d, uniqExactIf(day, views > 0) AS active_days_28d,
  sumIf(playing_ms, day > d - 7) / 3600000 AS playing_hours_7d, sum(playing_ms) / 3600000 AS playing_hours_28d,
  if(sum(playing_ms) = 0, 0, sumIf(playing_ms, day > d - 7) / (sum(playing_ms) / 4)) AS trend,
  length(arrayDistinct(groupArrayArray(titles))) AS distinct_titles_28d,
  sum(revenue_usd_micros) / 1e6 AS revenue_28d_usd, sum(gift_usd_micros) / 1e6 AS gift_value_28d_usd,
  sum(payment_failures) AS payment_failures_28d, sum(downgrades) AS downgrades_28d,
  if(sumIf(playing_ms + rebuffer_ms, day > d - 7) = 0, 0, 100 * sumIf(rebuffer_ms, day > d - 7) / sumIf(playing_ms + rebuffer_ms, day > d - 7)) AS rebuffer_pct_7d,
  sumIf(vsf + playback_failures, day > d - 7) AS failures_7d,
  argMaxIf(plan, pay_state_time, pay_state_time IS NOT NULL) AS plan,
  argMaxIf(auto_renew, pay_state_time, pay_state_time IS NOT NULL) AS auto_renew,
  if(min(first_payment_time) IS NULL, NULL, dateDiff('day', toDate(min(first_payment_time)), d)) AS tenure_days,
  ${SIGNALS.map(([, cond]) => `toUInt8(ifNull(${cond}, 0))`).join(' + ')} AS signal_count
FROM ${db}.churn_account_daily FINAL
WHERE day > d - 28 AND day <= d
GROUP BY account_id`;

const Account = Type.Object({
  account_id: Type.String(), days_since_last_view: Num, views_7d: Type.Number(), views_28d: Type.Number(), active_days_7d: Type.Number(), active_days_28d: Type.Number(),
  playing_hours_7d: Type.Number(), playing_hours_28d: Type.Number(), trend: Type.Number(), distinct_titles_28d: Type.Number(),
  revenue_28d_usd: Type.Number(), gift_value_28d_usd: Type.Number(), payment_failures_28d: Type.Number(), downgrades_28d: Type.Number(),
  rebuffer_pct_7d: Type.Number(), failures_7d: Type.Number(), plan: Type.String(), auto_renew: Type.Number(), tenure_days: Num,
  signal_count: Type.Number(), reasons: Type.Array(Type.String()),
});
const AccountsQuery = Type.Object({ ...AsOf, ...PageQuery, min_signals: Type.Optional(Type.Integer({ minimum: 0, maximum: SIGNALS.length, default: 1 })) });
const Cohort = Type.Object({ plan: Type.String(), tenure_band: Type.String(), accounts: Type.Number(), at_risk_accounts: Type.Number(), revenue_28d_usd: Type.Number(), revenue_at_risk_28d_usd: Type.Number() });

function asOfDay(v: string | undefined, now: number): string {
  if (v === undefined) return new Date(now).toISOString().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(v) || Number.isNaN(Date.parse(v))) throw badParam('as_of', 'want a date YYYY-MM-DD');
  return v;
}

const NUMS = ['views_7d', 'views_28d', 'active_days_7d', 'active_days_28d', 'distinct_titles_28d', 'payment_failures_28d', 'downgrades_28d', 'failures_7d', 'auto_renew', 'signal_count', 'days_since_last_view', 'tenure_days'];

export function churnRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Static<typeof AccountsQuery> }>('/v1/churn/accounts', {
    config: { role: 'viewer' },
    schema: { tags: ['churn'], querystring: AccountsQuery, description: 'Accounts with at least min_signals churn signals at as_of, most signals first, with their 7/28-day features and the signals as reasons.', response: { 200: PageBody(Account), 400: ErrorBody } },
  }, async (req) => {
    const q = req.query;
    const d = asOfDay(q.as_of, ctx.now());
    const limit = q.limit ?? 100;
    const offset = decodeCursor(q.cursor);
    const rows = await queryRows<Record<string, unknown>>(ctx.ch,
      `WITH toDate({d:String}) AS d SELECT * FROM (${churnFeaturesSql(ctx.db)}) WHERE signal_count >= {min:UInt8}
       ORDER BY signal_count DESC, revenue_28d_usd DESC, account_id LIMIT {limit:UInt32} OFFSET {offset:UInt32}`,
      { d, min: q.min_signals ?? 1, limit: limit + 1, offset });
    numeric(rows, NUMS);
    for (const r of rows) {
      const f = r as Record<string, number | null | string>;
      const reasons: string[] = [];
      if (f.days_since_last_view === null || (f.days_since_last_view as number) >= 7) reasons.push('inactive_7d');
      if ((f.playing_hours_28d as number) > 0 && (f.trend as number) < 0.5) reasons.push('watch_decline');
      if ((f.payment_failures_28d as number) > 0) reasons.push('payment_failures');
      if (f.auto_renew === 0 && f.plan !== '' && f.plan !== 'free') reasons.push('auto_renew_off');
      if ((f.downgrades_28d as number) > 0) reasons.push('downgrades');
      if ((f.rebuffer_pct_7d as number) >= 2) reasons.push('rebuffering');
      if ((f.failures_7d as number) > 0) reasons.push('playback_failures');
      r.reasons = reasons;
    }
    return page(rows, offset, limit);
  });

  const CohortQuery = Type.Object({ ...AsOf, at_risk_signals: Type.Optional(Type.Integer({ minimum: 1, maximum: SIGNALS.length, default: 2 })) });
  app.get<{ Querystring: Static<typeof CohortQuery> }>('/v1/churn/cohorts', {
    config: { role: 'viewer' },
    schema: { tags: ['churn'], querystring: CohortQuery, description: 'Cohorts (plan × tenure band) at as_of: accounts, accounts at risk (≥ at_risk_signals signals), 28-day revenue and revenue at risk.', response: { 200: Type.Object({ as_of: Type.String(), cohorts: Type.Array(Cohort) }), 400: ErrorBody } },
  }, async (req) => {
    const d = asOfDay(req.query.as_of, ctx.now());
    const rows = await queryRows<Record<string, unknown>>(ctx.ch,
      `WITH toDate({d:String}) AS d
       SELECT plan_name AS plan, tenure_band, accounts, at_risk_accounts, r28 AS revenue_28d_usd, r28_risk AS revenue_at_risk_28d_usd FROM (
         SELECT if(plan = '', 'unknown', plan) AS plan_name,
           multiIf(tenure_days IS NULL, 'unknown', tenure_days < 30, '0-29d', tenure_days < 90, '30-89d', tenure_days < 365, '90-364d', '365d+') AS tenure_band,
           count() AS accounts, countIf(signal_count >= {k:UInt8}) AS at_risk_accounts,
           sum(revenue_28d_usd) AS r28, sumIf(revenue_28d_usd, signal_count >= {k:UInt8}) AS r28_risk
         FROM (${churnFeaturesSql(ctx.db)}) GROUP BY plan_name, tenure_band)
       ORDER BY revenue_at_risk_28d_usd DESC, plan, tenure_band`,
      { d, k: req.query.at_risk_signals ?? 2 });
    return { as_of: d, cohorts: numeric(rows, ['accounts', 'at_risk_accounts']) };
  });
}
