import { describe, expect, it } from 'vitest';
import { nearestRank, playbackSuccessScore, smoothnessScore, startupScore, viewMetrics, viewOutcome } from '../../processors/qoe/qoe-metrics.js';

describe('qoe formulas', () => {
  it('startup score reproduces Mux check values', () => {
    expect(startupScore(400)).toBeCloseTo(95.238, 3);
    expect(startupScore(2000)).toBeCloseTo(80, 10);
    expect(startupScore(8000)).toBeCloseTo(50, 10);
    expect(startupScore(20000)).toBeCloseTo(28.571, 3);
  });

  it('smoothness score: formula, not the rounded doc examples (qoe.md §1.8)', () => {
    expect(smoothnessScore(0, 0)).toBe(100);
    // 5-min video with one 5 s stall: avg(89.44, 84.88) ≈ 87.16 (Mux doc says 85).
    expect(smoothnessScore(1, 5 / 305)).toBeCloseTo((100 / Math.sqrt(1.25) + 100 * Math.exp((-10 * 5) / 305)) / 2, 10);
    expect(smoothnessScore(1, 5 / 305)).toBeCloseTo(87.16, 1);
    expect(smoothnessScore(2, 5000 / 60000)).toBeCloseTo(57.085249, 5);
  });

  it('outcomes: exactly one per view', () => {
    expect(viewOutcome({ firstFrameMs: 10, fatalErrorMs: null, businessErrorMs: null })).toBe('play');
    expect(viewOutcome({ firstFrameMs: 10, fatalErrorMs: 20, businessErrorMs: null })).toBe('playback_failure');
    expect(viewOutcome({ firstFrameMs: 10, fatalErrorMs: 5, businessErrorMs: null })).toBe('vsf');
    expect(viewOutcome({ firstFrameMs: null, fatalErrorMs: 5, businessErrorMs: 4 })).toBe('vsf');
    expect(viewOutcome({ firstFrameMs: null, fatalErrorMs: null, businessErrorMs: 4 })).toBe('business_exception');
    expect(viewOutcome({ firstFrameMs: 10, fatalErrorMs: null, businessErrorMs: 40 })).toBe('play');
    expect(viewOutcome({ firstFrameMs: null, fatalErrorMs: null, businessErrorMs: null })).toBe('ebvs');
  });

  it('playback success: 100 / 50 EBVS (none under 1 s) / 0 failures / none for business exceptions', () => {
    expect(playbackSuccessScore('play', 0)).toBe(100);
    expect(playbackSuccessScore('ebvs', 1000)).toBe(50);
    expect(playbackSuccessScore('ebvs', 999)).toBeNull();
    expect(playbackSuccessScore('vsf', 5000)).toBe(0);
    expect(playbackSuccessScore('playback_failure', 5000)).toBe(0);
    expect(playbackSuccessScore('business_exception', 5000)).toBeNull();
  });

  it('per-view metrics', () => {
    const m = viewMetrics({
      startMs: 0,
      endMs: 60_000,
      firstFrameMs: 2000,
      fatalErrorMs: null,
      businessErrorMs: null,
      counters: { playingMs: 53_000, rebufferMs: 5000, rebufferCount: 2, seekMs: 0, bitrateKbpsMs: 160_000_000 },
    });
    expect(m).toMatchObject({ outcome: 'play', startupMs: 2000, watchMs: 60_000, rebufferPerMin: 2, startupScore: 80, playbackSuccessScore: 100 });
    expect(m.rebufferPct).toBeCloseTo(8.3333333, 6);
    expect(m.weightedAvgBitrateKbps).toBeCloseTo(3018.867925, 5);
    const ebvs = viewMetrics({
      startMs: 0,
      endMs: 13_000,
      firstFrameMs: null,
      fatalErrorMs: null,
      businessErrorMs: null,
      counters: { playingMs: 0, rebufferMs: 0, rebufferCount: 0, seekMs: 0, bitrateKbpsMs: 0 },
    });
    expect(ebvs).toMatchObject({
      outcome: 'ebvs',
      startupMs: null,
      watchMs: 13_000,
      startupScore: null,
      smoothnessScore: null,
      weightedAvgBitrateKbps: null,
      playbackSuccessScore: 50,
    });
  });

  it('nearest-rank quantiles', () => {
    expect(nearestRank([], 0.5)).toBeNull();
    expect(nearestRank([3000, 1000, 2000, 4000], 0.5)).toBe(2000);
    expect(nearestRank([3000, 1000, 2000, 4000], 0.95)).toBe(4000);
    expect(nearestRank([7], 0.95)).toBe(7);
  });
});
