import { describe, expect, it } from 'vitest';
import {
  closeExpired,
  closeTimeMs,
  hopping,
  isClosed,
  isLate,
  mergeSessions,
  openWindowsFor,
  session,
  tumbling,
  windowsFor,
} from '../../processors/core/windows.js';
import { advanceIdle, isIdle, newPartitionTime, NO_TIME, observe } from '../../processors/core/watermark.js';
import { deserializeDedup, dedupSize, expireDedup, newDedup, seenBefore, serializeDedup } from '../../processors/core/dedup.js';
import { WindowStore } from '../../processors/core/processor.js';

const MIN = 60_000;

describe('tumbling windows', () => {
  const spec = tumbling(MIN, 10_000);
  it('aligns to the epoch with inclusive start and exclusive end', () => {
    expect(windowsFor(0, spec)).toEqual([{ startMs: 0, endMs: MIN }]);
    expect(windowsFor(MIN - 1, spec)).toEqual([{ startMs: 0, endMs: MIN }]);
    expect(windowsFor(MIN, spec)).toEqual([{ startMs: MIN, endMs: 2 * MIN }]);
    expect(windowsFor(-1, spec)).toEqual([{ startMs: -MIN, endMs: 0 }]);
  });
  it('closes at end + grace', () => {
    const w = { startMs: 0, endMs: MIN };
    expect(closeTimeMs(w, spec)).toBe(MIN + 10_000);
    expect(isClosed(w, spec, MIN + 9_999)).toBe(false);
    expect(isClosed(w, spec, MIN + 10_000)).toBe(true);
  });
  it('an event is late only once its window closed', () => {
    expect(isLate(30_000, spec, MIN + 9_999)).toBe(false);
    expect(isLate(30_000, spec, MIN + 10_000)).toBe(true);
  });
  it('rejects bad specs', () => {
    expect(() => tumbling(0)).toThrow(RangeError);
    expect(() => tumbling(MIN, -1)).toThrow(RangeError);
  });
});

describe('hopping windows', () => {
  const spec = hopping(5 * MIN, MIN, 0);
  it('an event belongs to size/advance overlapping windows, oldest first', () => {
    const ws = windowsFor(7 * MIN + 5, spec);
    expect(ws.map((w) => w.startMs / MIN)).toEqual([3, 4, 5, 6, 7]);
    for (const w of ws) expect(w.endMs - w.startMs).toBe(5 * MIN);
  });
  it('at a boundary the event starts a new window', () => {
    expect(windowsFor(5 * MIN, spec).map((w) => w.startMs / MIN)).toEqual([1, 2, 3, 4, 5]);
  });
  it('older windows close first; the event stays on time in the newer ones', () => {
    const open = openWindowsFor(7 * MIN + 5, spec, 9 * MIN);
    expect(open.map((w) => w.startMs / MIN)).toEqual([5, 6, 7]);
    expect(isLate(7 * MIN + 5, spec, 12 * MIN)).toBe(true);
  });
  it('advance must not exceed size', () => {
    expect(() => hopping(MIN, 2 * MIN)).toThrow(RangeError);
  });
});

describe('session windows', () => {
  const gap = 10_000;
  const add = (a: number, b: number) => a + b;
  it('events within the gap merge; a bridging event merges two sessions', () => {
    let s = mergeSessions<number>([], 0, gap, 1, add);
    s = mergeSessions(s, 5_000, gap, 1, add);
    s = mergeSessions(s, 25_000, gap, 1, add);
    expect(s.map((x) => [x.startMs, x.lastEventMs, x.acc])).toEqual([
      [0, 5_000, 2],
      [25_000, 25_000, 1],
    ]);
    s = mergeSessions(s, 15_000, gap, 1, add);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ startMs: 0, lastEventMs: 25_000, endMs: 35_000, acc: 4 });
  });
  it('an out-of-order event before a session extends its start', () => {
    let s = mergeSessions<number>([], 20_000, gap, 1, add);
    s = mergeSessions(s, 12_000, gap, 1, add);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ startMs: 12_000, lastEventMs: 20_000 });
  });
  it('closes at last event + gap + grace', () => {
    const spec = session(gap, 5_000);
    const s = mergeSessions<number>([], 0, gap, 1, add);
    expect(closeExpired(s, spec, 14_999).closed).toHaveLength(0);
    expect(closeExpired(s, spec, 15_000).closed).toHaveLength(1);
  });
});

describe('watermarks', () => {
  it('is max event time minus lateness and never goes back', () => {
    const t = newPartitionTime(0);
    expect(t.watermarkMs).toBe(NO_TIME);
    expect(observe(t, 100_000, 5_000, 1)).toBe(95_000);
    expect(observe(t, 50_000, 5_000, 2)).toBe(95_000);
    expect(observe(t, 120_000, 5_000, 3)).toBe(115_000);
  });
  it('idle partitions follow the slowest active partition, after idleAfterMs of processing time', () => {
    const a = newPartitionTime(0);
    const b = newPartitionTime(0);
    observe(a, 10 * MIN, 0, 0);
    observe(b, 2 * MIN, 0, 0);
    const parts = new Map([
      ['a', a],
      ['b', b],
    ]);
    // t = 20 s: nobody idle yet
    expect(advanceIdle(parts, 20_000, 30_000)).toEqual([]);
    // a keeps receiving; b has been quiet for 30 s
    observe(a, 11 * MIN, 0, 30_000);
    expect(isIdle(b, 30_000, 30_000)).toBe(true);
    expect(advanceIdle(parts, 30_000, 30_000)).toEqual(['b']);
    expect(b.watermarkMs).toBe(11 * MIN);
  });
  it('with every partition idle nothing advances', () => {
    const a = newPartitionTime(0);
    observe(a, MIN, 0, 0);
    expect(advanceIdle(new Map([['a', a]]), 60_000, 30_000)).toEqual([]);
  });
});

describe('dedup', () => {
  it('the same event_id twice counts once, within the horizon', () => {
    const d = newDedup(5 * MIN);
    expect(seenBefore(d, 'e1', 1_000)).toBe(false);
    expect(seenBefore(d, 'e1', 1_000)).toBe(true);
    expect(seenBefore(d, 'e2', 1_000)).toBe(false);
  });
  it('forgets buckets older than watermark - horizon, and survives a checkpoint', () => {
    const d = newDedup(2 * MIN);
    seenBefore(d, 'old', 0);
    seenBefore(d, 'new', 5 * MIN);
    const restored = deserializeDedup(JSON.parse(JSON.stringify(serializeDedup(d))));
    expect(seenBefore(restored, 'old', 0)).toBe(true);
    expireDedup(restored, 3 * MIN);
    expect(dedupSize(restored)).toBe(1);
    expect(seenBefore(restored, 'new', 5 * MIN)).toBe(true);
  });
});

describe('WindowStore', () => {
  it('emits updates for dirty keys only, finals at close, and restores clean', () => {
    const store = new WindowStore<{ n: number }>(tumbling(MIN, 0) as never, () => ({ n: 0 }));
    store.update(1_000, 'k', (a) => void a.n++);
    store.update(2_000, 'k', (a) => void a.n++);
    store.update(MIN + 1, 'k', (a) => void a.n++);
    const rows: Record<string, unknown>[] = [];
    const toRow = (ws: number, key: string, a: { n: number }, final: boolean) => ({ ws, key, n: a.n, final });
    store.flushDirty(toRow, (r) => rows.push(r));
    expect(rows).toEqual([
      { ws: 0, key: 'k', n: 2, final: false },
      { ws: MIN, key: 'k', n: 1, final: false },
    ]);
    rows.length = 0;
    store.flushDirty(toRow, (r) => rows.push(r));
    expect(rows).toEqual([]);
    expect(store.isLate(30_000, MIN)).toBe(true);
    store.closeUpTo(MIN, toRow, (r) => rows.push(r));
    expect(rows).toEqual([{ ws: 0, key: 'k', n: 2, final: true }]);
    const copy = new WindowStore<{ n: number }>(tumbling(MIN, 0) as never, () => ({ n: 0 })).load(JSON.parse(JSON.stringify(store.toJSON())));
    expect([...copy.windows.keys()]).toEqual([MIN]);
    rows.length = 0;
    copy.flushDirty(toRow, (r) => rows.push(r));
    expect(rows).toEqual([]);
  });
  it('while behind (flushDue not full), open rows are written once per watermark minute; marks survive a checkpoint; caught up writes all', () => {
    const HOUR = 60 * MIN;
    const mk = () => new WindowStore<{ n: number }>(tumbling(HOUR, 0) as never, () => ({ n: 0 }));
    const store = mk();
    const rows: string[] = [];
    const toRow = (ws: number, key: string, a: { n: number }, final: boolean) => ({ r: `${ws / HOUR}/${key}=${a.n}${final ? 'F' : ''}` });
    const emit = (r: Record<string, unknown>) => rows.push(r.r as string);
    const flush = (s: WindowStore<{ n: number }>, full: boolean) => {
      rows.length = 0;
      s.flushDue(full, toRow, emit);
      return [...rows];
    };
    // Watermark minute 1: the first flush of a minute writes what changed.
    store.update(MIN + 1, 'a', (a) => void a.n++);
    store.closeUpTo(MIN + 1, toRow, emit);
    expect(flush(store, false)).toEqual(['0/a=1']);
    // Same watermark minute, behind: held back, however many cycles pass.
    store.update(MIN + 2, 'a', (a) => void a.n++);
    store.update(MIN + 3, 'b', (a) => void a.n++);
    store.closeUpTo(MIN + 30_000, toRow, emit);
    expect(flush(store, false)).toEqual([]);
    expect(flush(store, false)).toEqual([]);
    // A checkpoint here keeps the held-back marks: the restored store writes them when due.
    const copy = mk().load(JSON.parse(JSON.stringify(store.toJSON())));
    expect(flush(copy, false)).toEqual([]);
    copy.closeUpTo(2 * MIN, toRow, emit);
    expect(flush(copy, false)).toEqual(['0/a=2', '0/b=1']);
    expect(flush(copy, false)).toEqual([]);
    // Caught up (full): everything changed is written at once, in the same minute too.
    store.update(MIN + 4, 'a', (a) => void a.n++);
    expect(flush(store, true)).toEqual(['0/a=3', '0/b=1']);
    // Final rows are never held back: closing writes them, held-back marks or not.
    store.update(MIN + 5, 'b', (a) => void a.n++);
    expect(flush(store, false)).toEqual([]);
    rows.length = 0;
    store.closeUpTo(HOUR, toRow, emit);
    expect(rows).toEqual(['0/a=3F', '0/b=2F']);
    expect(flush(store, true)).toEqual([]);
  });
  it('checkpoints accumulators as value arrays with their shape; reads the object form written before; new fields get init values', () => {
    type Acc = { n: number; ids: string[]; sum: number };
    const init = () => ({ n: 0, ids: [] as string[], sum: 0 });
    const store = new WindowStore<Acc>(tumbling(MIN, 0) as never, init);
    store.update(1, 'a', (x) => void ((x.n = 2), x.ids.push('i1'), (x.sum = 7.5)));
    store.flushDirty(
      () => null,
      () => undefined,
    );
    store.update(MIN + 1, 'b', (x) => void (x.n = 1));
    const json = JSON.parse(JSON.stringify(store.toJSON()));
    expect(json.shape).toEqual(['n', 'ids', 'sum']);
    expect(json.windows).toEqual([
      [0, [['a', [2, ['i1'], 7.5]]]],
      [MIN, [['b', [1, [], 0], 1]]],
    ]);
    const rows = (s: WindowStore<Acc>) => {
      const out: string[] = [];
      s.closeUpTo(
        10 * MIN,
        (ws, k, a, final) => ({ r: `${ws}/${k}=${JSON.stringify(a)}${final ? 'F' : ''}` }),
        (r) => out.push(r.r as string),
      );
      return out;
    };
    const want = rows(new WindowStore<Acc>(tumbling(MIN, 0) as never, init).load(json));
    expect(want).toEqual(['0/a={"n":2,"ids":["i1"],"sum":7.5}F', `${MIN}/b={"n":1,"ids":[],"sum":0}F`]);
    // The form before value arrays: [key, object].
    const legacy = {
      windows: [
        [0, [['a', { n: 2, ids: ['i1'], sum: 7.5 }]]],
        [MIN, [['b', { n: 1, ids: [], sum: 0 }, 1]]],
      ],
      flushedMinute: null,
    };
    const fromLegacy = new WindowStore<Acc>(tumbling(MIN, 0) as never, init).load(legacy as never);
    const dirty: string[] = [];
    fromLegacy.flushDirty(
      (ws, k) => ({ k: `${ws}/${k}` }),
      (r) => dirty.push(r.k as string),
    );
    expect(dirty).toEqual([`${MIN}/b`]);
    expect(rows(new WindowStore<Acc>(tumbling(MIN, 0) as never, init).load(legacy as never))).toEqual(want);
    // A checkpoint from before a field existed: the field starts from init().
    const grown = new WindowStore<Acc & { max: number }>(tumbling(MIN, 0) as never, () => ({ ...init(), max: -1 })).load(json);
    const got: unknown[] = [];
    grown.closeUpTo(
      10 * MIN,
      (_ws, k, a) => ({ k, a }),
      (r) => got.push(r),
    );
    expect(got).toEqual([
      { k: 'a', a: { n: 2, ids: ['i1'], sum: 7.5, max: -1 } },
      { k: 'b', a: { n: 1, ids: [], sum: 0, max: -1 } },
    ]);
  });

  it('an update that changes nothing leaves the entry clean', () => {
    const store = new WindowStore<{ f: number }>(tumbling(MIN, 0) as never, () => ({ f: 0 }));
    store.update(1, 'k', (a) => void (a.f = 1));
    store.flushDirty(
      () => null,
      () => undefined,
    );
    store.update(2, 'k', (a) => (a.f === 1 ? false : void (a.f = 1)));
    let n = 0;
    store.flushDirty(
      () => ({}),
      () => n++,
    );
    expect(n).toBe(0);
  });
});
