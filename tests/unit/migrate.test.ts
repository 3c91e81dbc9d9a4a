/** Migrations are versioned and idempotent, on embedded ClickHouse. */
import { afterAll, describe, expect, it } from 'vitest';
import { command, openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { loadMigrations, migrate } from '../../sinks/clickhouse/migrate.js';
import { rawColumns } from '../../sinks/clickhouse/raw-ddl.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('migrate');
let ch: ClickHouse;
afterAll(async () => {
  await ch?.close();
  await cleanupTestEnv(t);
});

describe('migrations', () => {
  it('apply once, in order; a second run applies nothing; rerunning a file is harmless', async () => {
    ch = await openClickHouse({ ...t.config.clickhouse, url: null });
    const all = loadMigrations().map((m) => m.version);
    expect(all).toEqual([...all].sort((a, b) => a - b));
    expect(new Set(all).size).toBe(all.length);
    expect(await migrate(ch)).toEqual(all);
    expect(await migrate(ch)).toEqual([]);
    const recorded = await queryRows<{ version: number }>(ch, `SELECT version FROM ${ch.database}.schema_migrations FINAL ORDER BY version`);
    expect(recorded.map((r) => Number(r.version))).toEqual(all);
    // Forget the record of the last migration: running it again must succeed (IF NOT EXISTS).
    await command(ch, `DELETE FROM ${ch.database}.schema_migrations WHERE version = {v:UInt32}`, { v: all.at(-1)! });
    expect(await migrate(ch)).toEqual([all.at(-1)]);
  });

  it('leave the raw tables with exactly the columns and types the Avro schemas give (raw-ddl.ts)', async () => {
    const got = await queryRows<{ table: string; name: string; type: string }>(
      ch,
      `SELECT table, name, type FROM system.columns WHERE database = {db:String} AND table LIKE 'raw\\_%' ORDER BY table, position`,
      { db: ch.database },
    );
    const want = [...rawColumns()].sort((a, b) => a[0].localeCompare(b[0])).flatMap(([table, cols]) => cols.map(([name, type]) => ({ table, name, type })));
    expect(got).toEqual(want);
  });

  it('020 sets codecs and keeps defaults; late_events gets its event_time index', async () => {
    const cols = await queryRows<{ table: string; name: string; default_expression: string; compression_codec: string }>(
      ch,
      `SELECT table, name, default_expression, compression_codec FROM system.columns WHERE database = {db:String} AND (table, name) IN (('raw_playback', 'ingested_at'), ('raw_playback', 'event_time'), ('qoe_minute', 'window_start'), ('raw_jira', 'raw_payload')) ORDER BY table, name`,
      { db: ch.database },
    );
    expect(cols).toEqual([
      { table: 'qoe_minute', name: 'window_start', default_expression: '', compression_codec: 'CODEC(DoubleDelta, ZSTD(1))' },
      { table: 'raw_jira', name: 'raw_payload', default_expression: '', compression_codec: 'CODEC(ZSTD(3))' },
      { table: 'raw_playback', name: 'event_time', default_expression: '', compression_codec: 'CODEC(Delta(8), ZSTD(1))' },
      { table: 'raw_playback', name: 'ingested_at', default_expression: 'now64(3)', compression_codec: 'CODEC(Delta(8), ZSTD(1))' },
    ]);
    const idx = await queryRows<{ name: string; type: string }>(
      ch,
      `SELECT name, type FROM system.data_skipping_indices WHERE database = {db:String} AND table = 'late_events'`,
      { db: ch.database },
    );
    expect(idx).toEqual([{ name: 'late_events_event_time', type: 'minmax' }]);
  });

  it('011 converts raw tables created with LowCardinality columns (before it) and keeps their values', async () => {
    const db = ch.database;
    const m011 = loadMigrations().find((m) => m.version === 11)!;
    const alter = m011.statements
      .find((s) => s.includes('{db}.raw_payments'))!
      .replaceAll('{db}', db)
      .replace('raw_payments', 'raw_payments_old');
    // raw_payments as 001 created it before 011: LowCardinality strings.
    await command(
      ch,
      `CREATE TABLE ${db}.raw_payments_old (event_id String, event_time DateTime64(3, 'UTC'), received_time DateTime64(3, 'UTC'), payment_id String, account_id String,
      kind LowCardinality(String), status LowCardinality(String), amount_minor Int64, currency LowCardinality(String), method LowCardinality(String), plan LowCardinality(String),
      og_tier Int32, auto_renew Bool, period_end Nullable(Int64), failure_code LowCardinality(Nullable(String)), country LowCardinality(String),
      src_topic LowCardinality(String), src_partition UInt16, src_offset UInt64, version UInt64, ingested_at DateTime64(3, 'UTC') DEFAULT now64(3))
      ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(event_time) ORDER BY (toStartOfHour(event_time), event_id)`,
    );
    await command(
      ch,
      `INSERT INTO ${db}.raw_payments_old (event_id, event_time, received_time, payment_id, account_id, kind, status, amount_minor, currency, method, plan, og_tier, auto_renew, period_end, failure_code, country, src_topic, src_partition, src_offset, version)
      VALUES ('e1', 1795132800000, 1795132800000, 'p1', 'a1', 'chargeback', 'failed', 999, 'NPR', 'khalti', 'premium', 2, true, NULL, 'do_not_honor', 'NP', 'sp.payments', 3, 7, 8)`,
    );
    const before = await queryRows(ch, `SELECT * EXCEPT ingested_at FROM ${db}.raw_payments_old`);
    await command(ch, alter);
    await command(ch, alter); // again: a no-op
    expect(await queryRows(ch, `SELECT * EXCEPT ingested_at FROM ${db}.raw_payments_old`)).toEqual(before);
    const types = await queryRows<{ name: string; type: string; default_expression: string }>(
      ch,
      `SELECT name, type, default_expression FROM system.columns WHERE database = {db:String} AND table = 'raw_payments_old' ORDER BY position`,
      { db },
    );
    expect(types.map((c) => [c.name, c.type])).toEqual(rawColumns().get('raw_payments'));
    expect(types.find((c) => c.name === 'ingested_at')!.default_expression).toBe('now64(3)');
  });
});
