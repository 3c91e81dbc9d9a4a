/**
 * Trust and safety (DOMAIN §6) from moderation events (key target_id, so every event of a case
 * is in one partition). See docs/safety.md.
 *
 *  - safety_events_1m: moderation events per one-minute window by (event_type, policy, severity,
 *    detection_source, action_type, outcome, target_type); hour/day roll-ups are views.
 *  - safety_cases: one row per case, its latest state (ReplacingMergeTree on the runner's version):
 *    first report / detection, action, time to action, proactive, appeal, outcome, decision time.
 *    KPIs (median/p90 time to action, proactive, appeal and overturn rates, safety score) are views.
 *
 * Case state is bounded: a case is forgotten once its appeal is decided, or when it has seen no
 * event for `caseHorizonMs` of event time (watermark). A tombstone (case id, last event time)
 * remembers forgotten cases for another horizon, so a straggler for a forgotten case goes to
 * late_events instead of overwriting its row with a partial one. Every accept/reject decision is
 * a function of the event and the watermark at that event only, so checkpoints and batch
 * boundaries never change the output.
 */
import type { EventKind } from '../../contracts/topics.js';
import type { ModerationEvent } from '../../contracts/types.generated.js';
import { DeadlineQueue } from '../core/deadline-queue.js';
import { LateWindows, type LatenessPolicy, type LateWindowsJSON, latenessFor, NO_LATENESS } from '../core/late-firing.js';
import { type Processor, WindowStore, type WindowStoreJSON } from '../core/processor.js';
import { tumbling } from '../core/windows.js';
import { applyEvent, caseRow, isClosed, newCase, type CaseState } from './safety-model.js';

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;
const SEP = '\u001f';

interface Entry { c: CaseState; dirty: boolean }

export interface SafetyState {
  counts: WindowStore<{ events: number }>;
  /** Closed minutes of `counts` kept for the allowed lateness of moderation (late firings). */
  lateCounts: LateWindows<{ events: number }>;
  cases: Map<string, Entry>;
  /** Forgotten cases: case id → last event time (ms). */
  tombstones: Map<string, number>;
  /*
   * Indices, derived (rebuilt by deserialize, never checkpointed), so that a watermark pass and a
   * flush touch only the cases that are due or changed:
   */
  /** Live cases by the last event time they had when queued (re-queued when due if they moved on). */
  idle: DeadlineQueue<Entry>;
  /** Live cases closed since the last watermark pass (forgotten at the next one). */
  closing: Entry[];
  /** Tombstones by their last event time. */
  tombstoneQueue: DeadlineQueue<[string, number]>;
  /** Live cases whose row changed since it was last written. */
  dirty: Set<Entry>;
}

export interface SafetyOptions {
  graceMs?: number;
  allowedLatenessMs?: number;
  dedupHorizonMs?: number;
  /** Event-time inactivity after which an undecided case is forgotten (default 30 days). */
  caseHorizonMs?: number;
  /** Allowed lateness past the grace (late firings of safety_events_1m); default none. */
  lateness?: LatenessPolicy;
}

export function safetyProcessor(opts: SafetyOptions = {}): Processor<SafetyState> {
  const graceMs = opts.graceMs ?? 60_000;
  const horizonMs = opts.caseHorizonMs ?? 30 * DAY_MS;
  const minute = tumbling(MINUTE_MS, graceMs) as Extract<ReturnType<typeof tumbling>, { kind: 'tumbling' }>;
  const latenessMs = latenessFor(opts.lateness ?? NO_LATENESS, 'moderation');
  const newState = (): SafetyState => ({
    counts: new WindowStore(minute, () => ({ events: 0 })), lateCounts: new LateWindows(minute, latenessMs, () => ({ events: 0 })), cases: new Map(), tombstones: new Map(),
    idle: new DeadlineQueue(), closing: [], tombstoneQueue: new DeadlineQueue(), dirty: new Set(),
  });

  const countRow = (ws: number, key: string, a: { events: number }, final: boolean) => {
    const [eventType, policy, severity, source, actionType, outcome, targetType] = key.split(SEP);
    return { window_start: ws / 1000, event_type: eventType, policy, severity, detection_source: source, action_type: actionType, outcome, target_type: targetType, events: a.events, is_final: final ? 1 : 0 };
  };
  /** A forgotten (expired) case: its last event is older than the horizon behind the watermark. */
  const expired = (lastMs: number, wm: number) => lastMs < wm - horizonMs;
  /** A tombstone is kept for a second horizon. */
  const tombAlive = (lastMs: number, wm: number) => lastMs >= wm - 2 * horizonMs;

  const setTombstone = (s: SafetyState, id: string, lastMs: number) => {
    s.tombstones.set(id, lastMs);
    s.tombstoneQueue.push(lastMs, [id, lastMs]);
  };
  /** Writes a forgotten case's row if it changed, and leaves a tombstone. */
  const forget = (s: SafetyState, e: Entry, emit: (row: Record<string, unknown>) => void) => {
    if (e.dirty) emit(caseRow(e.c));
    e.dirty = false;
    s.dirty.delete(e);
    s.cases.delete(e.c.caseId);
    setTombstone(s, e.c.caseId, e.c.lastEventMs);
  };

  return {
    name: 'safety',
    kinds: ['moderation'],
    tables: ['safety_events_1m', 'safety_cases'],
    allowedLatenessMs: opts.allowedLatenessMs ?? 5_000,
    // A copy is counted only while its minute accepts events (grace + allowed lateness), so ids are
    // kept that long (and at least 10 minutes).
    dedupHorizonMs: opts.dedupHorizonMs ?? Math.max(10 * MINUTE_MS, graceMs + (opts.allowedLatenessMs ?? 5_000) + latenessMs + MINUTE_MS),
    needsDedup: (_kind: EventKind) => true,
    init: newState,
    process(s, ev, _rec, ctx) {
      const m = ev as unknown as ModerationEvent;
      const t = m.event_time;
      const wm = ctx.watermarkMs;
      // 1. The case. Rejected if the case is closed or forgotten (or the event is older than the horizon).
      const live = s.cases.get(m.case_id);
      const open = live && !isClosed(live.c) && !expired(live.c.lastEventMs, wm) ? live : undefined;
      // A closed or expired live case is treated exactly as its tombstone (eviction timing never matters).
      const forgottenAt = live && !open ? live.c.lastEventMs : s.tombstones.get(m.case_id);
      if (!open && forgottenAt !== undefined && tombAlive(forgottenAt, wm)) return ctx.late('case_forgotten');
      if (!open && expired(t, wm)) return ctx.late('case_expired');
      let entry = open;
      if (!entry) {
        s.tombstones.delete(m.case_id);
        // A closed live case replaced before the pass that would forget it: its row is dropped.
        if (live) s.dirty.delete(live);
        entry = { c: newCase(m), dirty: true };
        s.cases.set(m.case_id, entry);
        s.dirty.add(entry);
        s.idle.push(entry.c.lastEventMs, entry);
      }
      if (applyEvent(entry.c, m)) {
        entry.dirty = true;
        s.dirty.add(entry);
        if (isClosed(entry.c)) s.closing.push(entry);
      }
      // 2. The counts: the open minute, or a closed one within the allowed lateness (its row is
      // rewritten), else late_events (the case above still took the event).
      const where = s.lateCounts.target(t, wm, latenessMs);
      if (where === 'late') return ctx.late('window_closed', s.counts.windowStart(t) + MINUTE_MS);
      const key = [m.event_type, m.policy, m.severity, m.detection_source, m.event_type === 'action_taken' ? m.action_type ?? 'none' : '', m.event_type === 'appeal_decided' ? m.outcome ?? '' : '', m.target_type].join(SEP);
      (where === 'kept' ? s.lateCounts : s.counts).update(t, key, (a) => {
        a.events++;
      });
    },
    onWatermark(s, wm, out) {
      s.lateCounts.closeUpTo(s.counts, wm, countRow, (r) => out.emit('safety_events_1m', r));
      const emit = (r: Record<string, unknown>) => out.emit('safety_cases', r);
      // Forget closed cases and expired ones (the same set a scan of all cases would find).
      for (const e of s.closing) if (s.cases.get(e.c.caseId) === e) forget(s, e, emit);
      s.closing.length = 0;
      for (let e = s.idle.popBefore(wm - horizonMs); e !== undefined; e = s.idle.popBefore(wm - horizonMs)) {
        if (s.cases.get(e.c.caseId) !== e) continue;
        if (expired(e.c.lastEventMs, wm)) forget(s, e, emit);
        else s.idle.push(e.c.lastEventMs, e);
      }
      for (let t = s.tombstoneQueue.popBefore(wm - 2 * horizonMs); t !== undefined; t = s.tombstoneQueue.popBefore(wm - 2 * horizonMs)) {
        const [id, last] = t;
        if (s.tombstones.get(id) === last && !tombAlive(last, wm)) s.tombstones.delete(id);
      }
    },
    onFlush(s, out, full) {
      s.counts.flushDue(full, countRow, (r) => out.emit('safety_events_1m', r));
      s.lateCounts.flush(countRow, (r) => out.emit('safety_events_1m', r));
      for (const e of s.dirty) {
        out.emit('safety_cases', caseRow(e.c));
        e.dirty = false;
      }
      s.dirty.clear();
    },
    serialize: (s) => ({ counts: s.counts.toJSON(), lateCounts: s.lateCounts.toJSON(), cases: [...s.cases].map(([k, e]) => [k, e.c, e.dirty]), tombstones: [...s.tombstones] }),
    deserialize(j) {
      const json = j as { counts: WindowStoreJSON<{ events: number }>; lateCounts?: LateWindowsJSON<{ events: number }>; cases: Array<[string, CaseState, boolean]>; tombstones: Array<[string, number]> };
      const s = newState();
      s.counts.load(json.counts);
      s.lateCounts.load(json.lateCounts);
      for (const [k, c, dirty] of json.cases) {
        const e: Entry = { c, dirty };
        s.cases.set(k, e);
        s.idle.push(c.lastEventMs, e);
        if (dirty) s.dirty.add(e);
        if (isClosed(c)) s.closing.push(e);
      }
      for (const [k, t] of json.tombstones) setTombstone(s, k, t);
      return s;
    },
  };
}
