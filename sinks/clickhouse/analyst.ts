/**
 * Analyst SQL that ClickHouse itself enforces, on both transports.
 *
 * One statement, decided by ClickHouse's parser: the text goes to ClickHouse as a query
 * parameter of `formatQuerySingleLine`, which refuses several statements (and anything that does
 * not parse) and answers the statement in ClickHouse's own spelling. `EXPLAIN AST` of that
 * single statement gives its syntax tree, which analyst-ast.ts checks (statement kind, no
 * SETTINGS / INTO OUTFILE, no table functions that reach files, URLs or other hosts, no
 * dictionaries, no database but the project's). The statement that runs is the formatted one,
 * so what was checked is what runs.
 *
 * Read-only and limits, never in the statement's text:
 * - embedded chdb: the analyst gets its own chdb session on the same data directory (sessions
 *   have their own settings). Its limits are SET once when it opens, then `readonly = 1`, after
 *   which ClickHouse refuses any change of a setting in that session (SET, a SETTINGS clause,
 *   settings sent by a client), writes, DDL and table functions that need write access.
 * - ClickHouse server: a separate analyst user (CLICKHOUSE_ANALYST_USER/PASSWORD) whose settings
 *   profile holds readonly and the limits (docs/security.md has the users.d file); without one,
 *   the main user with `readonly = 1` and the limits sent as settings of every query.
 * chdb keeps the state of a session's last query until its next one (a failed 1 GB aggregation
 * stays allocated), so each analyst query is followed by a trivial one on the same session, and a
 * query that hit the memory limit by a jemalloc purge: the process gives the memory back.
 * Overflow modes are 'break' (the answer is cut and flagged), not 'throw': with 'throw' chdb 26
 * still hands the rest of an aborted result to the next query of the session (measured).
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import type { ClickHouse } from './client.js';
import { queryRows, toClickHouseError } from './client.js';
import { checkAnalystAst } from './analyst-ast.js';

export interface AnalystLimits {
  maxExecutionSeconds: number;
  maxMemoryBytes: number;
  maxResultRows: number;
  maxResultBytes: number;
}

export const DEFAULT_ANALYST_LIMITS: AnalystLimits = {
  maxExecutionSeconds: 10,
  maxMemoryBytes: 1024 ** 3,
  maxResultRows: 100_000,
  maxResultBytes: 64 * 1024 ** 2,
};

export interface AnalystOptions {
  limits: AnalystLimits;
  /** ClickHouse server only: the read-only analyst user (profile with readonly and limits). */
  user?: { name: string; password: string } | null;
}

export type Prepared = { ok: true; sql: string; kind: 'select' | 'explain' | 'describe' } | { ok: false; status: 400 | 403; reason: string; code?: string };

export interface AnalystSql {
  limits: AnalystLimits;
  /** Who runs analyst SQL: `chdb-readonly-session`, `server-analyst-user` or `server-readonly-settings`. */
  mode: 'chdb-readonly-session' | 'server-analyst-user' | 'server-readonly-settings';
  client: ClickHouseClient;
  /** Checks one statement with ClickHouse's parser and the policy; the formatted statement when allowed. */
  prepare(query: string, params: Record<string, unknown>, opts?: { allowFormat?: boolean }): Promise<Prepared>;
  /** Runs `fn` on the analyst connection, then gives the memory of the query back (chdb). */
  run<T>(fn: (client: ClickHouseClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Setting names and values of the limits, as ClickHouse spells them. */
export function limitSettings(l: AnalystLimits): Record<string, string | number> {
  return {
    max_execution_time: l.maxExecutionSeconds,
    max_memory_usage: l.maxMemoryBytes,
    max_result_rows: l.maxResultRows,
    max_result_bytes: l.maxResultBytes,
    result_overflow_mode: 'break',
    timeout_overflow_mode: 'break',
  };
}

export async function openAnalyst(ch: ClickHouse, opts: AnalystOptions): Promise<AnalystSql> {
  const limits = opts.limits;
  let client: ClickHouseClient;
  let mode: AnalystSql['mode'];
  if (ch.transport === 'chdb') {
    if (!ch.chdbPath) throw new Error('embedded ClickHouse without a data directory');
    const { createChdbConnection } = await import('chdb/connection');
    // createClient's option types do not list `connection`, where chdb's connection plugs in.
    client = createClient({ connection: createChdbConnection({ path: ch.chdbPath }) } as Parameters<typeof createClient>[0]);
    try {
      await client.command({ query: `USE ${ch.database}` });
      for (const [k, v] of Object.entries(limitSettings(limits))) await client.command({ query: `SET ${k} = ${typeof v === 'number' ? v : `'${v}'`}` });
      await client.command({ query: 'SET readonly = 1' });
      const rs = await client.query({ query: "SELECT getSetting('readonly') AS r", format: 'JSONEachRow' });
      const [row] = await rs.json<{ r: number | string }>();
      if (Number(row?.r) !== 1) throw new Error('the analyst session did not become read-only');
    } catch (err) {
      await client.close().catch(() => undefined);
      throw toClickHouseError(err, 'cannot open the analyst session');
    }
    mode = 'chdb-readonly-session';
  } else {
    const server = ch.server;
    if (!server) throw new Error('analyst SQL over HTTP needs the server URL');
    if (opts.user) {
      // No setting at all in the URL: a readonly = 1 profile refuses any change (compression too).
      client = createClient({
        url: server.url,
        username: opts.user.name,
        password: opts.user.password,
        database: ch.database,
        request_timeout: (limits.maxExecutionSeconds + 30) * 1000,
        compression: { request: false, response: false },
      });
      mode = 'server-analyst-user';
    } else {
      // readonly last: settings of one request are checked together before any applies.
      client = createClient({
        url: server.url,
        username: server.user,
        password: server.password,
        database: ch.database,
        request_timeout: (limits.maxExecutionSeconds + 30) * 1000,
        compression: { request: false, response: false },
        clickhouse_settings: { ...(limitSettings(limits) as Record<string, never>), readonly: '1' },
      });
      mode = 'server-readonly-settings';
    }
  }

  // Table functions and databases the policy refuses by name, read from ClickHouse itself.
  // (Through the main handle: the analyst itself may not read system tables.)
  const tableFunctions = (await queryRows<{ name: string }>(ch, 'SELECT name FROM system.table_functions')).map((r) => r.name);
  // Embedded: the analyst session runs one thing at a time (a check or a query with its release),
  // so the analyst's memory is bounded by one query's limit and released before the next starts,
  // and nothing runs between a failed query and its release. A server schedules its own queries.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    if (ch.transport !== 'chdb') return fn();
    const mine = chain.then(fn);
    chain = mine.catch(() => undefined);
    return mine;
  };
  const release = async () => {
    if (ch.transport !== 'chdb') return;
    // The session frees its previous query's state when it runs the next one.
    await client
      .query({ query: 'SELECT 1', format: 'TabSeparated' })
      .then((r) => r.text())
      .catch(() => undefined);
  };

  const handle: AnalystSql = {
    limits,
    mode,
    client,
    prepare: (query, params, o = {}) =>
      serial(async (): Promise<Prepared> => {
        let formatted: string;
        try {
          const [r] = await rows<{ f: string }>(client, 'SELECT formatQuerySingleLine({q:String}) AS f', { q: query });
          formatted = r!.f;
        } catch (err) {
          const e = toClickHouseError(err, 'parse');
          const msg = (err as Error).message ?? '';
          if (/Multi-statements are not allowed/i.test(msg))
            return { ok: false, status: 403, reason: 'exactly one statement is allowed (ClickHouse parsed more than one)', code: e.serverCode };
          return { ok: false, status: 400, reason: `ClickHouse cannot parse the statement: ${cleanMessage(msg)}`, code: e.serverCode };
        }
        let explain: string;
        let databases: string[];
        try {
          explain = await text(client, `EXPLAIN AST ${formatted}`, params, ch.transport === 'chdb');
          databases = (await queryRows<{ name: string }>(ch, 'SELECT name FROM system.databases')).map((r) => r.name);
        } catch (err) {
          const e = toClickHouseError(err, 'explain');
          if (e.serverCode === '164')
            return { ok: false, status: 403, reason: `refused by ClickHouse (read-only): ${cleanMessage((err as Error).message)}`, code: e.serverCode };
          return { ok: false, status: 400, reason: `ClickHouse cannot analyse the statement: ${cleanMessage((err as Error).message)}`, code: e.serverCode };
        }
        const v = checkAnalystAst(explain, { database: ch.database, databases, tableFunctions, allowFormat: o.allowFormat ?? false });
        if (!v.ok) return { ok: false, status: 403, reason: v.reason };
        return { ok: true, sql: formatted, kind: v.kind };
      }),
    run: (fn) =>
      serial(async () => {
        try {
          return await fn(client);
        } catch (err) {
          if (ch.transport === 'chdb' && toClickHouseError(err, 'q').serverCode === '241') {
            await release();
            // The main session may run SYSTEM statements; the analyst one may not.
            await ch.client.command({ query: 'SYSTEM JEMALLOC PURGE' }).catch(() => undefined);
          }
          throw err;
        } finally {
          await release();
        }
      }),
    close: async () => {
      await chain;
      await client.close();
    },
  };
  return handle;
}

async function rows<T>(client: ClickHouseClient, query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  const rs = await client.query({ query, query_params: params, format: 'JSONEachRow' });
  return await rs.json<T>();
}

/**
 * A statement's output as text, with nothing appended to the statement: `query()` would add
 * `FORMAT …`, which EXPLAIN AST would take as part of the statement it explains. A server answers
 * TabSeparated (escaped; the policy reads node types and names, which escaping leaves alone, and a
 * readonly = 1 user may not send default_format); chdb's default would be CSV, so it gets
 * TabSeparatedRaw as its format option (the chdb connection does not SET default_format).
 */
async function text(client: ClickHouseClient, query: string, params: Record<string, unknown>, chdb: boolean): Promise<string> {
  const r = await client.exec({ query, query_params: params, ...(chdb ? { clickhouse_settings: { default_format: 'TabSeparatedRaw' } } : {}) });
  const chunks: Buffer[] = [];
  for await (const c of r.stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
}

/** ClickHouse's message without the echo of our wrapper query. */
function cleanMessage(msg: string): string {
  return msg
    .replace(/: In scope SELECT formatQuerySingleLine\([\s\S]*$/, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 500);
}
