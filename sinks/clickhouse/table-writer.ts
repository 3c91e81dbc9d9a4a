/**
 * Writes a commit cycle's rows to ClickHouse, one INSERT per table, and only returns once every
 * insert is acknowledged. Retriable failures are retried with backoff; nothing is committed to
 * Kafka until this resolves (see processors/core/runner.ts).
 */
import type { Logger } from 'pino';
import { withRetry } from '../../lib/errors.js';
import type { Metrics } from '../../lib/metrics.js';
import { insertRows, type ClickHouse } from './client.js';

export async function writeTables(ch: ClickHouse, rowsByTable: Map<string, Record<string, unknown>[]>, deps: { metrics?: Metrics; logger?: Logger }): Promise<number> {
  let total = 0;
  for (const [table, rows] of rowsByTable) {
    if (rows.length === 0) continue;
    const end = deps.metrics?.sinkSeconds.startTimer({ table });
    await withRetry(() => insertRows(ch, table, rows), {
      attempts: 10,
      onRetry: (err, attempt) => deps.logger?.warn({ event: 'sink_retry', table, attempt, err: (err as Error).message }, 'retrying ClickHouse insert'),
    });
    end?.();
    deps.metrics?.sinkRows.inc({ table }, rows.length);
    total += rows.length;
  }
  return total;
}
