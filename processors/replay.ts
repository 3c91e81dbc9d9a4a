/**
 * Rebuilds a processor's derived tables from the Kafka log (the source of truth).
 *   from the beginning: truncate the processor's tables (and the tables its scheduled job derives
 *   from them, rebuilt by that job as event time closes each day) and its late events, delete its
 *   checkpoints, consume every partition from offset 0 up to the end offsets taken at start,
 *   then stop with a final flush + checkpoint. The tables end with the same content as a run
 *   that saw the same log live (rows are deterministic per source partition and offset).
 *   without it: keep tables and checkpoints and catch up to the end offsets (a one-shot run).
 * The processor's live instances must be stopped first: replay joins the same consumer group.
 */
import type { Processor } from './core/processor.js';
import { ProcessorRunner, type RunnerDeps, type RunnerOptions } from './core/runner.js';
import { topicHighWatermarks } from '../lib/kafka-admin.js';
import { command } from '../sinks/clickhouse/client.js';
import { dataTarget } from '../sinks/clickhouse/cluster-ddl.js';

export interface ReplayResult {
  processor: string;
  fromBeginning: boolean;
  partitions: number;
  events: number;
  ms: number;
}

export async function replayProcessor<S>(
  processor: Processor<S>,
  deps: RunnerDeps,
  opts: RunnerOptions & { fromBeginning: boolean; timeoutMs?: number },
): Promise<ReplayResult> {
  const t0 = Date.now();
  const runner = new ProcessorRunner(processor, deps, opts);
  const db = deps.ch.database;
  if (opts.fromBeginning) {
    for (const table of [...processor.tables, ...(processor.jobTables ?? [])])
      await command(deps.ch, `TRUNCATE TABLE IF EXISTS ${dataTarget(db, table, deps.ch.cluster)}`);
    await command(deps.ch, `DELETE FROM ${dataTarget(db, 'late_events', deps.ch.cluster)} WHERE processor = {p:String}`, { p: processor.name });
    await runner.clearCheckpoints();
  }
  const ends = new Map<string, number>();
  for (const topic of runner.topics) for (const w of await topicHighWatermarks(deps.brokers, topic)) ends.set(`${topic}/${w.partition}`, w.high);
  const events = [...ends.values()].reduce((a, b) => a + b, 0);
  await runner.start();
  const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  try {
    for (;;) {
      const pos = new Map(runner.positions().map((p) => [`${p.topic}/${p.partition}`, p.next]));
      const done = [...ends].every(([k, end]) => end === 0 || (pos.get(k) ?? 0) >= end);
      if (done && pos.size > 0) break;
      if (Date.now() > deadline) throw new Error(`replay of ${processor.name} did not reach the end offsets in time`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await runner.stop();
  }
  deps.logger.info({ event: 'replay_done', processor: processor.name, events, ms: Date.now() - t0 }, 'replay finished');
  return { processor: processor.name, fromBeginning: opts.fromBeginning, partitions: ends.size, events, ms: Date.now() - t0 };
}
