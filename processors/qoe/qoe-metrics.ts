/**
 * QoE formulas, pure (no I/O, no clock). Definitions: DOMAIN §3, reference/qoe.md §1.6–1.8, §7.3;
 * the choices made where the sources leave a gap are in docs/qoe.md.
 */

export type ViewOutcome = 'play' | 'playback_failure' | 'vsf' | 'ebvs' | 'business_exception';

/** Mux startup score: 8 / (8 + s) × 100 with s in seconds. 0.4 s → 95.2, 2 s → 80, 8 s → 50. */
export function startupScore(startupMs: number): number {
  const s = Math.max(0, startupMs) / 1000;
  return (8 / (8 + s)) * 100;
}

/** Mux smoothness score: mean of 100/sqrt(1+(count/2)^2) and 100·exp(−10·fraction). */
export function smoothnessScore(rebufferCount: number, rebufferFraction: number): number {
  const byCount = 100 / Math.sqrt(1 + (rebufferCount / 2) ** 2);
  const byFraction = 100 * Math.exp(-10 * rebufferFraction);
  return (byCount + byFraction) / 2;
}

/** EBVS views that waited less than this get no playback-success score (Mux: accidental). */
export const EBVS_MIN_WAIT_MS = 1000;

/**
 * Playback success (Mux, qoe.md §1.8): play 100, EBVS 50 (none if the wait was < 1 s),
 * VSF and playback failure (fatal error after play) 0. Business exceptions are not a technical
 * outcome and get no score (null), like Mux's exclusion of business exceptions from failures.
 */
export function playbackSuccessScore(outcome: ViewOutcome, waitMs: number): number | null {
  switch (outcome) {
    case 'play':
      return 100;
    case 'ebvs':
      return waitMs < EBVS_MIN_WAIT_MS ? null : 50;
    case 'vsf':
    case 'playback_failure':
      return 0;
    case 'business_exception':
      return null;
  }
}

export interface OutcomeInputs {
  firstFrameMs: number | null;
  /** Earliest fatal, non-business error. */
  fatalErrorMs: number | null;
  /** Earliest business-exception error (any severity flagged error_business). */
  businessErrorMs: number | null;
}

/** Exactly one outcome per view (DOMAIN §3); see docs/qoe.md for the ordering rules. */
export function viewOutcome(v: OutcomeInputs): ViewOutcome {
  if (v.firstFrameMs !== null) {
    if (v.fatalErrorMs !== null && v.fatalErrorMs < v.firstFrameMs) return 'vsf';
    return v.fatalErrorMs !== null ? 'playback_failure' : 'play';
  }
  if (v.fatalErrorMs !== null) return 'vsf';
  if (v.businessErrorMs !== null) return 'business_exception';
  return 'ebvs';
}

export interface ViewCounters {
  playingMs: number;
  rebufferMs: number;
  rebufferCount: number;
  seekMs: number;
  /** Σ kbps × ms played. */
  bitrateKbpsMs: number;
}

export interface ViewMetrics {
  outcome: ViewOutcome;
  /** first frame − view start, plays only. */
  startupMs: number | null;
  /** startup (or, without a play, the wait until the view ended) + playing + rebuffer + seek. */
  watchMs: number;
  playingMs: number;
  rebufferMs: number;
  rebufferCount: number;
  seekMs: number;
  /** rebuffer / watch × 100 (null when watch is 0). */
  rebufferPct: number | null;
  /** rebuffer count per minute of watch time (null when watch is 0). */
  rebufferPerMin: number | null;
  /** Σ kbps·ms / playing ms (null without playing time). */
  weightedAvgBitrateKbps: number | null;
  startupScore: number | null;
  smoothnessScore: number | null;
  playbackSuccessScore: number | null;
}

/**
 * Per-view metrics from the merged state. `startMs` is the view start (first view_start, or the
 * earliest event); `endMs` the view end (view_end time, or the last event for a dropped view).
 */
export function viewMetrics(v: OutcomeInputs & { startMs: number; endMs: number; counters: ViewCounters }): ViewMetrics {
  const outcome = viewOutcome(v);
  const played = outcome === 'play' || outcome === 'playback_failure';
  const startupMs = played && v.firstFrameMs !== null ? Math.max(0, v.firstFrameMs - v.startMs) : null;
  const waitMs = Math.max(0, v.endMs - v.startMs);
  const c = v.counters;
  const watchMs = (startupMs ?? (played ? 0 : waitMs)) + c.playingMs + c.rebufferMs + c.seekMs;
  const rebufferFraction = watchMs > 0 ? c.rebufferMs / watchMs : null;
  return {
    outcome,
    startupMs,
    watchMs,
    playingMs: c.playingMs,
    rebufferMs: c.rebufferMs,
    rebufferCount: c.rebufferCount,
    seekMs: c.seekMs,
    rebufferPct: rebufferFraction === null ? null : rebufferFraction * 100,
    rebufferPerMin: watchMs > 0 ? c.rebufferCount / (watchMs / 60_000) : null,
    weightedAvgBitrateKbps: c.playingMs > 0 ? c.bitrateKbpsMs / c.playingMs : null,
    // Startup and smoothness are only defined for views that played (Mux: not for EBVS/failed starts).
    startupScore: startupMs === null ? null : startupScore(startupMs),
    smoothnessScore: played ? smoothnessScore(c.rebufferCount, rebufferFraction ?? 0) : null,
    playbackSuccessScore: playbackSuccessScore(outcome, waitMs),
  };
}

/** Nearest-rank quantile, sorted[ceil(q·n)]: the one percentile method (contracts/metrics-catalog.ts). */
export { nearestRank } from '../../contracts/metrics-catalog.js';
