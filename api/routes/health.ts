/** Liveness, readiness (Kafka, Redis, ClickHouse), Prometheus metrics, table catalogue, dashboard page. */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { ApiContext } from '../context.js';

const DASHBOARD_HTML = new URL('../dashboard/index.html', import.meta.url);

export function healthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  // The host (bin/pipeline.ts) may already serve /healthz and /metrics; then keep its routes.
  if (!app.hasRoute({ method: 'GET', url: '/healthz' }))
    app.get('/healthz', { schema: { tags: ['health'], security: [], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
      status: 'ok' as const,
    }));

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        security: [],
        description: 'Each dependency answers within 2 s: 200 when all do, 503 naming the ones that did not.',
        response: {
          '2xx': Type.Object({ status: Type.String(), checks: Type.Record(Type.String(), Type.String()) }),
          503: Type.Object({ status: Type.String(), checks: Type.Record(Type.String(), Type.String()) }),
        },
      },
    },
    async (_req, reply) => {
      const checks: Record<string, string> = {};
      await Promise.all(
        Object.entries(ctx.readiness).map(async ([name, check]) => {
          let timer: NodeJS.Timeout | undefined;
          try {
            await Promise.race([
              check(),
              new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error('timed out after 2 s')), 2000);
              }),
            ]);
            checks[name] = 'ok';
          } catch (err) {
            checks[name] = `down: ${(err as Error).message}`;
          } finally {
            clearTimeout(timer);
          }
        }),
      );
      const ok = Object.values(checks).every((c) => c === 'ok');
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', checks });
    },
  );

  if (!app.hasRoute({ method: 'GET', url: '/metrics' }))
    app.get('/metrics', { schema: { tags: ['health'], security: [], description: 'Prometheus text format (the process registry).' } }, async (_req, reply) =>
      reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics()),
    );

  const html = readFileSync(DASHBOARD_HTML, 'utf8');
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(html));

  app.get(
    '/v1/tables',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['sql'],
        description: 'Tables and views of the StreamPulse database with their columns (docs/tables.md explains them).',
        response: {
          200: Type.Object({
            database: Type.String(),
            tables: Type.Array(
              Type.Object({ name: Type.String(), engine: Type.String(), columns: Type.Array(Type.Object({ name: Type.String(), type: Type.String() })) }),
            ),
          }),
        },
      },
    },
    async () => {
      const rows = await queryRows<{ table: string; engine: string; name: string; type: string }>(
        ctx.ch,
        `SELECT c.table AS table, t.engine AS engine, c.name AS name, c.type AS type FROM system.columns AS c
       INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table
       WHERE c.database = {db:String} ORDER BY c.table, c.position`,
        { db: ctx.db },
      );
      const tables = new Map<string, { name: string; engine: string; columns: { name: string; type: string }[] }>();
      for (const r of rows) {
        let t = tables.get(r.table);
        if (!t) tables.set(r.table, (t = { name: r.table, engine: r.engine, columns: [] }));
        t.columns.push({ name: r.name, type: r.type });
      }
      return { database: ctx.db, tables: [...tables.values()] };
    },
  );
}
