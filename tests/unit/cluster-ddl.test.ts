/**
 * CLICKHOUSE_CLUSTER (sinks/clickhouse/cluster-ddl.ts): the cluster form of every migration is
 * accepted by ClickHouse's own parser (formatQuerySingleLine on embedded chdb, as the analyst SQL
 * door uses it), and has the shape ClickHouse documents for replicated, sharded tables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import {
  changesColumns,
  clusterMigrations,
  clusterStatement,
  dataTarget,
  migrationTables,
  schemaMigrationsDdl,
  shardingKey,
} from '../../sinks/clickhouse/cluster-ddl.js';
import { loadMigrations } from '../../sinks/clickhouse/migrate.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('cluster-ddl');
let ch: ClickHouse;
beforeAll(async () => {
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
});
afterAll(async () => {
  await ch?.close();
  await cleanupTestEnv(t);
});

const DB = 'streampulse';
const CLUSTER = 'sp_cluster';

/** ClickHouse's single-line spelling of the statement; throws when it does not parse. */
async function parse(sql: string): Promise<string> {
  const [r] = await queryRows<{ f: string }>(ch, 'SELECT formatQuerySingleLine({q:String}) AS f', { q: sql });
  return r!.f;
}

describe('cluster DDL', () => {
  const migrations = loadMigrations();
  const cluster = clusterMigrations(migrations, { cluster: CLUSTER });
  const statements = cluster.flatMap((m) => m.statements.map((s) => ({ version: m.version, sql: s.replaceAll('{db}', DB) })));

  it('the parser check itself refuses a statement that does not parse', async () => {
    await expect(parse(`CREATE TABLE ${DB}.x ON CLUSTER ${CLUSTER} (a UInt8) ENGINE = Distributed(`)).rejects.toThrow();
  });

  it('every statement of every migration, in its cluster form, is parsed by ClickHouse without error', async () => {
    expect(statements.length).toBeGreaterThan(migrations.reduce((n, m) => n + m.statements.length, 0));
    const formatted: string[] = [];
    for (const s of [...statements, { version: 0, sql: schemaMigrationsDdl(DB, CLUSTER) }]) {
      try {
        formatted.push(await parse(s.sql));
      } catch (err) {
        throw new Error(`migration ${s.version}: ClickHouse cannot parse\n${s.sql}\n${(err as Error).message}`, { cause: err });
      }
    }
    // ClickHouse's own spelling keeps ON CLUSTER on every DDL statement (INSERT backfills excepted).
    for (const f of formatted) if (!/^INSERT INTO /.test(f)) expect(f, f.slice(0, 200)).toMatch(new RegExp(` ON CLUSTER ${CLUSTER}\\b`));
  });

  it('every table is a Replicated engine with the {shard} and {replica} macros behind a Distributed table keyed by its sorting key', async () => {
    const tables = migrationTables(migrations);
    expect(tables.size).toBeGreaterThan(20);
    for (const table of tables) {
      const local = statements.find((s) => s.sql.startsWith(`CREATE TABLE IF NOT EXISTS ${DB}.${table}_local ON CLUSTER ${CLUSTER}`));
      expect(local, table).toBeDefined();
      expect(local!.sql).toMatch(/ENGINE = Replicated(Replacing|Aggregating)?MergeTree\('\/clickhouse\/tables\/\{uuid\}\/\{shard\}', '\{replica\}'/);
      const dist = statements.find((s) => s.sql.startsWith(`CREATE TABLE IF NOT EXISTS ${DB}.${table} ON CLUSTER ${CLUSTER} AS ${DB}.${table}_local`));
      expect(dist, table).toBeDefined();
      expect(dist!.sql).toMatch(new RegExp(`ENGINE = Distributed\\(${CLUSTER}, ${DB}, ${table}_local, (cityHash64\\(.+\\)|rand\\(\\))\\)$`));
      expect(statements.indexOf(local!)).toBeLessThan(statements.indexOf(dist!));
    }
    // The engine's own arguments follow the replication path.
    expect(statements.find((s) => s.sql.includes(`${DB}.qoe_minute_local ON CLUSTER`))!.sql).toContain(
      "ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}', version)",
    );
  });

  it('materialized views read and write the local tables; views and ALTERs are ON CLUSTER; the 011 ALTERs reach both tables', () => {
    const mv = statements.find((s) => s.sql.startsWith('CREATE MATERIALIZED VIEW'))!;
    expect(mv.sql).toContain(`${DB}.playback_views_by_creator_mv ON CLUSTER ${CLUSTER} TO ${DB}.playback_views_by_creator_local`);
    expect(mv.sql).toContain(`FROM ${DB}.raw_playback_local`);
    const alters = statements.filter((s) => s.version === 11);
    expect(alters.map((s) => /^ALTER TABLE \S+/.exec(s.sql)![0])).toEqual(
      ['raw_playback', 'raw_payments', 'raw_gifts', 'raw_moderation', 'raw_jira', 'raw_catalog'].flatMap((r) => [
        `ALTER TABLE ${DB}.${r}_local`,
        `ALTER TABLE ${DB}.${r}`,
      ]),
    );
  });

  it('sharding keys, data targets, codec-only ALTERs, and statements without a cluster form', () => {
    expect(shardingKey('(toStartOfHour(event_time), event_id)')).toBe('cityHash64(toStartOfHour(event_time), event_id)');
    expect(shardingKey('version')).toBe('cityHash64(version)');
    expect(shardingKey('(a, b) ')).toBe('cityHash64(a, b)');
    expect(shardingKey('tuple()')).toBe('rand()');
    expect(changesColumns("ALTER TABLE {db}.t MODIFY COLUMN kind Enum8('a' = 1)")).toBe(true);
    expect(changesColumns('ALTER TABLE {db}.t ADD COLUMN IF NOT EXISTS x UInt8')).toBe(true);
    expect(changesColumns('ALTER TABLE {db}.t\n  MODIFY COLUMN a CODEC(ZSTD(1)),\n  MODIFY COLUMN b CODEC(Delta, ZSTD(1))')).toBe(false);
    expect(changesColumns('ALTER TABLE {db}.t ADD INDEX IF NOT EXISTS i x TYPE minmax GRANULARITY 1')).toBe(false);
    expect(statements.filter((s) => s.version === 20 && s.sql.startsWith('ALTER TABLE')).every((s) => /^ALTER TABLE \S+_local ON CLUSTER/.test(s.sql))).toBe(
      true,
    );
    expect(dataTarget(DB, 'qoe_minute', null)).toBe(`${DB}.qoe_minute`);
    expect(dataTarget(DB, 'qoe_minute', CLUSTER)).toBe(`${DB}.qoe_minute_local ON CLUSTER ${CLUSTER}`);
    expect(() => clusterStatement('OPTIMIZE TABLE {db}.x FINAL', new Set(), { cluster: CLUSTER })).toThrow(/no cluster form/);
    expect(() => clusterStatement('CREATE VIEW {db}.v AS SELECT 1', new Set(), { cluster: 'a; DROP' })).toThrow(/not a plain identifier/);
  });
});
