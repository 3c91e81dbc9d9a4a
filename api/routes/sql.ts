/**
 * POST /v1/sql: one read-only statement for analysts. ClickHouse decides what the statement is
 * (its parser, then a check of its syntax tree) and enforces read-only and the limits (a
 * read-only session or user, settings never in the text): sinks/clickhouse/analyst.ts.
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { toClickHouseError } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';
import { ApiError, ErrorBody } from '../params.js';

const Body = Type.Object({
  query: Type.String({
    minLength: 1,
    maxLength: 100_000,
    description: 'One SELECT (or WITH/EXPLAIN/DESCRIBE) on the project database (unqualified names are in it).',
  }),
  params: Type.Optional(
    Type.Record(Type.String({ pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' }), Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
      description: 'Values for {name:Type} placeholders.',
    }),
  ),
});
const Result = Type.Object({
  columns: Type.Array(Type.Object({ name: Type.String(), type: Type.String() })),
  rows: Type.Array(Type.Record(Type.String(), Type.Unknown())),
  row_count: Type.Number(),
  truncated: Type.Boolean({ description: 'True when the row, byte or time limit cut the result.' }),
  elapsed_ms: Type.Number(),
});

/** ClickHouse codes of refusals by its read-only mode or access control: answered 403. */
const REFUSED = new Set(['164', '497', '516']);
/** ClickHouse codes of an exceeded limit: answered 400 `limit_exceeded`. */
const LIMITS = new Set(['241', '159', '396', '158', '307', '160']);

export function sqlRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const l = ctx.analyst.limits;
  app.post<{ Body: Static<typeof Body> }>(
    '/v1/sql',
    {
      config: { role: 'analyst', cost: ctx.sqlCost },
      schema: {
        tags: ['sql'],
        body: Body,
        description: `Runs one read-only statement (checked by ClickHouse's parser) with readonly = 1, max_execution_time = ${l.maxExecutionSeconds} s, max_memory_usage = ${l.maxMemoryBytes} bytes, max_result_rows = ${l.maxResultRows}, max_result_bytes = ${l.maxResultBytes}. Writes, DDL, several statements, SETTINGS, FORMAT, INTO OUTFILE, external table functions, dictionaries and other databases are refused (403).`,
        response: { 200: Result, 400: ErrorBody, 403: ErrorBody },
      },
    },
    async (req) => {
      const params = req.body.params ?? {};
      const p = await ctx.analyst.prepare(req.body.query, params);
      if (!p.ok) {
        ctx.logger.info({ event: 'analyst_sql_refused', reason: p.reason, key: req.apiKeyId }, 'analyst SQL refused');
        if (p.status === 403) throw new ApiError(403, 'read_only', `refused: ${p.reason}`, 'query');
        throw new ApiError(400, 'query_failed', p.reason, 'query');
      }
      const started = performance.now();
      try {
        const out = await ctx.analyst.run(async (client) => {
          const rs = await client.query({ query: p.sql, query_params: params, format: 'JSON' });
          return await rs.json();
        });
        const max = l.maxResultRows;
        const all = out.data ?? [];
        const rows = all.length > max ? all.slice(0, max) : all;
        const elapsedMs = Math.round(performance.now() - started);
        // 'break' overflow modes cut the result at a block boundary, past the limit, without an error.
        const truncated = all.length >= max || elapsedMs >= l.maxExecutionSeconds * 1000;
        return { columns: out.meta ?? [], rows, row_count: rows.length, truncated, elapsed_ms: elapsedMs };
      } catch (err) {
        const e = toClickHouseError(err, 'query failed');
        const msg = (err as Error).message.slice(0, 1000);
        if (e.serverCode && REFUSED.has(e.serverCode)) throw new ApiError(403, 'read_only', `refused by ClickHouse (code ${e.serverCode}): ${msg}`, 'query');
        if (e.serverCode && LIMITS.has(e.serverCode)) throw new ApiError(400, 'limit_exceeded', `ClickHouse code ${e.serverCode}: ${msg}`, 'query');
        if (e.retriable && !e.serverCode) throw e;
        req.log.debug({ code: e.serverCode }, 'analyst query failed');
        throw new ApiError(400, 'query_failed', `ClickHouse ${e.serverCode ? `code ${e.serverCode}` : 'error'}: ${msg}`, 'query');
      }
    },
  );
}
