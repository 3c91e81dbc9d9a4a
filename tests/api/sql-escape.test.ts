/**
 * POST /v1/sql against every escape family of issue 16, on real embedded ClickHouse with the
 * project's tables: each case asserts the exact refusal (the status, the error and the reason,
 * or ClickHouse's own error code). After the suite the server state is checked unchanged: the
 * tables of every database with their row counts, the files of the chdb data directory (outside
 * the table parts) and of the working directory, and no file where an INTO OUTFILE pointed. Also: ClickHouse's own layer refuses writes and
 * setting changes on the analyst session even when the check is bypassed, the memory limit
 * refuses a query that would need gigabytes and the process gives the memory back, and legitimate
 * analyst queries (parameters, WITH, JOIN, DESCRIBE, EXPLAIN) keep working.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { ClickHouseSettings } from '@clickhouse/client';
import { createLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { openAnalyst, DEFAULT_ANALYST_LIMITS, type AnalystSql } from '../../sinks/clickhouse/analyst.js';
import { apiPlugin } from '../../api/app.js';
import { RedisApiKeyStore } from '../../api/api-keys.js';
import { RedisRateLimiter } from '../../api/rate-limit.js';
import { REPO_ROOT, cleanupTestEnv, pollUntil, testEnv } from '../helpers/env.js';

const t = testEnv('sql-escape');
const db = t.config.clickhouse.database;
const KEY = 'analyst-escape-key-0123456789abcdef';
let ch: ClickHouse;
let analyst: AnalystSql;
let redis: Redis;
let app: FastifyInstance;
let before: ServerState;
const outfiles = [
  join(t.dataDir, 'out.txt'),
  join(t.dataDir, 'out2.txt'),
  join(REPO_ROOT, 'escape-out.txt'),
  join(t.dataDir, 'describe-out.txt'),
  join(t.dataDir, 'describe-out2.txt'),
];

interface ServerState {
  tables: string[];
  chdbFiles: string[];
  cwd: string[];
  fxRates: number;
}

function listFiles(dir: string, skip: (rel: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const rel = relative(dir, p);
      if (skip(rel)) continue;
      if (e.isDirectory()) walk(p);
      else out.push(rel);
    }
  };
  walk(dir);
  return out.sort();
}

async function serverState(): Promise<ServerState> {
  // Every table with its row count (exact for MergeTree tables, null for views).
  const tables = (
    await queryRows<{ t: string }>(
      ch,
      "SELECT concat(database, '.', name, ' ', toString(total_rows)) AS t FROM system.tables WHERE database NOT IN ('system', 'information_schema', 'INFORMATION_SCHEMA') ORDER BY t",
    )
  ).map((r) => r.t);
  const [fx] = await queryRows<{ c: string }>(ch, `SELECT count() AS c FROM ${db}.fx_rates`);
  return {
    tables,
    // Outside the table parts (background merges may rename those; rows are counted above) and the
    // insert spool: metadata, user files, anything a statement could have written.
    chdbFiles: listFiles(t.chdbPath, (rel) => rel.startsWith('store') || rel.startsWith('spool') || rel.startsWith('tmp') || rel.startsWith('status')),
    cwd: readdirSync(process.cwd()).sort(),
    fxRates: Number(fx!.c),
  };
}

const sql = (query: string, params?: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/v1/sql', headers: { 'x-api-key': KEY }, payload: { query, params } });
const rssMiB = () => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024);

beforeAll(async () => {
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  await migrate(ch);
  await ch.client.command({ query: 'CREATE DATABASE IF NOT EXISTS other_db' });
  await ch.client.command({ query: 'CREATE TABLE IF NOT EXISTS other_db.secrets (s String) ENGINE = MergeTree ORDER BY s' });
  await ch.client.command({ query: "INSERT INTO other_db.secrets VALUES ('do not read')" });
  analyst = await openAnalyst(ch, { limits: DEFAULT_ANALYST_LIMITS });
  redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  const keys = new RedisApiKeyStore(redis, t.redisPrefix);
  await keys.seed(`${KEY}:analyst`);
  app = Fastify({ logger: false });
  await app.register(apiPlugin, {
    logger: createLogger('silent'),
    metrics: createMetrics(),
    redis,
    ch,
    keys,
    analyst,
    limiter: new RedisRateLimiter(redis, t.redisPrefix, 60_000),
    rateLimits: { analyst: 1_000_000 },
    docs: false,
  });
  await app.ready();
  before = await serverState();
}, 120_000);

afterAll(async () => {
  await app?.close();
  await analyst?.close();
  const keys = await redis.keys(`${t.redisPrefix}*`);
  if (keys.length) await redis.del(...keys);
  await redis?.quit();
  await ch?.close();
  await cleanupTestEnv(t);
});

/**
 * [query, status, error, reason pattern, params]: refusals by the check (403 read_only) or by
 * ClickHouse's parser (400 query_failed); 200 where ClickHouse reads the text as one harmless SELECT.
 */
type Case = [string, 200 | 400 | 403, 'read_only' | 'query_failed' | null, RegExp | null, Record<string, unknown>?];
const families: Record<string, Case[]> = {
  'backtick-quoted and scalar file()': [
    ["SELECT * FROM `file`('/etc/passwd', 'LineAsString')", 403, 'read_only', /function file\(\) is not allowed/],
    ["SELECT * FROM \"file\"('/etc/passwd', 'LineAsString')", 403, 'read_only', /function file\(\) is not allowed/],
    ["SELECT file('/etc/hostname')", 403, 'read_only', /function file\(\) is not allowed/],
    ["SELECT length(file('/etc/passwd')) AS n", 403, 'read_only', /function file\(\) is not allowed/],
  ],
  'INTO OUTFILE': [
    [`SELECT 1 INTO OUTFILE '${outfiles[0]}'`, 403, 'read_only', /INTO OUTFILE is not allowed/],
    [`SELECT * FROM ${db}.fx_rates INTO OUTFILE '${outfiles[1]}' TRUNCATE FORMAT CSV`, 403, 'read_only', /INTO OUTFILE is not allowed/],
    [`select 1 into outfile 'escape-out.txt'`, 403, 'read_only', /INTO OUTFILE is not allowed/],
    // DESCRIBE is a statement with output too: its INTO OUTFILE wrote the file (read-only mode lets it).
    [`DESCRIBE TABLE ${db}.fx_rates INTO OUTFILE '${outfiles[3]}'`, 403, 'read_only', /INTO OUTFILE is not allowed/],
    [`DESC (SELECT 1) INTO OUTFILE '${outfiles[4]}' TRUNCATE COMPRESSION 'gzip'`, 403, 'read_only', /INTO OUTFILE is not allowed/],
  ],
  'stacked statements': [
    [`SELECT 1; DROP TABLE ${db}.qoe_views`, 403, 'read_only', /exactly one statement/],
    [`SELECT 1;CREATE TABLE ${db}.evil (x Int8) ENGINE = Memory`, 403, 'read_only', /exactly one statement/],
    [`SELECT 1; SELECT 2`, 403, 'read_only', /exactly one statement/],
    [`SELECT 1 /* ; */ ; INSERT INTO ${db}.fx_rates SELECT 'XXX', 1, 2, today(), 'x'`, 403, 'read_only', /exactly one statement/],
  ],
  "'--' inside string literals": [
    [`SELECT '--' AS a; CREATE TABLE ${db}.evil (x Int8) ENGINE = Memory`, 403, 'read_only', /exactly one statement/],
    [`SELECT '--', 1; INSERT INTO ${db}.fx_rates SELECT 'XXX', 1, 2, today(), 'x'`, 403, 'read_only', /exactly one statement/],
    [`SELECT '/*' AS a; DROP TABLE ${db}.qoe_views; SELECT '*/'`, 403, 'read_only', /exactly one statement/],
    [`SELECT 'it''s -- not a comment' AS a, * FROM system.processes`, 403, 'read_only', /database system is not allowed/],
  ],
  comments: [
    [`/* harmless */ DROP /* x */ TABLE ${db}.qoe_views -- bye`, 403, 'read_only', /allowed, got DROP/],
    [`-- SELECT\nINSERT INTO ${db}.fx_rates SELECT 'XXX', 1, 2, today(), 'x'`, 403, 'read_only', /allowed, got INSERT/],
    // The comment hides the DROP from ClickHouse too: one SELECT runs.
    [`SELECT 1 AS x -- ; DROP TABLE ${db}.qoe_views\n FROM system.one`, 200, null, null],
  ],
  quoting: [
    ['SELECT * FROM "system"."processes"', 403, 'read_only', /database system is not allowed/],
    ['SELECT * FROM `system`.`processes`', 403, 'read_only', /database system is not allowed/],
    ['SELECT * FROM `other_db`.secrets', 403, 'read_only', /database other_db is not allowed/],
    ['SELECT `a\nb` FROM numbers(1)', 403, 'read_only', /could not be checked/],
    ['SELECT * FROM "fi" "le"(\'/etc/passwd\')', 400, 'query_failed', /Syntax error/],
  ],
  'unicode lookalikes': [
    ["SELECT * FROM ｆｉｌｅ('/etc/passwd', 'LineAsString')", 400, 'query_failed', /Syntax error|Unrecognized token/],
    ["SELECT * FROM fіle('/etc/passwd', 'LineAsString')", 400, 'query_failed', /Syntax error|Unrecognized token/], // Cyrillic і
    [`ＤＲＯＰ TABLE ${db}.qoe_views`, 400, 'query_failed', /Syntax error|Unrecognized token/],
    [`SELECT 1；DROP TABLE ${db}.qoe_views`, 400, 'query_failed', /Syntax error|Unrecognized token/], // full-width semicolon
  ],
  SETTINGS: [
    // ClickHouse applies a query's SETTINGS while it explains it: the read-only session refuses first.
    ['SELECT 1 SETTINGS readonly = 0', 403, 'read_only', /refused by ClickHouse \(read-only\): Cannot modify 'readonly' setting in readonly mode/],
    ['SELECT 1 UNION ALL SELECT 2 SETTINGS max_execution_time = 3600', 403, 'read_only', /Cannot modify 'max_execution_time' setting in readonly mode/],
    [
      'SELECT count() FROM (SELECT number FROM numbers(10) SETTINGS max_memory_usage = 100000000000)',
      403,
      'read_only',
      /SETTINGS is not allowed|Cannot modify 'max_memory_usage' setting in readonly mode/,
    ],
    // A SETTINGS clause that changes nothing is still refused by the check.
    ['SELECT 1 SETTINGS max_result_rows = 100000', 403, 'read_only', /SETTINGS is not allowed/],
    ['EXPLAIN PIPELINE header = 1 SELECT 1', 403, 'read_only', /SETTINGS is not allowed/],
  ],
  FORMAT: [
    ['SELECT 1 FORMAT TSV', 403, 'read_only', /FORMAT is not allowed/],
    ['SELECT 1 FORMAT Native', 403, 'read_only', /FORMAT is not allowed/],
    [`DESCRIBE TABLE ${db}.fx_rates FORMAT CSV`, 403, 'read_only', /FORMAT is not allowed/],
  ],
  'table functions': [
    ["SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'x String')", 403, 'read_only', /table function url\(\) is not allowed/],
    ["SELECT * FROM s3('http://127.0.0.1:1/b/k.csv', 'CSV', 'x String')", 403, 'read_only', /table function s3\(\) is not allowed/],
    ["SELECT * FROM remote('127.0.0.1:9000', system.one)", 403, 'read_only', /table function remote\(\) is not allowed/],
    ["SELECT * FROM remoteSecure('127.0.0.1:9440', system.one)", 403, 'read_only', /table function remoteSecure\(\) is not allowed/],
    ["SELECT * FROM cluster('default', system.one)", 403, 'read_only', /table function cluster\(\) is not allowed/],
    ["SELECT * FROM executable('cat /etc/passwd', 'TSV', 'x String')", 403, 'read_only', /table function executable\(\) is not allowed/],
    ["SELECT * FROM input('x String')", 403, 'read_only', /table function input\(\) is not allowed/],
    ["SELECT * FROM mysql('127.0.0.1:3306', 'd', 't', 'u', 'p')", 403, 'read_only', /table function mysql\(\) is not allowed/],
    ["SELECT * FROM postgresql('127.0.0.1:5432', 'd', 't', 'u', 'p')", 403, 'read_only', /table function postgresql\(\) is not allowed/],
    ["SELECT * FROM merge('other_db', '.*')", 403, 'read_only', /table function merge\(\) is not allowed/],
    ["SELECT * FROM filesystem('/etc')", 403, 'read_only', /table function filesystem\(\) is not allowed/],
    ["SELECT * FROM hdfs('hdfs://127.0.0.1:1/x', 'CSV', 'x String')", 403, 'read_only', /table function hdfs\(\) is not allowed/],
    [
      "SELECT * FROM numbers(3) WHERE number IN (SELECT 1 FROM url('http://127.0.0.1:1/', 'CSV', 'x String'))",
      403,
      'read_only',
      /table function url\(\) is not allowed/,
    ],
    ["SELECT * FROM view(SELECT * FROM file('/etc/passwd', 'LineAsString'))", 403, 'read_only', /function file\(\) is not allowed/],
  ],
  dictionaries: [
    ["SELECT dictGet('d', 'v', toUInt64(1))", 403, 'read_only', /dictionaries are not allowed \(dictGet\)/],
    ["SELECT dictGetStringOrDefault('d', 'v', toUInt64(1), 'x')", 403, 'read_only', /dictionaries are not allowed/],
    ["SELECT dictHas('d', toUInt64(1))", 403, 'read_only', /dictionaries are not allowed/],
    ["SELECT * FROM dictionary('d')", 403, 'read_only', /dictionaries are not allowed \(dictionary\)/],
    ["SELECT joinGet('other_db.j', 'v', 1)", 403, 'read_only', /function joinGet\(\) is not allowed/],
  ],
  'system.*': [
    ['SELECT query FROM system.processes', 403, 'read_only', /database system is not allowed/],
    ['SELECT query FROM system.query_log', 403, 'read_only', /database system is not allowed/],
    ['SELECT * FROM system.tables', 403, 'read_only', /database system is not allowed/],
    ['SELECT * FROM system.users', 403, 'read_only', /database system is not allowed/],
    ['SELECT 1 WHERE 1 IN system.tables', 403, 'read_only', /database system is not allowed/],
    ['SELECT * FROM {t:Identifier}', 403, 'read_only', /database system is not allowed/, { t: 'system.processes' }],
    ['DESCRIBE TABLE system.processes', 403, 'read_only', /database system is not allowed/],
  ],
  'other databases': [
    ['SELECT * FROM other_db.secrets', 403, 'read_only', /database other_db is not allowed/],
    ['SELECT * FROM information_schema.tables', 403, 'read_only', /database information_schema is not allowed/],
    ['SELECT * FROM INFORMATION_SCHEMA.COLUMNS', 403, 'read_only', /database INFORMATION_SCHEMA is not allowed/],
    [`SELECT * FROM ${db}.fx_rates AS f JOIN other_db.secrets AS s ON f.currency = s.s`, 403, 'read_only', /database other_db is not allowed/],
    ['SELECT s FROM {t:Identifier}', 403, 'read_only', /database other_db is not allowed/, { t: 'other_db.secrets' }],
  ],
  DDL: [
    [`CREATE TABLE ${db}.evil (x Int8) ENGINE = Memory`, 403, 'read_only', /allowed, got CREATE/],
    [`DROP TABLE ${db}.qoe_views`, 403, 'read_only', /allowed, got DROP/],
    [`ALTER TABLE ${db}.qoe_views DELETE WHERE 1`, 403, 'read_only', /allowed, got ALTER/],
    [`RENAME TABLE ${db}.qoe_views TO ${db}.gone`, 403, 'read_only', /allowed, got RENAME\/EXCHANGE/],
    [`TRUNCATE TABLE ${db}.fx_rates`, 403, 'read_only', /allowed, got TRUNCATE/],
    [`OPTIMIZE TABLE ${db}.qoe_views FINAL`, 403, 'read_only', /allowed, got OPTIMIZE/],
    [`CREATE USER evil IDENTIFIED BY 'x'`, 403, 'read_only', /allowed, got CREATE USER/],
    [`ATTACH TABLE ${db}.gone`, 403, 'read_only', /allowed, got ATTACH/],
    [`DETACH TABLE ${db}.qoe_views`, 403, 'read_only', /allowed, got DETACH/],
    [`EXCHANGE TABLES ${db}.qoe_views AND ${db}.fx_rates`, 403, 'read_only', /allowed, got RENAME\/EXCHANGE/],
    [`BACKUP TABLE ${db}.fx_rates TO Disk('default', 'b.zip')`, 403, 'read_only', /allowed, got BACKUP/],
    [`GRANT ALL ON *.* TO default`, 403, 'read_only', /allowed, got GRANT/],
    [`EXPLAIN SYNTAX CREATE TABLE ${db}.evil (x Int8) ENGINE = Memory`, 403, 'read_only', /EXPLAIN is allowed of a SELECT only/],
  ],
  INSERT: [
    [`INSERT INTO ${db}.fx_rates VALUES ('XXX', 1, 2, today(), 'x')`, 403, 'read_only', /allowed, got INSERT/],
    [`WITH x AS (SELECT 1) INSERT INTO ${db}.fx_rates SELECT 'X', 1, 2, today(), 'x'`, 403, 'read_only', /allowed, got INSERT/],
    [`INSERT INTO FUNCTION file('${outfiles[0]}', 'CSV', 'x UInt8') SELECT 1`, 403, 'read_only', /allowed, got INSERT/],
    [`DELETE FROM ${db}.fx_rates WHERE 1`, 403, 'read_only', /allowed, got DELETE/],
  ],
  KILL: [
    ['KILL QUERY WHERE 1', 403, 'read_only', /allowed, got KILL/],
    ['KILL QUERY WHERE 1 SYNC', 403, 'read_only', /allowed, got KILL/],
  ],
  SYSTEM: [
    ['SYSTEM DROP DNS CACHE', 403, 'read_only', /allowed, got SYSTEM/],
    ['SYSTEM SHUTDOWN', 403, 'read_only', /allowed, got SYSTEM/],
    ['SYSTEM JEMALLOC PURGE', 403, 'read_only', /allowed, got SYSTEM/],
  ],
  SET: [
    ['SET readonly = 0', 403, 'read_only', /allowed, got SET/],
    ['SET max_memory_usage = 0', 403, 'read_only', /allowed, got SET/],
  ],
  USE: [
    ['USE system', 403, 'read_only', /allowed, got USE/],
    ['USE other_db', 403, 'read_only', /allowed, got USE/],
  ],
  SHOW: [['SHOW TABLES FROM other_db', 403, 'read_only', /allowed, got SHOW/]],
};

describe('escape families, each refused with its reason', () => {
  for (const [family, cases] of Object.entries(families)) {
    it(family, async () => {
      for (const [query, status, error, reason, params] of cases) {
        const r = await sql(query, params);
        expect({ query, status: r.statusCode, body: r.statusCode === status ? '' : r.body }).toEqual({ query, status, body: '' });
        if (status === 200) continue;
        expect(r.json().error, query).toBe(error);
        expect(r.json().param, query).toBe('query');
        expect(r.json().message, query).toMatch(reason!);
      }
    });
  }
});

describe('ClickHouse itself enforces read-only on the analyst session (the check bypassed)', () => {
  const direct = (query: string, settings?: ClickHouseSettings) =>
    analyst.run(async (c) => (await c.query({ query, format: 'JSONEachRow', ...(settings ? { clickhouse_settings: settings } : {}) })).json());
  const refusedCode = async (p: Promise<unknown>) =>
    p.then(
      () => 'ran',
      (e: { code?: string }) => e.code,
    );

  it('refuses writes, DDL, file() and setting changes with code 164 READONLY', async () => {
    expect(await refusedCode(direct(`INSERT INTO ${db}.fx_rates SELECT 'YYY', 1, 2, today(), 'x'`))).toBe('164');
    expect(await refusedCode(direct(`CREATE TABLE ${db}.evil (x Int8) ENGINE = Memory`))).toBe('164');
    expect(await refusedCode(direct("SELECT * FROM file('/etc/passwd', 'LineAsString')"))).toBe('164');
    expect(await refusedCode(direct("SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'x String')"))).toBe('164');
    expect(await refusedCode(direct('SELECT 1 SETTINGS max_memory_usage = 100000000000'))).toBe('164');
    expect(await refusedCode(analyst.run((c) => c.command({ query: 'SET readonly = 0' })))).toBe('164');
    expect(await refusedCode(direct('SELECT 1', { max_execution_time: 3600 }))).toBe('164');
    // The limits are the session's.
    const [s] = (await direct("SELECT getSetting('readonly') AS r, getSetting('max_memory_usage') AS m, getSetting('max_result_rows') AS n")) as Array<{
      r: number;
      m: string;
      n: string;
    }>;
    expect({ r: Number(s!.r), m: Number(s!.m), n: Number(s!.n) }).toEqual({
      r: 1,
      m: DEFAULT_ANALYST_LIMITS.maxMemoryBytes,
      n: DEFAULT_ANALYST_LIMITS.maxResultRows,
    });
  });

  it('leaves the pipeline session writable and unlimited', async () => {
    const [s] = await queryRows<{ r: number; m: string }>(ch, "SELECT getSetting('readonly') AS r, getSetting('max_memory_usage') AS m");
    expect({ r: Number(s!.r), m: Number(s!.m) }).toEqual({ r: 0, m: 0 });
  });
});

describe('limits', () => {
  it('refuses a query that would need gigabytes with the memory limit, and the process gives the memory back', async () => {
    // Warm: the first analyst queries grow the process by what any query needs.
    for (let i = 0; i < 3; i++) expect((await sql('SELECT sum(number) AS s FROM numbers(10000000)')).statusCode).toBe(200);
    const beforeMiB = rssMiB();
    const r = await sql('SELECT groupArray(number) FROM numbers(1e8)');
    expect(r.statusCode, r.body).toBe(400);
    expect(r.json().error).toBe('limit_exceeded');
    expect(r.json().message).toMatch(/code 241.*memory limit/i);
    const afterMiB = await pollUntil(() => (rssMiB() <= beforeMiB * 1.1 ? rssMiB() : false), {
      timeoutMs: 20_000,
      description: `RSS back within 10 % of ${beforeMiB} MiB`,
    });
    console.log(`[sql-escape] RSS before ${beforeMiB} MiB, after the refused 1e8 groupArray ${afterMiB} MiB`);
    expect((await sql('SELECT 1 AS one')).json().rows).toEqual([{ one: 1 }]);
  });

  it('cuts results at the row limit and flags them', async () => {
    const big = await sql('SELECT number FROM numbers(1000000)');
    expect(big.statusCode).toBe(200);
    expect(big.json()).toMatchObject({ row_count: DEFAULT_ANALYST_LIMITS.maxResultRows, truncated: true });
    // With 'break' overflow modes the next query gets its own answer only.
    expect((await sql("SELECT 'next' AS x")).json()).toMatchObject({ rows: [{ x: 'next' }], truncated: false });
  });
});

describe('legitimate analyst queries', () => {
  it('parameters, WITH, JOIN, unqualified names, DESCRIBE, EXPLAIN, numbers() and system.one', async () => {
    const ok = async (query: string, params?: Record<string, unknown>) => {
      const r = await sql(query, params);
      expect(r.statusCode, `${query}: ${r.body}`).toBe(200);
      return r.json();
    };
    expect((await ok('SELECT {a:String} AS a, {n:UInt32} + 1 AS n', { a: "it's -- fine; really", n: 41 })).rows).toEqual([
      { a: "it's -- fine; really", n: 42 },
    ]);
    expect((await ok(`WITH t AS (SELECT currency FROM ${db}.fx_rates) SELECT count() AS c FROM t`)).rows).toEqual([{ c: before.fxRates }]);
    expect((await ok('SELECT count() AS c FROM fx_rates')).rows).toEqual([{ c: before.fxRates }]);
    await ok(`SELECT f.currency, count() AS c FROM ${db}.fx_rates AS f LEFT JOIN ${db}.qoe_views AS v ON v.country = f.currency GROUP BY f.currency`);
    expect((await ok(`DESCRIBE TABLE ${db}.fx_rates`)).row_count).toBeGreaterThan(1);
    await ok('EXPLAIN SELECT 1');
    expect((await ok('SELECT sum(number) AS s FROM numbers(10)')).rows).toEqual([{ s: 45 }]);
    expect((await ok('SELECT dummy FROM system.one')).rows).toEqual([{ dummy: 0 }]);
    expect((await ok("SELECT format('{} {}', 'a', 'b') AS f")).rows).toEqual([{ f: 'a b' }]);
    expect((await ok('SELECT 1 AS x -- a trailing comment; DROP TABLE x')).rows).toEqual([{ x: 1 }]);
  });
});

describe('server state after the suite', () => {
  it('has the same tables, rows and files, and no file where INTO OUTFILE pointed', async () => {
    const after = await serverState();
    // The state compared is not empty: the project's tables with their rows, the other database, metadata files.
    expect(before.tables).toContain(`${db}.fx_rates ${before.fxRates}`);
    expect(before.tables).toContain('other_db.secrets 1');
    expect(before.chdbFiles.some((f) => f.startsWith('metadata'))).toBe(true);
    expect(after).toEqual(before);
    for (const f of outfiles) expect(existsSync(f), f).toBe(false);
    expect(statSync(t.chdbPath).isDirectory()).toBe(true);
  });
});
