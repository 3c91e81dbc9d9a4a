/**
 * The `clickhouse` role's port (http-facade.ts) over real HTTP on embedded ClickHouse: it
 * authenticates like ClickHouse (headers, basic auth, URL parameters; 403 + Code 516 otherwise),
 * the writer can write, the analyst can read but not write, drop, use file() or INTO OUTFILE,
 * and cannot override its limits with URL settings or a SETTINGS clause (ClickHouse's 164), and a
 * writer request asking for readonly neither writes nor leaves the writers' session read-only.
 * The tables and files are checked unchanged after the analyst's attempts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createClient } from '@clickhouse/client';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { openAnalyst, DEFAULT_ANALYST_LIMITS, type AnalystSql } from '../../sinks/clickhouse/analyst.js';
import { ANALYST_MAX_QUERY_BYTES, serveClickHouse, type ClickHouseFacade } from '../../sinks/clickhouse/http-facade.js';
import { facadeUsers, isLoopbackHost } from '../../bin/pipeline.js';
import { loadConfig } from '../../lib/config.js';
import { silentLogger } from '../../lib/logger.js';
import { TEST_CH_WRITER, cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('ch-port');
const db = t.config.clickhouse.database;
const ANALYST = { name: 'sp_test_analyst', password: 'analyst-pw-0123456789' };
let ch: ClickHouse;
let analyst: AnalystSql;
let facade: ClickHouseFacade;

const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
const asWriter = { 'x-clickhouse-user': TEST_CH_WRITER.name, 'x-clickhouse-key': TEST_CH_WRITER.password };
const asAnalyst = basic(ANALYST.name, ANALYST.password);

async function post(sql: string, headers: Record<string, string> = {}, search = ''): Promise<{ status: number; code: string | null; body: string }> {
  const res = await fetch(`${facade.url}/${search}`, { method: 'POST', body: sql, headers });
  return { status: res.status, code: res.headers.get('x-clickhouse-exception-code'), body: await res.text() };
}

async function tables(): Promise<string[]> {
  return (
    await queryRows<{ t: string }>(
      ch,
      "SELECT concat(database, '.', name) AS t FROM system.tables WHERE database NOT IN ('system', 'information_schema', 'INFORMATION_SCHEMA') ORDER BY t",
    )
  ).map((r) => r.t);
}

beforeAll(async () => {
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  await migrate(ch);
  analyst = await openAnalyst(ch, { limits: DEFAULT_ANALYST_LIMITS });
  facade = await serveClickHouse(ch, { port: 0, writer: TEST_CH_WRITER, analystUser: ANALYST, analystSql: analyst });
}, 120_000);

afterAll(async () => {
  await facade?.close();
  await analyst?.close();
  await ch?.close();
  await cleanupTestEnv(t);
});

describe('authentication', () => {
  it('answers /ping without credentials, as ClickHouse does', async () => {
    const res = await fetch(`${facade.url}/ping`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('Ok.\n');
  });

  it('refuses unauthenticated and wrong credentials with 403 and Code 516, by every method', async () => {
    for (const [what, headers, search] of [
      ['none (default user, empty password)', {}, ''],
      ['wrong basic password', basic(TEST_CH_WRITER.name, 'nope'), ''],
      ['unknown user', basic('root', TEST_CH_WRITER.password), ''],
      ['analyst name with the writer password', basic(ANALYST.name, TEST_CH_WRITER.password), ''],
      ['wrong X-ClickHouse-Key', { 'x-clickhouse-user': ANALYST.name, 'x-clickhouse-key': 'x' }, ''],
      ['wrong URL password', {}, `?user=${ANALYST.name}&password=x`],
      ['URL query without credentials', {}, `?query=${encodeURIComponent(`DROP TABLE ${db}.fx_rates`)}`],
    ] as const) {
      const r = await post('SELECT 1', headers, search);
      expect({ what, status: r.status, code: r.code }).toEqual({ what, status: 403, code: '516' });
      expect(r.body).toMatch(
        /^Code: 516\. DB::Exception: .*: Authentication failed: password is incorrect, or there is no user with such name\. \(AUTHENTICATION_FAILED\)/,
      );
    }
    expect(await tables()).toContain(`${db}.fx_rates`);
  });

  it('accepts the right credentials by headers, basic auth and URL parameters', async () => {
    expect((await post('SELECT 1', asWriter)).body).toBe('1\n');
    expect((await post('SELECT 2', asAnalyst)).body).toBe('2\n');
    expect((await post('SELECT 3', {}, `?user=${ANALYST.name}&password=${ANALYST.password}`)).body).toBe('3\n');
  });
});

describe('the writer (the pipeline processes, @clickhouse/client over HTTP)', () => {
  it('creates, inserts and reads', async () => {
    const w = await openClickHouse({ ...t.config.clickhouse, url: facade.url, user: TEST_CH_WRITER.name, password: TEST_CH_WRITER.password });
    try {
      await w.client.command({ query: `CREATE TABLE IF NOT EXISTS ${db}.port_writer (x UInt32) ENGINE = MergeTree ORDER BY x` });
      await w.client.insert({ table: `${db}.port_writer`, values: [{ x: 1 }, { x: 2 }], format: 'JSONEachRow' });
      const rs = await w.client.query({ query: `SELECT sum(x) AS s FROM ${db}.port_writer`, format: 'JSONEachRow' });
      expect(await rs.json()).toEqual([{ s: 3 }]);
    } finally {
      await w.close();
    }
  });

  it("a request asking for readonly runs read-only and leaves the writers' session writable", async () => {
    const r = await post(`INSERT INTO ${db}.port_writer VALUES (100)`, asWriter, '?readonly=1');
    expect(r.status).toBe(403);
    expect(r.body).toMatch(/got INSERT/);
    expect((await post(`SELECT count() FROM ${db}.port_writer`, asWriter, '?readonly=1')).body).toBe('2\n');
    expect((await post(`INSERT INTO ${db}.port_writer VALUES (4)`, asWriter)).status).toBe(200);
    expect((await post(`SELECT sum(x) FROM ${db}.port_writer`, asWriter)).body).toBe('7\n');
  });
});

describe('the analyst (SQL tools, Grafana)', () => {
  it('reads with parameters and chooses its format', async () => {
    const w = createClient({ url: facade.url, username: ANALYST.name, password: ANALYST.password });
    try {
      const rs = await w.query({ query: `SELECT {a:String} AS a, count() AS c FROM ${db}.port_writer`, query_params: { a: 'x' }, format: 'JSONEachRow' });
      expect(await rs.json()).toEqual([{ a: 'x', c: 3 }]);
    } finally {
      await w.close();
    }
    expect((await post('SELECT number FROM numbers(3) FORMAT CSV', asAnalyst)).body).toBe('0\n1\n2\n');
    expect((await post('SELECT 1', asAnalyst, `?max_result_rows=${DEFAULT_ANALYST_LIMITS.maxResultRows}`)).body).toBe('1\n');
    // Grafana sends its query timeout with every query: one within the limit is accepted.
    expect((await post('SELECT 1', asAnalyst, `?max_execution_time=${DEFAULT_ANALYST_LIMITS.maxExecutionSeconds}`)).body).toBe('1\n');
  });

  it('cannot write, drop, use file() or url(), write files, run two statements or read system tables', async () => {
    const before = await tables();
    const outfile = join(t.dataDir, 'port-out.txt');
    for (const [sql, reason] of [
      [`INSERT INTO ${db}.port_writer VALUES (9)`, /got INSERT/],
      [`DROP TABLE ${db}.port_writer`, /got DROP/],
      [`CREATE TABLE ${db}.evil (x Int8) ENGINE = Memory`, /got CREATE/],
      ["SELECT * FROM file('/etc/passwd', 'LineAsString')", /function file\(\) is not allowed/],
      ["SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'x String')", /table function url\(\) is not allowed/],
      [`SELECT 1 INTO OUTFILE '${outfile}'`, /INTO OUTFILE is not allowed/],
      [`SELECT 1; DROP TABLE ${db}.port_writer`, /exactly one statement/],
      ['SELECT query FROM system.processes', /database system is not allowed/],
      ['SYSTEM DROP DNS CACHE', /got SYSTEM/],
    ] as const) {
      const r = await post(sql, asAnalyst);
      expect({ sql, status: r.status }).toEqual({ sql, status: 403 });
      expect(r.body).toMatch(/^Code: \d+\. DB::Exception: sp_test_analyst: /);
      expect(r.body).toMatch(reason);
    }
    expect(await tables()).toEqual(before);
    expect(existsSync(outfile)).toBe(false);
    expect((await post(`SELECT sum(x) FROM ${db}.port_writer`, asWriter)).body).toBe('7\n');
  });

  it("cannot override its limits: URL settings and SETTINGS clauses get ClickHouse's 164", async () => {
    for (const search of ['?max_memory_usage=100000000000', '?readonly=0', '?max_execution_time=3600', '?max_result_rows=0', '?result_overflow_mode=throw']) {
      const r = await post('SELECT 1', asAnalyst, search);
      expect({ search, status: r.status, code: r.code }).toEqual({ search, status: 500, code: '164' });
      expect(r.body).toMatch(/Cannot modify '\w+' setting in readonly mode/);
    }
    const clause = await post('SELECT 1 SETTINGS max_memory_usage = 100000000000', asAnalyst);
    expect(clause.status).toBe(403);
    expect(clause.body).toMatch(/Cannot modify 'max_memory_usage' setting in readonly mode/);
    // The session's limits did not move.
    expect((await post("SELECT getSetting('max_memory_usage'), getSetting('readonly')", asAnalyst)).body).toBe(`${DEFAULT_ANALYST_LIMITS.maxMemoryBytes}\t1\n`);
  });

  it('a statement is bounded before it is read whole: a gzip bomb or a huge body gets Code 62, the port does not inflate it', async () => {
    // Before: the port read and inflated any body, so 300 KB of gzip (300 MiB of text) took the
    // process to 4.8 GB RSS for 94 s before ClickHouse refused it. Now the analyst's statement is
    // bounded like a server's max_query_size, on the raw and on the inflated bytes.
    const bomb = gzipSync(Buffer.concat([Buffer.from('SELECT 1 '), Buffer.alloc(16 * 2 ** 20, 0x20)]));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const big = Buffer.concat([Buffer.from('SELECT 1 '), Buffer.alloc(ANALYST_MAX_QUERY_BYTES + 1, 0x20)]);
    for (const [what, body, headers] of [
      ['gzip bomb', bomb, { 'content-encoding': 'gzip' }],
      ['plain body', big, {}],
    ] as const) {
      const res = await fetch(`${facade.url}/`, { method: 'POST', body: new Uint8Array(body), headers: { ...asAnalyst, ...headers } });
      const text = await res.text();
      expect({ what, status: res.status, code: res.headers.get('x-clickhouse-exception-code') }).toEqual({ what, status: 400, code: '62' });
      expect(text).toMatch(
        new RegExp(`^Code: 62\\. DB::Exception: sp_test_analyst: Max query size exceeded: the statement is limited to ${ANALYST_MAX_QUERY_BYTES} bytes`),
      );
    }
    expect((await post('SELECT 1', asAnalyst)).body).toBe('1\n');
  });

  it('a URL setting value stays one literal value: a trailing backslash does not carry the value into the statement', async () => {
    // chdb's connection quotes a setting as '<value>' with quotes doubled but backslashes kept, so a
    // value ending in \ escaped the closing quote and the rest of the text (the next setting, the
    // statement) became SQL: Code 62 "Single quoted string is not closed", or the next setting's
    // value parsed as SQL. ClickHouse must see the value itself and refuse the change (164).
    for (const search of ['?log_comment=x%5C', '?log_comment=%5C&max_threads=%3B%20SELECT%2042%20--', "?log_comment=a%5C'%3B%20SELECT%2042%20--"]) {
      const r = await post('SELECT 1', asAnalyst, search);
      expect({ search, status: r.status, code: r.code }).toEqual({ search, status: 500, code: '164' });
      expect(r.body).toMatch(/Cannot modify 'log_comment' setting in readonly mode/);
    }
    // The writer's value arrives as given (then put back: settings stay on the writers' session).
    const given = "it\\'s; SELECT 42 --\\";
    const w = await post("SELECT getSetting('log_comment') FORMAT JSONEachRow", asWriter, `?log_comment=${encodeURIComponent(given)}`);
    expect(w.status, w.body).toBe(200);
    expect(JSON.parse(w.body)).toEqual({ "getSetting('log_comment')": given });
    expect((await post("SELECT getSetting('log_comment') = ''", asWriter, '?log_comment=')).body).toBe('1\n');
  });
});

describe('analyst SQL over HTTP (a process with CLICKHOUSE_URL: the API role of a split deployment)', () => {
  it('works as the analyst user and as the writer with readonly settings, refusing what the endpoint refuses', async () => {
    const remote = await openClickHouse({ ...t.config.clickhouse, url: facade.url, user: TEST_CH_WRITER.name, password: TEST_CH_WRITER.password });
    try {
      for (const user of [ANALYST, null]) {
        const a = await openAnalyst(remote, { limits: DEFAULT_ANALYST_LIMITS, user });
        try {
          expect(a.mode).toBe(user ? 'server-analyst-user' : 'server-readonly-settings');
          const p = await a.prepare(`SELECT {a:String} AS a, count() AS c FROM port_writer WHERE x > {min:UInt32}`, { a: "it's", min: 0 });
          expect(p).toMatchObject({ ok: true, kind: 'select' });
          const rows = await a.run(async (c) =>
            (await c.query({ query: (p as { sql: string }).sql, query_params: { a: "it's", min: 0 }, format: 'JSONEachRow' })).json(),
          );
          expect(rows).toEqual([{ a: "it's", c: 3 }]);
          // (Through this port the EXPLAIN itself is checked too: the port's refusal, as ClickHouse words it, carries the reason.)
          expect(await a.prepare("SELECT * FROM `file`('/etc/passwd', 'LineAsString')", {})).toMatchObject({
            ok: false,
            status: 403,
            reason: expect.stringMatching(/function file\(\) is not allowed/),
          });
          expect(await a.prepare(`SELECT 1; DROP TABLE ${db}.port_writer`, {})).toMatchObject({
            ok: false,
            status: 403,
            reason: expect.stringMatching(/exactly one statement/),
          });
          expect(await a.prepare(`SELECT 1 INTO OUTFILE '${join(t.dataDir, 'x.txt')}'`, {})).toMatchObject({
            ok: false,
            reason: expect.stringMatching(/INTO OUTFILE is not allowed/),
          });
          expect(await a.prepare('SELECT * FROM system.processes', {})).toMatchObject({
            ok: false,
            reason: expect.stringMatching(new RegExp(`database system is not allowed: only ${db}`)),
          });
          // Bypassing the check: ClickHouse's read-only mode still refuses the write.
          const write = await a
            .run((c) => c.command({ query: `INSERT INTO ${db}.port_writer VALUES (1000)` }))
            .then(
              () => 'ran',
              (e: Error) => e.message,
            );
          expect(write).toMatch(/got INSERT|readonly/i);
        } finally {
          await a.close();
        }
      }
    } finally {
      await remote.close();
    }
    expect((await post(`SELECT sum(x) FROM ${db}.port_writer`, asWriter)).body).toBe('7\n');
  });
});

describe('where the port listens and with which writer', () => {
  it('is loopback by default whatever HTTP_HOST is, and refuses a non-loopback host without a writer password', () => {
    const c = loadConfig({ HTTP_HOST: '0.0.0.0' });
    expect(c.env.CLICKHOUSE_HTTP_HOST).toBe('127.0.0.1');
    expect(['127.0.0.1', '127.1.2.3', '::1', 'localhost'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '::', '10.0.0.5', 'clickhouse'].some(isLoopbackHost)).toBe(false);
    expect(() => facadeUsers(loadConfig({ CLICKHOUSE_HTTP_HOST: '0.0.0.0' }), silentLogger())).toThrow(/not loopback: set CLICKHOUSE_PASSWORD/);
    expect(facadeUsers(loadConfig({ CLICKHOUSE_HTTP_HOST: '0.0.0.0', CLICKHOUSE_USER: 'w', CLICKHOUSE_PASSWORD: 'pw' }), silentLogger()).writer).toEqual({
      name: 'w',
      password: 'pw',
    });
    // On loopback without a password the writer gets a random one: no empty-password login.
    const w = facadeUsers(loadConfig({}), silentLogger()).writer;
    expect(w.name).toBe('default');
    expect(w.password.length).toBeGreaterThanOrEqual(24);
    expect(() => loadConfig({ CLICKHOUSE_USER: 'x', CLICKHOUSE_ANALYST_USER: 'x', CLICKHOUSE_ANALYST_PASSWORD: 'p' })).toThrow(
      /CLICKHOUSE_ANALYST_USER: must differ/,
    );
  });
});
