/**
 * Retention per table family (sinks/clickhouse/retention.ts): RETENTION_*_DAYS become row TTLs
 * that ClickHouse accepts and applies (expired rows gone after a merge, recent ones kept), the
 * 1-minute QoE rollup follows minute retention while the 5-minute and hourly ones follow hour
 * retention, and 0 removes a TTL again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { command, openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { applyRetention, retentionTtls } from '../../sinks/clickhouse/retention.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('retention');
let ch: ClickHouse;
beforeAll(async () => {
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  await migrate(ch);
});
afterAll(async () => {
  await ch?.close();
  await cleanupTestEnv(t);
});

const ttlOf = async (table: string) => {
  const [r] = await queryRows<{ e: string }>(ch, `SELECT engine_full AS e FROM system.tables WHERE database = {db:String} AND name = {t:String}`, {
    db: ch.database,
    t: table,
  });
  return / TTL /.test(r!.e);
};

describe('retention', () => {
  it("sets a TTL on every family's tables, and ClickHouse drops expired rows when it merges", async () => {
    const db = ch.database;
    const changed = await applyRetention(ch, { rawDays: 30, minuteDays: 7, hourDays: 400 });
    expect(changed.sort()).toEqual([...retentionTtls({ rawDays: 30, minuteDays: 7, hourDays: 400 }).keys()].sort());
    for (const table of ['raw_playback', 'raw_jira', 'qoe_minute', 'kpi_payments_1m', 'account_activity_1h', 'qoe_minute_rollup', 'kpi_business_1h_closed'])
      expect(await ttlOf(table), table).toBe(true);
    expect(await ttlOf('qoe_views')).toBe(false);
    const now = Math.floor(Date.now() / 1000 / 60) * 60;
    const old = now - 10 * 86_400; // older than minute retention, younger than hour retention
    await command(
      ch,
      `INSERT INTO ${db}.qoe_minute (window_start, cdn, src_topic, src_partition, version) VALUES (toDateTime(${old}), 'old', 'playback', 0, 1), (toDateTime(${now}), 'new', 'playback', 0, 1)`,
    );
    await command(
      ch,
      `INSERT INTO ${db}.qoe_minute_rollup (step, bucket, cdn, version) VALUES (60, toDateTime(${old}), 'old', 1), (300, toDateTime(${old}), 'old', 1), (60, toDateTime(${now}), 'new', 1)`,
    );
    await command(ch, `OPTIMIZE TABLE ${db}.qoe_minute FINAL`);
    await command(ch, `OPTIMIZE TABLE ${db}.qoe_minute_rollup FINAL`);
    expect((await queryRows<{ cdn: string }>(ch, `SELECT cdn FROM ${db}.qoe_minute ORDER BY cdn`)).map((r) => r.cdn)).toEqual(['new']);
    expect(await queryRows(ch, `SELECT step, cdn FROM ${db}.qoe_minute_rollup ORDER BY step, cdn`)).toEqual([
      { step: 60, cdn: 'new' },
      { step: 300, cdn: 'old' },
    ]);
  });

  it('0 removes the TTLs; applying the same settings twice changes nothing for tables without one', async () => {
    await applyRetention(ch, { rawDays: 0, minuteDays: 0, hourDays: 0 });
    for (const table of ['raw_playback', 'qoe_minute', 'account_activity_1h', 'qoe_minute_rollup']) expect(await ttlOf(table), table).toBe(false);
    expect(await applyRetention(ch, { rawDays: 0, minuteDays: 0, hourDays: 0 })).toEqual([]);
  });
});
