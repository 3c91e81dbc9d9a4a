/**
 * The processor contract (lifecycle after Arroyo and Kafka Streams' Processor API).
 * A processor declares the kinds it reads, the tables it writes and its per-partition state; the
 * runner (runner.ts) owns Kafka, dedup, watermarks, checkpoints, sinks and commits:
 *
 *   init(partition)           new named state for a topic-partition (or deserialize(checkpoint))
 *   process(state, event, …)  one decoded, valid, not-duplicate event; may call ctx.late()
 *   onWatermark(state, wm, …) after a batch: close windows at or before wm, emit final rows
 *   onFlush(state, …, full)   at every commit cycle: emit rows of open windows that changed
 *   serialize(state)          the checkpoint, stored with the next offset in one Redis write
 *
 * Rows are deterministic functions of the partition's records up to an offset; the runner adds
 * `src_topic`, `src_partition` and `version` (the next offset) so ReplacingMergeTree tables keep
 * the newest state of each (key, window, source partition) and a replay writes the same rows.
 */
import type { EventKind } from '../../contracts/topics.js';
import type { WindowSpec } from './windows.js';

export interface RecordRef {
  topic: string;
  kind: EventKind;
  partition: number;
  offset: number;
  /** Kafka record timestamp (ms). */
  timestampMs: number;
}

export interface Emitter {
  emit(table: string, row: Record<string, unknown>): void;
}

export interface ProcessContext extends Emitter {
  /** Watermark of this partition after observing the current event. */
  readonly watermarkMs: number;
  /** Records the current event as late for `reason` (kept in late_events, never lost). */
  late(reason: string, windowEndMs?: number): void;
}

export interface Processor<S> {
  readonly name: string;
  readonly kinds: readonly EventKind[];
  /** Derived tables this processor owns (dropped/rebuilt by replay). */
  readonly tables: readonly string[];
  /**
   * Tables a scheduled job computes from this processor's tables (churn scores from the daily
   * facts): a replay from the beginning empties them too, and the job rebuilds them as the
   * replayed event time closes each day.
   */
  readonly jobTables?: readonly string[];
  /** Out-of-orderness bound: watermark = max event time − allowedLatenessMs. */
  readonly allowedLatenessMs: number;
  /** Event-time horizon of duplicate detection; 0 disables it for this processor. */
  readonly dedupHorizonMs: number;
  /**
   * process() keeps or changes the decoded event object (the raw store turns it into its row).
   * A fused runner hands the event to such a processor after every other one of the record.
   */
  readonly consumesEvent?: boolean;
  /** Whether duplicates of this kind must be dropped (additive metrics) or are harmless (merges). */
  needsDedup(kind: EventKind): boolean;
  init(ref: { topic: string; kind: EventKind; partition: number }): S;
  process(state: S, event: Record<string, unknown>, rec: RecordRef, ctx: ProcessContext): void;
  onWatermark(state: S, watermarkMs: number, out: Emitter): void;
  /**
   * At every commit cycle, before its rows are written: emit the rows of open windows that
   * changed. `full` is true when the consumer has caught up or is stopping: every pending row must
   * be written then. Under load (`full` false) a processor may hold back rows it would otherwise
   * rewrite many times (QoE writes changed open views once per watermark minute); held-back rows
   * must survive a checkpoint (their dirty marks are part of the state).
   */
  onFlush(state: S, out: Emitter, full: boolean): void;
  serialize(state: S): unknown;
  deserialize(json: unknown): S;
  /** Optional one-time setup (e.g. reference tables) before consuming. */
  start?(): Promise<void>;
}

/** A per-window, per-key accumulator store for tumbling windows, with dirty tracking. */
export interface WindowEntry<A> {
  acc: A;
  dirty: boolean;
}

/** An entry with its coordinates, so the dirty list can be flushed without a lookup. */
interface KeyedEntry<A> extends WindowEntry<A> {
  readonly ws: number;
  readonly key: string;
}

export interface WindowStoreJSON<A> {
  windows: Array<[number, Array<[string, A]>]>;
}

export class WindowStore<A> {
  /** window start -> key -> entry */
  readonly windows = new Map<number, Map<string, WindowEntry<A>>>();
  /**
   * Entries changed since the last flush, each once (an entry is listed when it turns dirty).
   * So a flush costs O(changed entries), not O(all open entries). Entries of windows closed
   * since are cleared by closeUpTo and skipped.
   */
  private dirtyList: KeyedEntry<A>[] = [];

  constructor(
    readonly spec: Extract<WindowSpec, { kind: 'tumbling' }>,
    private readonly init: () => A,
  ) {}

  windowStart(tsMs: number): number {
    return Math.floor(tsMs / this.spec.sizeMs) * this.spec.sizeMs;
  }

  /** True when the window of tsMs is already closed at the watermark (the event is late here). */
  isLate(tsMs: number, watermarkMs: number): boolean {
    return watermarkMs >= this.windowStart(tsMs) + this.spec.sizeMs + this.spec.graceMs;
  }

  /**
   * Applies `update` to the accumulator of (window of tsMs, key). Caller checks lateness first.
   * `update` may return false to say nothing changed (the entry then stays clean).
   */
  update(tsMs: number, key: string, update: (acc: A) => boolean | void): void {
    const ws = this.windowStart(tsMs);
    let byKey = this.windows.get(ws);
    if (!byKey) {
      byKey = new Map();
      this.windows.set(ws, byKey);
    }
    let e = byKey.get(key) as KeyedEntry<A> | undefined;
    if (!e) {
      e = { acc: this.init(), dirty: true, ws, key };
      byKey.set(key, e);
      this.dirtyList.push(e);
    }
    if (update(e.acc) !== false && !e.dirty) {
      e.dirty = true;
      this.dirtyList.push(e);
    }
  }

  /** Emits final rows of windows closed at the watermark and forgets them. */
  closeUpTo(watermarkMs: number, toRow: (windowStartMs: number, key: string, acc: A, final: boolean) => Record<string, unknown> | null, emit: (row: Record<string, unknown>) => void): number {
    let n = 0;
    // O(open windows) to find the closing ones (a handful), then O(entries) of those only.
    for (const [ws, byKey] of this.windows) {
      if (watermarkMs < ws + this.spec.sizeMs + this.spec.graceMs) continue;
      for (const [key, e] of byKey) {
        const row = toRow(ws, key, e.acc, true);
        if (row) emit(row);
        e.dirty = false;
        n++;
      }
      this.windows.delete(ws);
    }
    return n;
  }

  /** Emits update rows for open entries changed since the last flush. */
  flushDirty(toRow: (windowStartMs: number, key: string, acc: A, final: boolean) => Record<string, unknown> | null, emit: (row: Record<string, unknown>) => void): number {
    let n = 0;
    const list = this.dirtyList;
    this.dirtyList = [];
    for (const e of list) {
      // Not dirty any more: its window closed (final row written) since it was listed.
      if (!e.dirty) continue;
      const row = toRow(e.ws, e.key, e.acc, false);
      if (row) emit(row);
      e.dirty = false;
      n++;
    }
    return n;
  }

  toJSON(): WindowStoreJSON<A> {
    return { windows: [...this.windows].map(([ws, m]) => [ws, [...m].map(([k, e]) => [k, e.acc] as [string, A])]) };
  }

  load(json: WindowStoreJSON<A>): this {
    this.windows.clear();
    this.dirtyList = [];
    for (const [ws, entries] of json.windows) this.windows.set(ws, new Map(entries.map(([key, acc]) => [key, { acc, dirty: false, ws, key } as KeyedEntry<A>])));
    return this;
  }
}
