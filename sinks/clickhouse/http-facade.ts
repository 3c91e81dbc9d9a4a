/**
 * Serves the embedded ClickHouse (chdb) over ClickHouse's HTTP interface, so that components in
 * other processes use the same @clickhouse/client code path with CLICKHOUSE_URL (chdb allows one
 * process per data directory: this process owns it and serves it). Covers what the client uses:
 * GET /ping; POST / with the statement in the body (or `query` in the URL); INSERT with the
 * statement in `query` and the rows in the body, in any format, binary ones included (the body is
 * spooled to a file chdb reads with FROM INFILE); `param_<name>` query parameters; errors as
 * `Code: N. DB::Exception: …` with X-ClickHouse-Exception-Code. Listens on loopback by default.
 * Table names must be qualified with their database (StreamPulse always does).
 *
 * Authentication as a ClickHouse server does it: X-ClickHouse-User / X-ClickHouse-Key headers,
 * HTTP basic auth, or `user` / `password` URL parameters; none means user `default` with an empty
 * password. Unknown user or wrong password: 403 with `Code: 516 … (AUTHENTICATION_FAILED)`.
 * Passwords are compared in constant time (SHA-256 digests, timingSafeEqual). Two users:
 * - the writer (the pipeline's own processes, CLICKHOUSE_USER/PASSWORD): everything, as before;
 * - the analyst (CLICKHOUSE_ANALYST_USER/PASSWORD, optional): statements checked like POST /v1/sql
 *   (analyst.ts: one statement by ClickHouse's parser, no INTO OUTFILE, no external table functions,
 *   dictionaries or other databases; FORMAT allowed) and run on the read-only analyst session,
 *   whose limits are fixed: settings sent in the URL pass to ClickHouse, which accepts one that
 *   keeps the session's value and refuses any change with Code 164 (READONLY), as a server does
 *   for a user with a readonly = 1 profile.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { insertFromSpool, type ClickHouse } from './client.js';
import type { AnalystSql } from './analyst.js';

export interface ClickHouseFacade {
  url: string;
  close(): Promise<void>;
}

export interface FacadeUser {
  name: string;
  password: string;
}

export interface FacadeOptions {
  host?: string;
  port?: number;
  logger?: Logger;
  /** The pipeline's own processes: full access. */
  writer: FacadeUser;
  /** SQL tools and Grafana: read-only (absent: no analyst login). */
  analystUser?: FacadeUser | null;
  /**
   * The read-only session analyst statements run on; also runs a writer's request that asks for
   * `readonly` (a setting sent in the URL becomes a SET of the session it runs on, and readonly = 1
   * cannot be undone: on the writers' session it would stop every later write).
   */
  analystSql?: AnalystSql | null;
}

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', r: '\r', n: '\n', t: '\t', '0': '\0', a: '\x07', v: '\v' };
/**
 * A `param_<name>` value as ClickHouse's HTTP interface reads it: backslash escapes (clients write
 * `it\'s` for it's); chdb binds the value it is given as is.
 */
export function unescapeParam(v: string): string {
  return v.includes('\\') ? v.replace(/\\(.)/gs, (_m, c: string) => ESCAPES[c] ?? c) : v;
}

/**
 * A URL setting value prepared for chdb's connection, which writes each setting as
 * `SET k = '<value>'` doubling quotes but not backslashes: a value ending in `\` escaped the
 * closing quote and the rest of the text (the next setting, the statement) was read as SQL.
 * Doubling backslashes here makes that literal ClickHouse's string of exactly the value sent, so
 * ClickHouse judges the setting (the read-only session refuses a change with 164) and nothing else.
 * default_format is not written as SQL (it becomes chdb's output format option) and is left alone.
 */
export function settingLiteral(v: string): string {
  return v.replace(/\\/g, '\\\\');
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** The credentials of a request, read as ClickHouse's HTTP handler reads them. */
export function requestCredentials(req: IncomingMessage, url: URL): { user: string; password: string } {
  const hUser = req.headers['x-clickhouse-user'];
  if (typeof hUser === 'string') return { user: hUser, password: String(req.headers['x-clickhouse-key'] ?? '') };
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && /^basic /i.test(auth)) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    return i < 0 ? { user: decoded, password: '' } : { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  return { user: url.searchParams.get('user') ?? 'default', password: url.searchParams.get('password') ?? '' };
}

function authenticate(users: Array<{ role: 'writer' | 'analyst'; user: FacadeUser }>, creds: { user: string; password: string }): 'writer' | 'analyst' | null {
  const given = digest(creds.password);
  let role: 'writer' | 'analyst' | null = null;
  // Every configured user is compared, so the time does not tell which names exist.
  for (const u of users) {
    const ok = timingSafeEqual(digest(u.user.password), given);
    if (ok && u.user.name === creds.user) role = u.role;
  }
  return role;
}

class FacadeError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The longest analyst statement (the body and `query` together), in bytes, raw and after gzip:
 * ClickHouse's default max_query_size. A server refuses a longer one with Code 62 too.
 */
export const ANALYST_MAX_QUERY_BYTES = 262_144;

/**
 * The request body, inflated when gzip-encoded. With `maxBytes`, neither the bytes read nor the
 * inflated ones are kept beyond it (the rest is drained, not buffered; gzip stops inflating at the
 * limit): null means longer than `maxBytes`.
 */
async function readBody(req: IncomingMessage, maxBytes = Infinity): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n <= maxBytes) chunks.push(c as Buffer);
  }
  if (n > maxBytes) return null;
  const buf = Buffer.concat(chunks);
  if (req.headers['content-encoding'] !== 'gzip') return buf;
  if (maxBytes === Infinity) return gunzipSync(buf);
  try {
    return gunzipSync(buf, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return null;
    throw err;
  }
}

/** Settings the HTTP interface takes in the URL that are not query settings. */
const NOT_SETTINGS = new Set([
  'query',
  'database',
  'query_id',
  'session_id',
  'session_timeout',
  'user',
  'password',
  'enable_http_compression',
  'wait_end_of_query',
  'send_progress_in_http_headers',
  'http_headers_progress_interval_ms',
]);

export async function serveClickHouse(ch: ClickHouse, opts: FacadeOptions): Promise<ClickHouseFacade> {
  if (ch.transport !== 'chdb') throw new Error('the ClickHouse HTTP facade serves embedded chdb only');
  if (!opts.writer.password) throw new Error('the ClickHouse HTTP facade needs a writer password');
  if (opts.analystUser && !opts.analystUser.password) throw new Error('the ClickHouse HTTP facade needs an analyst password (or no analyst user)');
  if (opts.analystUser && opts.analystUser.name === opts.writer.name) throw new Error('the analyst and writer users of the ClickHouse HTTP facade must differ');
  if (opts.analystUser && !opts.analystSql) throw new Error('the analyst user of the ClickHouse HTTP facade needs the read-only session');
  const users: Array<{ role: 'writer' | 'analyst'; user: FacadeUser }> = [{ role: 'writer', user: opts.writer }];
  if (opts.analystUser) users.push({ role: 'analyst', user: opts.analystUser });
  let authFailures = 0;
  let lastAuthWarnMs = 0;
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
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/ping' || (url.pathname === '/' && req.method === 'GET' && !url.searchParams.has('query'))) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' }).end('Ok.\n');
      return;
    }
    const queryId = url.searchParams.get('query_id') ?? crypto.randomUUID();
    try {
      const creds = requestCredentials(req, url);
      const role = authenticate(users, creds);
      if (!role) {
        // At most one warning per 10 s, with the number of failures since the last one.
        authFailures++;
        const now = Date.now();
        if (now - lastAuthWarnMs >= 10_000) {
          opts.logger?.warn(
            { event: 'clickhouse_facade_auth_failed', user: creds.user.slice(0, 64), remote: req.socket.remoteAddress, failures: authFailures },
            'ClickHouse port: authentication failed',
          );
          lastAuthWarnMs = now;
          authFailures = 0;
        }
        req.resume();
        throw new FacadeError(
          '516',
          403,
          `Code: 516. DB::Exception: ${creds.user}: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)`,
        );
      }
      const params: Record<string, string> = {};
      const settings: Record<string, string> = {};
      for (const [k, v] of url.searchParams) {
        if (k.startsWith('param_')) params[k.slice(6)] = unescapeParam(v);
        else if (!NOT_SETTINGS.has(k)) settings[k] = k === 'default_format' ? v : settingLiteral(v);
      }
      // A server answers TabSeparated when neither the statement nor the URL names a format.
      settings.default_format ??= url.searchParams.get('default_format') ?? 'TabSeparated';
      const urlQuery = url.searchParams.get('query');
      const headers = { 'x-clickhouse-query-id': queryId, 'x-clickhouse-summary': '{}', 'content-type': 'text/plain; charset=UTF-8' };
      const wantsReadonly = settings.readonly !== undefined && settings.readonly !== '0';
      // An analyst statement is bounded before it is read whole (the writer's INSERT bodies are not).
      const bounded = role === 'analyst' || wantsReadonly;
      const limit = bounded ? ANALYST_MAX_QUERY_BYTES - Buffer.byteLength(urlQuery ?? '') : Infinity;
      const body = limit < 0 ? null : await readBody(req, limit);
      if (body === null) {
        req.resume();
        throw new FacadeError(
          '62',
          400,
          `Code: 62. DB::Exception: ${creds.user}: Max query size exceeded: the statement is limited to ${ANALYST_MAX_QUERY_BYTES} bytes (max_query_size), query and body together, after gzip. (SYNTAX_ERROR)`,
        );
      }
      if (role === 'writer' && wantsReadonly && !opts.analystSql)
        throw new FacadeError('164', 500, `Code: 164. DB::Exception: ${creds.user}: readonly was asked for and this port has no read-only session. (READONLY)`);
      if (role === 'analyst' || wantsReadonly) {
        const analyst = opts.analystSql!;
        // Grafana's ClickHouse data source sends its query timeout as max_execution_time with every
        // query; a server lets a readonly profile allow that (constraints: changeable_in_readonly
        // with a max). Here: a timeout within the analyst's limit is dropped (the session's limit,
        // never above it, applies); a larger one is passed on and ClickHouse refuses it (164).
        const timeout = Number(settings.max_execution_time);
        if (settings.max_execution_time !== undefined && timeout > 0 && timeout <= analyst.limits.maxExecutionSeconds) delete settings.max_execution_time;
        const text = body.toString('utf8');
        const sql = urlQuery ? (text ? `${urlQuery}\n${text}` : urlQuery) : text;
        const p = await analyst.prepare(sql, params, { allowFormat: true });
        if (!p.ok) {
          opts.logger?.info({ event: 'clickhouse_facade_analyst_refused', reason: p.reason }, 'ClickHouse port: analyst statement refused');
          // As ClickHouse words a refusal of its read-only mode (or its parser's error).
          throw new FacadeError(
            p.code ?? '164',
            p.status === 403 ? 403 : 400,
            `Code: ${p.code ?? '164'}. DB::Exception: ${creds.user}: ${p.reason}. (${p.code === '62' ? 'SYNTAX_ERROR' : 'READONLY'})`,
          );
        }
        const analystConn = (analyst.client as unknown as { connection: { query(p: object): Promise<{ stream: Readable }> } }).connection;
        const result = await track(
          analyst.run(() => analystConn.query({ query: p.sql, query_params: params, query_id: queryId, clickhouse_settings: settings })),
        );
        res.writeHead(200, headers);
        result.stream.pipe(res);
        return;
      }
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
      if (err instanceof FacadeError) {
        if (!res.headersSent) res.writeHead(err.status, { 'x-clickhouse-exception-code': err.code, 'content-type': 'text/plain; charset=UTF-8' });
        res.end(`${err.message}\n`);
        return;
      }
      const e = err as { code?: string; message?: string; type?: string };
      const code = /^\d+$/.test(String(e.code)) ? String(e.code) : '1001';
      // As a server writes it, with the error's name in parentheses: clients read code and type from it.
      const msg = `${String(e.message ?? err).trim()}${e.type ? ` (${e.type})` : ''}`;
      opts.logger?.debug({ event: 'clickhouse_facade_error', code, err: msg }, 'query failed');
      if (!res.headersSent) res.writeHead(500, { 'x-clickhouse-exception-code': code, 'content-type': 'text/plain; charset=UTF-8' });
      res.end(msg.startsWith('Code:') ? msg : `Code: ${code}. DB::Exception: ${msg}`);
    }
  };
  // What throws outside the handler's try (a request target URL cannot parse) ends that request
  // instead of becoming an unhandled rejection, which would end the process.
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => res.destroy(err as Error));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8123, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const url = `http://${opts.host ?? '127.0.0.1'}:${port}`;
  opts.logger?.info(
    { event: 'clickhouse_facade_listening', url, writer: opts.writer.name, analyst: opts.analystUser?.name ?? null },
    'serving embedded ClickHouse over HTTP',
  );
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
