/** Row-for-row comparison of tables in two databases (FINAL, every column but `version` and `ingested_at`). */
import { queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';

const SKIPPED = new Set(['version', 'ingested_at']);

export async function compareTables(ch: ClickHouse, a: string, b: string, tables: readonly string[]): Promise<{ rows: number; differences: string[] }> {
  const differences: string[] = [];
  let rows = 0;
  for (const table of tables) {
    const cols = (
      await queryRows<{ name: string; type: string }>(
        ch,
        `SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position`,
        { db: a, t: table },
      )
    ).filter((c) => !SKIPPED.has(c.name));
    // Arrays built by groupUniqArray (the rollups' minutes) have no defined order: compared sorted.
    const list = cols.map((c) => (c.type.startsWith('Array(') ? `arraySort(\`${c.name}\`) AS \`${c.name}\`` : `\`${c.name}\``)).join(', ');
    const q = (db: string) => `SELECT ${list} FROM ${db}.${table} FINAL`;
    const [d] = await queryRows<{ missing: string; extra: string; n: string }>(
      ch,
      `SELECT (SELECT count() FROM (${q(b)} EXCEPT ALL ${q(a)})) AS missing, (SELECT count() FROM (${q(a)} EXCEPT ALL ${q(b)})) AS extra, (SELECT count() FROM (${q(b)})) AS n`,
    );
    rows += Number(d!.n);
    if (Number(d!.missing) || Number(d!.extra)) differences.push(`${table}: ${d!.missing} missing, ${d!.extra} extra`);
  }
  return { rows, differences };
}
