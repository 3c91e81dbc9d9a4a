/**
 * Versioned, idempotent schema migrations. Files in sinks/clickhouse/migrations are named
 * `NNN_description.sql`, applied in order; `{db}` is replaced by the database name; statements
 * are separated by a line holding only `;`-terminated statements (split on `;\n`). Applied
 * versions are recorded in `schema_migrations`; every statement is written to be safe to rerun
 * (IF NOT EXISTS), so a crash half-way through a file is repaired by running it again.
 * With a cluster (ch.cluster, CLICKHOUSE_CLUSTER) the statements are rewritten by cluster-ddl.ts:
 * ON CLUSTER, Replicated engines, Distributed tables in front.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { command, queryRows, type ClickHouse } from './client.js';
import { clusterMigrations, schemaMigrationsDdl } from './cluster-ddl.js';

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');

export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => {
      const sql = readFileSync(join(dir, f), 'utf8');
      const statements = sql
        .split(/;\s*(?:\n|$)/)
        .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
        .filter(Boolean);
      return { version: Number(f.slice(0, 3)), name: f.replace(/\.sql$/, ''), statements };
    });
}

export async function migrate(ch: ClickHouse, log?: Logger, dir = MIGRATIONS_DIR): Promise<number[]> {
  const db = ch.database;
  await command(ch, schemaMigrationsDdl(db, ch.cluster));
  const done = new Set((await queryRows<{ version: number }>(ch, `SELECT version FROM ${db}.schema_migrations FINAL`)).map((r) => Number(r.version)));
  const applied: number[] = [];
  const all = loadMigrations(dir);
  for (const m of ch.cluster ? clusterMigrations(all, { cluster: ch.cluster }) : all) {
    if (done.has(m.version)) continue;
    for (const st of m.statements) await command(ch, st.replaceAll('{db}', db));
    await ch.client.insert({ table: `${db}.schema_migrations`, values: [{ version: m.version, name: m.name }], format: 'JSONEachRow' });
    log?.info({ event: 'migration_applied', version: m.version, name: m.name }, 'applied migration');
    applied.push(m.version);
  }
  return applied;
}
