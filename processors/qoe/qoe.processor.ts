/**
 * QoE processor (DOMAIN §3). Reads playback (keyed by view_id, so a view lives in one partition).
 *
 *  - Per-view state, a merge that is order-insensitive and idempotent: cumulative counters by max,
 *    first-frame / view-start / first-error times by min, flags by OR, dimensions from the event
 *    with the lowest seq. A view is finalised when the watermark passes view_end + endGraceMs, or
 *    after timeoutMs (60 min) of event-time inactivity (then dropped = 1), and emitted to
 *    qoe_views (is_final = 1). Open views that changed are written with is_final = 0 once per
 *    minute of event time (when the watermark enters a new minute), not on every update: a view
 *    heartbeating every 10 s would otherwise cost a row per heartbeat. A finalised view stays in
 *    state for retainMs so that a straggler still corrects its row.
 *  - qoe_minute: one-minute aggregates by (cdn, device_category, country, asn, content_id), from
 *    heartbeat/view_end deltas against the view's max counters (a duplicate or older heartbeat
 *    gives 0), concurrent viewers (each view at most once per minute), startup samples of views
 *    whose first frame is in the minute, and outcomes of views whose view_end is in the minute.
 *    An event whose minute closed is late for qoe_minute (late_events) but still merges into the
 *    view. Every choice is written down in docs/qoe.md.
 */
import { sumOverflow } from '../../contracts/bounds.js';
import type { EventKind } from '../../contracts/topics.js';
import type { PlaybackEvent } from '../../contracts/types.generated.js';
import { EmitPolicy, KeyedStore, type KeyedEntry } from '../core/keyed-store.js';
import { type Emitter, type Processor, WindowStore, type WindowStoreDeltaJSON, type WindowStoreJSON } from '../core/processor.js';
import { tumbling } from '../core/windows.js';
import { viewMetrics, viewOutcome, type ViewCounters } from './qoe-metrics.js';
import { ROLLUP_TABLES } from '../../sinks/clickhouse/rollups.js';

export const MINUTE_MS = 60_000;
export const VIEW_TIMEOUT_MS = 60 * MINUTE_MS;

export interface ViewDims {
  viewer_id: string;
  account_id: string;
  content_id: string;
  stream_type: string;
  creator_id: string;
  device_category: string;
  os: string;
  app_version: string;
  cdn: string;
  country: string;
  asn: number;
}

export interface ViewState {
  viewId: string;
  dims: ViewDims;
  /** seq and event_id of the event the dims come from (lowest seq, then lowest event_id). */
  dimsSeq: number;
  dimsEventId: string;
  viewStartMs: number | null;
  minEventMs: number;
  lastEventMs: number;
  firstFrameMs: number | null;
  fatalErrorMs: number | null;
  businessErrorMs: number | null;
  errorCode: string;
  viewEndMs: number | null;
  endReason: string;
  counters: ViewCounters;
  /** Minute-aggregate bookkeeping (each at most once per view). */
  startupCounted: boolean;
  endCounted: boolean;
  fatalCounted: boolean;
  /** Minute windows (start ms) in which this view was already counted as concurrent. */
  ccvMinutes: number[];
  finalized: boolean;
  /** Event time at which the view was finalised (end + grace, or last event + timeout). */
  finalizedAtMs: number;
  /**
   * The qoe_minute key of `dims` (derived, never checkpointed; cleared when the dims change): an
   * event whose five key fields are the view's dims (nearly all) reuses it instead of building,
   * and hashing, a new string per event.
   */
  minuteKey: string | undefined;
  /**
   * The qoe_minute entry this view's events last updated, and its window start (derived, never
   * checkpointed): the next event of the view in the same minute with the same key (a heartbeat,
   * nearly always) updates it without looking the key up in the window (WindowStore.update's
   * `known`); stale once its window closed (`gone`).
   */
  minuteEntry: KeyedEntry<MinuteAcc> | undefined;
  minuteWs: number;
}

export interface MinuteAcc {
  concurrent: number;
  started: number;
  startupSamples: number[];
  playingMs: number;
  rebufferMs: number;
  rebufferCount: number;
  seekMs: number;
  /**
   * Startup time in the minute (issue 18, DOMAIN §3: watch time includes startup): a play's
   * startup (first frame − view start) in the minute of its first frame, and the wait (view end −
   * view start) of a view that never played in the minute of its view_end. Absent in checkpoints
   * written before it existed (read as 0).
   */
  startupWaitMs?: number;
  bitrateKbpsMs: number;
  ended: number;
  plays: number;
  vsf: number;
  ebvs: number;
  business: number;
  failures: number;
  fatalErrors: number;
}

export interface QoeState {
  /**
   * Views in the keyed-state store (core/keyed-store.ts): an open view closes (is finalised) at
   * its finalisation deadline and is forgotten retainMs after; the store keeps the deadline
   * queues and the changed views, so a watermark pass and a flush cost O(views changed or due).
   * Its emit policy's interval is the event-time minute (watermark ÷ 60 s) of the last write of
   * open views' rows (checkpointed as `openMinute`). Open views are written once per watermark
   * minute, at the first record that moves the watermark into a new minute, so how often they are
   * rewritten does not depend on the event rate or on batching, and the rows are a function of
   * the partition's records alone.
   */
  views: KeyedStore<ViewState>;
  minute: WindowStore<MinuteAcc>;
  /** Watermark of the last finalisation pass (not checkpointed: a restore scans once more). */
  scannedWm?: number;
  /**
   * The last commit cycle was a live one (caught up, going on): open views' rows are written by
   * age (QoeOptions.viewRowIntervalMs), not at the first record of each watermark minute. Not
   * checkpointed: a restored state starts as behind until its first live cycle.
   */
  live?: boolean;
}

export interface QoeOptions {
  /** Grace of the one-minute windows (default 60 s). */
  graceMs?: number;
  allowedLatenessMs?: number;
  /** A view with view_end is finalised when the watermark passes its end + endGraceMs. */
  endGraceMs?: number;
  timeoutMs?: number;
  /** How long (event time) a finalised view is kept to absorb corrections. */
  retainMs?: number;
  /**
   * While the consumer is live (caught up), an open view's row is written at most once per this
   * long (processing time), its latest change at most about this long plus a commit cycle after
   * it happened (default 30 s; 0: at every cycle). Views change at every heartbeat (10 s), so
   * writing them at every cycle wrote about one row per heartbeat. Final rows are never held back.
   */
  viewRowIntervalMs?: number;
}

const SEP = '\u001f';
const CCV_STATES = new Set(['starting', 'playing', 'rebuffering']);
const COUNTERS: Array<[keyof ViewCounters, keyof PlaybackEvent]> = [
  ['playingMs', 'cum_playing_ms'],
  ['rebufferMs', 'cum_rebuffer_ms'],
  ['rebufferCount', 'cum_rebuffer_count'],
  ['seekMs', 'cum_seek_ms'],
  ['bitrateKbpsMs', 'cum_bitrate_ms'],
];

/**
 * Why merging `e` would take a counter sum of its minute (qoe_minute) past MAX_WINDOW_SUM, or
 * null. The delta is the one mergeEvent would take (above the view's max counters); checked
 * before any state changes, so a refused event leaves no trace.
 */
function minuteOverflow(acc: MinuteAcc | undefined, v: ViewState | undefined, e: PlaybackEvent): string | null {
  for (const [k, f] of COUNTERS) {
    const x = e[f];
    if (typeof x !== 'number') continue;
    const prev = v ? v.counters[k] : 0;
    if (x <= prev) continue;
    const problem = sumOverflow(`qoe_minute.${f}`, acc ? acc[k] : 0, x - prev);
    if (problem) return problem;
  }
  return null;
}

const minOf = (a: number | null, b: number): number => (a === null ? b : Math.min(a, b));

/** The qoe_minute key of an event: the view's cached key when the event's key fields are its dims. */
function minuteKeyOf(v: ViewState | undefined, e: PlaybackEvent): string {
  if (v) {
    const d = v.dims;
    if (e.cdn === d.cdn && e.device_category === d.device_category && e.country === d.country && e.asn === d.asn && e.content_id === d.content_id)
      return dimsMinuteKey(v);
  }
  return `${e.cdn}${SEP}${e.device_category}${SEP}${e.country}${SEP}${e.asn}${SEP}${e.content_id}`;
}

/** The qoe_minute key of a view's dims (cached on the view). */
function dimsMinuteKey(v: ViewState): string {
  const d = v.dims;
  return (v.minuteKey ??= `${d.cdn}${SEP}${d.device_category}${SEP}${d.country}${SEP}${d.asn}${SEP}${d.content_id}`);
}

function dimsOf(e: PlaybackEvent): ViewDims {
  return {
    viewer_id: e.viewer_id,
    account_id: e.account_id,
    content_id: e.content_id,
    stream_type: e.stream_type,
    creator_id: e.creator_id ?? '',
    device_category: e.device_category,
    os: e.os,
    app_version: e.app_version,
    cdn: e.cdn,
    country: e.country,
    asn: e.asn,
  };
}

function newView(e: PlaybackEvent): ViewState {
  return {
    viewId: e.view_id,
    dims: dimsOf(e),
    dimsSeq: e.seq,
    dimsEventId: e.event_id,
    viewStartMs: null,
    minEventMs: e.event_time,
    lastEventMs: e.event_time,
    firstFrameMs: null,
    fatalErrorMs: null,
    businessErrorMs: null,
    errorCode: '',
    viewEndMs: null,
    endReason: '',
    counters: { playingMs: 0, rebufferMs: 0, rebufferCount: 0, seekMs: 0, bitrateKbpsMs: 0 },
    startupCounted: false,
    endCounted: false,
    fatalCounted: false,
    ccvMinutes: [],
    finalized: false,
    finalizedAtMs: 0,
    minuteKey: undefined,
    minuteEntry: undefined,
    minuteWs: 0,
  };
}

const newMinute = (): MinuteAcc => ({
  concurrent: 0,
  started: 0,
  startupSamples: [],
  playingMs: 0,
  rebufferMs: 0,
  rebufferCount: 0,
  seekMs: 0,
  startupWaitMs: 0,
  bitrateKbpsMs: 0,
  ended: 0,
  plays: 0,
  vsf: 0,
  ebvs: 0,
  business: 0,
  failures: 0,
  fatalErrors: 0,
});

/** Merges one event into a view (max / min / OR): the order of events does not matter. Returns counter deltas. */
export function mergeEvent(v: ViewState, e: PlaybackEvent): ViewCounters {
  const t = e.event_time;
  if (e.seq < v.dimsSeq || (e.seq === v.dimsSeq && e.event_id < v.dimsEventId)) {
    v.dims = dimsOf(e);
    v.minuteKey = undefined;
    v.dimsSeq = e.seq;
    v.dimsEventId = e.event_id;
  }
  v.minEventMs = Math.min(v.minEventMs, t);
  v.lastEventMs = Math.max(v.lastEventMs, t);
  switch (e.event_type) {
    case 'view_start':
      v.viewStartMs = minOf(v.viewStartMs, t);
      break;
    case 'first_frame':
      v.firstFrameMs = minOf(v.firstFrameMs, t);
      break;
    case 'error':
      if (e.error_business) v.businessErrorMs = minOf(v.businessErrorMs, t);
      else if (e.error_severity === 'fatal') {
        if (v.fatalErrorMs === null || t < v.fatalErrorMs) v.errorCode = e.error_code ?? '';
        v.fatalErrorMs = minOf(v.fatalErrorMs, t);
      }
      break;
    case 'view_end':
      v.viewEndMs = v.viewEndMs === null ? t : Math.max(v.viewEndMs, t);
      if (v.viewEndMs === t) v.endReason = e.end_reason ?? '';
      break;
    default:
      break;
  }
  const delta: ViewCounters = { playingMs: 0, rebufferMs: 0, rebufferCount: 0, seekMs: 0, bitrateKbpsMs: 0 };
  for (const [k, f] of COUNTERS) {
    const x = e[f];
    if (typeof x === 'number' && x > v.counters[k]) {
      delta[k] = x - v.counters[k];
      v.counters[k] = x;
    }
  }
  return delta;
}

/** The qoe_views row of a view (without src_topic, src_partition, version: added by the task). */
export function viewRow(v: ViewState, final: boolean): Record<string, unknown> {
  const startMs = v.viewStartMs ?? v.minEventMs;
  const endMs = v.viewEndMs ?? v.lastEventMs;
  // Only the inputs viewMetrics reads (spreading the whole view cost more than the metrics).
  const m = viewMetrics({
    firstFrameMs: v.firstFrameMs,
    fatalErrorMs: v.fatalErrorMs,
    businessErrorMs: v.businessErrorMs,
    counters: v.counters,
    startMs,
    endMs,
  });
  const d = v.dims;
  return {
    view_id: v.viewId,
    viewer_id: d.viewer_id,
    account_id: d.account_id,
    content_id: d.content_id,
    stream_type: d.stream_type,
    creator_id: d.creator_id,
    device_category: d.device_category,
    os: d.os,
    app_version: d.app_version,
    cdn: d.cdn,
    country: d.country,
    asn: d.asn,
    view_start: startMs,
    view_end: endMs,
    ended: v.viewEndMs !== null ? 1 : 0,
    dropped: v.finalized && v.viewEndMs === null ? 1 : 0,
    end_reason: v.endReason,
    error_code: v.errorCode,
    outcome: m.outcome,
    startup_ms: m.startupMs,
    watch_ms: m.watchMs,
    playing_ms: m.playingMs,
    seek_ms: m.seekMs,
    rebuffer_ms: m.rebufferMs,
    rebuffer_count: m.rebufferCount,
    rebuffer_pct: m.rebufferPct,
    rebuffer_per_min: m.rebufferPerMin,
    weighted_avg_bitrate_kbps: m.weightedAvgBitrateKbps,
    startup_score: m.startupScore,
    smoothness_score: m.smoothnessScore,
    playback_success_score: m.playbackSuccessScore,
    is_final: final ? 1 : 0,
  };
}

function minuteRow(ws: number, key: string, a: MinuteAcc, final: boolean): Record<string, unknown> {
  const [cdn, deviceCategory, country, asn, contentId] = key.split(SEP);
  return {
    window_start: ws / 1000,
    cdn,
    device_category: deviceCategory,
    country,
    asn: Number(asn),
    content_id: contentId,
    concurrent_viewers: a.concurrent,
    views_started: a.started,
    startup_ms_samples: [...a.startupSamples].sort((x, y) => x - y),
    playing_ms: a.playingMs,
    rebuffer_ms: a.rebufferMs,
    rebuffer_count: a.rebufferCount,
    seek_ms: a.seekMs,
    startup_wait_ms: a.startupWaitMs ?? 0,
    bitrate_kbps_ms: a.bitrateKbpsMs,
    views_ended: a.ended,
    plays: a.plays,
    vsf_views: a.vsf,
    ebvs_views: a.ebvs,
    business_exception_views: a.business,
    playback_failure_views: a.failures,
    fatal_errors: a.fatalErrors,
    is_final: final ? 1 : 0,
  };
}

const DIM_KEYS = [
  'viewer_id',
  'account_id',
  'content_id',
  'stream_type',
  'creator_id',
  'device_category',
  'os',
  'app_version',
  'cdn',
  'country',
  'asn',
] as const;
type ViewTuple = unknown[];

function viewToTuple(v: ViewState, dirty: boolean): ViewTuple {
  const d = v.dims;
  const c = v.counters;
  return [
    v.viewId,
    d.viewer_id,
    d.account_id,
    d.content_id,
    d.stream_type,
    d.creator_id,
    d.device_category,
    d.os,
    d.app_version,
    d.cdn,
    d.country,
    d.asn,
    v.dimsSeq,
    v.dimsEventId,
    v.viewStartMs,
    v.minEventMs,
    v.lastEventMs,
    v.firstFrameMs,
    v.fatalErrorMs,
    v.businessErrorMs,
    v.errorCode,
    v.viewEndMs,
    v.endReason,
    c.playingMs,
    c.rebufferMs,
    c.rebufferCount,
    c.seekMs,
    c.bitrateKbpsMs,
    (v.startupCounted ? 1 : 0) | (v.endCounted ? 2 : 0) | (v.fatalCounted ? 4 : 0) | (v.finalized ? 8 : 0) | (dirty ? 16 : 0),
    v.ccvMinutes,
    v.finalizedAtMs,
  ];
}

function viewFromTuple(t: ViewTuple): [ViewState, boolean] {
  const dims = {} as Record<string, unknown>;
  DIM_KEYS.forEach((k, i) => (dims[k] = t[1 + i]));
  const flags = t[28] as number;
  const v: ViewState = {
    viewId: t[0] as string,
    dims: dims as unknown as ViewDims,
    dimsSeq: t[12] as number,
    dimsEventId: t[13] as string,
    viewStartMs: t[14] as number | null,
    minEventMs: t[15] as number,
    lastEventMs: t[16] as number,
    firstFrameMs: t[17] as number | null,
    fatalErrorMs: t[18] as number | null,
    businessErrorMs: t[19] as number | null,
    errorCode: t[20] as string,
    viewEndMs: t[21] as number | null,
    endReason: t[22] as string,
    counters: {
      playingMs: t[23] as number,
      rebufferMs: t[24] as number,
      rebufferCount: t[25] as number,
      seekMs: t[26] as number,
      bitrateKbpsMs: t[27] as number,
    },
    startupCounted: (flags & 1) !== 0,
    endCounted: (flags & 2) !== 0,
    fatalCounted: (flags & 4) !== 0,
    finalized: (flags & 8) !== 0,
    ccvMinutes: t[29] as number[],
    finalizedAtMs: t[30] as number,
    minuteKey: undefined,
    minuteEntry: undefined,
    minuteWs: 0,
  };
  // An open view changed since its last row stays to be written at the next watermark minute.
  return [v, (flags & 16) !== 0];
}

export function qoeProcessor(opts: QoeOptions = {}): Processor<QoeState> {
  const graceMs = opts.graceMs ?? 60_000;
  const endGraceMs = opts.endGraceMs ?? 60_000;
  const timeoutMs = opts.timeoutMs ?? VIEW_TIMEOUT_MS;
  const retainMs = opts.retainMs ?? 2 * VIEW_TIMEOUT_MS;
  const viewRowIntervalMs = opts.viewRowIntervalMs ?? 30_000;
  const minuteSpec = tumbling(MINUTE_MS, graceMs) as Extract<ReturnType<typeof tumbling>, { kind: 'tumbling' }>;
  /**
   * The watermark at which an open view is finalised: view_end + endGraceMs, else last event +
   * timeoutMs. A later event only moves it later (lastEventMs, a later view_end), so the store's
   * queue entry stays and is re-checked when due; the first view_end moves it earlier and is
   * queued at once (KeyedStore.touch).
   */
  const finalisationDeadline = (v: ViewState) => (v.viewEndMs !== null ? v.viewEndMs + endGraceMs : v.lastEventMs + timeoutMs);
  const newState = (): QoeState => ({
    views: new KeyedStore<ViewState>(
      {
        closeAt: finalisationDeadline,
        // A finalised view stays retainMs to absorb corrections, then is forgotten.
        forgetAt: (v) => v.finalizedAtMs + retainMs,
        onClose: (e, d) => {
          e.value.finalized = true;
          e.value.finalizedAtMs = d;
        },
      },
      new EmitPolicy(MINUTE_MS),
    ),
    minute: new WindowStore<MinuteAcc>(minuteSpec, newMinute),
  });
  const writeView = (out: Emitter) => (e: KeyedEntry<ViewState>, final: boolean) => out.emit('qoe_views', viewRow(e.value, final));

  // Open views changed since the last flush are written at the commit cycle (onFlush) or at the
  // first record of a new watermark minute, not after every batch: the watermark pass only
  // finalises, writes final rows and forgets (KeyedStore.advance). It is skipped when the
  // watermark has not moved (nothing can finalise or expire then).
  const finaliseViews = (s: QoeState, out: Emitter, wm: number) => {
    if (wm === s.scannedWm) return;
    s.scannedWm = wm;
    s.views.advance(wm, writeView(out));
  };

  return {
    name: 'qoe',
    kinds: ['playback'],
    tables: ['qoe_views', 'qoe_minute'],
    // Rollups of closed buckets (sinks/clickhouse/rollups.ts): emptied with the tables by a replay.
    jobTables: ROLLUP_TABLES.qoe,
    allowedLatenessMs: opts.allowedLatenessMs ?? 5_000,
    // Per-view state is a merge and minute deltas are taken against the view's max counters, so a
    // duplicate changes nothing: no dedup state is needed.
    dedupHorizonMs: 0,
    needsDedup: (_kind: EventKind) => false,
    init: newState,
    process(s, ev, _rec, ctx) {
      const e = ev as unknown as PlaybackEvent;
      const t = e.event_time;
      const wm = ctx.watermarkMs;
      // The first record of a new watermark minute writes the open views changed before it
      // (the emit policy, evaluated at records: the rows depend on the records alone).
      // While live, open views are written by age at the commit cycles instead (onFlush).
      if (!s.live && s.views.policy.due(false, wm)) s.views.flushOpen(writeView(ctx));
      let entry = s.views.entry(e.view_id);
      let v = entry?.value;
      if (!v && t + timeoutMs <= wm) {
        // A straggler of a view already finalised and forgotten (or one that would time out at
        // once): merging it would replace the view's final row with a partial one.
        ctx.late('view_expired', t + timeoutMs);
        return;
      }
      const key = minuteKeyOf(v, e);
      const ws = s.minute.windowStart(t);
      // The minute entry: the one the view's last event updated when it is this one (same window
      // and key, window still open), else looked up (one lookup, handed to the update below).
      const cached = v?.minuteEntry;
      const minuteEntry = cached !== undefined && !cached.gone && v!.minuteWs === ws && cached.key === key ? cached : s.minute.peekEntry(t, key);
      // Every minute sum stays exact, or the event is refused before any change (value_overflow).
      const overflow = minuteOverflow(minuteEntry?.value, v, e);
      if (overflow) return ctx.reject('value_overflow', overflow);
      if (!entry || !v) v = (entry = s.views.insert(e.view_id, newView(e))).value;
      const wasEnded = v.endCounted;
      const hadFatal = v.fatalCounted;
      const hadStartup = v.startupCounted;
      const delta = mergeEvent(v, e);
      s.views.touch(entry);
      const minuteLate = s.minute.isLate(t, wm);
      if (minuteLate) {
        ctx.late('minute_closed', s.minute.windowStart(t) + MINUTE_MS);
        return;
      }
      const countCcv = CCV_STATES.has(e.player_state) && !v.ccvMinutes.includes(ws);
      if (countCcv) v.ccvMinutes = [...v.ccvMinutes.filter((m) => !s.minute.isLate(m, wm)), ws];
      // Startup sample: once per view, in the minute of its first frame, as soon as start and first frame are known.
      const startupMs = !hadStartup && v.firstFrameMs !== null && v.viewStartMs !== null ? Math.max(0, v.firstFrameMs - v.viewStartMs) : null;
      const sampleWs = v.firstFrameMs !== null ? s.minute.windowStart(v.firstFrameMs) : ws;
      if (startupMs !== null) {
        if (s.minute.isLate(v.firstFrameMs!, wm)) ctx.late('minute_closed_startup', sampleWs + MINUTE_MS);
        else {
          v.startupCounted = true;
          const fk = dimsMinuteKey(v);
          s.minute.update(v.firstFrameMs!, fk, (a) => {
            a.started++;
            a.startupSamples.push(startupMs);
            a.startupWaitMs = (a.startupWaitMs ?? 0) + startupMs;
          });
        }
      }
      const endNow = e.event_type === 'view_end' && !wasEnded;
      const fatalNow = e.event_type === 'error' && e.error_severity === 'fatal' && !e.error_business && !hadFatal;
      if (endNow) v.endCounted = true;
      if (fatalNow) v.fatalCounted = true;
      const outcome = endNow ? viewOutcome(v) : null;
      // A view that never played: its wait (view end − view start) is watch time (DOMAIN §3), in
      // the minute of its view_end, less a startup already counted at a first frame (a fatal
      // error before the first frame makes a VSF of a view with a first frame).
      let waitMs = 0;
      if (outcome && outcome !== 'play' && outcome !== 'playback_failure') {
        const startMs = v.viewStartMs ?? v.minEventMs;
        const counted = v.startupCounted && v.firstFrameMs !== null ? Math.max(0, v.firstFrameMs - startMs) : 0;
        waitMs = Math.max(0, t - startMs - counted);
      }
      const anyDelta = delta.playingMs || delta.rebufferMs || delta.rebufferCount || delta.seekMs || delta.bitrateKbpsMs;
      if (!countCcv && !anyDelta && !endNow && !fatalNow) return;
      v.minuteWs = ws;
      v.minuteEntry = s.minute.update(
        t,
        key,
        (a) => {
          if (countCcv) a.concurrent++;
          a.playingMs += delta.playingMs;
          a.rebufferMs += delta.rebufferMs;
          a.rebufferCount += delta.rebufferCount;
          a.seekMs += delta.seekMs;
          if (waitMs) a.startupWaitMs = (a.startupWaitMs ?? 0) + waitMs;
          a.bitrateKbpsMs += delta.bitrateKbpsMs;
          if (fatalNow) a.fatalErrors++;
          if (outcome) {
            a.ended++;
            if (outcome === 'play' || outcome === 'playback_failure') a.plays++;
            if (outcome === 'playback_failure') a.failures++;
            if (outcome === 'vsf') a.vsf++;
            if (outcome === 'ebvs') a.ebvs++;
            if (outcome === 'business_exception') a.business++;
          }
        },
        minuteEntry,
      );
    },
    onWatermark(s, wm, out) {
      finaliseViews(s, out, wm);
      s.minute.closeUpTo(wm, minuteRow, (row) => out.emit('qoe_minute', row));
    },
    onFlush(s, out, full, live) {
      // Final rows of views corrected since the last pass; when `full` (caught up, or stopping)
      // also every changed open view, but a live cycle writes an open view's row at most once
      // per viewRowIntervalMs. Under load open views wait for the next watermark minute.
      s.live = full && live !== undefined && viewRowIntervalMs > 0;
      if (s.live) {
        s.views.flushClosed(writeView(out));
        s.views.flushOpenAged(live!.nowMs, viewRowIntervalMs, writeView(out));
      } else if (full) s.views.flush(true, writeView(out));
      else s.views.flushClosed(writeView(out));
      s.minute.flushDue(full, minuteRow, (row) => out.emit('qoe_minute', row));
    },
    // Views as positional tuples (no key names): the checkpoint is less than half the size.
    serialize: (s) => ({
      v: 2,
      views: Array.from(s.views.entries(), (e) => viewToTuple(e.value, e.dirty)),
      minute: s.minute.toJSON(),
      openMinute: s.views.policy.toJSON(),
    }),
    deserialize: (j) => {
      const json = j as { views: Array<ViewState | ViewTuple>; minute: WindowStoreJSON<MinuteAcc>; openMinute?: number | null };
      const s = newState();
      s.views.policy.load(json.openMinute);
      for (const x of json.views) {
        // Objects: a checkpoint written before views were tuples (their dirty marks not kept).
        const [v, dirty] = Array.isArray(x) ? viewFromTuple(x) : [{ ...x, minuteKey: undefined, minuteEntry: undefined, minuteWs: 0 }, false];
        s.views.restore(v.viewId, v, dirty, v.finalized);
      }
      s.minute.load(json.minute);
      return s;
    },
    // Incremental checkpoints: the views changed or forgotten since the last checkpoint, and the
    // minute windows' changes (null: too many view changes to track; a full one is taken).
    serializeDelta: (s) => {
      const ch = s.views.takeChanges();
      if (ch === null) return null;
      return {
        views: ch.upserts.map((e) => viewToTuple(e.value, e.dirty)),
        gone: ch.deletes,
        minute: s.minute.takeDelta(),
        openMinute: s.views.policy.toJSON(),
      };
    },
    applyDelta: (s, d) => {
      const json = d as { views: ViewTuple[]; gone: string[]; minute: WindowStoreDeltaJSON<MinuteAcc>; openMinute: number | null };
      for (const k of json.gone) s.views.remove(k);
      for (const x of json.views) {
        const [v, dirty] = viewFromTuple(x);
        s.views.restore(v.viewId, v, dirty, v.finalized);
      }
      s.minute.applyDelta(json.minute);
      s.views.policy.load(json.openMinute);
      // Views were finalised up to the restored watermark: the next pass scans again (as after a full restore).
      s.scannedWm = undefined;
    },
    markSaved: (s) => {
      s.views.clearChanges();
      s.minute.markSaved();
    },
  };
}
