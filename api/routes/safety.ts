/** Trust and safety: summary KPIs, breakdowns, per-creator safety scores. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { metricSql } from '../../contracts/metrics-catalog.js';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { LateEvents, lateEvents, lateEventsSql, takeLateEvents } from '../late.js';
import { ErrorBody, PageBody, PageQuery, TimeRangeQuery, decodeCursor, numeric, page, timeRange } from '../params.js';

const Num = Type.Union([Type.Number(), Type.Null()]);
const Range = Type.Object({ ...TimeRangeQuery });
const SUMMARY = [
  'user_reports',
  'detections',
  'actions',
  'enforcement_actions',
  'appeals_created',
  'appeals_decided',
  'cases_actioned',
  'median_time_to_action_ms',
  'p90_time_to_action_ms',
  'proactive_rate',
  'appeal_rate',
  'appeal_overturn_rate',
  'median_time_to_appeal_decision_ms',
  'safety_score_overall',
] as const;
const SummaryBody = Type.Object({ ...Object.fromEntries(SUMMARY.map((c) => [c, Num])), late_events: LateEvents });

const BY = ['policy', 'severity', 'action_type', 'detection_source', 'target_type'] as const;
const BreakdownQuery = Type.Object({ ...TimeRangeQuery, by: Type.Union(BY.map((b) => Type.Literal(b))) });
const BreakdownRow = Type.Object({
  key: Type.String(),
  user_reports: Type.Number(),
  detections: Type.Number(),
  actions: Type.Number(),
  enforcement_actions: Type.Number(),
  appeals: Type.Number(),
});
const CreatorRow = Type.Object({
  creator_id: Type.String(),
  confirmed_violations: Type.Number(),
  overturned: Type.Number(),
  weighted_violations: Type.Number(),
  views: Type.Number(),
  weighted_per_1000_views: Type.Number(),
  safety_score: Type.Number(),
});

const EVENT_SUMS = `
  sumIf(events, event_type = 'report_created' AND detection_source = 'user_report') AS user_reports,
  sumIf(events, event_type = 'report_created' AND detection_source != 'user_report') AS detections,
  sumIf(events, event_type = 'action_taken') AS actions,
  sumIf(events, event_type = 'action_taken' AND action_type != 'none') AS enforcement_actions`;

export function safetyRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Static<typeof Range> }>(
    '/v1/safety/summary',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['safety'],
        querystring: Range,
        description:
          'Reports, actions and appeals in the range (default last 24 h); time to action, proactive, appeal and overturn rates of cases actioned in the range; the overall safety score (docs/safety.md).',
        response: { 200: SummaryBody, 400: ErrorBody },
      },
    },
    async (req) => {
      const r = timeRange(req.query, ctx.now(), 86_400_000);
      const p = { from: r.from, to: r.to };
      // Moderation events of the period left out (a closed minute, a forgotten or expired case), in
      // the same query: why `actions` can read fewer than `cases_actioned` for the same cases.
      const late = lateEventsSql(ctx, 'safety');
      const evRows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT ${EVENT_SUMS}, sumIf(events, event_type = 'appeal_created') AS appeals_created, sumIf(events, event_type = 'appeal_decided') AS appeals_decided,
         ${late.sql} AS late_events
       FROM ${ctx.db}.safety_events_1m FINAL WHERE window_start >= toDateTime({from:Float64}) AND window_start < toDateTime({to:Float64})`,
        { ...late.params, ...p },
      );
      const lateN = await takeLateEvents(evRows, () => lateEvents(ctx, 'safety', r.from, r.to));
      const ev = evRows[0];
      const [cases] = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT countIf(violation = 1) AS cases_actioned,
         ${metricSql('median_time_to_action_ms', 'case')} AS median_time_to_action_ms,
         ${metricSql('p90_time_to_action_ms', 'case')} AS p90_time_to_action_ms,
         if(countIf(violation = 1) = 0, NULL, countIf(violation = 1 AND proactive = 1) / countIf(violation = 1)) AS proactive_rate,
         if(countIf(violation = 1) = 0, NULL, countIf(violation = 1 AND appealed = 1) / countIf(violation = 1)) AS appeal_rate,
         if(countIf(appeal_outcome != '') = 0, NULL, countIf(appeal_outcome = 'reversed') / countIf(appeal_outcome != '')) AS appeal_overturn_rate,
         ${metricSql('median_time_to_appeal_decision_ms', 'case')} AS median_time_to_appeal_decision_ms,
         (SELECT safety_score FROM ${ctx.db}.safety_score_overall) AS safety_score_overall
       FROM ${ctx.db}.safety_cases FINAL
       WHERE action_time >= fromUnixTimestamp64Milli(toInt64({from:Float64} * 1000)) AND action_time < fromUnixTimestamp64Milli(toInt64({to:Float64} * 1000))`,
        p,
      );
      // The overall score (all time, the view Grafana's stat reads too) rides in the cases query: one query less.
      const out = { ...ev, ...cases } as Record<string, unknown>;
      for (const k of SUMMARY) out[k] = out[k] === null || out[k] === undefined || Number.isNaN(Number(out[k])) ? null : Number(out[k]);
      out.late_events = lateN;
      return out;
    },
  );

  app.get<{ Querystring: Static<typeof BreakdownQuery> }>(
    '/v1/safety/breakdown',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['safety'],
        querystring: BreakdownQuery,
        description: 'Reports, detections and actions by policy, severity, action type, detection source or target type (default last 24 h).',
        response: { 200: Type.Object({ by: Type.String(), rows: Type.Array(BreakdownRow), late_events: LateEvents }), 400: ErrorBody },
      },
    },
    async (req) => {
      const r = timeRange(req.query, ctx.now(), 86_400_000);
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT ${req.query.by} AS key, ${EVENT_SUMS}, sumIf(events, event_type = 'appeal_created') AS appeals
       FROM ${ctx.db}.safety_events_1m FINAL WHERE window_start >= toDateTime({from:Float64}) AND window_start < toDateTime({to:Float64})
       GROUP BY key ORDER BY actions + user_reports + detections DESC, key`,
        { from: r.from, to: r.to },
      );
      return {
        by: req.query.by,
        rows: numeric(rows, ['user_reports', 'detections', 'actions', 'enforcement_actions', 'appeals']),
        late_events: await lateEvents(ctx, 'safety', r.from, r.to, ['window_closed']),
      };
    },
  );

  const CQuery = Type.Object({ ...PageQuery });
  app.get<{ Querystring: Static<typeof CQuery> }>(
    '/v1/safety/creators',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['safety'],
        querystring: CQuery,
        description: 'Creators with confirmed violations, lowest safety score first (safety_creator_score, all time).',
        response: { 200: PageBody(CreatorRow), 400: ErrorBody },
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 100;
      const offset = decodeCursor(req.query.cursor);
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT creator_id, confirmed_violations, overturned, weighted_violations, views, weighted_per_1000_views, safety_score
       FROM ${ctx.db}.safety_creator_score ORDER BY safety_score, creator_id LIMIT {limit:UInt32} OFFSET {offset:UInt32}`,
        { limit: limit + 1, offset },
      );
      return page(numeric(rows, ['confirmed_violations', 'overturned', 'weighted_violations', 'views']), offset, limit);
    },
  );
}
