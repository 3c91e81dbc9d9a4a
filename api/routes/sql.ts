/** POST /v1/sql: one read-only statement for analysts (see sql-guard.ts for the three layers). */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { toClickHouseError } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { ApiError, ErrorBody } from '../params.js';
import { guardSql } from '../sql-guard.js';

const Body = Type.Object({
  query: Type.String({ minLength: 1, maxLength: 100_000, description: 'One SELECT (or WITH/EXPLAIN/DESCRIBE). Qualify tables with the database (GET /v1/tables names it).' }),
  params: Type.Optional(Type.Record(Type.String({ pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' }), Type.Union([Type.String(), Type.Number(), Type.Boolean()]), { description: 'Values for {name:Type} placeholders.' })),
});
const Result = Type.Object({
  columns: Type.Array(Type.Object({ name: Type.String(), type: Type.String() })),
  rows: Type.Array(Type.Record(Type.String(), Type.Unknown())),
  row_count: Type.Number(),
  truncated: Type.Boolean({ description: 'True when the row or time limit cut the result.' }),
  elapsed_ms: Type.Number(),
});

/** ClickHouse codes that mean "your query", not "our server": answered 400 (readonly refusals 403). */
const READONLY = '164';

export function sqlRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post<{ Body: Static<typeof Body> }>('/v1/sql', {
    config: { role: 'analyst', cost: ctx.sqlCost },
    schema: {
      tags: ['sql'], body: Body,
      description: `Runs one read-only statement with readonly = 1, max_execution_time = ${ctx.sqlLimits.maxExecutionSeconds} s and max_result_rows = ${ctx.sqlLimits.maxResultRows}. Writes, DDL, SETTINGS, FORMAT and external table functions are refused.`,
      response: { 200: Result, 400: ErrorBody, 403: ErrorBody },
    },
  }, async (req) => {
    const g = guardSql(req.body.query, ctx.sqlLimits);
    if (!g.ok) throw new ApiError(403, 'read_only', `refused: ${g.reason}`, 'query');
    const started = performance.now();
    try {
      const rs = await ctx.ch.client.query({ query: g.sql, query_params: req.body.params ?? {}, format: 'JSON' });
      const out = (await rs.json()) as { meta?: { name: string; type: string }[]; data?: Record<string, unknown>[]; rows?: number };
      const max = ctx.sqlLimits.maxResultRows;
      const all = out.data ?? [];
      const rows = all.length > max ? all.slice(0, max) : all;
      const elapsedMs = Math.round(performance.now() - started);
      const truncated = all.length >= max || elapsedMs >= ctx.sqlLimits.maxExecutionSeconds * 1000;
      return { columns: out.meta ?? [], rows, row_count: rows.length, truncated, elapsed_ms: elapsedMs };
    } catch (err) {
      const e = toClickHouseError(err, 'query failed');
      if (e.serverCode === READONLY) throw new ApiError(403, 'read_only', 'refused by ClickHouse: the SQL endpoint is read-only', 'query');
      if (e.retriable && !e.serverCode) throw e;
      req.log.debug({ code: e.serverCode }, 'analyst query failed');
      throw new ApiError(400, 'query_failed', `ClickHouse ${e.serverCode ? `code ${e.serverCode}` : 'error'}: ${(err as Error).message.slice(0, 1000)}`, 'query');
    }
  });
}
