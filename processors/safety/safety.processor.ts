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
import { KeyedStore, type KeyedEntry } from '../core/keyed-store.js';
import { historyTable, lateFiringKnownAt, LateWindows, type LatenessPolicy, type LateWindowsJSON, latenessFor, NO_LATENESS } from '../core/late-firing.js';
import { type Emitter, type Processor, WindowStore, type WindowStoreDeltaJSON, type WindowStoreJSON } from '../core/processor.js';
import { tumbling } from '../core/windows.js';
import { applyEvent, caseRow, isClosed, newCase, type CaseState } from './safety-model.js';

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;
const SEP = '\u001f';
const HISTORY = historyTable('safety_events_1m');

export interface SafetyState {
  counts: WindowStore<{ events: number }>;
  /** Closed minutes of `counts` kept for the allowed lateness of moderation (late firings). */
  lateCounts: LateWindows<{ events: number }>;
  /**
   * Live cases in the keyed-state store (core/keyed-store.ts): a case closes when its appeal is
   * decided (at the next watermark pass) or when it has seen no event for the horizon, and is
   * forgotten as it closes (its row written if it changed), leaving a tombstone for a second
   * horizon. The store's queues find the cases due without a scan.
   */
  cases: KeyedStore<CaseState>;
  /** Forgotten cases: case id → last event time (ms); the store's tombstones. */
  tombstones: Map<string, number>;
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
  const outOfOrderMs = opts.allowedLatenessMs ?? 5_000;
  const newState = (): SafetyState => {
    const cases = new KeyedStore<CaseState>({
      // Closed (appeal decided): forgotten at the next pass; else once idle for the horizon
      // (expired: last event < watermark − horizon, i.e. watermark ≥ last + horizon + 1 ms).
      closeAt: (c) => (isClosed(c) ? Number.NEGATIVE_INFINITY : c.lastEventMs + horizonMs + 1),
      finalRow: false,
      tombstone: { time: (c) => c.lastEventMs, until: (lastMs) => lastMs + 2 * horizonMs + 1 },
    });
    return {
      counts: new WindowStore(minute, () => ({ events: 0 })),
      lateCounts: new LateWindows(minute, latenessMs, () => ({ events: 0 })),
      cases,
      tombstones: cases.tombstones,
    };
  };

  const countRow = (ws: number, key: string, a: { events: number }, final: boolean) => {
    const [eventType, policy, severity, source, actionType, outcome, targetType] = key.split(SEP);
    return {
      window_start: ws / 1000,
      event_type: eventType,
      policy,
      severity,
      detection_source: source,
      action_type: actionType,
      outcome,
      target_type: targetType,
      events: a.events,
      is_final: final ? 1 : 0,
    };
  };
  /** A forgotten (expired) case: its last event is older than the horizon behind the watermark. */
  const expired = (lastMs: number, wm: number) => lastMs < wm - horizonMs;
  /** A tombstone is kept for a second horizon. */
  const tombAlive = (lastMs: number, wm: number) => lastMs >= wm - 2 * horizonMs;
  const closeCounts = (s: SafetyState, wm: number, out: Emitter) =>
    s.lateCounts.closeUpTo(
      s.counts,
      wm,
      countRow,
      (r) => out.emit('safety_events_1m', r),
      (r) => out.emit(HISTORY, r),
    );
  const caseOut = (out: { emit: (table: string, row: object) => void }) => (e: KeyedEntry<CaseState>) => out.emit('safety_cases', caseRow(e.value));

  return {
    name: 'safety',
    kinds: ['moderation'],
    // safety_events_1m_history: the revisions of re-fired minutes (late firings), read as of t by alerts.
    tables: ['safety_events_1m', 'safety_cases', HISTORY],
    allowedLatenessMs: outOfOrderMs,
    // A copy is counted only while its minute accepts events (grace + allowed lateness), so ids are
    // kept that long (and at least 10 minutes).
    dedupHorizonMs: opts.dedupHorizonMs ?? Math.max(10 * MINUTE_MS, graceMs + (opts.allowedLatenessMs ?? 5_000) + latenessMs + MINUTE_MS),
    needsDedup: (_kind: EventKind) => true,
    init: newState,
    process(s, ev, rec, ctx) {
      const m = ev as unknown as ModerationEvent;
      const t = m.event_time;
      const wm = ctx.watermarkMs;
      // 1. The case. Rejected if the case is closed or forgotten (or the event is older than the horizon).
      const live = s.cases.entry(m.case_id);
      const open = live && !isClosed(live.value) && !expired(live.value.lastEventMs, wm) ? live : undefined;
      // A closed or expired live case is treated exactly as its tombstone (eviction timing never matters).
      const forgottenAt = live && !open ? live.value.lastEventMs : s.tombstones.get(m.case_id);
      if (!open && forgottenAt !== undefined && tombAlive(forgottenAt, wm)) return ctx.late('case_forgotten');
      if (!open && expired(t, wm)) return ctx.late('case_expired');
      // A closed live case replaced before the pass that would forget it: its row is dropped (add).
      const entry = open ?? s.cases.add(m.case_id, newCase(m));
      // Closing (a decided appeal) moves its deadline earlier: touch queues it at once.
      if (applyEvent(entry.value, m)) s.cases.touch(entry);
      // 2. The counts: the open minute, or a closed one within the allowed lateness (its row is
      // rewritten), else late_events (the case above still took the event).
      let where = s.lateCounts.target(t, wm, latenessMs);
      if (where === 'close') {
        // Its minute closed within this batch: close now, so the closing (on-time) row never holds
        // this late event, whatever the batch boundaries.
        closeCounts(s, wm, ctx);
        where = s.lateCounts.target(t, wm, latenessMs);
      }
      if (where === 'late') return ctx.late('window_closed', s.counts.windowStart(t) + MINUTE_MS);
      const key = [
        m.event_type,
        m.policy,
        m.severity,
        m.detection_source,
        m.event_type === 'action_taken' ? (m.action_type ?? 'none') : '',
        m.event_type === 'appeal_decided' ? (m.outcome ?? '') : '',
        m.target_type,
      ].join(SEP);
      // A late firing is known at its record's Kafka timestamp, never before the stream time (lateFiringKnownAt).
      const counts = where === 'kept' ? s.lateCounts.at(lateFiringKnownAt(wm, outOfOrderMs, rec.timestampMs), countRow, (r) => ctx.emit(HISTORY, r)) : s.counts;
      counts.update(t, key, (a) => {
        a.events++;
      });
      if (where === 'kept') ctx.lateFiring();
    },
    onWatermark(s, wm, out) {
      closeCounts(s, wm, out);
      // Forget closed cases and expired ones (the same set a scan of all cases would find), and
      // tombstones older than the second horizon.
      s.cases.advance(wm, caseOut(out));
    },
    onFlush(s, out, full) {
      s.counts.flushDue(full, countRow, (r) => out.emit('safety_events_1m', r));
      s.lateCounts.flush(
        countRow,
        (r) => out.emit('safety_events_1m', r),
        (r) => out.emit(HISTORY, r),
      );
      // Every changed case at every cycle (a case changes a few times in its life: no policy needed).
      s.cases.flushClosed(caseOut(out));
      s.cases.flushOpen(caseOut(out));
    },
    serialize: (s) => ({
      counts: s.counts.toJSON(),
      lateCounts: s.lateCounts.toJSON(),
      cases: Array.from(s.cases.entries(), (e) => [e.key, e.value, e.dirty]),
      tombstones: [...s.tombstones],
    }),
    deserialize(j) {
      const json = j as {
        counts: WindowStoreJSON<{ events: number }>;
        lateCounts?: LateWindowsJSON<{ events: number }>;
        cases: Array<[string, CaseState, boolean]>;
        tombstones: Array<[string, number]>;
      };
      const s = newState();
      s.counts.load(json.counts);
      s.lateCounts.load(json.lateCounts);
      // A closed case comes back open with its deadline passed: the next pass forgets it.
      for (const [k, c, dirty] of json.cases) s.cases.restore(k, c, dirty, false);
      for (const [k, t] of json.tombstones) s.cases.setTombstone(k, t);
      return s;
    },
    // Incremental checkpoints: the counts' changes, cases changed or forgotten, tombstones set or
    // dropped since the last one; the kept closed minutes of late firings in full when they changed.
    serializeDelta: (s) => {
      const ch = s.cases.takeChanges();
      if (ch === null) return null;
      return {
        counts: s.counts.takeDelta(),
        lateCounts: s.lateCounts.takeDelta(),
        cases: ch.upserts.map((e) => [e.key, e.value, e.dirty]),
        gone: ch.deletes,
        tombstones: ch.tombstones,
        tombstonesGone: ch.tombstonesRemoved,
      };
    },
    applyDelta: (s, d) => {
      const json = d as {
        counts: WindowStoreDeltaJSON<{ events: number }>;
        lateCounts: LateWindowsJSON<{ events: number }>;
        cases: Array<[string, CaseState, boolean]>;
        gone: string[];
        tombstones: Array<[string, number]>;
        tombstonesGone: string[];
      };
      s.counts.applyDelta(json.counts);
      s.lateCounts.applyDelta(json.lateCounts);
      for (const k of json.gone) s.cases.remove(k);
      for (const [k, c, dirty] of json.cases) s.cases.restore(k, c, dirty, false);
      for (const k of json.tombstonesGone) s.cases.restoreTombstone(k, undefined);
      for (const [k, t] of json.tombstones) s.cases.restoreTombstone(k, t);
    },
    markSaved: (s) => {
      s.counts.markSaved();
      s.lateCounts.markSaved();
      s.cases.clearChanges();
    },
  };
}
