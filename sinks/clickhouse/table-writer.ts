/**
 * Writes a commit cycle's rows to ClickHouse, one INSERT per table (several tables at once), and
 * only returns once every insert is acknowledged. Retriable failures are retried with backoff; nothing is committed to
 * Kafka until this resolves (see processors/core/runner.ts).
 */
import type { Logger } from 'pino';
import { withRetry } from '../../lib/errors.js';
import type { Metrics } from '../../lib/metrics.js';
import { insertRows, type ClickHouse } from './client.js';

export async function writeTables(ch: ClickHouse, rowsByTable: Map<string, Record<string, unknown>[]>, deps: { metrics?: Metrics; logger?: Logger; concurrency?: number }): Promise<number> {
  let total = 0;
  const writeOne = async (table: string, rows: Record<string, unknown>[]) => {
    const end = deps.metrics?.sinkSeconds.startTimer({ table });
    await withRetry(() => insertRows(ch, table, rows), {
      attempts: 10,
      onRetry: (err, attempt) => deps.logger?.warn({ event: 'sink_retry', table, attempt, err: (err as Error).message }, 'retrying ClickHouse insert'),
    });
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
