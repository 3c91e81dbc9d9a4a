/**
 * The event-time indices that keep watermark passes and flushes O(changed): QoE's finalisation
 * deadlines, retention expiry and dirty set, churn's idle-view expiry, safety's case expiry and
 * WindowStore's dirty list. Processors are driven directly with an explicit watermark (no clock,
 * no runner), and every index must come back from a checkpoint.
 */
import { describe, expect, it } from 'vitest';
import type { EventKind } from '../../contracts/topics.js';
import { DeadlineQueue } from '../../processors/core/deadline-queue.js';
import { type Processor, type ProcessContext, type RecordRef, WindowStore } from '../../processors/core/processor.js';
import { tumbling } from '../../processors/core/windows.js';
import { qoeProcessor, type QoeState } from '../../processors/qoe/qoe.processor.js';
import { churnProcessor, type ChurnState } from '../../processors/churn/churn.processor.js';
import { safetyProcessor, type SafetyState } from '../../processors/safety/safety.processor.js';

type Row = Record<string, unknown>;
const T = Date.UTC(2026, 0, 5, 10, 0, 0);
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Drives a processor's hooks by hand: process at a given watermark, watermark passes, flushes. */
class Harness<S> {
  rows: Array<[string, Row]> = [];
  late: string[] = [];
  offset = 0;
  constructor(
    readonly p: Processor<S>,
    public state: S,
    readonly kind: EventKind,
  ) {}
  private readonly out = { emit: (table: string, row: Row) => void this.rows.push([table, row]) };
  process(event: Row, wm: number, kind: EventKind = this.kind): void {
    const rec: RecordRef = { topic: `t.${kind}`, kind, partition: 0, offset: this.offset++, timestampMs: 0 };
    const ctx: ProcessContext = {
      watermarkMs: wm,
      emit: this.out.emit,
      late: (reason) => void this.late.push(reason),
      lateFiring: () => undefined,
      reject: (errorClass, reason) => void this.late.push(`${errorClass}: ${reason}`),
    };
    this.p.process(this.state, event, rec, ctx);
  }
  watermark(wm: number): void {
    this.p.onWatermark(this.state, wm, this.out);
  }
  flush(full = true): void {
    this.p.onFlush(this.state, this.out, full);
  }
  /** Final rows (is_final = 1) emitted since the last call, of one table (open rows are dropped). */
  takeFinal(table: string): Row[] {
    return this.take(table).filter((r) => r.is_final === 1);
  }
  /** Rows emitted since the last call, of one table. */
  take(table: string): Row[] {
    const r = this.rows.filter(([t]) => t === table).map(([, row]) => row);
    this.rows = this.rows.filter(([t]) => t !== table);
    return r;
  }
  /** A crash and restore from a JSON checkpoint. */
  restore(): void {
    this.state = this.p.deserialize(JSON.parse(JSON.stringify(this.p.serialize(this.state))));
  }
}

let seq = 0;
function playback(viewId: string, type: string, t: number, extra: Row = {}): Row {
  seq++;
  return {
    event_id: `e-${viewId}-${seq}`,
    event_time: t,
    view_id: viewId,
    seq,
    event_type: type,
    player_state: type === 'heartbeat' ? 'playing' : type === 'view_end' ? 'ended' : 'starting',
    viewer_id: 'viewer-1',
    account_id: 'acct-1',
    content_id: 'title-1',
    stream_type: 'vod',
    creator_id: null,
    device_category: 'tv',
    os: 'tizen',
    app_version: '1.0',
    cdn: 'akamai',
    country: 'NP',
    asn: 1,
    ...extra,
  };
}

describe('DeadlineQueue', () => {
  it('pops in time order, only what is due', () => {
    const q = new DeadlineQueue<string>();
    for (const [t, x] of [
      [5, 'e'],
      [1, 'a'],
      [3, 'c'],
      [2, 'b'],
      [4, 'd'],
      [3, 'c2'],
    ] as const)
      q.push(t, x);
    expect(q.popDue(0)).toBeUndefined();
    const got: string[] = [];
    for (let x = q.popDue(3); x !== undefined; x = q.popDue(3)) got.push(x);
    expect(got.slice(0, 2)).toEqual(['a', 'b']);
    expect(got.slice(2).sort()).toEqual(['c', 'c2']);
    expect(q.popBefore(4)).toBeUndefined();
    expect(q.popBefore(4.5)).toBe('d');
    expect(q.peekTime()).toBe(5);
    expect(q.size).toBe(1);
  });
});

describe('QoE view indices', () => {
  const p = qoeProcessor();
  const harness = () => new Harness<QoeState>(p, p.init({ topic: 't.playback', kind: 'playback', partition: 0 }), 'playback');

  it('a view_end after many heartbeats finalises at end + grace, once', () => {
    const h = harness();
    h.process(playback('v1', 'view_start', T), T - 5_000);
    h.process(playback('v1', 'first_frame', T + 1_000), T - 4_000);
    // 30 heartbeats: the deadline moves later (last event + 60 min) without new queue entries.
    for (let i = 1; i <= 30; i++) {
      h.process(playback('v1', 'heartbeat', T + i * 10_000, { cum_playing_ms: i * 10_000 }), T + i * 10_000 - 5_000);
      h.watermark(T + i * 10_000 - 5_000);
    }
    const end = T + 300_500;
    h.process(playback('v1', 'view_end', end, { cum_playing_ms: 300_000, end_reason: 'user_exit' }), end - 5_000);
    h.watermark(end + MIN - 1);
    expect(h.takeFinal('qoe_views')).toEqual([]);
    h.watermark(end + MIN);
    const final = h.takeFinal('qoe_views');
    expect(final).toHaveLength(1);
    expect(final[0]).toMatchObject({ view_id: 'v1', is_final: 1, ended: 1, dropped: 0, view_end: end });
    // The stale timeout entry (first event + 60 min) fires later and changes nothing.
    h.watermark(T + HOUR + MIN);
    h.flush();
    expect(h.takeFinal('qoe_views')).toEqual([]);
  });

  it('a view without view_end times out at last event + 60 min (dropped), not at first event + 60 min', () => {
    const h = harness();
    h.process(playback('v2', 'view_start', T), T);
    h.process(playback('v2', 'heartbeat', T + 10 * MIN, { cum_playing_ms: 600_000 }), T + 10 * MIN);
    h.watermark(T + HOUR);
    h.watermark(T + 70 * MIN - 1);
    expect(h.takeFinal('qoe_views')).toEqual([]);
    h.watermark(T + 70 * MIN);
    expect(h.takeFinal('qoe_views')).toEqual([expect.objectContaining({ view_id: 'v2', is_final: 1, dropped: 1, ended: 0 })]);
  });

  it('a straggler after finalisation re-emits the final row (at the next pass, or at the flush)', () => {
    const h = harness();
    h.process(playback('v3', 'view_start', T), T);
    h.process(playback('v3', 'heartbeat', T + 10_000, { cum_playing_ms: 10_000 }), T + 10_000);
    h.watermark(T + 10_000 + HOUR);
    expect(h.take('qoe_views')).toEqual([expect.objectContaining({ view_id: 'v3', is_final: 1, dropped: 1 })]);
    // A late view_end: the view is finalised already, so its corrected row is final at once.
    h.process(playback('v3', 'view_end', T + 20_000, { cum_playing_ms: 20_000 }), T + 10_000 + HOUR);
    h.watermark(T + 10_000 + HOUR + 1);
    expect(h.take('qoe_views')).toEqual([expect.objectContaining({ view_id: 'v3', is_final: 1, dropped: 0, ended: 1, playing_ms: 20_000 })]);
    h.flush();
    expect(h.take('qoe_views')).toEqual([]);
    // Another straggler while the watermark stands still: the flush writes it (still final).
    h.process(playback('v3', 'heartbeat', T + 15_000, { cum_rebuffer_ms: 500 }), T + 10_000 + HOUR + 1);
    h.watermark(T + 10_000 + HOUR + 1);
    expect(h.take('qoe_views')).toEqual([]);
    h.flush();
    expect(h.take('qoe_views')).toEqual([expect.objectContaining({ view_id: 'v3', is_final: 1, rebuffer_ms: 500 })]);
  });

  it('a finalised view is retained for retainMs of event time, then forgotten', () => {
    const h = harness();
    h.process(playback('v4', 'view_start', T), T);
    h.process(playback('v4', 'view_end', T + MIN), T + MIN);
    const finalisedAt = T + 2 * MIN;
    h.watermark(finalisedAt);
    expect(h.takeFinal('qoe_views')).toHaveLength(1);
    h.watermark(finalisedAt + 2 * HOUR - 1);
    expect(h.state.views.has('v4')).toBe(true);
    h.watermark(finalisedAt + 2 * HOUR);
    expect(h.state.views.has('v4')).toBe(false);
    // Now a straggler is late (merging it would replace the final row with a partial one).
    h.process(playback('v4', 'heartbeat', T + 30_000), finalisedAt + 2 * HOUR);
    expect(h.late).toEqual(['view_expired']);
    expect(h.state.views.has('v4')).toBe(false);
  });

  it('a flush writes only the views changed since the last one', () => {
    const h = harness();
    h.process(playback('a', 'view_start', T), T);
    h.process(playback('b', 'view_start', T), T);
    h.flush();
    expect(h.take('qoe_views').map((r) => [r.view_id, r.is_final])).toEqual([
      ['a', 0],
      ['b', 0],
    ]);
    h.process(playback('b', 'heartbeat', T + 10_000, { cum_playing_ms: 9_000 }), T + 5_000);
    h.watermark(T + 5_000);
    h.flush();
    expect(h.take('qoe_views').map((r) => r.view_id)).toEqual(['b']);
    h.flush();
    expect(h.take('qoe_views')).toEqual([]);
  });

  it('under load, changed open views are written once per watermark minute; a full flush writes the rest, a checkpoint keeps them pending', () => {
    const h = harness();
    h.process(playback('m1', 'view_start', T), T);
    h.process(playback('m2', 'view_start', T + 1_000), T);
    // Commit cycles under load (full = false) hold open views back.
    h.flush(false);
    expect(h.take('qoe_views')).toEqual([]);
    for (let i = 1; i <= 5; i++) h.process(playback('m1', 'heartbeat', T + i * 10_000, { cum_playing_ms: i * 10_000 }), T + i * 10_000 - 5_000);
    h.flush(false);
    expect(h.take('qoe_views')).toEqual([]);
    // The first record whose watermark enters the next minute writes both views once, as they
    // were before it (m1 with 5 heartbeats, 50 s played).
    h.process(playback('m1', 'heartbeat', T + 70_000, { cum_playing_ms: 70_000 }), T + MIN + 5_000);
    expect(h.take('qoe_views').map((r) => [r.view_id, r.is_final, r.playing_ms])).toEqual([
      ['m1', 0, 50_000],
      ['m2', 0, 0],
    ]);
    h.process(playback('m1', 'heartbeat', T + 80_000, { cum_playing_ms: 80_000 }), T + MIN + 15_000);
    expect(h.take('qoe_views')).toEqual([]);
    // A checkpoint and restore keep m1's pending row; a full flush (caught up) writes it.
    h.restore();
    h.flush(false);
    expect(h.take('qoe_views')).toEqual([]);
    h.flush(true);
    expect(h.take('qoe_views').map((r) => [r.view_id, r.playing_ms])).toEqual([['m1', 80_000]]);
    h.flush(true);
    expect(h.take('qoe_views')).toEqual([]);
  });

  it('the indices are rebuilt from a checkpoint (same finalisation and expiry points)', () => {
    const h = harness();
    h.process(playback('open', 'view_start', T), T);
    h.process(playback('open', 'heartbeat', T + 20 * MIN), T + 20 * MIN);
    h.process(playback('ending', 'view_start', T + 20 * MIN), T + 20 * MIN);
    h.process(playback('ending', 'view_end', T + 21 * MIN), T + 21 * MIN);
    h.process(playback('done', 'view_start', T), T);
    h.process(playback('done', 'view_end', T + MIN), T + 21 * MIN);
    h.watermark(T + 21 * MIN);
    expect(h.takeFinal('qoe_views').map((r) => r.view_id)).toEqual(['done']);
    h.restore();
    h.watermark(T + 22 * MIN);
    expect(h.takeFinal('qoe_views').map((r) => [r.view_id, r.is_final, r.dropped])).toEqual([['ending', 1, 0]]);
    h.watermark(T + 80 * MIN);
    expect(h.takeFinal('qoe_views').map((r) => [r.view_id, r.is_final, r.dropped])).toEqual([['open', 1, 1]]);
    // 'done' was finalised at T + 2 min: forgotten 2 h later.
    h.watermark(T + 2 * MIN + 2 * HOUR);
    expect([...h.state.views.keys()].sort()).toEqual(['ending', 'open']);
  });

  it('reads a checkpoint whose views are objects (the format before tuples)', () => {
    const h = harness();
    h.process(playback('old', 'view_start', T), T);
    h.process(playback('old', 'view_end', T + MIN), T + MIN);
    const json = p.serialize(h.state) as { views: unknown[] };
    const legacy = { views: [...h.state.views.values()].map((v) => ({ ...v, dirty: false })), minute: (json as unknown as { minute: unknown }).minute };
    h.state = p.deserialize(JSON.parse(JSON.stringify(legacy)));
    h.watermark(T + 2 * MIN);
    expect(h.takeFinal('qoe_views')).toEqual([expect.objectContaining({ view_id: 'old', is_final: 1, ended: 1 })]);
  });
});

describe('churn idle-view expiry', () => {
  const p = churnProcessor();
  it('forgets a view one day after its last event, however many batches passed', () => {
    const h = new Harness<ChurnState>(p, p.init({ topic: 't.playback', kind: 'playback', partition: 0 }), 'playback');
    h.process(playback('cv', 'view_start', T), T);
    h.process(playback('cv', 'heartbeat', T + 2 * HOUR, { cum_playing_ms: 1_000 }), T + 2 * HOUR);
    h.watermark(T + DAY + 1);
    expect(h.state.views.has('cv')).toBe(true);
    h.restore();
    h.watermark(T + 2 * HOUR + DAY);
    expect(h.state.views.has('cv')).toBe(true);
    h.watermark(T + 2 * HOUR + DAY + 1);
    expect(h.state.views.has('cv')).toBe(false);
    // The same view id seen again starts a new state, which is indexed too.
    h.process(playback('cv', 'heartbeat', T + 2 * HOUR + DAY + 10, { cum_playing_ms: 5_000 }), T + 2 * HOUR + DAY + 1);
    expect(h.state.views.get('cv')?.playing).toBe(5_000);
    h.watermark(T + 2 * HOUR + 2 * DAY + 11);
    expect(h.state.views.has('cv')).toBe(false);
  });
});

describe('churn checkpoints', () => {
  const p = churnProcessor();
  it('views are tuples; a checkpoint with [id, object] views (the format before) restores the same state', () => {
    const h = new Harness<ChurnState>(p, p.init({ topic: 't.playback', kind: 'playback', partition: 0 }), 'playback');
    h.process(playback('cv', 'view_start', T), T);
    h.process(playback('cv', 'first_frame', T + 900), T + 900);
    h.process(playback('cv', 'heartbeat', T + 10_000, { cum_playing_ms: 9_000, cum_rebuffer_ms: 100 }), T + 10_000);
    const json = JSON.parse(JSON.stringify(p.serialize(h.state))) as { views: unknown[][]; days: unknown };
    expect(json.views).toEqual([['cv', 'acct-1', T, 1, 9_000, 100, 0, T + 10_000]]);
    const fromTuples = p.deserialize(json);
    const legacy = p.deserialize({ days: json.days, views: [...h.state.views] });
    // The views' state, without the day entry cached from their last event (derived, not checkpointed).
    const views = (st: ChurnState) => [...st.views].map(([k, { dayEntry: _e, dayWs: _w, ...v }]) => [k, v]);
    expect(views(fromTuples)).toEqual(views(h.state));
    expect(views(legacy)).toEqual(views(h.state));
  });
});

describe('safety case expiry', () => {
  const p = safetyProcessor({ caseHorizonMs: HOUR });
  const mod = (caseId: string, t: number, extra: Row = {}): Row => ({
    event_id: `m-${caseId}-${t}-${String(extra.event_type ?? 'report_created')}`,
    event_time: t,
    case_id: caseId,
    event_type: 'report_created',
    target_type: 'stream',
    target_id: `target-${caseId}`,
    creator_id: 'cr-1',
    policy: 'spam',
    severity: 'low',
    detection_source: 'user_report',
    action_type: null,
    outcome: null,
    ...extra,
  });
  it('forgets an idle case at last event + horizon (a later event pushes it back), then its tombstone', () => {
    const h = new Harness<SafetyState>(p, p.init({ topic: 't.moderation', kind: 'moderation', partition: 0 }), 'moderation');
    h.process(mod('c1', T), T);
    h.process(mod('c1', T + 30 * MIN, { event_type: 'action_taken', action_type: 'warn', detection_source: 'staff' }), T + 30 * MIN);
    h.watermark(T + HOUR + 1);
    expect(h.state.cases.has('c1')).toBe(true);
    h.restore();
    h.watermark(T + 30 * MIN + HOUR);
    expect(h.state.cases.has('c1')).toBe(true);
    h.flush();
    expect(h.take('safety_cases')).toHaveLength(1);
    h.watermark(T + 30 * MIN + HOUR + 1);
    expect(h.state.cases.has('c1')).toBe(false);
    expect(h.state.tombstones.get('c1')).toBe(T + 30 * MIN);
    h.watermark(T + 30 * MIN + 2 * HOUR);
    expect(h.state.tombstones.has('c1')).toBe(true);
    h.watermark(T + 30 * MIN + 2 * HOUR + 1);
    expect(h.state.tombstones.has('c1')).toBe(false);
    h.flush();
    expect(h.take('safety_cases')).toEqual([]);
  });
});

describe('WindowStore dirty list', () => {
  it('flushes only entries changed since the last flush, never those of closed windows', () => {
    const store = new WindowStore<{ n: number }>(tumbling(MIN, 0) as never, () => ({ n: 0 }));
    const flush = () => {
      const rows: string[] = [];
      store.flushDirty(
        (ws, k, a, final) => ({ r: `${ws - T}/${k}=${a.n}${final ? 'F' : ''}` }),
        (r) => rows.push(r.r as string),
      );
      return rows.sort();
    };
    store.update(T, 'a', (a) => void a.n++);
    store.update(T, 'b', (a) => void a.n++);
    store.update(T, 'a', (a) => void a.n++);
    expect(flush()).toEqual(['0/a=2', '0/b=1']);
    expect(flush()).toEqual([]);
    store.update(T, 'b', () => false);
    expect(flush()).toEqual([]);
    store.update(T, 'b', (a) => void a.n++);
    store.update(T + MIN, 'c', (a) => void a.n++);
    const closed: string[] = [];
    store.closeUpTo(
      T + MIN,
      (ws, k, a) => ({ r: `${ws - T}/${k}=${a.n}F` }),
      (r) => closed.push(r.r as string),
    );
    expect(closed).toEqual(['0/a=2F', '0/b=2F']);
    expect(flush()).toEqual(['60000/c=1']);
  });
});
