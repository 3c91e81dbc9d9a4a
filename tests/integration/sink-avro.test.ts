/**
 * The processors' tables are written as Avro (sinks/clickhouse/avro-rows.ts, table-writer.ts).
 * Every row every processor emits on simulator traffic (late events included) is written three
 * ways into one embedded ClickHouse: as JSONCompactEachRow by insertRows (the reference), as Avro
 * into embedded ClickHouse (spool file), and as Avro over HTTP (the `clickhouse` role's facade,
 * as a ClickHouse server receives it). The three databases must hold exactly the same tables.
 * Raw rows go as the events' Avro bodies (AvroBodyRow), as the raw store writes them.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { avroType, schemaJson } from '../../contracts/schemas.js';
import { topicSpec, type EventKind } from '../../contracts/topics.js';
import { PROCESSOR_FACTORIES, type ProcessorRole, type ProcessorSettings } from '../../bin/processors.js';
import { ProcessorTestDriver, type DriverRecord } from '../../processors/core/test-driver.js';
import { TrafficGenerator, type SimEvent } from '../../producers/simulator/generator.js';
import { AvroBodyRow, RowEncoder } from '../../sinks/clickhouse/avro-rows.js';
import { insertRows, openClickHouse, queryRows, tableColumns, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { serveClickHouse, type ClickHouseFacade } from '../../sinks/clickhouse/http-facade.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { writeTables } from '../../sinks/clickhouse/table-writer.js';
import { TEST_CH_WRITER, cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('sink-avro');
const base = { user: 'default', password: '', chdbPath: t.chdbPath };
let json: ClickHouse;
let avroChdb: ClickHouse;
let avroHttp: ClickHouse;
let facade: ClickHouseFacade;

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Seventy minutes of simulator traffic with every kind (so the first hourly window closes), and
 * copies of early events re-sent at the end: late, some within the allowed lateness of LATENESS
 * (late firings, so the history tables get rows) and the QoE ones past it (late_events).
 */
function traffic(): DriverRecord[] {
  const startMs = Date.UTC(2026, 10, 20, 12);
  const gen = new TrafficGenerator({ seed: 9, startMs, ratePerSec: 8, moderationCasesPerHour: 600, jiraIssuesPerHour: 300 });
  const events: SimEvent[] = [];
  for (let tMs = startMs; tMs < startMs + 70 * 60_000; ) gen.advanceInto((tMs += 1000), events);
  const late = (['payments', 'gifts', 'playback', 'moderation'] as const)
    .flatMap((kind) => events.filter((e) => e.kind === kind).slice(0, 20))
    .map((e, i) => ({ ...e, event: { ...e.event, event_id: `10000000-0000-4000-8000-${String(i).padStart(12, '0')}` } }));
  return [...events, ...late].map((e) => {
    const spec = topicSpec('', e.kind);
    const event: Record<string, unknown> = { ...(e.event as unknown as Record<string, unknown>), received_time: e.event.event_time };
    return { kind: e.kind, partition: fnv(String(event[spec.keyField])) % spec.partitions, event };
  });
}

/** Two hours for every kind the late firings apply to: the re-sent copies, 70 minutes late, re-fire their windows. */
const LATENESS = { payments: 2 * 3_600_000, gifts: 2 * 3_600_000, playback: 2 * 3_600_000, moderation: 2 * 3_600_000 };

/** Every processor's rows, by table, as the runner hands them to the sink (raw rows as AvroBodyRows). */
function emittedRows(): Map<string, object[]> {
  const records = traffic();
  const settings = { ch: undefined, graceMs: 60_000, allowedLatenessMs: 5_000, lateness: LATENESS } as unknown as ProcessorSettings;
  const out = new Map<string, object[]>();
  for (const role of Object.keys(PROCESSOR_FACTORIES) as ProcessorRole[]) {
    const p = PROCESSOR_FACTORIES[role]!(settings);
    const d = new ProcessorTestDriver(p);
    const mine = records.filter((r) => p.kinds.includes(r.kind)).map((r) => ({ ...r, event: structuredClone(r.event) }));
    for (let i = 0; i < mine.length; i += 500) {
      d.pipe(mine.slice(i, i + 500));
      if (i % 2_000 === 0) d.flush();
    }
    d.flush();
    for (const [table, rows] of d.emitted) out.set(table, [...(out.get(table) ?? []), ...rows]);
  }
  return out;
}

/** A raw row as a plain object (what insertRows sends): the decoded body plus the source fields. */
function plain(row: object, table: string): object {
  if (!(row instanceof AvroBodyRow)) return row;
  const kind = table.replace(/^raw_/, '') as EventKind;
  return {
    ...(avroType(kind).fromBuffer(row.body) as object),
    src_topic: row.src_topic,
    src_partition: row.src_partition,
    src_offset: row.src_offset,
    version: row.version,
  };
}

beforeAll(async () => {
  json = await openClickHouse({ ...base, url: null, database: 'sink_json' });
  avroChdb = { ...json, database: 'sink_avro' };
  facade = await serveClickHouse(json, { port: 0, writer: TEST_CH_WRITER });
  avroHttp = await openClickHouse({ ...base, url: facade.url, user: TEST_CH_WRITER.name, password: TEST_CH_WRITER.password, database: 'sink_http' });
  for (const db of ['sink_avro']) await json.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
  for (const ch of [json, avroChdb, avroHttp]) await migrate(ch);
});

afterAll(async () => {
  await avroHttp?.close();
  await facade?.close();
  await json?.close();
  await cleanupTestEnv(t);
});

describe('processor tables written as Avro', () => {
  it('hold exactly what JSON inserts give, over embedded ClickHouse and over HTTP, for every table', async () => {
    const rows = emittedRows();
    const tables = [...rows.keys()].sort();
    // Every table every processor declares, the raw ones and late events among them.
    for (const role of Object.keys(PROCESSOR_FACTORIES) as ProcessorRole[]) {
      for (const table of PROCESSOR_FACTORIES[role]!({} as ProcessorSettings).tables) expect(tables, table).toContain(table);
    }
    expect(tables).toContain('late_events');

    // No row has a value of the wrong type for its column (Avro would not catch every such value at insert).
    const cols = await tableColumns(json);
    for (const table of tables) {
      const objects = rows.get(table)!.filter((r) => !(r instanceof AvroBodyRow)) as Array<Record<string, unknown>>;
      if (objects.length === 0) continue;
      const byName = new Map(cols.get(table)!.map((c) => [c.name, c]));
      const enc = new RowEncoder(
        table,
        Object.keys(objects[0]!).map((n) => byName.get(n)!),
      );
      const bad = objects.map((r) => enc.invalid(r)).filter((x) => x !== null);
      expect(bad.slice(0, 3), `${table}: rows that do not fit their columns`).toEqual([]);
    }

    for (const table of tables)
      await insertRows(
        json,
        table,
        rows.get(table)!.map((r) => plain(r, table)),
      );
    expect(await writeTables(avroChdb, rows, { concurrency: 2 })).toBe([...rows.values()].reduce((a, l) => a + l.length, 0));
    await writeTables(avroHttp, rows, { concurrency: 2 });

    for (const table of tables) {
      const except = table.startsWith('raw_') ? ' EXCEPT ingested_at' : '';
      const read = (db: string) => queryRows(json, `SELECT *${except} FROM ${db}.${table} FINAL ORDER BY ALL`);
      const [a, b, c] = await Promise.all([read('sink_json'), read('sink_avro'), read('sink_http')]);
      expect(a.length, table).toBeGreaterThan(0);
      expect(b, `${table}: Avro into embedded ClickHouse`).toEqual(a);
      expect(c, `${table}: Avro over HTTP`).toEqual(a);
    }
    // Spool files are removed once read.
    expect(readdirSync(avroChdb.spoolDir!)).toEqual([]);
  });

  it('rows that cannot be written stop with the table and the reason, and nothing is left in the spool', async () => {
    const bad = new Map<string, object[]>([['qoe_minute', [{ window_start: 1, cdn: 'x', no_such_column: 1 }]]]);
    await expect(writeTables(avroChdb, bad, {})).rejects.toThrow(/qoe_minute have a column "no_such_column"/);
    // A value the column's type cannot hold (not a symbol of the enum): refused before ClickHouse sees it.
    const good = paymentRow();
    const row = { ...(plain(good, 'raw_payments') as Record<string, unknown>), kind: 'bogus' };
    await expect(writeTables(avroChdb, new Map([['raw_payments', [row]]]), {})).rejects.toThrow(/raw_payments cannot be encoded: .*bogus/);
    // Bytes ClickHouse cannot read (a truncated body): ClickHouse's error, with the table.
    const cut = Object.assign(new AvroBodyRow(good.body.subarray(0, 20), good.schema, 0), { src_topic: 'x', src_partition: 0, version: 1 });
    await expect(writeTables(avroChdb, new Map([['raw_payments', [cut]]]), {})).rejects.toThrow(/insert into raw_payments failed: .*Code: \d+/s);
    await expect(writeTables(avroHttp, new Map([['raw_payments', [cut]]]), {})).rejects.toThrow(/insert into raw_payments failed: .*Code: \d+/s);
    expect(readdirSync(avroChdb.spoolDir!)).toEqual([]);
    // The good row goes in.
    await writeTables(avroChdb, new Map([['raw_payments', [good]]]), {});
    expect(
      await queryRows(json, `SELECT kind, src_topic FROM sink_avro.raw_payments FINAL WHERE event_id = {id:String}`, {
        id: '20000000-0000-4000-8000-000000000001',
      }),
    ).toEqual([{ kind: 'renewal', src_topic: 'x' }]);
  });

  it("spools: one per handle, removed when it closes; a dead process's spool is cleared at open", async () => {
    const root = join(t.chdbPath, 'spool');
    const dead = join(root, '999999999-deadbeef');
    mkdirSync(dead, { recursive: true });
    writeFileSync(join(dead, 'left-behind.bin'), 'x');
    const second = await openClickHouse({ ...base, url: null, database: 'sink_avro' });
    expect(existsSync(dead)).toBe(false);
    expect(second.spoolDir).not.toBe(json.spoolDir);
    expect(existsSync(json.spoolDir!)).toBe(true);
    await writeTables(second, new Map([['raw_payments', [paymentRow()]]]), {});
    await second.close();
    expect(existsSync(second.spoolDir!)).toBe(false);
    // The first handle goes on working.
    await writeTables(avroChdb, new Map([['raw_payments', [paymentRow()]]]), {});
    expect(readdirSync(root).sort()).toEqual([basename(json.spoolDir!)]);
  });
});

function paymentRow(): AvroBodyRow {
  const ev = {
    event_id: '20000000-0000-4000-8000-000000000001',
    event_time: Date.UTC(2026, 10, 20),
    received_time: Date.UTC(2026, 10, 20),
    payment_id: 'p',
    account_id: 'a',
    kind: 'renewal',
    status: 'succeeded',
    amount_minor: 1,
    currency: 'USD',
    method: 'card',
    plan: 'basic',
    og_tier: 0,
    auto_renew: true,
    period_end: null,
    failure_code: null,
    country: 'NP',
  };
  return Object.assign(new AvroBodyRow(avroType('payments').toBuffer(ev), schemaJson('payments'), 0), { src_topic: 'x', src_partition: 0, version: 1 });
}
