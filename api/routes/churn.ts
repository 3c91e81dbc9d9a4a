/**
 * Churn: per-account risk scores and cohorts, as the day-close job writes them
 * (processors/churn/churn-scores.ts → churn_scores, churn_cohorts; 008_churn_scores.sql).
 * A day is scored once it has closed, so `as_of` defaults to the newest scored day
 * (churn_score_days), not today. The scores and reasons are not recomputed here: the formula
 * lives in one place (churn-model.ts).
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { LateEvents, lateEvents } from '../late.js';
import { ErrorBody, PageQuery, badParam, decodeCursor, numeric, page } from '../params.js';

const Num = Type.Union([Type.Number(), Type.Null()]);
const Level = Type.Union([Type.Literal('low'), Type.Literal('medium'), Type.Literal('high')]);
const AsOf = { as_of: Type.Optional(Type.String({ format: 'date', description: 'UTC day of the scores (default: the newest scored day).' })) };

const Account = Type.Object({
  account_id: Type.String(),
  risk: Type.Number({ description: 'Churn probability in [0, 1] (logistic score, docs/churn.md).' }),
  level: Type.String(),
  reasons: Type.Array(Type.String(), { description: 'Top factors by contribution (at most 3).' }),
  contributions: Type.Record(Type.String(), Type.Number(), { description: 'Log-odds contribution of every factor.' }),
  plan: Type.String(),
  tenure_band: Type.String(),
  top_genre: Type.String(),
  tenure_days: Num,
  days_since_last_view: Num,
  views_7d: Type.Number(),
  views_28d: Type.Number(),
  active_days_7d: Type.Number(),
  active_days_28d: Type.Number(),
  playing_hours_7d: Type.Number(),
  playing_hours_28d: Type.Number(),
  trend: Type.Number(),
  distinct_titles_28d: Type.Number(),
  revenue_usd_28d: Type.Number(),
  gift_value_usd_28d: Type.Number(),
  auto_renew_off: Type.Number(),
  days_to_period_end: Num,
  payment_failures_28d: Type.Number(),
  downgrades_28d: Type.Number(),
  rebuffer_pct_7d: Type.Number(),
  vsf_7d: Type.Number(),
  playback_failures_7d: Type.Number(),
  startup_p95_ms_7d: Num,
  last_session_bad: Type.Number(),
});
const AccountsQuery = Type.Object({
  ...AsOf,
  ...PageQuery,
  level: Type.Optional(Level),
  min_risk: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0 })),
  plan: Type.Optional(Type.String({ maxLength: 100 })),
});
const Cohort = Type.Object({
  plan: Type.String(),
  tenure_band: Type.String(),
  top_genre: Type.String(),
  accounts: Type.Number(),
  high_risk_accounts: Type.Number(),
  medium_risk_accounts: Type.Number(),
  avg_risk: Type.Number(),
  revenue_28d_usd: Type.Number(),
  revenue_at_risk_usd: Type.Number({ description: "Σ risk × the account's net revenue of the last 28 days." }),
});
const CohortQuery = Type.Object({
  ...AsOf,
  by: Type.Optional(Type.String({ description: 'Comma-separated dimensions among plan, tenure_band, top_genre (default all three).' })),
});

const COHORT_DIMS = ['plan', 'tenure_band', 'top_genre'] as const;
const NUMS = [
  'views_7d',
  'views_28d',
  'active_days_7d',
  'active_days_28d',
  'distinct_titles_28d',
  'payment_failures_28d',
  'downgrades_28d',
  'vsf_7d',
  'playback_failures_7d',
  'auto_renew_off',
  'last_session_bad',
  'days_since_last_view',
  'tenure_days',
  'days_to_period_end',
  'startup_p95_ms_7d',
];

/**
 * Events of the scored day's feature windows (the 28 days up to and including it, docs/churn.md)
 * that arrived after their day closed and are left out of its scores; 0 when nothing is scored.
 */
async function lateForDay(ctx: ApiContext, d: string | null): Promise<number> {
  if (d === null) return 0;
  const endS = Date.parse(`${d}T00:00:00Z`) / 1000 + 86_400;
  return lateEvents(ctx, 'churn', String(endS - 28 * 86_400), String(endS));
}

/** The scored day to read: as_of when given (YYYY-MM-DD), else the newest scored day; null when nothing is scored. */
async function scoredDay(ctx: ApiContext, v: string | undefined): Promise<string | null> {
  if (v !== undefined) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(v) || Number.isNaN(Date.parse(v))) throw badParam('as_of', 'want a date YYYY-MM-DD');
    return v;
  }
  const [r] = await queryRows<{ d: string | null }>(
    ctx.ch,
    `SELECT if(count() = 0, NULL, toString(max(day))) AS d FROM ${ctx.db}.churn_score_days WHERE day <= toDate({today:String})`,
    { today: new Date(ctx.now()).toISOString().slice(0, 10) },
  );
  return r?.d ?? null;
}

export function churnRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Static<typeof AccountsQuery> }>(
    '/v1/churn/accounts',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['churn'],
        querystring: AccountsQuery,
        description:
          'Scored accounts of day as_of (churn_scores), highest risk first, with level, top reasons, factor contributions and the 7/28-day features. Filters: level, min_risk, plan.',
        response: {
          200: Type.Object({
            as_of: Type.Union([Type.String(), Type.Null()]),
            items: Type.Array(Account),
            next_cursor: Type.Union([Type.String(), Type.Null()]),
            late_events: LateEvents,
          }),
          400: ErrorBody,
        },
      },
    },
    async (req) => {
      const q = req.query;
      const d = await scoredDay(ctx, q.as_of);
      const limit = q.limit ?? 100;
      const offset = decodeCursor(q.cursor);
      if (d === null) return { as_of: null, items: [], next_cursor: null, late_events: 0 };
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT account_id, risk, level, reasons, contributions, plan, tenure_band, top_genre, tenure_days, days_since_last_view, views_7d, views_28d,
         active_days_7d, active_days_28d, playing_hours_7d, playing_hours_28d, trend, distinct_titles_28d, revenue_usd_28d, gift_value_usd_28d,
         auto_renew_off, days_to_period_end, payment_failures_28d, downgrades_28d, rebuffer_pct_7d, vsf_7d, playback_failures_7d, startup_p95_ms_7d, last_session_bad
       FROM ${ctx.db}.churn_scores FINAL
       WHERE day = toDate({d:String}) AND risk >= {min:Float64}
         ${q.level ? 'AND level = {level:String}' : ''} ${q.plan !== undefined ? 'AND plan = {plan:String}' : ''}
       ORDER BY risk DESC, account_id LIMIT {limit:UInt32} OFFSET {offset:UInt32}`,
        { d, min: q.min_risk ?? 0, level: q.level ?? '', plan: q.plan ?? '', limit: limit + 1, offset },
      );
      numeric(rows, NUMS);
      return { as_of: d, ...page(rows, offset, limit), late_events: await lateForDay(ctx, d) };
    },
  );

  app.get<{ Querystring: Static<typeof CohortQuery> }>(
    '/v1/churn/cohorts',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['churn'],
        querystring: CohortQuery,
        description:
          'Cohorts of day as_of (churn_cohorts: plan × tenure band × top genre, or the dimensions in `by`): accounts, high/medium-risk accounts, average risk, 28-day revenue and revenue at risk, most revenue at risk first.',
        response: {
          200: Type.Object({
            as_of: Type.Union([Type.String(), Type.Null()]),
            by: Type.Array(Type.String()),
            cohorts: Type.Array(Cohort),
            late_events: LateEvents,
          }),
          400: ErrorBody,
        },
      },
    },
    async (req) => {
      const by =
        req.query.by === undefined
          ? [...COHORT_DIMS]
          : [
              ...new Set(
                req.query.by
                  .split(',')
                  .map((s) => s.trim())
                  .filter(Boolean),
              ),
            ];
      for (const b of by)
        if (!(COHORT_DIMS as readonly string[]).includes(b)) throw badParam('by', `unknown dimension ${JSON.stringify(b)} (want plan, tenure_band, top_genre)`);
      if (by.length === 0) throw badParam('by', 'at least one dimension');
      const d = await scoredDay(ctx, req.query.as_of);
      if (d === null) return { as_of: null, by, cohorts: [], late_events: 0 };
      // Dimensions left out are reported as 'all'; the sums and counts roll up exactly, the average
      // risk is weighted by accounts.
      const dims = COHORT_DIMS.map((x) => (by.includes(x) ? x : `'all' AS ${x}`)).join(', ');
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT ${dims}, sum(n) AS accounts, sum(h) AS high_risk_accounts, sum(m) AS medium_risk_accounts,
         sum(r * n) / sum(n) AS avg_risk, sum(rev) AS revenue_28d_usd, sum(rar) AS revenue_at_risk_usd
       FROM (SELECT plan, tenure_band, top_genre, accounts AS n, high_risk_accounts AS h, medium_risk_accounts AS m, avg_risk AS r,
               revenue_28d_usd AS rev, revenue_at_risk_usd AS rar FROM ${ctx.db}.churn_cohorts WHERE day = toDate({d:String}))
       GROUP BY ${by.join(', ')} ORDER BY revenue_at_risk_usd DESC, ${by.join(', ')}`,
        { d },
      );
      return { as_of: d, by, cohorts: numeric(rows, ['accounts', 'high_risk_accounts', 'medium_risk_accounts']), late_events: await lateForDay(ctx, d) };
    },
  );
}
