/**
 * ClickHouse's own CPU per inserted row, by input format, on real pipeline rows: what the sink's
 * choice of format (Avro today, docs/processing.md "Writing to ClickHouse") costs inside
 * ClickHouse, beside RowBinary and Native. Prints, writes no results.
 *
 *   BENCH_KEEP_DATA=1 BENCH_ONLY='raw-store+business+qoe+safety+production+churn' npm run bench
 *   node --import tsx bench/insert-formats.micro.ts .data/bench/only-<id>/chdb-<label>
 *
 * For each table it exports the rows the pipeline wrote (as ClickHouse itself encodes each format;
 * its Avro maps the column types as sinks/clickhouse/avro-rows.ts does), then inserts the file
 * into a Null-engine copy (parsing only) and into an empty copy of the table (parsing, sorting,
 * writing the part, materialized views), `INSERT … FROM INFILE` as the sink does, best of 3.
 * CPU = user + system time of this process (chdb runs in it), per row. Background merges are
 * not included. The temporary tables and files are removed at the end.
 */
import { rmSync } from 'node:fs';
import { command, openClickHouse, queryRows } from '../sinks/clickhouse/client.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: insert-formats.micro.ts <chdb data directory of a kept bench run>');
const db = process.env.CLICKHOUSE_DATABASE ?? 'streampulse';
const TABLES = (process.env.TABLES ?? 'raw_playback,qoe_views,qoe_minute,churn_account_daily,account_activity_1h,kpi_gifts_1m').split(',');
const FORMATS = ['Avro', 'RowBinary', 'Native'];
const REPS = 3;

const ch = await openClickHouse({ url: null, chdbPath: dir, user: 'default', password: '', database: db });
try {
  console.log('table                 rows     format     parse only   into the table   (µs of CPU per row)');
  for (const t of TABLES) {
    const cols = await queryRows<{ name: string; default_kind: string }>(
      ch,
      'SELECT name, default_kind FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position',
      { db, t },
    );
    const names = cols
      .filter((c) => c.default_kind !== 'MATERIALIZED' && c.default_kind !== 'ALIAS')
      .map((c) => c.name)
      .join(', ');
    const n = Number((await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${db}.${t}`))[0]!.n);
    if (!n) continue;
    for (const suffix of ['null', 'copy']) await command(ch, `DROP TABLE IF EXISTS ${db}.${t}_fmt_${suffix}`);
    await command(ch, `CREATE TABLE ${db}.${t}_fmt_null AS ${db}.${t} ENGINE = Null`);
    await command(ch, `CREATE TABLE ${db}.${t}_fmt_copy AS ${db}.${t}`);
    try {
      for (const fmt of FORMATS) {
        const file = `${dir}/fmt_${t}.${fmt}`;
        await command(ch, `INSERT INTO FUNCTION file('${file}', '${fmt}') SELECT ${names} FROM ${db}.${t} SETTINGS engine_file_truncate_on_insert = 1`);
        const perRow: string[] = [];
        for (const target of ['null', 'copy']) {
          let best = Infinity;
          for (let r = 0; r < REPS; r++) {
            if (target === 'copy') await command(ch, `TRUNCATE TABLE ${db}.${t}_fmt_copy`);
            const c0 = process.cpuUsage();
            await command(ch, `INSERT INTO ${db}.${t}_fmt_${target} (${names}) FROM INFILE '${file}' SETTINGS optimize_on_insert = 0 FORMAT ${fmt}`);
            const c = process.cpuUsage(c0);
            best = Math.min(best, (c.user + c.system) / n);
          }
          perRow.push(best.toFixed(2));
        }
        rmSync(file, { force: true });
        console.log(`${t.padEnd(21)} ${String(n).padStart(7)}  ${fmt.padEnd(9)}  ${perRow[0]!.padStart(10)}   ${perRow[1]!.padStart(14)}`);
      }
    } finally {
      for (const suffix of ['null', 'copy']) await command(ch, `DROP TABLE IF EXISTS ${db}.${t}_fmt_${suffix}`);
    }
  }
} finally {
  await ch.close();
}
