/**
 * Fills a ClickHouse database with simulator traffic run through the real processors (in memory,
 * with the processors' test driver) — the rows the pipeline would write, without Kafka. Used by
 * the API and Grafana tests. Partitions are a hash of the event key, as Kafka would assign them.
 */
import { generateRange, type IncidentSpec } from '../../../producers/simulator/index.js';
import { topicSpec } from '../../../contracts/topics.js';
import { ProcessorTestDriver, type DriverRecord } from '../../../processors/core/test-driver.js';
import { PROCESSOR_FACTORIES, type ProcessorRole } from '../../../bin/processors.js';
import { writeTables } from '../../../sinks/clickhouse/table-writer.js';
import { migrate } from '../../../sinks/clickhouse/migrate.js';
import type { ClickHouse } from '../../../sinks/clickhouse/client.js';

const PARTITIONS = 3;

function partitionOf(key: unknown): number {
  let h = 0;
  for (const c of String(key ?? '')) h = (h * 31 + c.charCodeAt(0)) | 0;
  return Math.abs(h) % PARTITIONS;
}

export interface SimFill {
  events: number;
  rowsByTable: Record<string, number>;
  startMs: number;
  endMs: number;
}

/** Simulates [endMs − durationMs, endMs) at ratePerSec and writes every processor's rows. */
export async function fillWithSimulatedData(
  ch: ClickHouse,
  opts: { endMs: number; durationMs: number; ratePerSec: number; seed?: number; incidents?: IncidentSpec[] },
): Promise<SimFill> {
  await migrate(ch);
  const startMs = opts.endMs - opts.durationMs;
  const events = generateRange(
    { seed: opts.seed ?? 7, startMs, ratePerSec: opts.ratePerSec, accounts: 2000, creators: 40, ...(opts.incidents ? { incidents: opts.incidents } : {}) },
    opts.endMs,
  );
  const records: DriverRecord[] = events.map((e) => {
    const spec = topicSpec('sim.', e.kind);
    const key = (e.event as unknown as Record<string, unknown>)[spec.keyField];
    return { kind: e.kind, partition: partitionOf(key), event: e.event as unknown as Record<string, unknown> };
  });
  const rowsByTable: Record<string, number> = {};
  const settings = { ch, graceMs: 60_000, allowedLatenessMs: 5_000 };
  for (const role of Object.keys(PROCESSOR_FACTORIES) as ProcessorRole[]) {
    const processor = PROCESSOR_FACTORIES[role]!(settings);
    await processor.start?.();
    const driver = new ProcessorTestDriver(processor, 'sim.');
    const mine = records.filter((r) => processor.kinds.includes(r.kind));
    driver.nowMs = opts.endMs;
    for (let i = 0; i < mine.length; i += 5000) driver.pipe(mine.slice(i, i + 5000));
    driver.flush();
    const byTable = new Map<string, Record<string, unknown>[]>();
    for (const [table, rows] of driver.emitted) byTable.set(table, rows);
    await writeTables(ch, byTable, {});
    for (const [table, rows] of byTable) rowsByTable[table] = (rowsByTable[table] ?? 0) + rows.length;
  }
  return { events: events.length, rowsByTable, startMs, endMs: opts.endMs };
}
