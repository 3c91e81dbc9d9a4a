/**
 * The processor contract (lifecycle after Arroyo and Kafka Streams' Processor API).
 * A processor declares the kinds it reads, the tables it writes and its per-partition state; the
 * runner (runner.ts) owns Kafka, dedup, watermarks, checkpoints, sinks and commits:
 *
 *   init(partition)           new named state for a topic-partition (or deserialize(checkpoint))
 *   process(state, event, …)  one decoded, valid, in-bounds, not-duplicate event; may call
 *                             ctx.late() (kept in late_events) or ctx.reject() (a data error:
 *                             dead-lettered; before any state change)
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
  /**
   * The record's Avro body, when it is in the schema of its kind (contracts/avro), i.e. written
   * with our registered schema; absent when it was resolved from another writer schema (and in
   * the in-memory driver). The raw store stores it as it is instead of encoding the event again.
   */
  body?: Buffer;
}

export interface Emitter {
  /** A row: an object of column values (or an already encoded AvroBodyRow); the runner tags it with its source. */
  emit(table: string, row: object): void;
}

export interface ProcessContext extends Emitter {
  /** Watermark of this partition after observing the current event. */
  readonly watermarkMs: number;
  /** Records the current event as late for `reason` (kept in late_events, never lost). */
  late(reason: string, windowEndMs?: number): void;
  /**
   * Refuses the current event as a data error (e.g. `value_overflow`: adding it would take a
   * window's sum beyond what its column holds): it is dead-lettered with the reason and the
   * processor moves on. Call it before changing any state: the event must leave no trace.
   */
  reject(errorClass: string, reason: string): void;
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
  /**
   * Entries as [key, acc], or [key, acc, 1] when changed since their last row (held back under
   * load). With `shape`, acc is the array of the accumulator's field values in that order
   * (about half the bytes of objects, whose keys repeat in every entry); without it (checkpoints
   * written before), acc is the object.
   */
  windows: Array<[number, Array<[string, A | unknown[]] | [string, A | unknown[], 1]>]>;
  /** Field names of the accumulator, in the order of the value arrays. */
  shape?: string[];
  /** Watermark minute of the last update flush under load (see `flushDue`). */
  flushedMinute?: number | null;
}

/** Event time between update flushes of open windows while a consumer is behind (see WindowStore.flushDue). */
export const UPDATE_INTERVAL_MS = 60_000;

export class WindowStore<A> {
  /** window start -> key -> entry */
  readonly windows = new Map<number, Map<string, WindowEntry<A>>>();
  /**
   * Entries changed since the last flush, each once (an entry is listed when it turns dirty).
   * So a flush costs O(changed entries), not O(all open entries). Entries of windows closed
   * since are cleared by closeUpTo and skipped.
   */
  private dirtyList: KeyedEntry<A>[] = [];
  /** Last watermark passed to closeUpTo. */
  private watermarkMs = -Number.MAX_SAFE_INTEGER;
  /** Watermark minute of the last flush (checkpointed). */
  private flushedMinute = -Number.MAX_SAFE_INTEGER;

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

  /** The accumulator of (window of tsMs, key), if it exists; read-only (for checks before an update). */
  peek(tsMs: number, key: string): A | undefined {
    return this.windows.get(this.windowStart(tsMs))?.get(key)?.acc;
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
    if (watermarkMs > this.watermarkMs) this.watermarkMs = watermarkMs;
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

  /**
   * The commit cycle's flush of open windows (Processor.onFlush). When `full` (the consumer has
   * caught up, or is stopping) every changed entry is written, as flushDirty. While the consumer
   * is behind, changed entries are written at most once per UPDATE_INTERVAL_MS of watermark
   * time: a backlog of a minute of events rewrites each open row once, not once per commit
   * cycle (as Kafka Streams' record cache folds a key's updates within a commit interval). Rows
   * held back stay marked (the marks are checkpointed) and final rows are never held back.
   */
  flushDue(full: boolean, toRow: (windowStartMs: number, key: string, acc: A, final: boolean) => Record<string, unknown> | null, emit: (row: Record<string, unknown>) => void): number {
    const minute = Math.floor(this.watermarkMs / UPDATE_INTERVAL_MS);
    if (!full && minute <= this.flushedMinute) return 0;
    if (minute > this.flushedMinute) this.flushedMinute = minute;
    return this.flushDirty(toRow, emit);
  }

  /** The accumulator's fields (those of a fresh `init()`), the order of the checkpoint's value arrays. */
  private shape(): string[] {
    return (this.fields ??= Object.keys(this.init() as object));
  }

  private fields: string[] | undefined;

  toJSON(): WindowStoreJSON<A> {
    const shape = this.shape();
    const n = shape.length;
    const windows: WindowStoreJSON<A>['windows'] = [];
    for (const [ws, m] of this.windows) {
      const entries: Array<[string, unknown[]] | [string, unknown[], 1]> = [];
      for (const [k, e] of m) {
        const acc = e.acc as Record<string, unknown>;
        const values = new Array<unknown>(n);
        for (let i = 0; i < n; i++) values[i] = acc[shape[i]!];
        entries.push(e.dirty ? [k, values, 1] : [k, values]);
      }
      windows.push([ws, entries]);
    }
    return { windows, shape, flushedMinute: this.flushedMinute > -Number.MAX_SAFE_INTEGER ? this.flushedMinute : null };
  }

  load(json: WindowStoreJSON<A>): this {
    this.windows.clear();
    this.dirtyList = [];
    const shape = json.shape;
    // A field the code has added since the checkpoint keeps the value init() gives it.
    const fromValues = (values: unknown[]): A => {
      const acc = this.init() as Record<string, unknown>;
      for (let i = 0; i < shape!.length; i++) acc[shape![i]!] = values[i];
      return acc as A;
    };
    for (const [ws, entries] of json.windows) {
      const m = new Map<string, WindowEntry<A>>();
      for (const [key, stored, dirty] of entries) {
        const acc = shape ? fromValues(stored as unknown[]) : (stored as A);
        const e: KeyedEntry<A> = { acc, dirty: dirty === 1, ws, key };
        m.set(key, e);
        if (e.dirty) this.dirtyList.push(e);
      }
      this.windows.set(ws, m);
    }
    this.flushedMinute = typeof json.flushedMinute === 'number' ? json.flushedMinute : -Number.MAX_SAFE_INTEGER;
    return this;
  }
}
