import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ProcessorTestDriver, type DriverRecord } from '../../processors/core/test-driver.js';
import { qoeProcessor } from '../../processors/qoe/qoe.processor.js';
import { nearestRank } from '../../contracts/metrics-catalog.js';
import { validateEvent } from '../../contracts/validate.js';

type Row = Record<string, unknown>;
const dir = new URL('../golden/qoe/', import.meta.url);
const input = readFileSync(new URL('input.jsonl', dir), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { kind: 'playback'; event: Row });
const expected = JSON.parse(readFileSync(new URL('expected.json', dir), 'utf8')) as { qoe_views: Row[]; qoe_minute: Row[] };
const MINUTE_KEY = ['window_start', 'cdn', 'device_category', 'country', 'asn', 'content_id'];
const SUMS = [
  'concurrent_viewers',
  'views_started',
  'playing_ms',
  'rebuffer_ms',
  'rebuffer_count',
  'seek_ms',
  'startup_wait_ms',
  'bitrate_kbps_ms',
  'views_ended',
  'plays',
  'vsf_views',
  'ebvs_views',
  'business_exception_views',
  'playback_failure_views',
  'fatal_errors',
];

/** Partition = order of the view's first appearance mod n (the tail views G1..G3 land in every partition for n ≤ 3). */
function records(n: number): DriverRecord[] {
  const order = new Map<string, number>();
  return input.map(({ kind, event }) => {
    const id = event.view_id as string;
    if (!order.has(id)) order.set(id, order.size);
    return { kind, partition: order.get(id)! % n, event };
  });
}

function views(d: ProcessorTestDriver<unknown>): Row[] {
  return d.table('qoe_views', ['view_id']).sort((a, b) => String(a.view_id).localeCompare(String(b.view_id)));
}

/** Minute rows combined across source partitions, as the qoe_minute_all view does. */
function minutes(d: ProcessorTestDriver<unknown>): Row[] {
  const out = new Map<string, Row>();
  for (const r of d.table('qoe_minute', MINUTE_KEY)) {
    const k = JSON.stringify(MINUTE_KEY.map((c) => r[c]));
    let acc = out.get(k);
    if (!acc)
      out.set(k, (acc = { ...Object.fromEntries(MINUTE_KEY.map((c) => [c, r[c]])), ...Object.fromEntries(SUMS.map((c) => [c, 0])), samples: [] as number[] }));
    for (const c of SUMS) (acc[c] as number) += r[c] as number;
    (acc.samples as number[]).push(...(r.startup_ms_samples as number[]));
  }
  return [...out.values()].map(({ samples, ...r }) => ({
    ...r,
    startup_p50_ms: nearestRank(samples as number[], 0.5),
    startup_p95_ms: nearestRank(samples as number[], 0.95),
  }));
}

function expectRows(actual: Row[], want: Row[], key: string[]): void {
  const id = (r: Row) => JSON.stringify(key.map((c) => r[c]));
  expect(actual.map(id).sort()).toEqual(want.map(id).sort());
  for (const w of want) {
    const a = actual.find((r) => id(r) === id(w))!;
    for (const [c, v] of Object.entries(w)) {
      if (typeof v === 'number' && !Number.isInteger(v)) expect(a[c], `${id(w)} ${c}`).toBeCloseTo(v, 5);
      else if (typeof v === 'number') expect(Number(a[c]), `${id(w)} ${c}`).toBeCloseTo(v, 5);
      else expect(a[c], `${id(w)} ${c}`).toEqual(v);
    }
  }
}

function check(d: ProcessorTestDriver<unknown>): void {
  expectRows(views(d), expected.qoe_views, ['view_id']);
  expectRows(minutes(d), expected.qoe_minute, MINUTE_KEY);
  expect(d.emitted.get('late_events') ?? []).toEqual([]);
}

const driver = () => new ProcessorTestDriver(qoeProcessor()) as unknown as ProcessorTestDriver<unknown>;

describe('qoe golden', () => {
  it('every input event is a valid PlaybackEvent', () => {
    for (const { event } of input) expect(validateEvent('playback', event).ok).toBe(true);
  });

  it('straight run gives the expected rows; finished views are final, the tail views still open', () => {
    const d = driver();
    d.pipe(records(1));
    d.flush();
    check(d);
    const v = views(d);
    for (const r of v) expect(r.is_final, String(r.view_id)).toBe(String(r.view_id).startsWith('view-G') ? 0 : 1);
  });

  it('event by event (one batch per event) gives the same rows', () => {
    const d = driver();
    for (const r of records(1)) d.pipe([r]);
    d.flush();
    check(d);
  });

  it('checkpoint in the middle, crash, restore and re-process gives the same rows', () => {
    for (const cut of [7, 19, 30]) {
      const recs = records(1);
      const d = driver();
      d.pipe(recs.slice(0, cut));
      const ckpt = d.checkpoint();
      d.pipe(recs.slice(cut, cut + 5)); // processed, then lost in the crash
      d.restore(ckpt);
      d.pipe(recs.slice(cut + 5));
      d.flush();
      check(d);
    }
  });

  it('live cycles (open views written by age, at most once per 30 s of processing time) and a last full flush give the same rows', () => {
    const d = driver();
    // Processing time follows event time (a live consumer); a commit cycle after every event.
    const openRows = new Map<string, number[]>();
    let seen = 0;
    for (const r of records(1)) {
      d.nowMs = r.event.event_time as number;
      d.pipe([r]);
      d.flushLive();
      const rows = d.emitted.get('qoe_views') ?? [];
      for (const row of rows.slice(seen))
        if (row.is_final === 0) (openRows.get(String(row.view_id)) ?? openRows.set(String(row.view_id), []).get(String(row.view_id))!).push(d.nowMs);
      seen = rows.length;
    }
    d.flush();
    check(d);
    // Some open view rows, none within 30 s of the view's previous one.
    expect(openRows.size).toBeGreaterThan(0);
    for (const [id, at] of openRows) for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!, id).toBeGreaterThanOrEqual(30_000);
    // Fewer rows than a cycle that writes every changed open view.
    const every = driver();
    for (const r of records(1)) {
      every.nowMs = r.event.event_time as number;
      every.pipe([r]);
      every.flush();
    }
    expect(d.emitted.get('qoe_views')!.length).toBeLessThan(every.emitted.get('qoe_views')!.length);
  });

  it.each([2, 3])('split across %i partitions gives the same rows', (n) => {
    const d = driver();
    d.pipe(records(n));
    d.flush();
    check(d);
  });

  it('a straggler after the view was finalised still corrects its row (late for qoe_minute only)', () => {
    const recs = records(1);
    const d = driver();
    const withoutEnd = recs.filter((r) => !(r.event.view_id === 'view-A' && r.event.event_type === 'view_end'));
    d.pipe(withoutEnd);
    // Without its view_end, A timed out (the tail is 62 min later): final row with dropped = 1.
    expect(views(d).find((r) => r.view_id === 'view-A')).toMatchObject({ dropped: 1, ended: 0, is_final: 1 });
    const aEnd = recs.find((r) => r.event.view_id === 'view-A' && r.event.event_type === 'view_end')!;
    d.pipe([aEnd]);
    d.flush();
    const a = views(d).find((r) => r.view_id === 'view-A')!;
    expect(a).toMatchObject({ ended: 1, dropped: 0, is_final: 1 });
    expect(a.watch_ms).toBe(60000);
    // The end arrived after its minute closed: late for qoe_minute, merged into the view.
    expect((d.emitted.get('late_events') ?? []).map((r) => r.reason)).toEqual(['minute_closed']);
  });

  it('one rebuffer percentage (issue 18): watch time includes startup and the wait of views that never played, in minute rows as by view end', () => {
    const d = driver();
    d.pipe(records(1));
    d.flush();
    const m = minutes(d);
    // The catalog's formula (contracts/metrics-catalog.ts, rebuffer_pct):
    //   rebuffer % = 100 × Σ rebuffer_ms ÷ Σ watch_ms, watch_ms = startup (or wait) + playing + rebuffer + seek.
    const watch = (r: Row) => (r.startup_wait_ms as number) + (r.playing_ms as number) + (r.rebuffer_ms as number) + (r.seek_ms as number);
    // akamai minute 0 (views A, B, D): startup/wait = A's startup 2 000 + B's VSF wait 5 000 + D's
    // business-exception wait 1 500 = 8 500; watch = 8 500 + playing 33 000 + rebuffer 5 000 + seek 0
    // = 46 500; rebuffer % = 100 × 5 000 ÷ 46 500 = 10.7527 % (without startup it read 5 000 ÷ 38 000 = 13.16 %).
    const akamai0 = m.find((r) => r.cdn === 'akamai' && r.window_start === 1704067200)!;
    expect(watch(akamai0)).toBe(46_500);
    expect((100 * (akamai0.rebuffer_ms as number)) / watch(akamai0)).toBeCloseTo(10.752688, 5);
    // cloudfront minute 0 (C, F): F's startup 1 000 + C's EBVS wait 13 000 = 14 000.
    expect(m.find((r) => r.cdn === 'cloudfront' && r.window_start === 1704067200)!.startup_wait_ms).toBe(14_000);
    // Every view's watch time is in the minute rows exactly once: Σ watch over the minutes =
    // Σ watch_ms of the views = A 60 000 + B 5 000 + C 13 000 + D 1 500 + E 35 000 + F 30 000 +
    // G1-G3 3 × 2 000 = 150 500, so the real-time and the by-view-end percentage over the same views
    // agree (only A stalls: 5 000 ms), 100 × 5 000 ÷ 150 500 = 3.3223 % both ways.
    const minuteWatch = m.reduce((s, r) => s + watch(r), 0);
    const viewWatch = views(d).reduce((s, r) => s + (r.watch_ms as number), 0);
    expect(minuteWatch).toBe(150_500);
    expect(viewWatch).toBe(150_500);
    const minuteReb = m.reduce((s, r) => s + (r.rebuffer_ms as number), 0);
    const viewReb = views(d).reduce((s, r) => s + (r.rebuffer_ms as number), 0);
    expect(minuteReb).toBe(5_000);
    expect(viewReb).toBe(5_000);
    expect((100 * minuteReb) / minuteWatch).toBeCloseTo((100 * viewReb) / viewWatch, 12);
    expect((100 * minuteReb) / minuteWatch).toBeCloseTo(3.322259, 5); // 100 × 5 000 ÷ 150 500
  });
});
