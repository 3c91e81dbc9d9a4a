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
  const ends = await runToEndOffsets(runner, deps.brokers, opts.timeoutMs ?? 30 * 60_000, `replay of ${processor.name}`);
  const events = [...ends.values()].reduce((a, b) => a + b, 0);
  deps.logger.info({ event: 'replay_done', processor: processor.name, events, ms: Date.now() - t0 }, 'replay finished');
  return { processor: processor.name, fromBeginning: opts.fromBeginning, partitions: ends.size, events, ms: Date.now() - t0 };
}

/**
 * Starts `runner`, waits until each of its tasks has read its partition up to the end offset the
 * log had when this was called (every processor of a fused runner), and stops it (a final flush
 * and checkpoint). Returns those end offsets by `topic/partition`. Fails after `timeoutMs`.
 */
export async function runToEndOffsets(runner: ProcessorRunner, brokers: string, timeoutMs: number, what: string): Promise<Map<string, number>> {
  const ends = new Map<string, number>();
  for (const topic of runner.topics) for (const w of await topicHighWatermarks(brokers, topic)) ends.set(`${topic}/${w.partition}`, w.high);
  await runner.start();
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const pos = runner.positions();
      const done =
        pos.length > 0 &&
        [...ends].every(([k, end]) => {
          if (end === 0) return true;
          const tasks = pos.filter((p) => `${p.topic}/${p.partition}` === k);
          return tasks.length > 0 && tasks.every((p) => p.next >= end);
        });
      if (done) break;
      if (Date.now() > deadline) throw new Error(`${what} did not reach the end offsets in time`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await runner.stop();
  }
  return ends;
}
