/**
 * Late data with a policy per source (issue 18): allowed lateness per event kind, and late
 * firings of closed tumbling windows, as Flink's `allowedLateness` / Dataflow's late panes.
 *
 * Two bounds, on two clocks of the same partition watermark:
 *  - grace (`WINDOW_GRACE_MS`): a window closes at end + grace and its final row is written;
 *  - allowed lateness (per kind, `LATENESS_<KIND>_MS`): the closed window's accumulators are kept
 *    until end + grace + lateness. An event for such a window is still counted: the accumulator
 *    is updated and the row rewritten (`is_final = 1`) with a higher `version` (the next offset),
 *    so the ReplacingMergeTree keeps the corrected row. Past end + grace + lateness the window is
 *    forgotten and the event goes to late_events as before.
 * Every decision is a function of the event time and the watermark at that event (the order of
 * records in the partition), and the kept windows are part of the checkpoint, so a live run, a
 * crash and a replay write the same final rows.
 *
 * Revisions, as of a time (issue 18, alerts read them): each content a kept window row has had
 * carries a `known_at` taken from the log, never from the clock: the window end for the content it
 * closed with (the on-time pane), and for each late firing the Kafka timestamp of the late record
 * (not before the partition's stream time; lateFiringKnownAt). Once a row is re-fired, every revision of it
 * goes to a history table (`<table>_history`, one row per (row key, known_at)): the on-time one
 * when the first late event arrives, each later one when it is written. Rows never re-fired have
 * no history (their only revision is the table's row). Events known at the same time fold into
 * one revision, and so does one known no later than the entry's content (a record timestamp can go
 * back); a later one starts a new revision, so the history is the same whatever the batch
 * boundaries, after a crash and on a replay.
 */
import type { EventKind } from '../../contracts/topics.js';
import type { WindowStore, WindowUpdates } from './processor.js';
import type { WindowSpec } from './windows.js';

/**
 * Allowed lateness past the grace, ms, per event kind. A kind not listed has none. The pipeline's
 * comes from the settings `LATENESS_<KIND>_MS` (lib/config.ts, bin/processors.ts latenessPolicy),
 * whose defaults and their reasons per source are in docs/processing.md.
 */
export type LatenessPolicy = Readonly<Partial<Record<EventKind, number>>>;

/** No late firings: events past the grace go to late_events (processors built without a policy). */
export const NO_LATENESS: LatenessPolicy = {};

export function latenessFor(policy: LatenessPolicy, kind: EventKind): number {
  return policy[kind] ?? 0;
}

/** The largest allowed lateness among `kinds`: how long a closed window must be kept. */
export function maxLateness(policy: LatenessPolicy, kinds: readonly EventKind[]): number {
  let m = 0;
  for (const k of kinds) m = Math.max(m, latenessFor(policy, k));
  return m;
}

/**
 * Where an event of a window ending at `windowEndMs` goes at watermark `wm`:
 * `on_time` (window open), `late_firing` (closed, within allowed lateness: counted and the row
 * rewritten) or `too_late` (late_events).
 */
export type Lateness = 'on_time' | 'late_firing' | 'too_late';

export function classify(windowEndMs: number, graceMs: number, latenessMs: number, wm: number): Lateness {
  if (wm < windowEndMs + graceMs) return 'on_time';
  return wm < windowEndMs + graceMs + latenessMs ? 'late_firing' : 'too_late';
}

type Tumbling = Extract<WindowSpec, { kind: 'tumbling' }>;
type ToRow<A> = (windowStartMs: number, key: string, acc: A, final: boolean) => Record<string, unknown> | null;
type Emit = (row: Record<string, unknown>) => void;

/**
 * When a late firing became known, from the log: the Kafka timestamp of the record that fired it
 * (when it was written to the log, so when a pipeline keeping up with the log could first count
 * it), and never before the partition's stream time (watermark + out-of-orderness bound), so it is
 * after the window's close and after its on-time revision (known at the window end). Event-time
 * clocks alone are not enough: a sparse partition's stream time lags the others, and a late event
 * read there would be "known" before the evaluator, driven by the dense partitions, could see it.
 */
export function lateFiringKnownAt(watermarkMs: number, outOfOrderMs: number, recordTimestampMs: number): number {
  return Math.max(watermarkMs + outOfOrderMs, recordTimestampMs);
}

/** The history table of a window table whose rows can be re-fired (migration 018). */
export const historyTable = (table: string) => `${table}_history`;

/**
 * A kept entry: its accumulator, whether its table row is owed, the `known_at` of its current
 * content, and its history: 0 never re-fired (no history rows; the content is the on-time
 * revision), 1 re-fired and the current revision's history row written (or nothing to write:
 * a key new to the window), 2 re-fired and the current revision's history row owed.
 */
interface Kept<A> {
  acc: A;
  dirty: boolean;
  knownAt: number;
  hist: 0 | 1 | 2;
}

/** The history row of a revision: the table's row (without is_final) with its known_at (ms). */
function historyRow<A>(toRow: ToRow<A>, ws: number, key: string, acc: A, knownAt: number): Record<string, unknown> | null {
  const row = toRow(ws, key, acc, true);
  if (!row) return null;
  delete row.is_final;
  row.known_at = knownAt;
  return row;
}

export interface LateWindowsJSON<A> {
  /** Last watermark the store's windows were closed at. */
  closedWm: number | null;
  /** Windows ending (+ grace) at or before this were closed before anything was kept (see load). */
  floorWm?: number | null;
  /**
   * [window start, [[key, acc, dirty?, known_at?, hist?]]]: known_at (ms) and hist (Kept.hist)
   * only when the entry was re-fired (absent: the on-time revision, known at the window end).
   */
  windows: Array<[number, Array<[string, A] | [string, A, 0 | 1] | [string, A, 0 | 1, number, 1 | 2]>]>;
  /** In a delta (takeDelta): the kept windows did not change since the last checkpoint (`windows` is empty). */
  same?: 1;
}

/**
 * The closed windows of one WindowStore kept for `keepMs` (the largest allowed lateness of the
 * kinds that write it) past end + grace. Narrow hooks: the processor closes through `closeUpTo`
 * (which keeps what the store lets go), routes a late event with `target` and writes corrected
 * rows with `flush`. State is bounded: a window is forgotten at end + grace + keepMs.
 */
export class LateWindows<A> {
  private readonly windows = new Map<number, Map<string, Kept<A>>>();
  private dirty: Array<[number, string]> = [];
  /** The watermark the store was last closed at: windows ending at or before it − grace are here. */
  private closedWm = -Number.MAX_SAFE_INTEGER;
  /**
   * Windows closed at or before this watermark may have been closed without being kept (a
   * checkpoint from before late firings): an event for one that is not kept goes to late_events,
   * since a row from the late events alone would replace the full one.
   */
  private floorWm = -Number.MAX_SAFE_INTEGER;
  /** Restored from a checkpoint without late-window state: the floor is set at the next close. */
  private floorPending = false;
  /** The kept windows changed since the last checkpoint (a delta carries them only then). */
  private windowsChanged = true;

  constructor(
    readonly spec: Tumbling,
    readonly keepMs: number,
    private readonly init: () => A,
  ) {}

  private endOf(ws: number): number {
    return ws + this.spec.sizeMs;
  }

  /**
   * The window store's closeUpTo, keeping the accumulators it closes (when any lateness is
   * allowed), then forgetting kept windows past their allowed lateness (rows still owed first,
   * and their history rows to `emitHistory`).
   */
  closeUpTo(store: WindowStore<A>, wm: number, toRow: ToRow<A>, emit: Emit, emitHistory?: Emit): void {
    const keep = this.keepMs > 0;
    store.closeUpTo(
      wm,
      keep
        ? (ws, key, acc, final) => {
            this.windowOf(ws).set(key, { acc, dirty: false, knownAt: this.endOf(ws), hist: 0 });
            this.windowsChanged = true;
            return toRow(ws, key, acc, final);
          }
        : toRow,
      emit,
    );
    if (this.floorPending) {
      this.floorPending = false;
      this.floorWm = wm;
      this.closedWm = wm;
    } else if (wm > this.closedWm) this.closedWm = wm;
    for (const [ws, byKey] of this.windows) {
      if (wm < this.endOf(ws) + this.spec.graceMs + this.keepMs) continue;
      for (const [key, e] of byKey) this.writeOwed(ws, key, e, toRow, emit, emitHistory);
      this.windows.delete(ws);
      this.windowsChanged = true;
    }
  }

  /**
   * Where the event at `tsMs` goes at watermark `wm` for a kind allowed `latenessMs`:
   * 'store' (its window is still open in the WindowStore), 'close' (its window is due to close
   * at this watermark but the store has not closed it yet, in the middle of a batch: the caller
   * closes its stores at `wm` first, then asks again, so the on-time revision never holds a late
   * event, whatever the batch boundaries), 'kept' (closed: update here, the row is rewritten) or
   * 'late' (late_events).
   */
  target(tsMs: number, wm: number, latenessMs: number): 'store' | 'close' | 'kept' | 'late' {
    const ws = Math.floor(tsMs / this.spec.sizeMs) * this.spec.sizeMs;
    const c = classify(this.endOf(ws), this.spec.graceMs, Math.min(latenessMs, this.keepMs), wm);
    if (c === 'on_time') return 'store';
    if (c === 'too_late') return 'late';
    const closeAt = this.endOf(ws) + this.spec.graceMs;
    if (this.closedWm < closeAt) return 'close';
    return closeAt <= this.floorWm && !this.windows.has(ws) ? 'late' : 'kept';
  }

  /** The kept accumulator of (window of tsMs, key), if any; read-only (checks before an update). */
  peek(tsMs: number, key: string): A | undefined {
    return this.windows.get(Math.floor(tsMs / this.spec.sizeMs) * this.spec.sizeMs)?.get(key)?.acc;
  }

  /**
   * Updates a kept window's accumulator (a key it did not have starts from init()) with a late
   * event known at `knownAtMs` (lateFiringKnownAt); the row is rewritten at the
   * next flush. A change at a later known_at than the entry's content starts a new revision: the
   * previous one's history row, if not written yet, goes to `emitHistory` first.
   */
  update(tsMs: number, key: string, update: (acc: A) => boolean | void, knownAtMs = Number.NEGATIVE_INFINITY, toRow?: ToRow<A>, emitHistory?: Emit): void {
    const ws = Math.floor(tsMs / this.spec.sizeMs) * this.spec.sizeMs;
    const byKey = this.windowOf(ws);
    let e = byKey.get(key);
    if (!e) {
      e = { acc: this.init(), dirty: false, knownAt: knownAtMs, hist: 1 };
      byKey.set(key, e);
    }
    this.windowsChanged = true;
    const newRevision = knownAtMs > e.knownAt;
    const previous = newRevision && e.hist !== 1 && toRow ? historyRow(toRow, ws, key, e.acc, e.knownAt) : null;
    if (update(e.acc) === false) return;
    if (previous) emitHistory?.(previous);
    if (newRevision) e.knownAt = knownAtMs;
    e.hist = 2;
    if (!e.dirty) {
      e.dirty = true;
      this.dirty.push([ws, key]);
    }
  }

  /**
   * A view for updates by late events known at `knownAtMs`, with the same calls as the
   * WindowStore (peek, update), so a processor routes an event to either with one code path.
   */
  at(knownAtMs: number, toRow: ToRow<A>, emitHistory: Emit): WindowUpdates<A> {
    return {
      peek: (tsMs, key) => this.peek(tsMs, key),
      update: (tsMs, key, fn) => this.update(tsMs, key, fn, knownAtMs, toRow, emitHistory),
    };
  }

  /**
   * Writes the corrected final rows of kept windows, and the history rows of their revisions
   * (every commit cycle: late rows are few and never held back).
   */
  flush(toRow: ToRow<A>, emit: Emit, emitHistory?: Emit): number {
    let n = 0;
    const list = this.dirty;
    this.dirty = [];
    for (const [ws, key] of list) {
      const e = this.windows.get(ws)?.get(key);
      if (!e || (!e.dirty && e.hist !== 2)) continue;
      this.writeOwed(ws, key, e, toRow, emit, emitHistory);
      this.windowsChanged = true;
      n++;
    }
    return n;
  }

  private writeOwed(ws: number, key: string, e: Kept<A>, toRow: ToRow<A>, emit: Emit, emitHistory?: Emit): void {
    if (e.dirty) {
      const row = toRow(ws, key, e.acc, true);
      if (row) emit(row);
      e.dirty = false;
    }
    if (e.hist === 2 && emitHistory) {
      const h = historyRow(toRow, ws, key, e.acc, e.knownAt);
      if (h) emitHistory(h);
      e.hist = 1;
    }
  }

  /** Entries kept (for tests and the state's size). */
  size(): number {
    let n = 0;
    for (const m of this.windows.values()) n += m.size;
    return n;
  }

  private windowOf(ws: number): Map<string, Kept<A>> {
    let m = this.windows.get(ws);
    if (!m) this.windows.set(ws, (m = new Map<string, Kept<A>>()));
    return m;
  }

  toJSON(marksOnly = false): LateWindowsJSON<A> {
    const windows: LateWindowsJSON<A>['windows'] = [];
    if (!marksOnly)
      for (const [ws, m] of this.windows) {
        windows.push([
          ws,
          [...m].map(([k, e]) => {
            if (e.hist !== 0) return [k, e.acc, e.dirty ? 1 : 0, e.knownAt, e.hist] as [string, A, 0 | 1, number, 1 | 2];
            return e.dirty ? [k, e.acc, 1] : [k, e.acc];
          }),
        ]);
      }
    const n = (x: number) => (x > -Number.MAX_SAFE_INTEGER && x < Number.MAX_SAFE_INTEGER ? x : null);
    return { closedWm: n(this.closedWm), floorWm: this.floorPending ? Number.MAX_SAFE_INTEGER : n(this.floorWm), windows };
  }

  /**
   * For an incremental checkpoint: the watermarks, and the kept windows only when they changed
   * since the last checkpoint (they change when windows close or late events arrive, not at every
   * batch).
   */
  takeDelta(): LateWindowsJSON<A> {
    const json = this.windowsChanged ? this.toJSON() : { ...this.toJSON0(), windows: [], same: 1 as const };
    this.windowsChanged = false;
    return json;
  }

  /** The state as it is is checkpointed: the next delta carries the windows only if they change. */
  markSaved(): void {
    this.windowsChanged = false;
  }

  /** Replays a delta (takeDelta) on the restored state. */
  applyDelta(json: LateWindowsJSON<A>): this {
    if (json.same !== 1) return this.load(json);
    this.loadMarks(json);
    return this;
  }

  private toJSON0(): Omit<LateWindowsJSON<A>, 'windows'> {
    const { windows: _w, ...rest } = this.toJSON(true);
    return rest;
  }

  /** Restores a checkpoint; a checkpoint written before late firings (undefined) keeps nothing. */
  load(json: LateWindowsJSON<A> | undefined): this {
    this.windows.clear();
    this.dirty = [];
    this.loadMarks(json);
    for (const [ws, entries] of json?.windows ?? []) {
      const m = this.windowOf(ws);
      for (const [key, acc, dirty, knownAt, hist] of entries) {
        const re = typeof knownAt === 'number' && (hist === 1 || hist === 2);
        m.set(key, { acc: { ...this.init(), ...acc }, dirty: dirty === 1, knownAt: re ? knownAt : this.endOf(ws), hist: re ? hist : 0 });
        if (dirty === 1 || hist === 2) this.dirty.push([ws, key]);
      }
    }
    this.windowsChanged = false;
    return this;
  }

  private loadMarks(json: LateWindowsJSON<A> | undefined): void {
    this.closedWm = typeof json?.closedWm === 'number' ? json.closedWm : -Number.MAX_SAFE_INTEGER;
    this.floorWm = typeof json?.floorWm === 'number' ? json.floorWm : -Number.MAX_SAFE_INTEGER;
    // A checkpoint written before late firings: which windows were closed is unknown until the
    // next close; until then every window past its grace counts as closed and not kept.
    this.floorPending = json === undefined || json.floorWm === Number.MAX_SAFE_INTEGER;
    if (this.floorPending) {
      this.closedWm = Number.MAX_SAFE_INTEGER;
      this.floorWm = Number.MAX_SAFE_INTEGER;
    }
  }
}
