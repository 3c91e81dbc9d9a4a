/**
 * The per-partition half of the runner, free of Kafka: dedup → event time → process, window
 * closing, flushing and snapshots. The Kafka runner (runner.ts) and the in-memory test driver
 * (test-driver.ts) both use it, so a processor behaves the same in unit tests and in production.
 */
import type { EventKind } from '../../contracts/topics.js';
import type { Metrics } from '../../lib/metrics.js';
import { deserializeDedup, expireDedup, newDedup, seenBefore, serializeDedup, type DedupState } from './dedup.js';
import type { Emitter, Processor, ProcessContext, RecordRef } from './processor.js';
import { newPartitionTime, observe, type PartitionTime } from './watermark.js';

export type Push = (table: string, row: Record<string, unknown>) => void;

export interface PartitionSnapshot {
  state: unknown;
  time: PartitionTime;
  dedup: ReturnType<typeof serializeDedup> | null;
}

export type HandleResult = 'processed' | 'duplicate';

export class PartitionTask<S> {
  state: S;
  time: PartitionTime;
  dedup: DedupState | null;
  /** Next offset to process: everything below is in `state`. */
  next: number;
  /** Next offset at the last successful checkpoint (-1: none yet). */
  checkpointed: number;

  constructor(
    readonly processor: Processor<S>,
    readonly topic: string,
    readonly kind: EventKind,
    readonly partition: number,
    nowMs: number,
    restored?: { offset: number; snapshot: PartitionSnapshot },
    private readonly metrics?: Metrics,
  ) {
    if (restored) {
      const s = restored.snapshot;
      this.state = processor.deserialize(s.state);
      this.time = { ...s.time, lastRecordAtMs: nowMs };
      this.dedup = s.dedup ? deserializeDedup(s.dedup) : this.newDedup();
      this.next = restored.offset;
      this.checkpointed = restored.offset;
    } else {
      this.state = processor.init({ topic, kind, partition });
      this.time = newPartitionTime(nowMs);
      this.dedup = this.newDedup();
      this.next = 0;
      this.checkpointed = -1;
    }
  }

  private newDedup(): DedupState | null {
    return this.processor.dedupHorizonMs > 0 ? newDedup(this.processor.dedupHorizonMs) : null;
  }

  /** Handles one decoded record at `rec.offset`; rows go to `push` with source and version. */
  handle(ev: Record<string, unknown>, rec: RecordRef, nowMs: number, push: Push): HandleResult {
    const p = this.processor;
    this.next = rec.offset + 1;
    const eventMs = ev.event_time as number;
    const eventId = ev.event_id as string;
    if (this.dedup && p.needsDedup(this.kind) && seenBefore(this.dedup, eventId, eventMs)) {
      this.metrics?.dedupHits.inc({ processor: p.name });
      return 'duplicate';
    }
    const wm = observe(this.time, eventMs, p.allowedLatenessMs, nowMs);
    const version = rec.offset + 1;
    const src = { src_topic: this.topic, src_partition: this.partition, version };
    const ctx: ProcessContext = {
      watermarkMs: wm,
      // Rows are fresh objects owned by the caller's emit: tag them in place (hot path).
      emit: (table, row) => push(table, Object.assign(row, src)),
      late: (reason, windowEndMs) => {
        this.metrics?.lateEvents.inc({ processor: p.name });
        push('late_events', {
          processor: p.name, ...src, src_offset: rec.offset,
          event_id: eventId, event_time: eventMs, watermark: wm, window_end: windowEndMs ?? 0, reason, payload: JSON.stringify(ev),
        });
      },
    };
    p.process(this.state, ev, rec, ctx);
    return 'processed';
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

  /** Emits rows of open windows changed since the last flush (before every checkpoint). */
  flush(push: Push): void {
    this.processor.onFlush(this.state, this.out(push));
  }

  snapshot(): PartitionSnapshot {
    return { state: this.processor.serialize(this.state), time: this.time, dedup: this.dedup ? serializeDedup(this.dedup) : null };
  }
}
