/**
 * The migrations for a ClickHouse cluster (CLICKHOUSE_CLUSTER, docs/deploy.md). The migration files
 * are written for one server (embedded chdb or a single ClickHouse); with a cluster name every
 * statement is rewritten the way ClickHouse documents replicated, sharded tables:
 *
 * - `CREATE TABLE {db}.t … ENGINE = XMergeTree(args)` becomes `{db}.t_local ON CLUSTER c` with
 *   `ReplicatedXMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}', args)` (the `{shard}` and
 *   `{replica}` macros come from each server's config; `{uuid}` is the table's UUID, the same on every
 *   server for an ON CLUSTER create in an Atomic database, and it follows the table through RENAME and
 *   EXCHANGE), then `{db}.t ON CLUSTER c AS {db}.t_local ENGINE = Distributed(c, db, t_local, key)`
 *   in front of it. Every reader and writer keeps using `{db}.t`: inserts go through the Distributed
 *   table to the shard the key picks, reads fan out to one replica of every shard.
 * - The sharding key is `cityHash64` of the table's sorting key, so all versions of one
 *   ReplacingMergeTree row land on the same shard and `FINAL` (applied per shard) still folds them.
 * - Views and materialized views are created ON CLUSTER; a materialized view reads and writes the
 *   local tables (it runs on the shard that receives the insert).
 * - `ALTER TABLE {db}.t` is applied ON CLUSTER to `t_local`, and to the Distributed `t` when it
 *   changes columns (a codec or a skip index is storage of the local table only).
 * - `INSERT … SELECT` (backfills) is left as it is: it runs once, through the Distributed tables.
 *
 * Pure: no I/O. tests/unit/cluster-ddl.test.ts checks ClickHouse's parser accepts every statement.
 */
import type { Migration } from './migrate.js';

export interface ClusterOptions {
  /** Name of the cluster in the servers' `remote_servers` config. */
  cluster: string;
}

/** Suffix of the replicated table behind each Distributed table. */
export const LOCAL_SUFFIX = '_local';
/** Replication path of a sharded table: one replica set per shard. */
export const REPLICA_PATH = "'/clickhouse/tables/{uuid}/{shard}', '{replica}'";
/** Replication path of a table every server holds whole (schema_migrations): one replica set for the cluster. */
export const REPLICA_PATH_ALL = "'/clickhouse/tables/{uuid}/all', '{replica}'";

const CLUSTER_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function checkClusterName(name: string): string {
  if (!CLUSTER_NAME.test(name)) throw new Error(`cluster name "${name}" is not a plain identifier`);
  return name;
}

const CREATE_TABLE = /^CREATE TABLE IF NOT EXISTS \{db\}\.(\w+)\b/;
const CREATE_VIEW = /^CREATE (OR REPLACE )?VIEW (IF NOT EXISTS )?\{db\}\.(\w+)\b/;
const CREATE_MV = /^CREATE MATERIALIZED VIEW IF NOT EXISTS \{db\}\.(\w+)\b/;
const ALTER_TABLE = /^ALTER TABLE \{db\}\.(\w+)\b/;
const ENGINE = /\bENGINE = (Replacing|Aggregating|Summing|Collapsing|VersionedCollapsing)?MergeTree\b(\(([^()]*)\))?/;

/** Replicated engine of a `ENGINE = …MergeTree(args)` clause. */
export function replicatedEngine(statement: string, path = REPLICA_PATH): string {
  const m = ENGINE.exec(statement);
  if (!m) throw new Error(`no MergeTree engine in: ${statement.slice(0, 120)}`);
  const args = m[3]?.trim();
  return statement.replace(ENGINE, `ENGINE = Replicated${m[1] ?? ''}MergeTree(${path}${args ? `, ${args}` : ''})`);
}

/** The sorting key of a CREATE TABLE (the text after ORDER BY, up to the end of that line). */
export function sortingKey(statement: string): string {
  const m = /^ORDER BY (.+)$/m.exec(statement) ?? /\bORDER BY (.+)$/m.exec(statement);
  if (!m) throw new Error(`no ORDER BY in: ${statement.slice(0, 120)}`);
  return m[1]!.trim();
}

/** `cityHash64(<sorting key columns>)`: the Distributed sharding key. */
export function shardingKey(orderBy: string): string {
  let k = orderBy.trim();
  if (k === 'tuple()') return 'rand()';
  if (k.startsWith('(') && k.endsWith(')') && balanced(k.slice(1, -1))) k = k.slice(1, -1);
  return `cityHash64(${k})`;
}

function balanced(s: string): boolean {
  let depth = 0;
  for (const ch of s) {
    if (ch === '(') depth++;
    else if (ch === ')' && --depth < 0) return false;
  }
  return depth === 0;
}

/** Whether an ALTER adds, drops or retypes a column (not only a codec or a skip index). */
export function changesColumns(alter: string): boolean {
  return /\b(ADD|DROP|RENAME) COLUMN\b/.test(alter) || /\bMODIFY COLUMN \w+ (?!CODEC\()/.test(alter);
}

/** Names of the tables (not views) the migrations create. */
export function migrationTables(migrations: readonly Migration[]): Set<string> {
  const tables = new Set<string>();
  for (const m of migrations)
    for (const s of m.statements) {
      const t = CREATE_TABLE.exec(s);
      if (t) tables.add(t[1]!);
    }
  return tables;
}

/** One statement of a migration, rewritten for the cluster (one or two statements). */
export function clusterStatement(statement: string, tables: ReadonlySet<string>, o: ClusterOptions): string[] {
  const c = checkClusterName(o.cluster);
  const onCluster = (s: string, name: string, to = name) => s.replace(`{db}.${name}`, `{db}.${to} ON CLUSTER ${c}`);
  let m: RegExpExecArray | null;
  if ((m = CREATE_TABLE.exec(statement))) {
    const t = m[1]!;
    const local = `${t}${LOCAL_SUFFIX}`;
    return [
      replicatedEngine(onCluster(statement, t, local)),
      `CREATE TABLE IF NOT EXISTS {db}.${t} ON CLUSTER ${c} AS {db}.${local}\nENGINE = Distributed(${c}, {db}, ${local}, ${shardingKey(sortingKey(statement))})`,
    ];
  }
  if ((m = CREATE_MV.exec(statement))) {
    const mv = m[1]!;
    // Reads and writes the shard's local tables: it runs where the insert lands.
    const body = onCluster(statement, mv).replace(/\{db\}\.(\w+)\b/g, (all, name: string) => (tables.has(name) ? `{db}.${name}${LOCAL_SUFFIX}` : all));
    return [body];
  }
  if ((m = CREATE_VIEW.exec(statement))) return [onCluster(statement, m[3]!)];
  if ((m = ALTER_TABLE.exec(statement))) {
    const t = m[1]!;
    const local = onCluster(statement, t, `${t}${LOCAL_SUFFIX}`);
    // Column changes reach the Distributed table too (same columns); codecs and skip indexes are
    // storage of the local table only.
    return changesColumns(statement) ? [local, onCluster(statement, t)] : [local];
  }
  if (/^INSERT INTO /.test(statement)) return [statement];
  throw new Error(`no cluster form for the statement: ${statement.slice(0, 120)}`);
}

/** Every migration with its statements rewritten for the cluster. */
export function clusterMigrations(migrations: readonly Migration[], o: ClusterOptions): Migration[] {
  const tables = migrationTables(migrations);
  return migrations.map((m) => ({ ...m, statements: m.statements.flatMap((s) => clusterStatement(s, tables, o)) }));
}

/** The migration bookkeeping table: replicated on every server of the cluster (not sharded). */
export function schemaMigrationsDdl(db: string, cluster: string | null): string {
  const cols = '(version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3))';
  if (!cluster) return `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations ${cols} ENGINE = ReplacingMergeTree ORDER BY version`;
  return `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations ON CLUSTER ${checkClusterName(cluster)} ${cols} ENGINE = ReplicatedReplacingMergeTree(${REPLICA_PATH_ALL}) ORDER BY version`;
}

/**
 * The table a data statement (TRUNCATE, DELETE, ALTER … TTL) must name: the table itself on one
 * server; on a cluster its local table on every server (a Distributed table holds no rows).
 */
export function dataTarget(db: string, table: string, cluster: string | null): string {
  return cluster ? `${db}.${table}${LOCAL_SUFFIX} ON CLUSTER ${checkClusterName(cluster)}` : `${db}.${table}`;
}
