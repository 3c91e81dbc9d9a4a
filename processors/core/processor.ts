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
import { EmitPolicy, KeyedStore, UPDATE_INTERVAL_MS, type KeyedEntry } from './keyed-store.js';
import type { WindowSpec } from './windows.js';

/**
 * A commit cycle of a consumer that has caught up and goes on: records came since the cycle
 * before, and it is not the last before stopping or a handover. What Processor.onFlush may hold
 * back rows by.
 */
export interface LiveFlush {
  /** The runner's clock (processing time) at the cycle. */
  nowMs: number;
}

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
   * Counts the current event as a late firing: past its window's grace, within the allowed
   * lateness of its kind, counted in the closed window (streampulse_late_firings_total).
   */
  lateFiring(): void;
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
   * be written then, except that a live cycle (`live` given: caught up, not stopping) may hold back
   * per-entity rows that change every few seconds for at most an interval of its own
   * (`live.nowMs`, processing time; KeyedStore.flushOpenAged). Under load (`full` false) a
   * processor may hold back rows it would otherwise rewrite many times (QoE writes changed open
   * views once per watermark minute); held-back rows must survive a checkpoint (their dirty marks
   * are part of the state).
   */
  onFlush(state: S, out: Emitter, full: boolean, live?: LiveFlush): void;
  serialize(state: S): unknown;
  deserialize(json: unknown): S;
  /**
   * Incremental checkpoints (optional; all three or none). `serializeDelta`: the changes since the
   * last checkpoint (`serialize` or `serializeDelta`, after `markSaved`), which starts a new link;
   * null when they were too many to track (a full checkpoint follows at once). `applyDelta`
   * replays them on a deserialized state: a base with its deltas applied in order must give the
   * state exactly (entries, values, pending rows, deadlines). `markSaved`: the state as it is is
   * checkpointed (a full one was just taken, or restored), so the tracking starts again.
   */
  serializeDelta?(state: S): unknown; // null: nothing changed
  applyDelta?(state: S, delta: unknown): void;
  markSaved?(state: S): void;
  /** Optional one-time setup (e.g. reference tables) before consuming. */
  start?(): Promise<void>;
}

/** The calls a processor updates windowed accumulators with (a WindowStore, or LateWindows.at's view). */
export interface WindowUpdates<A> {
  peek(tsMs: number, key: string): A | undefined;
  update(tsMs: number, key: string, update: (acc: A) => boolean | void): void;
}

/** An accumulator with its dirty mark, as a window's keyed store holds it. */
export type WindowEntry<A> = KeyedEntry<A>;

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
  /** Watermark minute of the last update flush under load (the emit policy's interval). */
  flushedMinute?: number | null;
}

/** A WindowStore's changes since the last checkpoint (WindowStore.takeDelta). */
export interface WindowStoreDeltaJSON<A> {
  /** Windows closed (removed) since; applied first. */
  dropped: number[];
  /**
   * Per window with changes, its new or changed entries (encoded as in WindowStoreJSON); with a
   * third element 1, the window's whole content (its changes were too many to track).
   */
  windows: Array<[number, Array<[string, unknown[]] | [string, unknown[], 1]>] | [number, Array<[string, unknown[]] | [string, unknown[], 1]>, 1]>;
  shape: string[];
  flushedMinute: number | null;
  /** Only for the accumulator's type. */
  _acc?: A;
}

export { UPDATE_INTERVAL_MS };

/**
 * Per-window, per-key accumulators of tumbling windows, on the keyed-state store (keyed-store.ts):
 * one KeyedStore per open window (its entries close together, when the window does), all sharing
 * one emit policy, so open rows follow the same rule as every other keyed state.
 */
export class WindowStore<A> {
  /** window start -> the window's keyed store */
  readonly windows = new Map<number, KeyedStore<A>>();
  /** Update rows of open windows: every flush when caught up, once per watermark minute while behind. */
  readonly policy = new EmitPolicy(UPDATE_INTERVAL_MS);

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
    return this.windows.get(this.windowStart(tsMs))?.get(key);
  }

  /**
   * The entry of (window of tsMs, key), if it exists; read-only (for checks before an update).
   * Handed back to `update` (or kept by the caller, with its window start, for the key's next
   * update) it spares the key's lookup there.
   */
  peekEntry(tsMs: number, key: string): WindowEntry<A> | undefined {
    return this.windows.get(this.windowStart(tsMs))?.entry(key);
  }

  /**
   * Applies `update` to the accumulator of (window of tsMs, key) and returns its entry. Caller
   * checks lateness first. `update` may return false to say nothing changed (the entry then stays
   * clean). `known`: the entry of that same window and key if the caller has it (`peekEntry`, or
   * one `update` returned before): used while it is still the key's (not `gone`: its window has
   * not closed meanwhile), instead of looking the key up again.
   */
  update(tsMs: number, key: string, update: (acc: A) => boolean | void, known?: WindowEntry<A>): WindowEntry<A> {
    const ws = this.windowStart(tsMs);
    let w = this.windows.get(ws);
    if (!w) {
      w = new KeyedStore<A>({}, this.policy);
      this.windows.set(ws, w);
    }
    const e = (known !== undefined && !known.gone ? known : w.entry(key)) ?? w.insert(key, this.init());
    if (update(e.value) !== false) w.markDirty(e);
    return e;
  }

  /** Emits final rows of windows closed at the watermark and forgets them. */
  closeUpTo(
    watermarkMs: number,
    toRow: (windowStartMs: number, key: string, acc: A, final: boolean) => Record<string, unknown> | null,
    emit: (row: Record<string, unknown>) => void,
  ): number {
    let n = 0;
    this.policy.observe(watermarkMs);
    // O(open windows) to find the closing ones (a handful), then O(entries) of those only.
    for (const [ws, w] of this.windows) {
      if (watermarkMs < ws + this.spec.sizeMs + this.spec.graceMs) continue;
      for (const e of w.entries()) {
        const row = toRow(ws, e.key, e.value, true);
        if (row) emit(row);
        n++;
      }
      w.clear();
      this.windows.delete(ws);
      this.dropped.push(ws);
    }
    return n;
  }

  /** Windows closed since the last checkpoint (for the next delta). */
  private dropped: number[] = [];

  /** Emits update rows for open entries changed since the last flush. */
  flushDirty(
    toRow: (windowStartMs: number, key: string, acc: A, final: boolean) => Record<string, unknown> | null,
    emit: (row: Record<string, unknown>) => void,
  ): number {
    let n = 0;
    for (const [ws, w] of this.windows) {
      n += w.flushOpen((e) => {
        const row = toRow(ws, e.key, e.value, false);
        if (row) emit(row);
      });
    }
    return n;
  }

  /**
   * Update rows of open windows' entries changed at least `minAgeMs` ago (processing time; see
   * KeyedStore.flushOpenAged): at most one row per entry per `minAgeMs` while the consumer is live.
   */
  flushAged(
    nowMs: number,
    minAgeMs: number,
    toRow: (windowStartMs: number, key: string, acc: A, final: boolean) => Record<string, unknown> | null,
    emit: (row: Record<string, unknown>) => void,
  ): number {
    let n = 0;
    for (const [ws, w] of this.windows) {
      n += w.flushOpenAged(nowMs, minAgeMs, (e) => {
        const row = toRow(ws, e.key, e.value, false);
        if (row) emit(row);
      });
    }
    return n;
  }

  /**
   * The commit cycle's flush of open windows (Processor.onFlush), by the emit policy: when `full`
   * (caught up, or stopping) every changed entry is written; while behind, changed entries are
   * written at most once per UPDATE_INTERVAL_MS of watermark time (the watermark of the last
   * closeUpTo). Rows held back stay marked (the marks are checkpointed); final rows are never
   * held back.
   */
  flushDue(
    full: boolean,
    toRow: (windowStartMs: number, key: string, acc: A, final: boolean) => Record<string, unknown> | null,
    emit: (row: Record<string, unknown>) => void,
  ): number {
    if (!this.policy.due(full)) return 0;
    return this.flushDirty(toRow, emit);
  }

  /** The accumulator's fields (those of a fresh `init()`), the order of the checkpoint's value arrays. */
  private shape(): string[] {
    return (this.fields ??= Object.keys(this.init() as object));
  }

  private fields: string[] | undefined;

  private encode(entries: Iterable<WindowEntry<A>>): Array<[string, unknown[]] | [string, unknown[], 1]> {
    const shape = this.shape();
    const n = shape.length;
    const out: Array<[string, unknown[]] | [string, unknown[], 1]> = [];
    for (const e of entries) {
      const acc = e.value as Record<string, unknown>;
      const values = new Array<unknown>(n);
      for (let i = 0; i < n; i++) values[i] = acc[shape[i]!];
      out.push(e.dirty ? [e.key, values, 1] : [e.key, values]);
    }
    return out;
  }

  toJSON(): WindowStoreJSON<A> {
    const windows: WindowStoreJSON<A>['windows'] = [];
    for (const [ws, w] of this.windows) windows.push([ws, this.encode(w.entries())]);
    return { windows, shape: this.shape(), flushedMinute: this.policy.toJSON() };
  }

  /** The changes since the last checkpoint (entries of a window are never removed one by one: whole windows close). */
  takeDelta(): WindowStoreDeltaJSON<A> {
    const windows: WindowStoreDeltaJSON<A>['windows'] = [];
    for (const [ws, w] of this.windows) {
      const ch = w.takeChanges();
      if (ch === null) windows.push([ws, this.encode(w.entries()), 1]);
      else if (ch.upserts.length > 0) windows.push([ws, this.encode(ch.upserts)]);
    }
    const dropped = this.dropped;
    this.dropped = [];
    return { dropped, windows, shape: this.shape(), flushedMinute: this.policy.toJSON() };
  }

  /** The state as it is is checkpointed: the change tracking starts again. */
  markSaved(): void {
    for (const w of this.windows.values()) w.clearChanges();
    this.dropped = [];
  }

  /** A field the code has added since the checkpoint keeps the value init() gives it. */
  private decode(shape: string[] | undefined, stored: unknown): A {
    if (!shape) return stored as A;
    const values = stored as unknown[];
    const acc = this.init() as Record<string, unknown>;
    for (let i = 0; i < shape.length; i++) acc[shape[i]!] = values[i];
    return acc as A;
  }

  load(json: WindowStoreJSON<A>): this {
    for (const w of this.windows.values()) w.clear();
    this.windows.clear();
    for (const [ws, entries] of json.windows) {
      const w = new KeyedStore<A>({}, this.policy);
      for (const [key, stored, dirty] of entries) w.restore(key, this.decode(json.shape, stored), dirty === 1, false);
      this.windows.set(ws, w);
    }
    this.policy.load(json.flushedMinute);
    this.markSaved();
    return this;
  }

  /** Replays a delta (takeDelta) on the restored state. */
  applyDelta(json: WindowStoreDeltaJSON<A>): this {
    for (const ws of json.dropped) {
      this.windows.get(ws)?.clear();
      this.windows.delete(ws);
    }
    for (const [ws, entries, whole] of json.windows) {
      let w = this.windows.get(ws);
      if (!w || whole === 1) {
        w?.clear();
        w = new KeyedStore<A>({}, this.policy);
        this.windows.set(ws, w);
      }
      for (const [key, stored, dirty] of entries) w.restore(key, this.decode(json.shape, stored), dirty === 1, false);
    }
    this.policy.load(json.flushedMinute);
    return this;
  }
}
