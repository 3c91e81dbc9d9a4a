/**
 * Contribution analysis, the pure part (issue 22): which slice of a dimension explains the change
 * of a metric between a baseline period and the current one. No I/O: explain.ts reads the slices'
 * measures from ClickHouse and calls `rankContributions`.
 *
 * Ratio metrics R = Σn ÷ Σd (rebuffer %, VSF %, payment failure %): with slice weights w = d ÷ D and
 * slice rates r = n ÷ d, the change splits EXACTLY into per-slice rate and mix effects:
 *
 *   R1 − R0 = Σ_i w1_i · (r1_i − r0_i)          rate effect: the slice itself got worse/better
 *           + Σ_i (w1_i − w0_i) · (r0_i − R0)     mix effect: traffic moved to/from a slice whose
 *                                                 baseline rate differs from the overall one
 *
 * (the mix term may be centred on R0 because Σ w1 = Σ w0 = 1). A slice without baseline traffic
 * takes r0 = R0 (no mix effect; its rate effect is w1 · (r1 − R0)); a slice without current traffic
 * has w1 = 0 (only its mix effect). Sum metrics X = Σx (playing hours, revenue, fatal errors): the
 * contribution of a slice is its own change x1 − x0. In both cases the contributions of one
 * dimension add up to the total change, and a slice's **share** is contribution ÷ change.
 *
 * Ranking across dimensions: a slice that carries a share of the change in proportion to its size
 * explains nothing (when everything got 10 % worse, the biggest device family carries the biggest
 * share). So slices are ranked by **excess share** = share − weight, the part of the change they
 * carry beyond their size (weight: current share of the denominator for ratios, baseline share of
 * the total for sums). A platform-wide change ranks no slice high: every excess share is near 0.
 */

export type ContributionKind = 'ratio' | 'sum';

/** One slice's measures in the two periods (baseline: mean of the baseline days). */
export interface SliceMeasures {
  dimension: string;
  value: string;
  /** Numerator (ratio) or the summed measure (sum), current and baseline. */
  n1: number;
  n0: number;
  /** Denominator (ratio only; 0 for sums). */
  d1: number;
  d0: number;
}

export interface Contribution {
  dimension: string;
  value: string;
  /** Metric value of the slice in the current period and the baseline (null: no traffic). */
  current: number | null;
  baseline: number | null;
  /** Contribution to the change, in the metric's unit (rate + mix for ratios). */
  contribution: number;
  rateEffect: number;
  mixEffect: number;
  /** contribution ÷ total change (1 = the whole change). */
  share: number;
  /** Size of the slice (see the header). */
  weight: number;
  /** share − weight: the ranking key. */
  excessShare: number;
}

export interface DimensionTotals {
  current: number | null;
  baseline: number | null;
  change: number;
}

/** Totals of a dimension's slices (every dimension partitions the same rows, so all agree). */
export function totals(kind: ContributionKind, slices: readonly SliceMeasures[], scale = 1): DimensionTotals {
  const N1 = slices.reduce((s, x) => s + x.n1, 0);
  const N0 = slices.reduce((s, x) => s + x.n0, 0);
  if (kind === 'sum') return { current: scale * N1, baseline: scale * N0, change: scale * (N1 - N0) };
  const D1 = slices.reduce((s, x) => s + x.d1, 0);
  const D0 = slices.reduce((s, x) => s + x.d0, 0);
  const R1 = D1 > 0 ? scale * (N1 / D1) : null;
  const R0 = D0 > 0 ? scale * (N0 / D0) : null;
  return { current: R1, baseline: R0, change: R1 !== null && R0 !== null ? R1 - R0 : 0 };
}

/** Contributions of the slices of ONE dimension, in input order. `scale` as in the catalog (100 for %). */
export function decompose(kind: ContributionKind, slices: readonly SliceMeasures[], scale = 1): Contribution[] {
  const t = totals(kind, slices, scale);
  const change = t.change;
  const share = (c: number) => (change === 0 ? 0 : c / change);
  if (kind === 'sum') {
    const base = slices.reduce((s, x) => s + Math.abs(x.n0), 0);
    const cur = slices.reduce((s, x) => s + Math.abs(x.n1), 0);
    return slices.map((x) => {
      const c = scale * (x.n1 - x.n0);
      const weight = base > 0 ? Math.abs(x.n0) / base : cur > 0 ? Math.abs(x.n1) / cur : 0;
      return {
        dimension: x.dimension,
        value: x.value,
        current: scale * x.n1,
        baseline: scale * x.n0,
        contribution: c,
        rateEffect: c,
        mixEffect: 0,
        share: share(c),
        weight,
        excessShare: share(c) - weight,
      };
    });
  }
  const D1 = slices.reduce((s, x) => s + x.d1, 0);
  const D0 = slices.reduce((s, x) => s + x.d0, 0);
  const R0 = t.baseline ?? 0;
  return slices.map((x) => {
    const w1 = D1 > 0 ? x.d1 / D1 : 0;
    const w0 = D0 > 0 ? x.d0 / D0 : 0;
    const r1 = x.d1 > 0 ? scale * (x.n1 / x.d1) : null;
    const r0 = x.d0 > 0 ? scale * (x.n0 / x.d0) : null;
    const rateEffect = r1 === null ? 0 : w1 * (r1 - (r0 ?? R0));
    const mixEffect = (w1 - w0) * ((r0 ?? R0) - R0);
    const c = rateEffect + mixEffect;
    return {
      dimension: x.dimension,
      value: x.value,
      current: r1,
      baseline: r0,
      contribution: c,
      rateEffect,
      mixEffect,
      share: share(c),
      weight: w1,
      excessShare: share(c) - w1,
    };
  });
}

/**
 * Every dimension's slices decomposed, then ranked across dimensions by excess share (ties: larger
 * share, then dimension and value, so the order is deterministic). Only slices that move WITH the
 * change (share > 0) are ranked; `limit` of them are returned.
 */
export function rankContributions(
  kind: ContributionKind,
  slices: readonly SliceMeasures[],
  scale = 1,
  limit = 5,
): { totals: DimensionTotals; top: Contribution[] } {
  const byDim = new Map<string, SliceMeasures[]>();
  for (const s of slices) {
    const l = byDim.get(s.dimension);
    if (l) l.push(s);
    else byDim.set(s.dimension, [s]);
  }
  const first = byDim.values().next().value ?? [];
  const t = totals(kind, first, scale);
  const all = [...byDim.values()].flatMap((l) => decompose(kind, l, scale)).filter((c) => c.share > 0);
  all.sort((a, b) => b.excessShare - a.excessShare || b.share - a.share || a.dimension.localeCompare(b.dimension) || a.value.localeCompare(b.value));
  return { totals: t, top: all.slice(0, limit) };
}
