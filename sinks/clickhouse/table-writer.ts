/**
 * Writes a commit cycle's rows to ClickHouse, one INSERT per table (several tables at once), and
 * only returns once every insert is acknowledged. Retriable failures are retried with backoff;
 * nothing is committed to Kafka until this resolves (see processors/core/runner.ts).
 *
 * Rows go as Avro (avro-rows.ts): AvroBodyRows (raw events, already Avro) as they are, plain row
 * objects encoded with the types of the table's columns, read once from system.columns.
 */
import type { Logger } from 'pino';
import { ClickHouseError, withRetry } from '../../lib/errors.js';
import type { Metrics } from '../../lib/metrics.js';
import { AvroBodyRow, RowEncoder, encodeBodyRows, type ColumnType, type EncodedRows } from './avro-rows.js';
import { insertAvro, rowColumns, tableColumns, type ClickHouse } from './client.js';

/** Per ClickHouse handle: column types by table, and the row encoders built from them. */
interface Schemas {
  columns: Promise<Map<string, ColumnType[]>>;
  encoders: Map<string, RowEncoder>;
}

const schemasByHandle = new WeakMap<ClickHouse, Schemas>();

function schemasOf(ch: ClickHouse): Schemas {
  let s = schemasByHandle.get(ch);
  if (!s) {
    s = { columns: tableColumns(ch), encoders: new Map() };
    // A failed read is not cached: the next write asks again.
    s.columns.catch(() => schemasByHandle.delete(ch));
    schemasByHandle.set(ch, s);
  }
  return s;
}

/** Forgets the column types read for `ch` (after DDL, or when an insert failed on them). */
export function forgetTableSchemas(ch: ClickHouse): void {
  schemasByHandle.delete(ch);
}

/** The encoder of plain rows of `table` with the columns these rows have. */
async function encoderFor(ch: ClickHouse, table: string, rows: readonly object[]): Promise<RowEncoder> {
  const s = schemasOf(ch);
  const names = rowColumns(rows);
  const key = `${table}\u0000${names.join('\u0000')}`;
  let enc = s.encoders.get(key);
  if (!enc) {
    const cols = (await s.columns).get(table);
    if (!cols) throw new ClickHouseError(`table ${ch.database}.${table} does not exist (run the migrations)`, '60', false);
    const byName = new Map(cols.map((c) => [c.name, c]));
    const chosen = names.map((n) => {
      const c = byName.get(n);
      if (!c) throw new ClickHouseError(`rows for ${ch.database}.${table} have a column "${n}" the table does not have`, '16', false);
      return c;
    });
    enc = new RowEncoder(table, chosen);
    s.encoders.set(key, enc);
  }
  return enc;
}

/** Called with a row its table's columns cannot hold, and why; the row is left out of the insert. */
export type OnUnencodable = (table: string, row: object, reason: string) => void;

/**
 * The rows of one table as Avro batches: raw bodies grouped by their schema, plain rows in one
 * batch. With `onUnencodable`, a plain row that its columns cannot hold is handed to it and left
 * out, and the others are written; without it, any such row stops the write.
 */
async function encodeTable(ch: ClickHouse, table: string, rows: readonly object[], onUnencodable?: OnUnencodable): Promise<EncodedRows[]> {
  const bodies = new Map<AvroBodyRow['schema'], AvroBodyRow[]>();
  const plain: object[] = [];
  for (const r of rows) {
    if (r instanceof AvroBodyRow) {
      let l = bodies.get(r.schema);
      if (!l) bodies.set(r.schema, (l = []));
      l.push(r);
    } else plain.push(r);
  }
  let encoder = plain.length ? await encoderFor(ch, table, plain) : null;
  if (encoder && onUnencodable) {
    // Checked only when the batch fails to encode (the rare case): then row by row.
    try {
      const out = [...bodies.values()].map(encodeBodyRows);
      out.push(encoder.encode(plain));
      return out;
    } catch {
      const good: object[] = [];
      for (const r of plain) {
        const why = encoder.invalid(r);
        if (why === null) good.push(r);
        else onUnencodable(table, r, `${ch.database}.${table}: ${why}`);
      }
      plain.length = 0;
      plain.push(...good);
      encoder = plain.length ? await encoderFor(ch, table, plain) : null;
    }
  }
  try {
    const out = [...bodies.values()].map(encodeBodyRows);
    if (encoder) out.push(encoder.encode(plain));
    return out;
  } catch (err) {
    // A value its column cannot hold (a processor bug): say which table, stop (not retriable).
    throw new ClickHouseError(`rows for ${ch.database}.${table} cannot be encoded: ${(err as Error).message}`, undefined, false, { cause: err });
  }
}

export async function writeTables(
  ch: ClickHouse,
  rowsByTable: Map<string, object[]>,
  deps: { metrics?: Metrics; logger?: Logger; concurrency?: number; onUnencodable?: OnUnencodable; onRetry?: (err: unknown) => void; attempts?: number },
): Promise<number> {
  let total = 0;
  const writeOne = async (table: string, rows: object[]) => {
    const end = deps.metrics?.sinkSeconds.startTimer({ table });
    try {
      for (const batch of await encodeTable(ch, table, rows, deps.onUnencodable)) {
        await withRetry(() => insertAvro(ch, table, batch), {
          attempts: deps.attempts ?? 10,
          onRetry: (err, attempt) => {
            deps.metrics?.sinkErrors.inc({ table });
            deps.logger?.warn({ event: 'sink_retry', table, attempt, err: (err as Error).message }, 'retrying ClickHouse insert');
            deps.onRetry?.(err);
          },
        });
      }
    } catch (err) {
      deps.metrics?.sinkErrors.inc({ table }); // the attempt that gave up (the retried ones counted in onRetry)
      // The table may have changed under us (a migration, a replay's DROP): read the columns again next time.
      forgetTableSchemas(ch);
      throw err;
    }
    end?.();
    deps.metrics?.sinkRows.inc({ table }, rows.length);
    total += rows.length;
  };
  // Tables are written concurrently (an INSERT parses its rows on one ClickHouse thread, so one
  // insert at a time would leave the other cores idle), largest first, `concurrency` at a time.
  const queue = [...rowsByTable].filter(([, rows]) => rows.length > 0).sort((a, b) => b[1].length - a[1].length);
  const workers = Array.from({ length: Math.min(deps.concurrency ?? 2, queue.length) }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) await writeOne(next[0], next[1]);
  });
  await Promise.all(workers);
  return total;
}
