/** Migrations are versioned and idempotent, on embedded ClickHouse. */
import { afterAll, describe, expect, it } from 'vitest';
import { command, openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { loadMigrations, migrate } from '../../sinks/clickhouse/migrate.js';
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
});
