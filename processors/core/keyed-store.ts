/**
 * The keyed-state store every stateful processor holds its per-key state in (issue 19), after
 * Kafka Streams' window stores and EmitStrategy. Before it, the same deadline bookkeeping was
 * written four times (WindowStore, QoE views, safety cases, churn views) and the "write open rows
 * at most once per watermark minute" policy twice. Here it exists once:
 *
 *   key → entry { value, dirty, closed }
 *   close deadline   the watermark at which an open entry's row becomes final (`closeAt`); it may
 *                    move later as events arrive (re-checked lazily when its queue entry fires),
 *                    and earlier (re-queued at once by `touch`)
 *   forget deadline  the watermark at which a closed entry (or, in a store without closing, any
 *                    entry) leaves the state (`forgetAt`), optionally leaving a tombstone
 *   dirty tracking   entries changed since their last row, listed once each, so a flush costs
 *                    O(changed), not O(state)
 *   emit policy      final rows at close; update rows of open entries when the consumer has caught
 *                    up (`full`), or while behind at most once per EmitPolicy interval of watermark
 *
 * Deadlines are compared as "due when watermark ≥ deadline" everywhere: a rule written as
 * "forgotten once last < watermark − h" is the deadline last + h + 1 (times are whole ms).
 * The deadline queues and dirty lists are derived state: a restore rebuilds them from the
 * entries (`restore`), so they are never checkpointed. Pure: no clock.
 *
 * Checkpoint change tracking (incremental checkpoints, checkpoint-store.ts): besides the dirty
 * mark (a row is due), every entry whose checkpointed content changed since the last checkpoint
 * (its value, its dirty or closed flag) is listed once (`unsaved`), and every key that left the
 * state is remembered, so a checkpoint can write only the changes (`takeChanges`) and a restore
 * replays them on the last full one (`restore`, `remove`). A value changed in place without a
 * dirty mark (state only, e.g. churn's views) is reported with `changed`. `clearChanges` starts a
 * new chain (after a full checkpoint or a restore).
 */
import { DeadlineQueue } from './deadline-queue.js';

/** Event time between update rows of open entries while a consumer is behind (see EmitPolicy). */
export const UPDATE_INTERVAL_MS = 60_000;

/**
 * When update rows of open entries are written: always when `full` (caught up, or stopping),
 * else at most once per `intervalMs` of watermark time (the first call whose watermark is in a
 * new interval), as Kafka Streams' record cache folds a key's updates within a commit interval.
 * Final rows are never held back. `last` is checkpointed with the state it governs.
 */
export class EmitPolicy {
  /** Interval (watermark ÷ intervalMs) of the last update write; -MAX_SAFE_INTEGER: none yet. */
  last = -Number.MAX_SAFE_INTEGER;
  /** Latest watermark seen (by `observe` or `due`). */
  watermarkMs = -Number.MAX_SAFE_INTEGER;

  constructor(readonly intervalMs = UPDATE_INTERVAL_MS) {}

  observe(watermarkMs: number): void {
    if (watermarkMs > this.watermarkMs) this.watermarkMs = watermarkMs;
  }

  /** Whether open entries' update rows are to be written now (records the interval when so). */
  due(full: boolean, watermarkMs = this.watermarkMs): boolean {
    this.observe(watermarkMs);
    const i = Math.floor(this.watermarkMs / this.intervalMs);
    if (!full && i <= this.last) return false;
    if (i > this.last) this.last = i;
    return true;
  }

  /** The checkpointed interval (null: none yet). */
  toJSON(): number | null {
    return this.last > -Number.MAX_SAFE_INTEGER ? this.last : null;
  }

  load(last: number | null | undefined): void {
    this.last = typeof last === 'number' && Number.isFinite(last) ? last : -Number.MAX_SAFE_INTEGER;
  }
}

export interface KeyedEntry<V> {
  readonly key: string;
  value: V;
  /** Changed since its last row. */
  dirty: boolean;
  /** Its close deadline passed: its row is final; kept until its forget deadline. */
  closed: boolean;
  /** Earliest deadline queued for it (close while open, forget once closed); NaN: none queued. */
  queued: number;
  /** Changed since the last checkpoint (listed in the store's unsaved list). */
  unsaved: boolean;
  /**
   * No longer the state of its key (forgotten, removed, cleared, or replaced by a new entry of the
   * key): a listed or cached reference to it is stale. A flag instead of a map lookup per check.
   */
  gone: boolean;
}

/** What changed in a KeyedStore since the last checkpoint (KeyedStore.takeChanges). */
export interface KeyedChanges<V> {
  /** Every entry was removed first (`clear`), then `upserts` applied. */
  cleared: boolean;
  /** Live entries whose value, dirty or closed flag changed (or that are new). */
  upserts: KeyedEntry<V>[];
  /** Keys no longer in the state. */
  deletes: string[];
  /** Tombstones set (key, time) and removed (key), in stores that keep them. */
  tombstones: Array<[string, number]>;
  tombstonesRemoved: string[];
}

export interface KeyedStoreOptions<V> {
  /**
   * The watermark at which an open entry closes (its row becomes final). Absent: entries never
   * close, they are only forgotten (at `forgetAt`).
   */
  closeAt?: (value: V) => number;
  /**
   * The watermark at which an entry is forgotten: a closed one when `closeAt` is given, any entry
   * otherwise. Absent with `closeAt`: forgotten as soon as it closes (after its final row).
   */
  forgetAt?: (value: V) => number;
  /**
   * Keeps a forgotten key as a tombstone (key → `time`) until the watermark reaches `until(time)`,
   * so stragglers of forgotten keys can be recognised (e.g. late, instead of a partial new state).
   */
  tombstone?: { time: (value: V) => number; until: (time: number) => number };
  /** Called when an entry closes (before its final row), e.g. to record when. */
  onClose?: (entry: KeyedEntry<V>, deadline: number) => void;
  /**
   * Whether closing writes a final row even if the entry did not change since its last row
   * (default true: the row then says final). False: a closed entry's row is written only if it
   * changed since (rows without a final flag, e.g. safety cases, whose latest row stands).
   */
  finalRow?: boolean;
}

const NONE = Number.NaN;

export class KeyedStore<V> {
  private readonly map = new Map<string, KeyedEntry<V>>();
  /** Open entries by close deadline, or (no closing) entries by forget deadline: lazy hints. */
  private readonly deadlines = new DeadlineQueue<KeyedEntry<V>>();
  /** Closed entries by forget deadline. */
  private readonly forgets = new DeadlineQueue<KeyedEntry<V>>();
  /** Entries that turned dirty while open / while closed (each listed once per turn). */
  private dirtyOpen: KeyedEntry<V>[] = [];
  private dirtyClosed: KeyedEntry<V>[] = [];
  /**
   * Where dirtyOpen stood at each `flushOpenAged` (processing time): the entries listed before
   * `end` had turned dirty by `atMs`. Ascending in both; emptied whenever dirtyOpen is.
   */
  private ageMarks: Array<{ end: number; atMs: number }> = [];
  readonly tombstones = new Map<string, number>();
  private readonly tombstoneQueue = new DeadlineQueue<[string, number]>();
  /** Entries changed since the last checkpoint (each listed once), keys removed, tombstones changed. */
  private unsaved: KeyedEntry<V>[] = [];
  private removed = new Set<string>();
  private tombstonesChanged = new Set<string>();
  private cleared = false;
  /** Too many changes to track since the last checkpoint: the next one must be full. */
  private overflowed = false;

  constructor(
    private readonly opts: KeyedStoreOptions<V> = {},
    /** The emit policy (shared by the windows of a WindowStore). */
    readonly policy: EmitPolicy = new EmitPolicy(),
  ) {}

  get size(): number {
    return this.map.size;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** The value of a key, if it is in the state. */
  get(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  entry(key: string): KeyedEntry<V> | undefined {
    return this.map.get(key);
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  *values(): IterableIterator<V> {
    for (const e of this.map.values()) yield e.value;
  }

  /** [key, value] pairs, as a Map iterates. */
  *[Symbol.iterator](): IterableIterator<[string, V]> {
    for (const e of this.map.values()) yield [e.key, e.value];
  }

  entries(): IterableIterator<KeyedEntry<V>> {
    return this.map.values();
  }

  /**
   * Adds (or replaces) the state of `key`, dirty, and queues its deadline. A replaced entry is
   * dropped with its pending row (its queue entries go stale), and so is the key's tombstone.
   */
  add(key: string, value: V, dirty = true): KeyedEntry<V> {
    const old = this.map.get(key);
    if (old) {
      old.dirty = false;
      old.gone = true;
    }
    return this.insert(key, value, dirty);
  }

  /**
   * `add` for a key the caller just found absent (`entry` returned undefined): one lookup less
   * on the hot path of a new key (a window's new accumulator).
   */
  insert(key: string, value: V, dirty = true): KeyedEntry<V> {
    if (this.opts.tombstone && this.tombstones.delete(key)) this.tombstoneChanged(key);
    const e: KeyedEntry<V> = { key, value, dirty: false, closed: false, queued: NONE, unsaved: false, gone: false };
    this.map.set(key, e);
    this.changed(e);
    // Without rows (state only, e.g. churn's views) nothing is ever listed as changed.
    if (dirty) this.markDirty(e);
    this.schedule(e);
    return e;
  }

  /**
   * Marks an entry changed (its row is due again) and queues its deadline if it moved earlier
   * than the one queued (a later one is found when the queued one fires).
   */
  touch(e: KeyedEntry<V>): void {
    this.markDirty(e);
    this.schedule(e);
  }

  /** Marks an entry changed without looking at its deadline (it did not move). */
  markDirty(e: KeyedEntry<V>): void {
    if (!e.unsaved) this.changed(e);
    if (e.dirty) return;
    e.dirty = true;
    (e.closed ? this.dirtyClosed : this.dirtyOpen).push(e);
  }

  /** Lists an entry for the next checkpoint: its value changed in place (without a row due). */
  changed(e: KeyedEntry<V>): void {
    if (e.unsaved || this.overflowed) return;
    e.unsaved = true;
    if (this.unsaved.push(e) > this.trackLimit()) this.overflow();
  }

  /**
   * More changes listed than max(1024, 2 × entries): a delta would be larger than the state, so
   * tracking stops (bounded memory) until the next full checkpoint (`takeChanges` returns null).
   */
  private trackLimit(): number {
    return Math.max(1024, 2 * this.map.size);
  }

  private overflow(): void {
    this.clearChanges();
    this.overflowed = true;
  }

  /** Queues the entry's deadline if none is queued or it is earlier than the one queued. */
  schedule(e: KeyedEntry<V>): void {
    if (e.closed) return;
    const d = this.deadline(e.value);
    if (d === undefined) return;
    if (Number.isNaN(e.queued) || d < e.queued) {
      e.queued = d;
      this.deadlines.push(d, e);
    }
  }

  /** The deadline of an open entry: its close, or (no closing) its forget deadline. */
  private deadline(v: V): number | undefined {
    return this.opts.closeAt ? this.opts.closeAt(v) : this.opts.forgetAt?.(v);
  }

  private live(e: KeyedEntry<V>): boolean {
    return !e.gone;
  }

  /**
   * The watermark pass: closes the entries whose close deadline it reached (their final rows go
   * to `emit` with those of closed entries changed since), then forgets the entries whose forget
   * deadline it reached (a forgotten entry's pending row is written first) and drops expired
   * tombstones. Costs O(due · log n).
   */
  advance(watermarkMs: number, emit?: (e: KeyedEntry<V>, final: boolean) => void): void {
    this.policy.observe(watermarkMs);
    const closing = !!this.opts.closeAt;
    for (let e = this.deadlines.popDue(watermarkMs); e !== undefined; e = this.deadlines.popDue(watermarkMs)) {
      // Stale: closed since, or forgotten (and maybe replaced by a new entry of the same key).
      if (e.closed || !this.live(e)) continue;
      const d = this.deadline(e.value)!;
      if (watermarkMs >= d) {
        if (!closing) {
          this.forget(e, emit);
          continue;
        }
        e.closed = true;
        e.queued = NONE;
        this.changed(e);
        this.opts.onClose?.(e, d);
        // Its final row: listed with the closed ones even if it was dirty while open.
        if (this.opts.finalRow !== false || e.dirty) {
          e.dirty = false;
          this.markDirty(e);
        }
        const f = this.opts.forgetAt ? this.opts.forgetAt(e.value) : d;
        this.forgets.push(f, e);
      } else if (e.queued <= watermarkMs) {
        // The deadline moved later since it was queued (newer events): queue the real one.
        e.queued = d;
        this.deadlines.push(d, e);
      }
      // else an older entry of a deadline that moved earlier; the live one is still queued.
    }
    if (closing) {
      this.flushClosed(emit);
      for (let e = this.forgets.popDue(watermarkMs); e !== undefined; e = this.forgets.popDue(watermarkMs)) {
        if (this.live(e)) this.forget(e, emit);
      }
    }
    const t = this.opts.tombstone;
    if (t) {
      for (let x = this.tombstoneQueue.popDue(watermarkMs); x !== undefined; x = this.tombstoneQueue.popDue(watermarkMs)) {
        if (this.tombstones.get(x[0]) === x[1]) {
          this.tombstones.delete(x[0]);
          this.tombstoneChanged(x[0]);
        }
      }
    }
  }

  /** Removes an entry now (writing its pending row), leaving a tombstone if the store keeps them. */
  forget(e: KeyedEntry<V>, emit?: (e: KeyedEntry<V>, final: boolean) => void): void {
    if (e.dirty && emit) emit(e, true);
    e.dirty = false;
    e.gone = true;
    this.map.delete(e.key);
    if (!this.overflowed && this.removed.add(e.key).size > this.trackLimit()) this.overflow();
    const t = this.opts.tombstone;
    if (t) this.setTombstone(e.key, t.time(e.value));
  }

  setTombstone(key: string, time: number): void {
    this.tombstones.set(key, time);
    this.tombstoneChanged(key);
    this.tombstoneQueue.push(this.opts.tombstone!.until(time), [key, time]);
  }

  private tombstoneChanged(key: string): void {
    if (!this.overflowed && this.tombstonesChanged.add(key).size > this.trackLimit()) this.overflow();
  }

  /** Rows of closed entries changed since their last row (final rows are never held back). */
  flushClosed(emit?: (e: KeyedEntry<V>, final: boolean) => void): number {
    if (this.dirtyClosed.length === 0) return 0;
    const list = this.dirtyClosed;
    this.dirtyClosed = [];
    let n = 0;
    for (const e of list) {
      if (!e.dirty || !this.live(e)) continue;
      e.dirty = false;
      this.changed(e);
      if (emit) emit(e, true);
      n++;
    }
    return n;
  }

  /** Update rows of open entries changed since their last row, whatever the policy says. */
  flushOpen(emit?: (e: KeyedEntry<V>, final: boolean) => void): number {
    this.ageMarks = [];
    if (this.dirtyOpen.length === 0) return 0;
    const list = this.dirtyOpen;
    this.dirtyOpen = [];
    let n = 0;
    for (const e of list) {
      // Closed since it was listed: it is in the closed list (or written) already.
      if (!e.dirty || e.closed || !this.live(e)) continue;
      e.dirty = false;
      this.changed(e);
      if (emit) emit(e, false);
      n++;
    }
    return n;
  }

  /**
   * Update rows of open entries that turned dirty at least `minAgeMs` ago (processing time, as the
   * calls tell it: `nowMs` of each call marks how far the list of changed entries had grown by
   * then). An entry is written at most once per `minAgeMs`, and its latest change at most about
   * `minAgeMs` plus the time between two calls after it happened: a key updated every few seconds
   * gets one row per `minAgeMs` instead of one per commit cycle, and since entries turn dirty
   * spread over time, so are their rows (no burst of every open entry at once). The rows held
   * back stay dirty (their marks are checkpointed; a restored entry counts as changed at the
   * first call after the restore).
   */
  flushOpenAged(nowMs: number, minAgeMs: number, emit?: (e: KeyedEntry<V>, final: boolean) => void): number {
    const cutoff = nowMs - minAgeMs;
    let upTo = 0;
    let k = 0;
    while (k < this.ageMarks.length && this.ageMarks[k]!.atMs <= cutoff) upTo = this.ageMarks[k++]!.end;
    let n = 0;
    if (upTo > 0) {
      const list = this.dirtyOpen;
      for (let i = 0; i < upTo; i++) {
        const e = list[i]!;
        // Closed since it was listed (it is in the closed list, or written), or no longer the key's.
        if (!e.dirty || e.closed || !this.live(e)) continue;
        e.dirty = false;
        this.changed(e);
        if (emit) emit(e, false);
        n++;
      }
      this.dirtyOpen = list.slice(upTo);
      this.ageMarks = this.ageMarks.slice(k).map((m) => ({ end: m.end - upTo, atMs: m.atMs }));
    }
    const last = this.ageMarks.at(-1);
    if (this.dirtyOpen.length > (last?.end ?? 0)) this.ageMarks.push({ end: this.dirtyOpen.length, atMs: nowMs });
    return n;
  }

  /**
   * The commit cycle's rows (Processor.onFlush): closed entries' final rows always, open entries'
   * update rows as the emit policy says (`full`: all of them).
   */
  flush(full: boolean, emit: (e: KeyedEntry<V>, final: boolean) => void, watermarkMs?: number): number {
    let n = this.flushClosed(emit);
    if (this.policy.due(full, watermarkMs)) n += this.flushOpen(emit);
    return n;
  }

  /** Open entries whose rows are pending, in the order they turned dirty (for tests and sizes). */
  pendingOpen(): number {
    let n = 0;
    for (const e of this.dirtyOpen) if (e.dirty && !e.closed && this.live(e)) n++;
    return n;
  }

  /**
   * Puts a checkpointed entry back, with its indices (deadline, pending row, closed state); an
   * entry of a delta replaces the key's entry (the old one's queue entries go stale). Not listed
   * as changed: it is what the checkpoint holds.
   */
  restore(key: string, value: V, dirty: boolean, closed: boolean): KeyedEntry<V> {
    const old = this.map.get(key);
    if (old) {
      old.dirty = false;
      old.gone = true;
    }
    const e: KeyedEntry<V> = { key, value, dirty: false, closed, queued: NONE, unsaved: false, gone: false };
    this.map.set(key, e);
    if (closed) {
      const f = this.opts.forgetAt ? this.opts.forgetAt(value) : this.opts.closeAt!(value);
      this.forgets.push(f, e);
    } else this.schedule(e);
    if (dirty) {
      e.dirty = true;
      (closed ? this.dirtyClosed : this.dirtyOpen).push(e);
    }
    return e;
  }

  /** A delta's removed key (restore): gone without a row or a tombstone (those are in the delta). */
  remove(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    e.dirty = false;
    e.gone = true;
    this.map.delete(key);
  }

  /** A delta's tombstone change (restore): set, or removed when `time` is undefined. */
  restoreTombstone(key: string, time: number | undefined): void {
    if (time === undefined) this.tombstones.delete(key);
    else {
      this.tombstones.set(key, time);
      this.tombstoneQueue.push(this.opts.tombstone!.until(time), [key, time]);
    }
  }

  /** Removes every entry and index (a window that closed as a whole). */
  clear(): void {
    for (const e of this.map.values()) {
      e.dirty = false;
      e.gone = true;
    }
    this.map.clear();
    this.deadlines.clear();
    this.forgets.clear();
    this.dirtyOpen = [];
    this.ageMarks = [];
    this.dirtyClosed = [];
    this.unsaved = [];
    this.removed.clear();
    this.cleared = true;
  }

  /** Whether the changes since the last checkpoint are tracked (false: too many; a full one is due). */
  get tracked(): boolean {
    return !this.overflowed;
  }

  /**
   * The changes since the last checkpoint (see the header), and a new chain from here: O(changes).
   * An entry removed and its key added again is an upsert (the new entry), not a delete. Null when
   * the changes were too many to track (the caller writes a full checkpoint).
   */
  takeChanges(): KeyedChanges<V> | null {
    if (this.overflowed) {
      this.clearChanges();
      return null;
    }
    const upserts: KeyedEntry<V>[] = [];
    for (const e of this.unsaved) {
      e.unsaved = false;
      if (this.live(e)) upserts.push(e);
    }
    const deletes: string[] = [];
    for (const k of this.removed) if (!this.map.has(k)) deletes.push(k);
    const tombstones: Array<[string, number]> = [];
    const tombstonesRemoved: string[] = [];
    for (const k of this.tombstonesChanged) {
      const t = this.tombstones.get(k);
      if (t === undefined) tombstonesRemoved.push(k);
      else tombstones.push([k, t]);
    }
    const changes = { cleared: this.cleared, upserts, deletes, tombstones, tombstonesRemoved };
    this.clearChanges();
    return changes;
  }

  /** Forgets the change tracking: the state as it is now is checkpointed in full (or was just restored). */
  clearChanges(): void {
    for (const e of this.unsaved) e.unsaved = false;
    this.unsaved = [];
    this.removed.clear();
    this.tombstonesChanged.clear();
    this.cleared = false;
    this.overflowed = false;
  }

  /** Changes listed since the last checkpoint (an upper bound: entries, removed keys, tombstones). */
  pendingChanges(): number {
    return this.unsaved.length + this.removed.size + this.tombstonesChanged.size;
  }
}
