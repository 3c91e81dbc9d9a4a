/**
 * Late data policy (issue 18, processors/core/late-firing.ts): the pure classification, and the
 * safety and business processors with allowed lateness on the in-memory driver, whose processing
 * clock is injected (`nowMs`, fixed: lateness is decided on event time and the watermark only).
 * Checked: within the allowed lateness an event is counted and the closed window's row rewritten
 * with a higher version; beyond it the event is in late_events; the same tables after a crash at
 * every offset and with any batching; closed windows forgotten after the allowed lateness.
 */
import { describe, expect, it } from 'vitest';
import { classify, LateWindows } from '../../processors/core/late-firing.js';
import { WindowStore } from '../../processors/core/processor.js';
import { tumbling } from '../../processors/core/windows.js';
import { ProcessorTestDriver, type DriverRecord } from '../../processors/core/test-driver.js';
import { safetyProcessor, type SafetyState } from '../../processors/safety/safety.processor.js';
import { businessProcessor, type BusinessState } from '../../processors/business/business.processor.js';
import { createMetrics } from '../../lib/metrics.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** 2026-05-01T00:00Z: minute- and hour-aligned. */
const T0 = Date.UTC(2026, 4, 1);
const NOW = T0 + 24 * HOUR; // the injected processing clock, after every event time (bounds: not in the future)

describe('classify (pure)', () => {
  it('on time before end + grace, a late firing until end + grace + lateness, then too late', () => {
    const end = T0 + MIN;
    expect(classify(end, 60_000, 6 * HOUR, end + 59_999)).toBe('on_time');
    expect(classify(end, 60_000, 6 * HOUR, end + 60_000)).toBe('late_firing');
    expect(classify(end, 60_000, 6 * HOUR, end + 60_000 + 6 * HOUR - 1)).toBe('late_firing');
    expect(classify(end, 60_000, 6 * HOUR, end + 60_000 + 6 * HOUR)).toBe('too_late');
    // No allowed lateness: the grace alone, as before issue 18.
    expect(classify(end, 60_000, 0, end + 60_000)).toBe('too_late');
  });

  it('LateWindows keeps what the store closes, routes by the watermark, forgets after the lateness', () => {
    const spec = tumbling(MIN, 60_000) as Extract<ReturnType<typeof tumbling>, { kind: 'tumbling' }>;
    const store = new WindowStore(spec, () => ({ n: 0 }));
    const late = new LateWindows(spec, HOUR, () => ({ n: 0 }));
    store.update(T0, 'k', (a) => void a.n++);
    const rows: Array<Record<string, unknown>> = [];
    const toRow = (ws: number, key: string, a: { n: number }, final: boolean) => ({ ws, key, n: a.n, final });
    // Late by the watermark but not yet closed in the store (same batch): the caller closes first.
    expect(late.target(T0, T0 + 2 * MIN, HOUR)).toBe('close');
    late.closeUpTo(store, T0 + 2 * MIN, toRow, (r) => rows.push(r));
    expect(rows).toEqual([{ ws: T0, key: 'k', n: 1, final: true }]);
    expect(late.target(T0, T0 + 2 * MIN, HOUR)).toBe('kept');
    // A kind with less lateness is too late sooner.
    expect(late.target(T0, T0 + 2 * MIN + 29_999, 30_000)).toBe('kept');
    expect(late.target(T0, T0 + 2 * MIN + 30_000, 30_000)).toBe('late');
    late.update(T0 + 5_000, 'k', (a) => void a.n++);
    late.update(T0 + 6_000, 'other', (a) => void a.n++);
    expect(late.flush(toRow, (r) => rows.push(r))).toBe(2);
    expect(rows.slice(1)).toEqual([
      { ws: T0, key: 'k', n: 2, final: true },
      { ws: T0, key: 'other', n: 1, final: true },
    ]);
    expect(late.flush(toRow, (r) => rows.push(r))).toBe(0);
    // Checkpointed and restored, then forgotten at end + grace + lateness (a pending row written first).
    const back = new LateWindows(spec, HOUR, () => ({ n: 0 })).load(JSON.parse(JSON.stringify(late.toJSON())));
    back.update(T0, 'k', (a) => void a.n++);
    back.closeUpTo(store, T0 + MIN + 60_000 + HOUR, toRow, (r) => rows.push(r));
    expect(rows.at(-1)).toEqual({ ws: T0, key: 'k', n: 3, final: true });
    expect(back.size()).toBe(0);
    expect(back.target(T0, T0 + MIN + 60_000 + HOUR, HOUR)).toBe('late');
  });

  it('after a checkpoint without late-window state, a closed window not kept sends its late events to late_events', () => {
    const spec = tumbling(MIN, 60_000) as Extract<ReturnType<typeof tumbling>, { kind: 'tumbling' }>;
    const store = new WindowStore(spec, () => ({ n: 0 }));
    const late = new LateWindows(spec, HOUR, () => ({ n: 0 })).load(undefined);
    // Minute 0 closed before the restore (its full row is in the table, its state is not here).
    expect(late.target(T0, T0 + 10 * MIN, HOUR)).toBe('late');
    store.update(T0 + 9 * MIN, 'k', (a) => void a.n++);
    late.closeUpTo(
      store,
      T0 + 11 * MIN,
      () => ({}),
      () => undefined,
    );
    expect(late.target(T0, T0 + 11 * MIN, HOUR)).toBe('late');
    expect(late.target(T0 + 9 * MIN, T0 + 11 * MIN, HOUR)).toBe('kept');
  });
});

describe('revisions of re-fired rows (history, as of known_at)', () => {
  it('keeps the on-time content at the window end and one revision per stream time, through a checkpoint', () => {
    const spec = tumbling(MIN, 60_000) as Extract<ReturnType<typeof tumbling>, { kind: 'tumbling' }>;
    const store = new WindowStore(spec, () => ({ n: 0 }));
    const late = new LateWindows(spec, HOUR, () => ({ n: 0 }));
    const rows: Array<Record<string, unknown>> = [];
    const hist: Array<Record<string, unknown>> = [];
    const toRow = (ws: number, key: string, a: { n: number }, final: boolean) => ({ ws, key, n: a.n, is_final: final ? 1 : 0 });
    const push = (r: Record<string, unknown>) => rows.push(r);
    const pushH = (r: Record<string, unknown>) => hist.push(r);
    store.update(T0, 'k', (a) => void a.n++);
    store.update(T0, 'k', (a) => void a.n++);
    late.closeUpTo(store, T0 + 2 * MIN, toRow, push, pushH);
    expect(hist).toEqual([]); // closed, not re-fired: no history
    // Two late events at stream time S1, one at S2, and a key new to the window at S2.
    const S1 = T0 + 5 * MIN;
    const S2 = T0 + 7 * MIN;
    late.at(S1, toRow, pushH).update(T0 + 1_000, 'k', (a) => void a.n++);
    // The first late event wrote the on-time revision (known at the window end) before changing it.
    expect(hist).toEqual([{ ws: T0, key: 'k', n: 2, known_at: T0 + MIN }]);
    late.at(S1, toRow, pushH).update(T0 + 2_000, 'k', (a) => void a.n++);
    // A checkpoint between two revisions: the owed one survives it.
    const back = new LateWindows(spec, HOUR, () => ({ n: 0 })).load(JSON.parse(JSON.stringify(late.toJSON())));
    back.at(S2, toRow, pushH).update(T0 + 3_000, 'k', (a) => void a.n++);
    back.at(S2, toRow, pushH).update(T0 + 4_000, 'new', (a) => void a.n++);
    // An update that changes nothing starts no revision.
    back.at(S2 + MIN, toRow, pushH).update(T0 + 4_000, 'k', () => false);
    back.flush(toRow, push, pushH);
    expect(hist).toEqual([
      { ws: T0, key: 'k', n: 2, known_at: T0 + MIN },
      { ws: T0, key: 'k', n: 4, known_at: S1 },
      { ws: T0, key: 'k', n: 5, known_at: S2 },
      { ws: T0, key: 'new', n: 1, known_at: S2 },
    ]);
    expect(rows.at(-2)).toEqual({ ws: T0, key: 'k', n: 5, is_final: 1 });
    expect(back.flush(toRow, push, pushH)).toBe(0);
  });
});

let seq = 0;
const id = () => `00000000-0000-4000-8000-${String(++seq).padStart(12, '0')}`;
function mod(t: number, caseId: string, type: 'report_created' | 'action_taken', extra: Partial<Record<string, unknown>> = {}): DriverRecord {
  return {
    kind: 'moderation',
    partition: 0,
    event: {
      event_id: id(),
      event_time: t,
      received_time: t + 500,
      case_id: caseId,
      event_type: type,
      target_type: 'stream',
      target_id: `t-${caseId}`,
      creator_id: 'cr1',
      policy: 'harassment',
      severity: 'medium',
      detection_source: 'user_report',
      action_type: type === 'action_taken' ? 'remove' : null,
      outcome: null,
      ...extra,
    },
  };
}

const LATENESS = { moderation: 6 * HOUR, payments: 15 * MIN, gifts: 30_000, playback: 30_000 };

/**
 * Case C1 reported at T0; a flow of other reports moves the watermark 3 h on; C1's action arrives
 * then (event time T0 + 2 min: 3 h late, within 6 h). C2's action arrives 7 h late (beyond).
 */
function safetyLog(): DriverRecord[] {
  seq = 0;
  const recs: DriverRecord[] = [mod(T0, 'C1', 'report_created'), mod(T0 + 30_000, 'C2', 'report_created')];
  for (let m = 5; m <= 180; m += 5) recs.push(mod(T0 + m * MIN, `F${m}`, 'report_created'));
  recs.push(mod(T0 + 2 * MIN, 'C1', 'action_taken')); // 3 h late
  recs.push(mod(T0 + 2 * MIN + 1_000, 'C1b', 'action_taken', { target_id: 't-C1' })); // a case of its own, same minute
  for (let m = 185; m <= 7 * 60 + 30; m += 5) recs.push(mod(T0 + m * MIN, `G${m}`, 'report_created'));
  recs.push(mod(T0 + 3 * MIN, 'C2', 'action_taken')); // 7.5 h late: beyond 6 h
  return recs;
}

function safetyTables(d: ProcessorTestDriver<SafetyState>) {
  const counts = d
    .table('safety_events_1m', ['window_start', 'event_type', 'policy', 'severity', 'detection_source', 'action_type', 'outcome', 'target_type'])
    .map((r) => `${r.window_start}|${r.event_type}|${r.events}|${r.is_final}`)
    .sort();
  const cases = d
    .table('safety_cases', ['case_id'])
    .map((r) => `${r.case_id}|${r.action_time}`)
    .sort();
  const late = (d.emitted.get('late_events') ?? []).map((r) => `${r.event_id}|${r.reason}`);
  const history = d
    .table('safety_events_1m_history', [
      'window_start',
      'event_type',
      'policy',
      'severity',
      'detection_source',
      'action_type',
      'outcome',
      'target_type',
      'known_at',
    ])
    .map((r) => `${r.window_start}|${r.event_type}|${r.events}|${r.known_at}`)
    .sort();
  return { counts, cases, late: [...new Set(late)].sort(), history };
}

describe('safety: moderation actions hours late', () => {
  const make = () => {
    const d = new ProcessorTestDriver(safetyProcessor({ lateness: LATENESS }));
    d.nowMs = NOW;
    return d;
  };

  it('counts an action within the allowed lateness (row rewritten, higher version) and sends one beyond it to late_events', () => {
    const recs = safetyLog();
    const d = make();
    d.pipe(recs);
    d.flush();
    const actions = d.table('safety_events_1m', ['window_start', 'event_type', 'action_type']).filter((r) => r.event_type === 'action_taken');
    // Minute T0+2 min: C1's and C1b's actions, 3 h late, both counted, in a final row.
    expect(actions.map((r) => [r.window_start, r.events, r.is_final])).toEqual([[(T0 + 2 * MIN) / 1000, 2, 1]]);
    // Its report minute was closed long before; the late row's version is past the late event's offset.
    const lateAt = recs.findIndex((r) => r.event.case_id === 'C1' && r.event.event_type === 'action_taken');
    expect(actions[0]!.version as number).toBeGreaterThan(lateAt);
    const t = safetyTables(d);
    // Its revisions: a key new to the closed minute, known at the late records' Kafka timestamp
    // (the driver's clock, NOW: after the stream time T0 + 3 h); no on-time revision (the minute
    // had no action then).
    expect(t.history.filter((r) => r.includes('|action_taken|'))).toEqual([`${(T0 + 2 * MIN) / 1000}|action_taken|2|${NOW}`]);
    expect(t.late).toEqual([`${recs.at(-1)!.event.event_id}|window_closed`]);
    // Every actioned case has its action counted, except C2's (beyond the allowed lateness, in late_events).
    expect(
      t.cases
        .filter((c) => !c.endsWith('|null'))
        .map((c) => c.split('|')[0])
        .sort(),
    ).toEqual(['C1', 'C1b', 'C2']);
    // State bounded: closed minutes are forgotten 6 h after they close.
    expect(d.checkpoint().get('moderation/0')!.snapshot.state).toMatchObject({ lateCounts: { windows: expect.any(Array) } });
    const kept = (d.checkpoint().get('moderation/0')!.snapshot.state as { lateCounts: { windows: Array<[number, unknown]> } }).lateCounts.windows.map(
      ([ws]) => ws,
    );
    const wm = T0 + (7 * 60 + 30) * MIN - 5_000;
    expect(Math.min(...kept)).toBeGreaterThanOrEqual(wm - 6 * HOUR - 2 * MIN);
  });

  it('without a policy the same action is late, as before (the grace alone)', () => {
    const d = new ProcessorTestDriver(safetyProcessor());
    d.nowMs = NOW;
    d.pipe(safetyLog());
    d.flush();
    expect(d.table('safety_events_1m', ['window_start', 'event_type']).filter((r) => r.event_type === 'action_taken')).toEqual([]);
    expect(safetyTables(d).late.length).toBe(3);
  });

  it('gives the same tables after a crash at any offset and with one record per batch', () => {
    const recs = safetyLog();
    const ref = make();
    ref.pipe(recs);
    ref.flush();
    const want = safetyTables(ref);
    const oneByOne = make();
    for (const r of recs) oneByOne.pipe([r]);
    oneByOne.flush();
    expect(safetyTables(oneByOne)).toEqual(want);
    for (let cut = 1; cut < recs.length; cut += 3) {
      const d = make();
      d.pipe(recs.slice(0, cut));
      const ckpt = d.checkpoint();
      d.pipe(recs.slice(cut));
      d.flush();
      d.restore(ckpt); // the work after the checkpoint is lost and redone
      d.flush();
      expect(safetyTables(d), `crash after ${cut}`).toEqual(want);
    }
    // Incremental checkpoints: a delta after every record (kept windows, cases, tombstones), a
    // crash after any of them restored from base + deltas (or a base, where the chain was just compacted).
    let restoredFromDeltas = 0;
    for (let cut = 1; cut < recs.length; cut += 3) {
      const d = make();
      let ckpt = d.checkpointIncremental(1_000, 100);
      for (const r of recs.slice(0, cut)) {
        d.pipe([r]);
        ckpt = d.checkpointIncremental(1_000, 100);
      }
      if ([...d.chainLengths().values()].some((n) => n > 0)) restoredFromDeltas++;
      d.pipe(recs.slice(cut));
      d.flush();
      d.restore(ckpt);
      d.flush();
      expect(safetyTables(d), `crash after ${cut} (incremental)`).toEqual(want);
    }
    expect(restoredFromDeltas).toBeGreaterThan(20);
  });
});

function pay(t: number, account: string, amountMinor: number): DriverRecord {
  return {
    kind: 'payments',
    partition: 0,
    event: {
      event_id: id(),
      event_time: t,
      received_time: t + 100,
      payment_id: `pay-${seq}`,
      account_id: account,
      kind: 'renewal',
      status: 'succeeded',
      amount_minor: amountMinor,
      currency: 'USD',
      method: 'card',
      plan: 'standard',
      og_tier: 0,
      auto_renew: true,
      period_end: null,
      failure_code: null,
      country: 'NP',
    },
  };
}

describe('business: a payment webhook minutes late', () => {
  it('counts one within 15 min in the minute and the hour (both rewritten); one beyond goes to late_events; crash-safe', async () => {
    seq = 100;
    const recs: DriverRecord[] = [pay(T0 + 10_000, 'a1', 1000)];
    for (let m = 1; m <= 70; m++) recs.push(pay(T0 + m * MIN, `f${m}`, 100));
    recs.push(pay(T0 + 20_000, 'a1', 500)); // minute 0 closed at T0+2 min; the watermark is at T0+70 min: 68 min late
    recs.push({ ...pay(T0 + 60 * MIN + 10_000, 'a2', 700), timestampMs: T0 + 75 * MIN }); // hour 1's minute 60 closed at T0+62 min: 8 min late, within 15
    const make = () => {
      const d = new ProcessorTestDriver<BusinessState>(businessProcessor({ lateness: LATENESS }));
      d.nowMs = NOW;
      return d;
    };
    const tables = (d: ProcessorTestDriver<BusinessState>) => ({
      pay: d
        .table('kpi_payments_1m', ['window_start', 'method', 'plan', 'og_tier', 'country'])
        .map((r) => `${r.window_start}|${r.gross_usd_micros}|${r.is_final}`)
        .sort(),
      act: d
        .table('account_activity_1h', ['hour', 'account_id'])
        .map((r) => `${r.hour}|${r.account_id}|${r.net_usd_micros}|${r.is_final}`)
        .sort(),
      late: [...new Set((d.emitted.get('late_events') ?? []).map((r) => `${r.event_id}|${r.reason}`))],
      payHist: d
        .table('kpi_payments_1m_history', ['window_start', 'method', 'plan', 'og_tier', 'country', 'known_at'])
        .map((r) => `${r.window_start}|${r.gross_usd_micros}|${r.known_at}`)
        .sort(),
      actHist: d
        .table('account_activity_1h_history', ['hour', 'account_id', 'known_at'])
        .map((r) => `${r.hour}|${r.account_id}|${r.net_usd_micros}|${r.known_at}`)
        .sort(),
    });
    const d = make();
    d.metrics = createMetrics();
    d.pipe(recs);
    d.flush();
    const t = tables(d);
    expect(t.late).toEqual([`${recs.at(-2)!.event.event_id}|window_closed`]);
    // streampulse_late_firings_total counts the one late firing; the late event is counted apart.
    const counter = async (name: string) => (await d.metrics!.registry.getSingleMetric(name)!.get()).values.map((v) => [v.labels, v.value]);
    expect(await counter('streampulse_late_firings_total')).toEqual([[{ processor: 'business', kind: 'payments' }, 1]]);
    expect(await counter('streampulse_late_events_total')).toEqual([[{ processor: 'business' }, 1]]);
    expect(t.pay).toContain(`${(T0 + 60 * MIN) / 1000}|${(100 + 700) * 10_000}|1`);
    expect(t.pay).toContain(`${T0 / 1000}|${1000 * 10_000}|1`);
    expect(t.act).toContain(`${(T0 + HOUR) / 1000}|a2|${700 * 10_000}|0`);
    // Minute 60 re-fired by a record written to the log at T0 + 75 min (stream time T0 + 70 min):
    // its on-time revision (f60's 100, known at the minute's end) and the late one (+ a2's 700).
    // Hour 1 was still open: no history.
    expect(t.payHist).toEqual([`${(T0 + 60 * MIN) / 1000}|${100 * 10_000}|${T0 + 61 * MIN}`, `${(T0 + 60 * MIN) / 1000}|${800 * 10_000}|${T0 + 75 * MIN}`]);
    expect(t.actHist).toEqual([]);
    // One record per batch: the same tables (the on-time revision never holds a late event).
    const one = make();
    for (const r of recs) one.pipe([r]);
    one.flush();
    expect(tables(one)).toEqual(t);
    for (let cut = 1; cut < recs.length; cut += 7) {
      const c = make();
      c.pipe(recs.slice(0, cut));
      const ckpt = c.checkpoint();
      c.pipe(recs.slice(cut));
      c.restore(ckpt);
      c.flush();
      expect(tables(c), `crash after ${cut}`).toEqual(t);
    }
    // Incremental checkpoints: a delta after every record, a crash after any of them.
    for (let cut = 1; cut < recs.length; cut += 7) {
      const c = make();
      let ckpt = c.checkpointIncremental(1_000, 100);
      for (const r of recs.slice(0, cut)) {
        c.pipe([r]);
        ckpt = c.checkpointIncremental(1_000, 100);
      }
      c.pipe(recs.slice(cut));
      c.restore(ckpt);
      c.flush();
      expect(tables(c), `crash after ${cut} (incremental)`).toEqual(t);
    }
  });
});
