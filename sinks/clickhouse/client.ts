/**
 * One code path, two transports: the official @clickhouse/client talks either to embedded
 * ClickHouse (chdb, in-process, the default) or to a ClickHouse server over HTTP when
 * CLICKHOUSE_URL is set. chdb locks its data directory: exactly one process may own it.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { ClickHouseError } from '../../lib/errors.js';
import { containerFile, type EncodedRows } from './avro-rows.js';
import { checkClusterName } from './cluster-ddl.js';

export type { ClickHouseClient };

export interface ClickHouseOptions {
  /** http(s)://host:port of a server; null for embedded chdb. */
  url: string | null;
  user: string;
  password: string;
  database: string;
  /** Data directory of embedded chdb (ignored with a URL). */
  chdbPath: string;
  /**
   * ClickHouse server only: how long a request may take before the client gives up (default
   * 60 s). An insert that timed out may still have been applied: the processors write the same
   * rows again, which the ReplacingMergeTree tables fold (docs/reliability.md).
   */
  requestTimeoutMs?: number;
  /**
   * ClickHouse server only: the cluster the schema lives on (CLICKHOUSE_CLUSTER): migrations create
   * replicated tables behind Distributed ones (cluster-ddl.ts), inserts into a Distributed table
   * return once the shards have the rows (insert_distributed_sync), so offsets are committed only
   * after the rows are durable, as on one server.
   */
  cluster?: string | null;
}

export interface ClickHouse {
  client: ClickHouseClient;
  database: string;
  transport: 'chdb' | 'http';
  /**
   * Embedded ClickHouse only: where binary insert data is spooled (chdb takes statements as text,
   * so a binary body is written to a file it reads with FROM INFILE). One per handle:
   * `<chdb path>/spool/<pid>-<id>`, removed when the handle closes.
   */
  spoolDir: string | null;
  /** Embedded ClickHouse only: its data directory (other sessions, e.g. the analyst's, open it too). */
  chdbPath: string | null;
  /** ClickHouse server only: the cluster name (CLICKHOUSE_CLUSTER), null on one server or embedded. */
  cluster: string | null;
  /** ClickHouse server only: where it is and who this handle logs in as (the analyst handle reuses it). */
  server: { url: string; user: string; password: string } | null;
  close(): Promise<void>;
}

export async function openClickHouse(opts: ClickHouseOptions): Promise<ClickHouse> {
  let client: ClickHouseClient;
  let transport: 'chdb' | 'http';
  let spoolDir: string | null = null;
  let chdbPath: string | null = null;
  if (opts.url) {
    client = createClient({
      url: opts.url,
      username: opts.user,
      password: opts.password,
      request_timeout: opts.requestTimeoutMs ?? 60_000,
      compression: { request: false, response: false },
      clickhouse_settings: { async_insert: 0, ...(opts.cluster ? { insert_distributed_sync: 1 } : {}) },
    });
    transport = 'http';
  } else {
    const path = resolve(opts.chdbPath);
    mkdirSync(path, { recursive: true });
    const { createChdbConnection } = await import('chdb/connection');
    try {
      // createClient's option types do not list `connection`, where chdb's connection plugs in.
      client = createClient({ connection: createChdbConnection({ path }) } as Parameters<typeof createClient>[0]);
    } catch (err) {
      throw new ClickHouseError(
        `cannot open embedded ClickHouse at ${path}: ${(err as Error).message} (only one process may own a chdb data directory)`,
        undefined,
        false,
        { cause: err },
      );
    }
    transport = 'chdb';
    chdbPath = path;
    const spoolRoot = join(path, 'spool');
    mkdirSync(spoolRoot, { recursive: true });
    // Spools of processes that died mid-insert: nothing reads them any more.
    for (const d of readdirSync(spoolRoot)) if (!processAlive(Number(d.split('-')[0]))) rmSync(join(spoolRoot, d), { recursive: true, force: true });
    spoolDir = join(spoolRoot, `${process.pid}-${randomUUID().slice(0, 8)}`);
    mkdirSync(spoolDir);
  }
  const cluster = opts.url && opts.cluster ? checkClusterName(opts.cluster) : null;
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${opts.database}${cluster ? ` ON CLUSTER ${cluster}` : ''}` });
  return {
    client,
    database: opts.database,
    transport,
    spoolDir,
    chdbPath,
    cluster,
    server: opts.url ? { url: opts.url, user: opts.user, password: opts.password } : null,
    close: async () => {
      await client.close();
      if (spoolDir) rmSync(spoolDir, { recursive: true, force: true });
    },
  };
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Maps a @clickhouse/client error to a typed ClickHouseError with the server's code. */
export function toClickHouseError(err: unknown, what: string): ClickHouseError {
  const e = err as { code?: string; message?: string; type?: string };
  const code = e?.code;
  // Network / timeout style failures are retriable; SQL and type errors are not.
  const msg = e?.message ?? String(err);
  const retriable = !code || /ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket hang up|Timeout/i.test(msg) || ['159', '209', '210', '242', '252', '319'].includes(code);
  return new ClickHouseError(`${what}: ${msg}`, code, retriable, { cause: err });
}

/**
 * Runs a SELECT with {name:Type} parameters and returns rows as objects. The rows travel as
 * JSONCompact (the column names once, each row an array; values written exactly as JSONEachRow
 * writes them) and become objects here: one JSON.parse instead of one per row, and less text for
 * ClickHouse to write. For 1,152 rows of 20 columns (the API's 24 h QoE series), embedded
 * ClickHouse: 43.7 ms as JSONEachRow against 34.1 ms as JSONCompact, same process.
 */
export async function queryRows<T = Record<string, unknown>>(ch: ClickHouse, query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  try {
    const rs = await ch.client.query({ query, query_params: params, format: 'JSONCompact' });
    const { meta, data } = await rs.json<unknown[]>();
    const names = (meta ?? []).map((m) => m.name);
    const rows = new Array<T>(data.length);
    for (let r = 0; r < data.length; r++) {
      const values = data[r]!;
      const row: Record<string, unknown> = {};
      for (let i = 0; i < names.length; i++) row[names[i]!] = values[i];
      rows[r] = row as T;
    }
    return rows;
  } catch (err) {
    throw toClickHouseError(err, 'query failed');
  }
}

export async function command(ch: ClickHouse, query: string, params: Record<string, unknown> = {}): Promise<void> {
  try {
    await ch.client.command({ query, query_params: params });
  } catch (err) {
    throw toClickHouseError(err, 'command failed');
  }
}

/**
 * The columns of a batch of rows: the keys of the first row, widened to the union of all rows'
 * keys only when some row has a different key count (rows of one table normally share a shape).
 * A key missing from a row is sent as null, which ClickHouse turns into the column's default
 * (input_format_null_as_default), as JSONEachRow does for an absent key.
 */
export function rowColumns(rows: readonly object[]): string[] {
  const first = Object.keys(rows[0]!);
  for (const r of rows) {
    let n = 0;
    for (const _k in r) n++;
    if (n !== first.length) {
      const all = new Set(first);
      for (const r2 of rows) for (const k of Object.keys(r2)) all.add(k);
      return [...all];
    }
  }
  return first;
}

/**
 * Inserts rows as JSONCompactEachRow with an explicit column list: one JSON array per row
 * instead of an object, so neither our encoder nor ClickHouse's parser handles a key per value
 * (about half the bytes of JSONEachRow on the raw tables).
 */
export async function insertRows(ch: ClickHouse, table: string, rows: readonly object[]): Promise<void> {
  if (rows.length === 0) return;
  try {
    const columns = rowColumns(rows);
    const n = columns.length;
    const values = new Array<unknown[]>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as Record<string, unknown>;
      const v = new Array<unknown>(n);
      for (let j = 0; j < n; j++) {
        const x = r[columns[j]!];
        v[j] = x === undefined ? null : x;
      }
      values[i] = v;
    }
    await ch.client.insert({ table: `${ch.database}.${table}`, values, columns: columns as [string, ...string[]], format: 'JSONCompactEachRow' });
  } catch (err) {
    throw toClickHouseError(err, `insert into ${table} failed`);
  }
}

const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * Runs `INSERT … FORMAT <format>` (the statement without data) with its data read from a file in
 * the spool directory: embedded ClickHouse only. chdb takes statements as text, so binary data
 * (Avro) cannot follow the statement inline; FROM INFILE reads it as ClickHouse reads a body.
 */
export async function insertFromSpool(ch: ClickHouse, insert: string, parts: readonly Buffer[]): Promise<void> {
  if (!ch.spoolDir) throw new ClickHouseError('insertFromSpool needs embedded ClickHouse (chdb)', undefined, false);
  // `INSERT INTO t (…) [SETTINGS …] FORMAT f` → `INSERT INTO t (…) FROM INFILE '…' [SETTINGS …] FORMAT f`.
  const m = /^([\s\S]*?)(\s+SETTINGS\s+[\s\S]*?)?\s+(FORMAT\s+\w+)\s*$/i.exec(insert);
  if (!m) throw new ClickHouseError(`not an INSERT … FORMAT statement: ${insert.slice(0, 200)}`, undefined, false);
  const file = join(ch.spoolDir, `${randomUUID()}.bin`);
  const fh = await open(file, 'w');
  try {
    try {
      await fh.writev(parts as Buffer[]);
    } finally {
      await fh.close();
    }
    await ch.client.command({ query: `${m[1]} FROM INFILE ${sqlString(file)}${m[2] ?? ''} ${m[3]}` });
  } finally {
    await unlink(file).catch(() => undefined);
  }
}

/**
 * Inserts rows encoded as Avro (avro-rows.ts) into `table`: over HTTP as the request body, into
 * embedded ClickHouse through a spool file. Same statement, same data, either transport.
 * optimize_on_insert = 0: the processors' tables are ReplacingMergeTrees read with FINAL, so the
 * per-block replacing merge at insert (15-25 % of the insert's CPU, measured) changes nothing a
 * reader sees; merges and FINAL keep the newest row either way.
 */
export async function insertAvro(ch: ClickHouse, table: string, rows: EncodedRows): Promise<void> {
  if (rows.count === 0) return;
  const insert = `INSERT INTO ${ch.database}.${table} (${rows.columns.join(', ')}) SETTINGS optimize_on_insert = 0 FORMAT Avro`;
  const parts = containerFile(rows);
  try {
    if (ch.spoolDir) await insertFromSpool(ch, insert, parts);
    else {
      const res = await ch.client.exec({ query: insert, values: Readable.from(parts) });
      // The response body is empty for an INSERT; read it so the socket goes back to the pool.
      for await (const _ of res.stream) void _;
    }
  } catch (err) {
    throw err instanceof ClickHouseError ? err : toClickHouseError(err, `insert into ${table} failed`);
  }
}

/** Column names and types of every table in the database (system.columns), by table. */
export async function tableColumns(ch: ClickHouse): Promise<Map<string, Array<{ name: string; type: string }>>> {
  const rows = await queryRows<{ table: string; name: string; type: string }>(
    ch,
    'SELECT table, name, type FROM system.columns WHERE database = {db:String} ORDER BY table, position',
    { db: ch.database },
  );
  const out = new Map<string, Array<{ name: string; type: string }>>();
  for (const r of rows) {
    let l = out.get(r.table);
    if (!l) out.set(r.table, (l = []));
    l.push({ name: r.name, type: r.type });
  }
  return out;
}
