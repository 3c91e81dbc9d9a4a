/** Churn model (pure): features by hand, score monotonicity and the acceptance criterion. */
import { describe, expect, it } from 'vitest';
import { churnFeatures, churnScore, p95, riskLevel, tenureBand, type DailyFacts, type PaymentState } from '../../processors/churn/churn-model.js';
import { accountInputs, churnScoreRows, NO_PLAN, topGenre, type ChurnDailyRow } from '../../processors/churn/churn-scores.js';

const DAY0 = 19_844; // 2024-05-01
const day = (d: number, f: Partial<DailyFacts> = {}): DailyFacts => ({
  day: d,
  views: 1,
  playingMs: 3_600_000,
  rebufferMs: 0,
  vsf: 0,
  playbackFailures: 0,
  startupMs: [1000],
  titles: ['c1'],
  revenueUsdMicros: 0,
  giftUsdMicros: 0,
  paymentFailures: 0,
  downgrades: 0,
  lastViewMs: d * 86_400_000 + 3_600_000,
  lastViewBad: false,
  ...f,
});
const steadyPay: PaymentState = { plan: 'standard', autoRenew: true, periodEndMs: (DAY0 + 40) * 86_400_000, firstDay: DAY0 - 200 };

describe('churn features', () => {
  it('computes 7/28-day features by hand', () => {
    // 28 days of history: days DAY0-27 .. DAY0, one hour a day, except the last 7 days: half an hour.
    const days = Array.from({ length: 28 }, (_, i) => DAY0 - 27 + i).map((d) =>
      day(d, d > DAY0 - 7 ? { playingMs: 1_800_000, rebufferMs: 18_000, titles: ['c2'] } : {}),
    );
    const f = churnFeatures(DAY0, days, steadyPay);
    expect(f.views_7d).toBe(7);
    expect(f.views_28d).toBe(28);
    expect(f.active_days_28d).toBe(28);
    expect(f.playing_hours_7d).toBeCloseTo(3.5, 9);
    expect(f.playing_hours_28d).toBeCloseTo(21 + 3.5, 9);
    // trend = 3.5 / (24.5 / 4) = 0.5714…
    expect(f.trend).toBeCloseTo(3.5 / (24.5 / 4), 9);
    expect(f.distinct_titles_28d).toBe(2);
    expect(f.rebuffer_pct_7d).toBeCloseTo((100 * 7 * 18_000) / (7 * 1_818_000), 9);
    expect(f.days_since_last_view).toBe(0);
    expect(f.tenure_days).toBe(200);
    expect(f.days_to_period_end).toBe(39);
  });
  it('p95 nearest rank, levels, bands', () => {
    expect(p95([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20])).toBe(19);
    expect(p95([])).toBeNull();
    expect([riskLevel(0.1), riskLevel(0.2), riskLevel(0.5)]).toEqual(['low', 'medium', 'high']);
    expect([tenureBand(5), tenureBand(45), tenureBand(100), tenureBand(400), tenureBand(null)]).toEqual(['0-29d', '30-89d', '90-364d', '365d+', 'unknown']);
  });
});

describe('churn score', () => {
  it('accounts with failed payments and falling watch time are higher risk than steady payers', () => {
    const steadyDays = Array.from({ length: 28 }, (_, i) => day(DAY0 - 27 + i));
    const steady = churnScore(churnFeatures(DAY0, steadyDays, steadyPay));
    // Watched an hour a day for three weeks, then only once in the last week; two failed payments.
    const fallingDays = Array.from({ length: 28 }, (_, i) => DAY0 - 27 + i)
      .filter((d) => d <= DAY0 - 7 || d === DAY0 - 5)
      .map((d) => day(d, { paymentFailures: d === DAY0 - 3 || d === DAY0 - 1 ? 1 : 0 }));
    fallingDays.push({ ...day(DAY0 - 3), views: 0, playingMs: 0, titles: [], startupMs: [], lastViewMs: null, paymentFailures: 1 });
    fallingDays.push({ ...day(DAY0 - 1), views: 0, playingMs: 0, titles: [], startupMs: [], lastViewMs: null, paymentFailures: 1 });
    const falling = churnScore(churnFeatures(DAY0, fallingDays, steadyPay));
    expect(falling.risk).toBeGreaterThan(steady.risk);
    expect(steady.level).toBe('low');
    expect(falling.level).not.toBe('low');
    expect(falling.reasons).toContain('payment_failures');
    expect(falling.reasons).toContain('watch_decline');
    expect(steady.risk).toBeCloseTo(1 / (1 + Math.exp(3)), 9); // nothing but the intercept
  });
  it('each risk factor raises the score (monotone) and the score stays in [0, 1]', () => {
    const base = churnFeatures(
      DAY0,
      Array.from({ length: 28 }, (_, i) => day(DAY0 - 27 + i)),
      steadyPay,
    );
    const r0 = churnScore(base).risk;
    const worse = [
      { auto_renew_off: true },
      { payment_failures_28d: 1 },
      { downgrades_28d: 1 },
      { rebuffer_pct_7d: 3 },
      { vsf_7d: 1 },
      { startup_p95_ms_7d: 5000 },
      { last_session_bad: true },
      { trend: 0.5 },
      { days_since_last_view: 14 },
      { tenure_days: 3 },
    ];
    for (const w of worse) expect(churnScore({ ...base, ...w }).risk, JSON.stringify(w)).toBeGreaterThan(r0);
    const worst = churnScore({
      ...base,
      auto_renew_off: true,
      payment_failures_28d: 9,
      downgrades_28d: 9,
      rebuffer_pct_7d: 90,
      vsf_7d: 9,
      startup_p95_ms_7d: 60000,
      last_session_bad: true,
      trend: 0,
      days_since_last_view: null,
      tenure_days: 1,
    });
    expect(worst.risk).toBeLessThanOrEqual(1);
    expect(worst.level).toBe('high');
    expect(worst.reasons.length).toBe(3);
  });
});

describe('day-close scoring inputs (churn-scores.ts, pure)', () => {
  const row = (d: number, account: string, f: Partial<ChurnDailyRow> = {}): ChurnDailyRow => ({
    day: d,
    account_id: account,
    views: 0,
    playing_ms: 0,
    rebuffer_ms: 0,
    vsf: 0,
    playback_failures: 0,
    startup_ms: [],
    titles: [],
    revenue_usd_micros: 0,
    gift_usd_micros: 0,
    payment_failures: 0,
    downgrades: 0,
    last_view_time: null,
    last_view_bad: 0,
    pay_state_time: null,
    plan: '',
    auto_renew: 1,
    period_end: null,
    first_payment_time: null,
    ...f,
  });
  it('sums partial rows of source partitions; the last view and the latest payment state win', () => {
    const ms = DAY0 * 86_400_000;
    const rows = [
      row(DAY0, 'a', { views: 1, playing_ms: 10, startup_ms: [5], titles: ['t1'], last_view_time: ms + 100, last_view_bad: 0 }),
      row(DAY0, 'a', { views: 2, playing_ms: 20, startup_ms: [3], titles: ['t1', 't2'], last_view_time: ms + 200, last_view_bad: 1 }),
      row(DAY0 - 40, 'a', { pay_state_time: ms - 40 * 86_400_000, plan: 'premium', first_payment_time: ms - 40 * 86_400_000, period_end: ms }),
      row(DAY0 - 5, 'a', { pay_state_time: ms - 5 * 86_400_000, plan: 'basic', auto_renew: 0, period_end: ms + 9 * 86_400_000 }),
    ];
    const a = accountInputs(DAY0, rows).get('a')!;
    const d = a.days.find((x) => x.day === DAY0)!;
    expect([d.views, d.playingMs, d.startupMs, d.titles, d.lastViewMs, d.lastViewBad]).toEqual([3, 30, [3, 5], ['t1', 't2'], ms + 200, true]);
    expect(a.pay).toEqual({ plan: 'basic', autoRenew: false, periodEndMs: ms + 9 * 86_400_000, firstDay: DAY0 - 40 });
  });
  it('scores accounts active in 28 days or with a running period; top genre by title-days', () => {
    const ms = DAY0 * 86_400_000;
    const rows = [
      row(DAY0 - 1, 'active', { views: 2, titles: ['x', 'y'] }),
      row(DAY0, 'active', { views: 1, titles: ['y'] }),
      row(DAY0 - 60, 'paid-idle', { pay_state_time: ms - 60 * 86_400_000, plan: 'standard', period_end: ms + 5 * 86_400_000 }),
      row(DAY0 - 60, 'gone', { views: 1, pay_state_time: ms - 60 * 86_400_000, plan: 'standard', period_end: ms - 30 * 86_400_000 }),
    ];
    const out = churnScoreRows(
      DAY0,
      rows,
      new Map([
        ['x', 'news'],
        ['y', 'drama'],
      ]),
    );
    expect(out.map((r) => [r.account_id, r.top_genre, r.plan])).toEqual([
      ['active', 'drama', NO_PLAN],
      ['paid-idle', 'none', 'standard'],
    ]);
    expect(topGenre(DAY0, accountInputs(DAY0, [row(DAY0, 'b', { titles: ['q', 'x'] })]).get('b')!.days, new Map([['x', 'news']]))).toBe('news'); // tie 1–1: 'news' < 'unknown'
  });
});
