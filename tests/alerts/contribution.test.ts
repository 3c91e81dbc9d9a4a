/** Contribution analysis math (alerts/contribution.ts), on figures worked by hand. */
import { describe, expect, it } from 'vitest';
import { decompose, rankContributions, totals, type SliceMeasures } from '../../alerts/contribution.js';

const s = (dimension: string, value: string, n0: number, d0: number, n1: number, d1: number): SliceMeasures => ({ dimension, value, n0, d0, n1, d1 });

describe('contribution analysis', () => {
  it('a ratio whose change is all rate effect in one slice', () => {
    // Baseline A 1/100, B 1/100 → 1 %. Current A 10/100, B 1/100 → 5.5 %. Change 4.5 points.
    // A: rate 0.5 × (10 − 1) = 4.5, mix (0.5 − 0.5) × … = 0 → share 100 %; B: 0.
    const [a, b] = decompose('ratio', [s('cdn', 'A', 1, 100, 10, 100), s('cdn', 'B', 1, 100, 1, 100)], 100);
    expect(totals('ratio', [s('cdn', 'A', 1, 100, 10, 100), s('cdn', 'B', 1, 100, 1, 100)], 100)).toEqual({ current: 5.5, baseline: 1, change: 4.5 });
    expect(a!.rateEffect).toBeCloseTo(4.5, 12);
    expect(a!.mixEffect).toBeCloseTo(0, 12);
    expect(a!.share).toBeCloseTo(1, 12);
    expect(a!.weight).toBeCloseTo(0.5, 12);
    expect(a!.excessShare).toBeCloseTo(0.5, 12);
    expect(b!.contribution).toBeCloseTo(0, 12);
    expect([a!.current, a!.baseline]).toEqual([10, 1]);
  });

  it('rate and mix effects add up to the change', () => {
    // Baseline A 1/100 (1 %), B 5/100 (5 %): R0 = 3 %. Current A 1/50 (2 %), B 7.5/150 (5 %): R1 = 4.25 %.
    // w0 = .5/.5, w1 = .25/.75. A: rate .25 × (2 − 1) = .25, mix (.25 − .5) × (1 − 3) = .5 → .75 (60 %).
    // B: rate .75 × 0 = 0, mix (.75 − .5) × (5 − 3) = .5 → .5 (40 %). Sum 1.25 = 4.25 − 3.
    const [a, b] = decompose('ratio', [s('device', 'A', 1, 100, 1, 50), s('device', 'B', 5, 100, 7.5, 150)], 100);
    expect(a!.rateEffect).toBeCloseTo(0.25, 12);
    expect(a!.mixEffect).toBeCloseTo(0.5, 12);
    expect(a!.share).toBeCloseTo(0.6, 12);
    expect(b!.rateEffect).toBeCloseTo(0, 12);
    expect(b!.mixEffect).toBeCloseTo(0.5, 12);
    expect(b!.share).toBeCloseTo(0.4, 12);
    expect(a!.contribution + b!.contribution).toBeCloseTo(1.25, 12);
  });

  it('a new slice and a vanished slice keep the decomposition exact', () => {
    // Baseline A 2/100 (2 %), C 0/100: R0 = 1 %. Current A 2/100, B 20/100 (new, 20 %): R1 = 11 %. Change 10.
    // A: rate .5 × 0 = 0, mix 0 × … = 0. B (r0 := R0 = 1): rate .5 × (20 − 1) = 9.5, mix (.5 − 0) × 0 = 0.
    // C (gone): rate 0, mix (0 − .5) × (0 − 1) = .5. Total 10.
    const cs = decompose('ratio', [s('x', 'A', 2, 100, 2, 100), s('x', 'B', 0, 0, 20, 100), s('x', 'C', 0, 100, 0, 0)], 100);
    expect(cs.map((c) => Number(c.contribution.toFixed(9)))).toEqual([0, 9.5, 0.5]);
    expect(cs[1]!.baseline).toBeNull();
    expect(cs[2]!.current).toBeNull();
  });

  it('a sum: each slice contributes its own change; shares against the baseline size', () => {
    // Playing hours baseline A 60, B 40 (100); current A 10, B 38 (48). Change −52.
    // A −50 → share 96.15 %, weight .6, excess .3615; B −2 → 3.85 %, weight .4.
    const [a, b] = decompose('sum', [s('show', 'A', 60, 0, 10, 0), s('show', 'B', 40, 0, 38, 0)]);
    expect(a!.contribution).toBe(-50);
    expect(a!.share).toBeCloseTo(50 / 52, 12);
    expect(a!.weight).toBeCloseTo(0.6, 12);
    expect(a!.excessShare).toBeCloseTo(50 / 52 - 0.6, 12);
    expect(b!.share).toBeCloseTo(2 / 52, 12);
  });

  it('ranking across dimensions: the concentrated slice beats the biggest proportional one', () => {
    // Rebuffer % on one CDN. Country IN (30 % of watch time) goes from 1 % to 20 %, elsewhere 1 %.
    // By country: IN carries the whole change (share 1, excess .7).
    // By device: mobile is 60 % of traffic in both countries, so it carries 60 % of the change (excess 0).
    const slices = [
      s('country', 'IN', 3, 300, 60, 300),
      s('country', 'NP', 7, 700, 7, 700),
      s('device_category', 'mobile', 6, 600, 6 * 0.3 * 20 + 6 * 0.7, 600),
      s('device_category', 'tv', 4, 400, 4 * 0.3 * 20 + 4 * 0.7, 400),
    ];
    const r = rankContributions('ratio', slices, 100, 3);
    expect(r.totals.change).toBeCloseTo(5.7, 9); // (60 + 7) / 1000 − 10 / 1000 = 6.7 % − 1 %
    expect(r.top.map((c) => `${c.dimension}=${c.value}`)).toEqual(['country=IN', 'device_category=mobile', 'device_category=tv']);
    expect(r.top[0]!.share).toBeCloseTo(1, 9);
    expect(r.top[0]!.excessShare).toBeCloseTo(0.7, 9);
    expect(r.top[1]!.share).toBeCloseTo(0.6, 9);
    expect(r.top[1]!.excessShare).toBeCloseTo(0, 9);
  });

  it('no change: no share, nothing ranked', () => {
    const r = rankContributions('sum', [s('a', 'x', 5, 0, 5, 0), s('a', 'y', 3, 0, 3, 0)]);
    expect(r.totals.change).toBe(0);
    expect(r.top).toEqual([]);
  });
});
