/**
 * The schema as ClickHouse sees it after every migration: migrates a throwaway embedded database
 * and reads system.tables and system.columns. Used by scripts/tables-doc.ts (writes
 * docs/tables.md) and tests/api/tables-doc.test.ts (checks the doc lists every table).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openClickHouse, queryRows } from '../sinks/clickhouse/client.js';
import { migrate } from '../sinks/clickhouse/migrate.js';

export interface CatalogColumn {
  name: string;
  type: string;
  default_kind: string;
  default_expression: string;
  in_sorting_key: number;
}
export interface CatalogTable {
  name: string;
  engine: string;
  sorting_key: string;
  partition_key: string;
  columns: CatalogColumn[];
}

export async function schemaCatalog(dir?: string): Promise<CatalogTable[]> {
  const path = dir ?? mkdtempSync(join(tmpdir(), 'sp-schema-'));
  const ch = await openClickHouse({ url: null, user: 'default', password: '', database: 'streampulse', chdbPath: join(path, 'chdb') });
  try {
    await migrate(ch);
    const tables = await queryRows<Omit<CatalogTable, 'columns'>>(
      ch,
      `SELECT name, engine, sorting_key, partition_key FROM system.tables WHERE database = {db:String} ORDER BY name`,
      { db: ch.database },
    );
    const cols = await queryRows<CatalogColumn & { table: string }>(
      ch,
      `SELECT table, name, type, default_kind, default_expression, toUInt8(is_in_sorting_key) AS in_sorting_key FROM system.columns WHERE database = {db:String} ORDER BY table, position`,
      { db: ch.database },
    );
    return tables.map((t) => ({
      ...t,
      columns: cols.filter((c) => c.table === t.name).map(({ table: _t, ...c }) => ({ ...c, in_sorting_key: Number(c.in_sorting_key) })),
    }));
  } finally {
    await ch.close();
    if (!dir) rmSync(path, { recursive: true, force: true });
  }
}
