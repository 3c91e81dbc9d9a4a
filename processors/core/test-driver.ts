/**
 * An in-memory driver for processors, after Kafka Streams' TopologyTestDriver: feed records to
 * partitions, control processing time, take checkpoints and restore them, and read each table
 * as a ReplacingMergeTree would after FINAL (the highest version per key wins). No broker.
 */
import type { EventKind } from '../../contracts/topics.js';
import type { Metrics } from '../../lib/metrics.js';
import { PartitionTask, type PartitionDelta, type PartitionSnapshot, type RestoredCheckpoint } from './partition-task.js';
import type { Processor } from './processor.js';

export interface DriverRecord {
  kind: EventKind;
  partition: number;
  event: Record<string, unknown>;
  /** The record's Kafka timestamp (ms); default: the driver's `nowMs` when it is processed. */
  timestampMs?: number;
}

/** A record the processor did not take (bounds guard or ProcessContext.reject), as the runner dead-letters it. */
export interface DriverDeadLetter {
  kind: EventKind;
  partition: number;
  offset: number;
  errorClass: string;
  reason: string;
  by: 'bounds' | 'processor';
}

export class ProcessorTestDriver<S> {
  private readonly tasks = new Map<string, PartitionTask<S>>();
  /** Every row emitted, in order, per table. */
  readonly emitted = new Map<string, Record<string, unknown>[]>();
  /** Records not taken, in order (the runner sends these to the dead-letter topic). */
  readonly deadLetters: DriverDeadLetter[] = [];
  nowMs = 0;
  /** MAX_FUTURE_SKEW_MS of the bounds guard (contracts/bounds.ts default when unset). */
  maxFutureSkewMs: number | undefined = undefined;

  /** Counters the tasks update (late events, late firings, dedup hits), when given. */
  metrics: Metrics | undefined = undefined;

  constructor(
    readonly processor: Processor<S>,
    private readonly topicPrefix = 'test.',
  ) {}

  private readonly log = new Map<string, DriverRecord[]>();

  private task(kind: EventKind, partition: number): PartitionTask<S> {
    const k = `${kind}/${partition}`;
    let t = this.tasks.get(k);
    if (!t) {
      t = new PartitionTask(this.processor, this.topicPrefix + kind, kind, partition, this.nowMs, undefined, this.metrics);
      this.tasks.set(k, t);
    }
    return t;
  }

  private readonly push = (table: string, row: Record<string, unknown>) => {
    let rows = this.emitted.get(table);
    if (!rows) this.emitted.set(table, (rows = []));
    rows.push(row);
  };

  /** Appends records to the partitions' logs and processes them as one batch. */
  pipe(records: DriverRecord[]): void {
    for (const r of records) {
      const k = `${r.kind}/${r.partition}`;
      let l = this.log.get(k);
      if (!l) this.log.set(k, (l = []));
      l.push(r);
    }
    this.run();
  }

  /** Processes every logged record not yet in a partition's state (one batch per partition). */
  run(): void {
    for (const [k, records] of this.log) {
      const first = records[0]!;
      const t = this.task(first.kind, first.partition);
      if (t.next >= records.length) continue;
      for (let offset = t.next; offset < records.length; offset++) {
        const r = records[offset]!;
        const rec = { topic: t.topic, kind: r.kind, partition: r.partition, offset, timestampMs: r.timestampMs ?? this.nowMs };
        if (t.handle(r.event, rec, this.nowMs, this.push, undefined, this.maxFutureSkewMs) === 'rejected') {
          const why = t.rejection!;
          this.deadLetters.push({ kind: r.kind, partition: r.partition, offset, errorClass: why.errorClass, reason: why.reason, by: why.by });
        }
      }
      t.closeWindows(this.push);
      void k;
    }
  }

  /** Flushes open windows, as every commit cycle does. */
  flush(): void {
    for (const t of this.tasks.values()) t.flush(this.push);
  }

  /** Flushes open windows as a live commit cycle at processing time `nowMs` does (caught up, going on: per-entity rows by age). */
  flushLive(nowMs = this.nowMs): void {
    for (const t of this.tasks.values()) t.flush(this.push, true, { nowMs });
  }

  /** Checkpoint of every partition (as the runner stores in Redis). */
  checkpoint(): Map<string, { offset: number; snapshot: PartitionSnapshot }> {
    this.flush();
    return new Map([...this.tasks].map(([k, t]) => [k, { offset: t.next, snapshot: JSON.parse(JSON.stringify(t.snapshot())) as PartitionSnapshot }]));
  }

  /** The incremental checkpoint chains (base + deltas) of each partition, as Redis would hold them. */
  private readonly chains = new Map<
    string,
    { offset: number; snapshot: PartitionSnapshot; deltas: PartitionDelta[]; chain: { baseBytes: number; deltaBytes: number } }
  >();

  /**
   * An incremental checkpoint of every partition, as the runner takes it (PartitionTask.freeze:
   * a delta on the partition's chain, or a new base when the chain is long or large); returns
   * every chain as it stands (a copy, through JSON as in Redis), to restore later.
   */
  checkpointIncremental(maxLinks = 64, ratio = 1): Map<string, RestoredCheckpoint> {
    this.flush();
    for (const [k, t] of this.tasks) {
      if (t.next === t.frozen) continue;
      const f = t.freeze(maxLinks, ratio);
      const c = this.chains.get(k);
      if (f.deltaFrom === undefined || !c) {
        this.chains.set(k, {
          offset: t.next,
          snapshot: JSON.parse(f.state) as PartitionSnapshot,
          deltas: [],
          chain: { baseBytes: f.state.length, deltaBytes: 0 },
        });
      } else {
        if (f.deltaFrom !== c.offset) throw new Error(`delta of ${k} builds on ${f.deltaFrom}, the chain is at ${c.offset}`);
        c.deltas.push(JSON.parse(f.state) as PartitionDelta);
        c.chain.deltaBytes += f.state.length;
        c.offset = t.next;
      }
      t.frozen = t.next;
    }
    return new Map([...this.chains].map(([k, c]) => [k, JSON.parse(JSON.stringify(c)) as RestoredCheckpoint]));
  }

  /** Links (deltas) in each partition's chain now. */
  chainLengths(): Map<string, number> {
    return new Map([...this.chains].map(([k, c]) => [k, c.deltas.length]));
  }

  /** The live partition tasks (for comparing a restored state with the live one). */
  partitionTasks(): ReadonlyMap<string, PartitionTask<S>> {
    return this.tasks;
  }

  /**
   * Simulates a crash and restart: in-memory state is lost, each partition comes back from the
   * checkpoint (or from scratch) and the records after it are processed again.
   */
  restore(ckpt: Map<string, RestoredCheckpoint>): void {
    this.chains.clear();
    // The chains continue from what was restored (a checkpoint without chain sizes starts a new base).
    for (const [k, c] of ckpt) {
      if (c.chain)
        this.chains.set(
          k,
          JSON.parse(JSON.stringify({ offset: c.offset, snapshot: c.snapshot, deltas: c.deltas ?? [], chain: c.chain })) as typeof c & {
            deltas: PartitionDelta[];
            chain: { baseBytes: number; deltaBytes: number };
          },
        );
    }
    this.tasks.clear();
    for (const [k, c] of ckpt) {
      const [kind, partition] = k.split('/') as [EventKind, string];
      this.tasks.set(k, new PartitionTask(this.processor, this.topicPrefix + kind, kind, Number(partition), this.nowMs, c, this.metrics));
    }
    this.run();
  }

  /** Rows of a table as `SELECT … FINAL` shows them: per key, the row with the highest version. */
  table(name: string, keyColumns: string[]): Record<string, unknown>[] {
    const best = new Map<string, Record<string, unknown>>();
    for (const row of this.emitted.get(name) ?? []) {
      const key = JSON.stringify([...keyColumns, 'src_topic', 'src_partition'].map((c) => row[c]));
      const cur = best.get(key);
      if (!cur || (row.version as number) >= (cur.version as number)) best.set(key, row);
    }
    return [...best.values()];
  }
}
