/** Production issues (Jira): summary, issue list, shows beside their engagement and QoE. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { ErrorBody, PageBody, PageQuery, decodeCursor, numeric, page } from '../params.js';

const Num = Type.Union([Type.Number(), Type.Null()]);
const Summary = Type.Object({
  open_issues: Type.Number(),
  open_critical: Type.Number(),
  resolved_issues: Type.Number(),
  mean_time_to_resolve_hours: Num,
  open_by_severity: Type.Array(Type.Object({ severity: Type.String(), open_issues: Type.Number(), open_critical: Type.Number() })),
});
const Issue = Type.Object({
  issue_key: Type.String(),
  project_key: Type.String(),
  summary: Type.String(),
  issue_type: Type.String(),
  status: Type.String(),
  status_category: Type.String(),
  priority: Type.String(),
  severity: Type.String(),
  show_name: Type.String(),
  cost_impact_usd: Type.Number(),
  delay_days: Type.Number(),
  created: Type.String(),
  updated: Type.String(),
  resolved: Type.Union([Type.String(), Type.Null()]),
  is_open: Type.Number(),
  is_critical: Type.Number(),
});
const IssuesQuery = Type.Object({
  ...PageQuery,
  state: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('resolved'), Type.Literal('all')], { default: 'open' })),
  severity: Type.Optional(Type.String()),
  show: Type.Optional(Type.String()),
  critical: Type.Optional(Type.Boolean()),
});
const Show = Type.Object({
  show_name: Type.String(),
  issues: Num,
  open_issues: Num,
  open_critical: Num,
  cost_impact_usd_total: Num,
  delay_days_total: Num,
  open_cost_impact_usd: Num,
  resolved_cost_impact_usd: Num,
  open_delay_days: Num,
  resolved_delay_days: Num,
  views: Num,
  playing_hours: Num,
  rebuffer_pct: Num,
  playback_failures: Num,
  playback_failure_pct: Num,
});

/**
 * The current open issues by severity (severity, open_issues, open_critical): the counts of
 * production_open_by_severity_show without its per-show grouping (8.6 against 4.5 ms on the 10 M
 * bench data). The production summary and the live snapshot read it inside their one query; open
 * and open critical issues in all are its sums (productionTotals), the numbers of
 * production_open_critical.
 */
export const openBySeveritySql = (db: string) =>
  `SELECT toString(severity) AS severity, toFloat64(count()) AS open_issues, toFloat64(countIf(is_critical = 1)) AS open_critical
   FROM ${db}.production_issues_current WHERE is_open = 1 GROUP BY severity`;

/** Open and open critical issues in all, from the rows of openBySeveritySql. */
export function productionTotals(bySev: ReadonlyArray<{ open_issues: number; open_critical: number }>): { open_issues: number; open_critical: number } {
  return { open_issues: bySev.reduce((a, r) => a + r.open_issues, 0), open_critical: bySev.reduce((a, r) => a + r.open_critical, 0) };
}

export function productionRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get(
    '/v1/production/summary',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['production'],
        description: 'Open and open-critical issues, mean time to resolve, open issues by severity (current Jira state).',
        response: { 200: Summary },
      },
    },
    async () => {
      // One query (embedded ClickHouse runs one at a time, each with a fixed cost of a few ms),
      // tagged by `k`: the open issues by severity and the resolved ones' mean time to resolve.
      const rows = await queryRows<{ k: string; severity: string; a: number | string; b: number | string | null }>(
        ctx.ch,
        `SELECT * FROM (
         SELECT 'severity' AS k, severity, open_issues AS a, toNullable(open_critical) AS b FROM (${openBySeveritySql(ctx.db)})
         UNION ALL
         SELECT 'mttr' AS k, '' AS severity, toFloat64(resolved_issues) AS a, toNullable(toFloat64(mean_time_to_resolve_hours)) AS b FROM ${ctx.db}.production_mttr)
       ORDER BY k, a DESC, severity`,
      );
      const bySev = rows.filter((x) => x.k === 'severity').map((x) => ({ severity: x.severity, open_issues: Number(x.a), open_critical: Number(x.b) }));
      const mttr = rows.find((x) => x.k === 'mttr');
      const h = mttr?.b;
      return {
        ...productionTotals(bySev),
        resolved_issues: Number(mttr?.a ?? 0),
        mean_time_to_resolve_hours: h === null || h === undefined || Number.isNaN(Number(h)) ? null : Number(h),
        open_by_severity: bySev,
      };
    },
  );

  app.get<{ Querystring: Static<typeof IssuesQuery> }>(
    '/v1/production/issues',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['production'],
        querystring: IssuesQuery,
        description: 'Current issues (deleted ones excluded), most recently updated first.',
        response: { 200: PageBody(Issue), 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query;
      const limit = q.limit ?? 100;
      const offset = decodeCursor(q.cursor);
      const params: Record<string, unknown> = { limit: limit + 1, offset };
      let where = (q.state ?? 'open') === 'open' ? 'is_open = 1' : q.state === 'resolved' ? 'is_open = 0' : '1';
      if (q.severity !== undefined) {
        where += ' AND severity = {severity:String}';
        params.severity = q.severity;
      }
      if (q.show !== undefined) {
        where += ' AND show_name = {show:String}';
        params.show = q.show;
      }
      if (q.critical !== undefined) where += ` AND is_critical = ${q.critical ? 1 : 0}`;
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT ${Object.keys(Issue.properties).join(', ')} FROM ${ctx.db}.production_issues_current WHERE ${where}
       ORDER BY updated DESC, issue_key LIMIT {limit:UInt32} OFFSET {offset:UInt32}`,
        params,
      );
      return page(numeric(rows, ['is_open', 'is_critical']), offset, limit);
    },
  );

  app.get(
    '/v1/production/shows',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['production'],
        description:
          'Each show: its issues (open, critical; cost impact and delay days in total, of open issues and of resolved ones) beside its engagement and QoE by view end (final views: views, playing hours, rebuffer % of watch time, playback failures and their % of views; the metric catalog).',
        response: { 200: Type.Object({ shows: Type.Array(Show) }) },
      },
    },
    async () => {
      const rows = await queryRows<Record<string, unknown>>(
        ctx.ch,
        `SELECT ${Object.keys(Show.properties).join(', ')} FROM ${ctx.db}.production_show_overview ORDER BY open_critical DESC, cost_impact_usd_total DESC, show_name LIMIT 1000`,
      );
      return { shows: numeric(rows, ['issues', 'open_issues', 'open_critical', 'views', 'playback_failures']) };
    },
  );
}
