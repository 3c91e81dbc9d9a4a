/**
 * Serves the embedded ClickHouse (chdb) over ClickHouse's HTTP interface, so that components in
 * other processes use the same @clickhouse/client code path with CLICKHOUSE_URL (chdb allows one
 * process per data directory: this process owns it and serves it). Covers what the client uses:
 * GET /ping; POST / with the statement in the body (or `query` in the URL); INSERT with the
 * statement in `query` and the rows in the body, in any format, binary ones included (the body is
 * spooled to a file chdb reads with FROM INFILE); `param_<name>` query parameters; errors as
 * `Code: N. DB::Exception: …` with X-ClickHouse-Exception-Code. Listens on loopback by default.
 * Table names must be qualified with their database (StreamPulse always does).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { insertFromSpool, type ClickHouse } from './client.js';

export interface ClickHouseFacade {
  url: string;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const buf = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? gunzipSync(buf) : buf;
}

/** Settings the HTTP interface takes in the URL that are not query settings. */
const NOT_SETTINGS = new Set(['query', 'database', 'query_id', 'default_format', 'session_id', 'session_timeout', 'user', 'password', 'enable_http_compression', 'wait_end_of_query', 'send_progress_in_http_headers', 'http_headers_progress_interval_ms']);

export async function serveClickHouse(ch: ClickHouse, opts: { host?: string; port?: number; logger?: Logger }): Promise<ClickHouseFacade> {
  if (ch.transport !== 'chdb') throw new Error('the ClickHouse HTTP facade serves embedded chdb only');
  // The chdb Connection behind @clickhouse/client: queries with the client's own parameters.
  const conn = (ch.client as unknown as { connection: { query(p: object): Promise<{ stream: Readable }> } }).connection;
  // Queries still running when the facade closes are awaited: closing chdb under a running
  // query aborts the engine.
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p)).catch(() => undefined);
    return p;
  };
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/ping' || (url.pathname === '/' && req.method === 'GET' && !url.searchParams.has('query'))) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' }).end('Ok.\n');
      return;
    }
    const queryId = url.searchParams.get('query_id') ?? crypto.randomUUID();
    try {
      const body = await readBody(req);
      const params: Record<string, string> = {};
      const settings: Record<string, string> = {};
      for (const [k, v] of url.searchParams) {
        if (k.startsWith('param_')) params[k.slice(6)] = v;
        else if (!NOT_SETTINGS.has(k)) settings[k] = v;
      }
      const urlQuery = url.searchParams.get('query');
      const headers = { 'x-clickhouse-query-id': queryId, 'x-clickhouse-summary': '{}', 'content-type': 'text/plain; charset=UTF-8' };
      if (urlQuery && body.length > 0 && /^\s*INSERT\b[\s\S]*\bFORMAT\s+\w+\s*$/i.test(urlQuery)) {
        await track(insertFromSpool(ch, urlQuery, [body]));
        res.writeHead(200, headers).end();
        return;
      }
      const text = body.toString('utf8');
      const sql = urlQuery ? `${urlQuery}\n${text}` : text;
      const result = await track(conn.query({ query: sql, query_params: params, query_id: queryId, clickhouse_settings: settings }));
      res.writeHead(200, headers);
      result.stream.pipe(res);
    } catch (err) {
      const e = err as { code?: string; message?: string; type?: string };
      const code = /^\d+$/.test(String(e.code)) ? String(e.code) : '1001';
      // As a server writes it, with the error's name in parentheses: clients read code and type from it.
      const msg = `${String(e.message ?? err).trim()}${e.type ? ` (${e.type})` : ''}`;
      opts.logger?.debug({ event: 'clickhouse_facade_error', code, err: msg }, 'query failed');
      if (!res.headersSent) res.writeHead(500, { 'x-clickhouse-exception-code': code, 'content-type': 'text/plain; charset=UTF-8' });
      res.end(msg.startsWith('Code:') ? msg : `Code: ${code}. DB::Exception: ${msg}`);
    }
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8123, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const url = `http://${opts.host ?? '127.0.0.1'}:${port}`;
  opts.logger?.info({ event: 'clickhouse_facade_listening', url }, 'serving embedded ClickHouse over HTTP');
  return {
    url,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 5_000).unref();
      });
      await Promise.allSettled([...inflight]);
    },
  };
}
