/**
 * The per-partition half of the runner, free of Kafka: dedup → event time → process, window
 * closing, flushing and snapshots. The Kafka runner (runner.ts) and the in-memory test driver
 * (test-driver.ts) both use it, so a processor behaves the same in unit tests and in production.
 */
import { recordProblem } from '../../contracts/validate.js';
import type { EventKind } from '../../contracts/topics.js';
import type { Metrics } from '../../lib/metrics.js';
import {
  applyDedupDelta,
  clearDedupDelta,
  deserializeDedup,
  expireDedup,
  newDedup,
  seenBefore,
  serializeDedup,
  takeDedupDelta,
  type DedupDelta,
  type DedupState,
} from './dedup.js';
import type { Emitter, LiveFlush, Processor, ProcessContext, RecordRef } from './processor.js';
import { newPartitionTime, observe, type PartitionTime } from './watermark.js';

export type Push = (table: string, row: Record<string, unknown>) => void;

export interface PartitionSnapshot {
  state: unknown;
  time: PartitionTime;
  dedup: ReturnType<typeof serializeDedup> | null;
}

/** The changes of a partition's state since the checkpoint before (incremental checkpoints). */
export interface PartitionDelta {
  /** Processor.serializeDelta's changes. */
  delta: unknown;
  time: PartitionTime;
  dedup: DedupDelta | null;
}

/** A checkpoint to restore: a full snapshot and the deltas taken after it, in order. */
export interface RestoredCheckpoint {
  offset: number;
  snapshot: PartitionSnapshot;
  deltas?: readonly PartitionDelta[];
  /** Bytes of the base and of the deltas as stored (absent: unknown, the next checkpoint is full). */
  chain?: { baseBytes: number; deltaBytes: number };
}

/**
 * `rejected`: the edge would have refused the record (a semantic rule, or the time and value
 * bounds of contracts/bounds.ts), or the processor refused it (ProcessContext.reject); `task.rejection` says why, and the caller
 * dead-letters it. Either way its offset is consumed. A record the edge would refuse is never
 * deduplicated, never observed for event time (it cannot move the watermark) and never in the
 * state; a record the processor refuses was observed (its time is within the bounds) and its id
 * kept for dedup, but the processor leaves no trace of it in its state.
 */
export type HandleResult = 'processed' | 'duplicate' | 'rejected';

export interface Rejection {
  errorClass: string;
  reason: string;
  /** `bounds`: the guard before the processor (the same for every processor of the record); `processor`: ctx.reject. */
  by: 'bounds' | 'processor';
}

export class PartitionTask<S> {
  state: S;
  time: PartitionTime;
  dedup: DedupState | null;
  /** Next offset to process: everything below is in `state`. */
  next: number;
  /** Next offset at the last successful checkpoint (-1: none yet). */
  checkpointed: number;
  /** Watermark at the last successful checkpoint (or progress-only save). */
  checkpointedWm: number;
  /**
   * Next offset and watermark of the last checkpoint taken (serialized), which may still be in
   * flight behind its rows; equal to the checkpointed ones once it lands. The runner compares
   * against these to decide whether a partition has anything new to checkpoint.
   */
  frozen: number;
  frozenWm: number;
  /**
   * The checkpoint chain behind `frozen` (incremental checkpoints): bytes of its base, links and
   * bytes of the deltas after it; `needsBase`: the next checkpoint must be full (none yet, the
   * store lost it, or a delta did not fit the chain).
   */
  chain = { baseBytes: 0, links: 0, deltaBytes: 0, needsBase: true };
  /**
   * The runner's checkpoint schedule (processors/core/cycle-policy.ts): when this partition's
   * state was last checkpointed (taken, processing time; at first: when the task was created),
   * what that checkpoint cost (serializing, staging, committing; ms), the serializing alone
   * (`freezeMs`: the main thread's pause, what an idle cycle's budget counts) and the idle round
   * that last took it (`idleRound`, 0: none; cycle-policy.ts, takeIdleCheckpoints).
   */
  readonly ckpt: { savedAtMs: number; costMs: number; freezeMs: number; idleRound: number };
  /** Records handed to this task in the batch being handled (the runner's metrics, counted once per batch). */
  batchRecords = 0;

  constructor(
    readonly processor: Processor<S>,
    readonly topic: string,
    readonly kind: EventKind,
    readonly partition: number,
    nowMs: number,
    restored?: RestoredCheckpoint,
    private readonly metrics?: Metrics,
  ) {
    this.ckpt = { savedAtMs: nowMs, costMs: 0, freezeMs: 0, idleRound: 0 };
    if (restored) {
      const s = restored.snapshot;
      this.state = processor.deserialize(s.state);
      let time = s.time;
      this.dedup = s.dedup ? deserializeDedup(s.dedup) : this.newDedup();
      for (const d of restored.deltas ?? []) {
        if (!processor.applyDelta) throw new Error(`${processor.name} cannot restore a checkpoint with deltas (no applyDelta)`);
        processor.applyDelta(this.state, d.delta);
        time = d.time;
        if (d.dedup && this.dedup) applyDedupDelta(this.dedup, d.dedup);
      }
      // The state is what the checkpoint holds: the next delta builds on it.
      processor.markSaved?.(this.state);
      this.time = { ...time, lastRecordAtMs: nowMs };
      this.next = restored.offset;
      this.checkpointed = restored.offset;
      this.checkpointedWm = this.time.watermarkMs;
      this.frozen = this.checkpointed;
      this.frozenWm = this.checkpointedWm;
      if (restored.chain)
        this.chain = { baseBytes: restored.chain.baseBytes, links: restored.deltas?.length ?? 0, deltaBytes: restored.chain.deltaBytes, needsBase: false };
      else this.chain.needsBase = true;
    } else {
      this.state = processor.init({ topic, kind, partition });
      this.time = newPartitionTime(nowMs);
      this.dedup = this.newDedup();
      this.next = 0;
      this.checkpointed = -1;
      this.checkpointedWm = this.time.watermarkMs;
      this.frozen = this.checkpointed;
      this.frozenWm = this.checkpointedWm;
    }
  }

  private newDedup(): DedupState | null {
    return this.processor.dedupHorizonMs > 0 ? newDedup(this.processor.dedupHorizonMs) : null;
  }

  /** The record being handled (read by the reusable context below). */
  private curEv: Record<string, unknown> = {};
  private curRec: RecordRef | null = null;
  private curWm = 0;
  private curPush: Push = () => undefined;
  /** Why the last handled record was rejected (set when handle returns 'rejected'). */
  rejection: Rejection | null = null;

  /**
   * One context object per task, reused for every record (no closures per event on the hot
   * path): rows are fresh objects owned by the caller's emit, tagged in place with their source.
   */
  private readonly ctx: ProcessContext = (() => {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the context's getters have the context as `this`
    const task = this;
    return {
      get watermarkMs() {
        return task.curWm;
      },
      emit(table: string, row: Record<string, unknown>) {
        row.src_topic = task.topic;
        row.src_partition = task.partition;
        row.version = task.curRec!.offset + 1;
        task.curPush(table, row);
      },
      late(reason: string, windowEndMs?: number) {
        const ev = task.curEv;
        const offset = task.curRec!.offset;
        task.metrics?.lateEvents.inc({ processor: task.processor.name });
        task.curPush('late_events', {
          processor: task.processor.name,
          src_topic: task.topic,
          src_partition: task.partition,
          version: offset + 1,
          src_offset: offset,
          event_id: ev.event_id,
          event_time: ev.event_time,
          watermark: task.curWm,
          window_end: windowEndMs ?? 0,
          reason,
          payload: JSON.stringify(ev),
        });
      },
      lateFiring() {
        task.metrics?.lateFirings.inc({ processor: task.processor.name, kind: task.kind });
      },
      reject(errorClass: string, reason: string) {
        task.rejection = { errorClass, reason, by: 'processor' };
      },
    };
  })();

  /**
   * Handles one decoded record at `rec.offset`; rows go to `push` with source and version.
   * The record is first checked as the edge would (semantic rules, time and value bounds;
   * contracts/validate.ts recordProblem) with its Kafka timestamp as the reference
   * (deterministic on replay: the record and its timestamp only); `bounds` is that check already
   * made by the caller (the runner checks a record once for all its processors), undefined to
   * make it here with `maxFutureSkewMs`.
   */
  handle(
    ev: Record<string, unknown>,
    rec: RecordRef,
    nowMs: number,
    push: Push,
    bounds?: { errorClass: string; reason: string } | null,
    maxFutureSkewMs?: number,
  ): HandleResult {
    const p = this.processor;
    this.next = rec.offset + 1;
    this.rejection = null;
    const violation = bounds === undefined ? recordProblem(this.kind, ev, { referenceMs: rec.timestampMs, maxFutureSkewMs }) : bounds;
    if (violation) {
      this.rejection = { errorClass: violation.errorClass, reason: violation.reason, by: 'bounds' };
      return 'rejected';
    }
    const eventMs = ev.event_time as number;
    if (this.dedup && p.needsDedup(this.kind) && seenBefore(this.dedup, ev.event_id as string, eventMs)) {
      this.metrics?.dedupHits.inc({ processor: p.name });
      return 'duplicate';
    }
    const wm = observe(this.time, eventMs, p.allowedLatenessMs, nowMs);
    this.curEv = ev;
    this.curRec = rec;
    this.curWm = wm;
    this.curPush = push;
    p.process(this.state, ev, rec, this.ctx);
    return this.rejection ? 'rejected' : 'processed';
  }

  /** Marks an offset as consumed without an event (an undecodable record). */
  skip(offset: number): void {
    this.next = offset + 1;
  }

  private out(push: Push): Emitter {
    const src = { src_topic: this.topic, src_partition: this.partition, version: this.next };
    return { emit: (table, row) => push(table, Object.assign(row, src)) };
  }

  /** Closes windows at the current watermark (after a batch, or when the idle rule advanced it). */
  closeWindows(push: Push): void {
    this.processor.onWatermark(this.state, this.time.watermarkMs, this.out(push));
    if (this.dedup) expireDedup(this.dedup, this.time.watermarkMs);
  }

  /** Emits rows of open windows changed since the last flush (every commit cycle; see Processor.onFlush). */
  flush(push: Push, full = true, live?: LiveFlush): void {
    this.processor.onFlush(this.state, this.out(push), full, live);
  }

  /** The full state (a new base: the change tracking starts again from here). */
  snapshot(): PartitionSnapshot {
    const snap = { state: this.processor.serialize(this.state), time: { ...this.time }, dedup: this.dedup ? serializeDedup(this.dedup) : null };
    this.processor.markSaved?.(this.state);
    if (this.dedup) clearDedupDelta(this.dedup);
    return snap;
  }

  /** Whether the processor's state can be checkpointed incrementally (snapshotDelta). */
  get incremental(): boolean {
    return !!(this.processor.serializeDelta && this.processor.applyDelta && this.processor.markSaved);
  }

  /**
   * The changes since the last snapshot or delta (and a new link from here), or null when they
   * were too many to track (or the processor has no deltas): then a full snapshot is due, and the
   * caller takes one (`snapshot`) at once, as the tracking restarts either way.
   */
  /**
   * The next checkpoint, serialized: a delta on the chain behind `frozen` while the chain is
   * shorter than `maxLinks` and its bytes below `ratio` × the base's, else a full snapshot (a new
   * base). `deltaFrom` is set for a delta: the offset it builds on. Updates the chain bookkeeping.
   */
  freeze(maxLinks: number, ratio: number): { state: string; deltaFrom?: number } {
    const c = this.chain;
    if (!c.needsBase && this.frozen >= 0 && c.links < maxLinks && c.deltaBytes < ratio * c.baseBytes) {
      const d = this.snapshotDelta();
      if (d) {
        const state = JSON.stringify(d);
        c.links++;
        c.deltaBytes += state.length;
        return { state, deltaFrom: this.frozen };
      }
    }
    const state = JSON.stringify(this.snapshot());
    this.chain = { baseBytes: state.length, links: 0, deltaBytes: 0, needsBase: false };
    return { state };
  }

  snapshotDelta(): PartitionDelta | null {
    if (!this.incremental) return null;
    const delta = this.processor.serializeDelta!(this.state);
    const dedup = this.dedup ? takeDedupDelta(this.dedup) : null;
    if (delta === null || (this.dedup && dedup === null)) return null;
    return { delta, time: { ...this.time }, dedup };
  }
}
