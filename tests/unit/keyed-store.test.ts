/**
 * The keyed-state store (processors/core/keyed-store.ts) on its own: close and forget deadlines
 * (moving later lazily, earlier at once), the emit policy, tombstones, and a restore that gives
 * the same deadlines and pending rows. Driven with explicit watermarks: no clock.
 */
import { describe, expect, it } from 'vitest';
import { EmitPolicy, KeyedStore, type KeyedEntry } from '../../processors/core/keyed-store.js';

interface V {
  last: number;
  end: number | null;
  n: number;
  closedAt?: number;
}

const rowsOf = () => {
  const rows: string[] = [];
  return { rows, emit: (e: KeyedEntry<V>, final: boolean) => void rows.push(`${e.key}=${e.value.n}${final ? 'F' : ''}`) };
};

/** QoE-like: closes at end + 10 (or last + 100), forgotten 50 after it closed. */
const mk = () =>
  new KeyedStore<V>(
    {
      closeAt: (v) => (v.end !== null ? v.end + 10 : v.last + 100),
      forgetAt: (v) => v.closedAt! + 50,
      onClose: (e, d) => void (e.value.closedAt = d),
    },
    new EmitPolicy(60),
  );

describe('KeyedStore', () => {
  it('closes at the deadline (a later event moves it later, an end moves it earlier), writes the final row once, forgets after', () => {
    const s = mk();
    const { rows, emit } = rowsOf();
    const a = s.add('a', { last: 0, end: null, n: 1 });
    s.add('b', { last: 0, end: null, n: 1 });
    // a sees a later event: its deadline moves from 100 to 150 (the queued 100 is re-checked).
    a.value.last = 50;
    a.value.n++;
    s.touch(a);
    s.advance(100, emit);
    expect(rows).toEqual(['b=1F']);
    rows.length = 0;
    // An end moves a's deadline earlier (to 70 < 150): queued at once, due at 100 already.
    a.value.end = 60;
    a.value.n++;
    s.touch(a);
    s.advance(100, emit);
    expect(rows).toEqual(['a=3F']);
    expect(s.entry('a')!.closed).toBe(true);
    rows.length = 0;
    // b closed at 100: forgotten at 150; a closed at 70 (its deadline), forgotten at 120.
    s.advance(119, emit);
    expect([...s.keys()].sort()).toEqual(['a', 'b']);
    s.advance(120, emit);
    expect([...s.keys()]).toEqual(['b']);
    s.advance(150, emit);
    expect(s.size).toBe(0);
    expect(rows).toEqual([]);
  });

  it('a closed entry changed again writes its final row again, at the pass or at a flush under load', () => {
    const s = mk();
    const { rows, emit } = rowsOf();
    const a = s.add('a', { last: 0, end: 0, n: 1 });
    s.advance(10, emit);
    expect(rows).toEqual(['a=1F']);
    rows.length = 0;
    a.value.n = 5;
    s.touch(a);
    s.flush(false, emit, 10);
    expect(rows).toEqual(['a=5F']);
  });

  it('open rows: every flush when full, once per policy interval of watermark while behind; pending marks survive a restore', () => {
    const s = mk();
    const { rows, emit } = rowsOf();
    const a = s.add('a', { last: 0, end: null, n: 1 });
    expect(s.flush(false, emit, 0)).toBe(1);
    a.value.n++;
    s.touch(a);
    // Same interval (0..59), behind: held back.
    expect(s.flush(false, emit, 30)).toBe(0);
    expect(s.pendingOpen()).toBe(1);
    // A restore keeps the pending row and the policy's interval.
    const copy = mk();
    copy.policy.load(s.policy.toJSON());
    for (const e of s.entries()) copy.restore(e.key, { ...e.value }, e.dirty, e.closed);
    expect(copy.flush(false, emit, 30)).toBe(0);
    expect(copy.flush(false, emit, 60)).toBe(1);
    expect(copy.flush(false, emit, 61)).toBe(0);
    // Caught up: written at once.
    expect(s.flush(true, emit, 30)).toBe(1);
    expect(rows).toEqual(['a=1', 'a=2', 'a=2']);
  });

  it('live open rows by age: at most one row per entry per interval of processing time, the latest change at most an interval and a call later, spread as the changes were', () => {
    const s = mk();
    const { rows, emit } = rowsOf();
    const a = s.add('a', { last: 0, end: null, n: 1 });
    // The first call marks where the changed entries stand (a changed by t = 0): nothing is 30 s old yet.
    expect(s.flushOpenAged(0, 30_000, emit)).toBe(0);
    s.add('b', { last: 1, end: null, n: 1 });
    // a changes again and again while its row is pending: still one row.
    for (let i = 0; i < 5; i++) {
      a.value.n++;
      s.touch(a);
    }
    expect(s.flushOpenAged(10_000, 30_000, emit)).toBe(0);
    expect(s.pendingOpen()).toBe(2);
    // At 30 s what changed by 0 s is written (a, with every change since), b (changed after 0 s, by 10 s) waits.
    expect(s.flushOpenAged(30_000, 30_000, emit)).toBe(1);
    expect(rows).toEqual(['a=6']);
    // a changes again: listed behind b, written once it is an interval old too.
    a.value.n++;
    s.touch(a);
    expect(s.flushOpenAged(35_000, 30_000, emit)).toBe(0);
    expect(s.flushOpenAged(40_000, 30_000, emit)).toBe(1);
    expect(rows).toEqual(['a=6', 'b=1']);
    // A closed entry is not an open row (its final row is flushClosed's); a full flush writes what is left at once.
    s.advance(150, emit);
    expect(rows.slice(2)).toEqual(['a=7F', 'b=1F']);
    expect(s.flushOpenAged(100_000, 30_000, emit)).toBe(0);
    const c = s.add('c', { last: 200, end: null, n: 1 });
    expect(s.flushOpenAged(100_001, 30_000, emit)).toBe(0);
    c.value.n++;
    s.touch(c);
    expect(s.flush(true, emit, 200)).toBe(1);
    // flushOpen forgot the marks: a change after it waits a whole interval from the next call.
    s.touch(c);
    expect(s.flushOpenAged(100_002, 30_000, emit)).toBe(0);
    expect(s.flushOpenAged(130_001, 30_000, emit)).toBe(0);
    expect(s.flushOpenAged(130_002, 30_000, emit)).toBe(1);
    expect(rows.slice(4)).toEqual(['c=2', 'c=2']);
  });

  it('a store without closing forgets by its forget deadline (lazily moved later) and keeps tombstones for their time', () => {
    const s = new KeyedStore<V>({
      forgetAt: (v) => v.last + 10,
      tombstone: { time: (v) => v.last, until: (t) => t + 20 },
    });
    const x = s.add('x', { last: 0, end: null, n: 0 }, false);
    x.value.last = 5;
    s.advance(10);
    expect(s.has('x')).toBe(true);
    s.advance(15);
    expect(s.has('x')).toBe(false);
    expect(s.tombstones.get('x')).toBe(5);
    s.advance(24);
    expect(s.tombstones.get('x')).toBe(5);
    s.advance(25);
    expect(s.tombstones.has('x')).toBe(false);
    // Without rows nothing is ever pending.
    expect(s.pendingOpen()).toBe(0);
  });

  it('a key added again replaces the old entry: its pending row and queued deadlines are dropped, its tombstone too', () => {
    const s = new KeyedStore<V>({ closeAt: (v) => v.last + 10, finalRow: false, tombstone: { time: (v) => v.last, until: (t) => t + 100 } });
    const { rows, emit } = rowsOf();
    s.add('k', { last: 0, end: null, n: 1 });
    s.add('k', { last: 50, end: null, n: 2 });
    s.advance(10, emit);
    expect(s.has('k')).toBe(true);
    s.flush(true, emit);
    expect(rows).toEqual(['k=2']);
    rows.length = 0;
    // finalRow false: closing writes nothing unless it changed since its last row.
    s.advance(60, emit);
    expect(rows).toEqual([]);
    expect(s.tombstones.get('k')).toBe(50);
    s.add('k', { last: 70, end: null, n: 3 });
    expect(s.tombstones.has('k')).toBe(false);
  });
});
