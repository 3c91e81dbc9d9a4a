/**
 * Churn features and risk (DOMAIN §5), pure. Input: one account's daily activity facts (the
 * rows of churn_account_daily summed over source partitions) and its payment state; output: the
 * 7/28-day features, a risk score in [0, 1] from a hand-set logistic model, its top reasons and a
 * level. Weights are documented in docs/churn.md with the evidence they come from
 * (reference/qoe.md §4). No clock: `asOfDay` (days since epoch, UTC) is passed in.
 */

export const DAY_MS = 86_400_000;

/** Additive facts of one account on one UTC day. */
export interface DailyFacts {
  day: number;
  views: number;
  playingMs: number;
  rebufferMs: number;
  /** Video start failures: views that failed before the first frame. */
  vsf: number;
  /** Views with a fatal, non-business error after starting. */
  playbackFailures: number;
  /** Startup times (ms) of the day's views that started. */
  startupMs: number[];
  /** Distinct content ids watched that day. */
  titles: string[];
  revenueUsdMicros: number;
  giftUsdMicros: number;
  paymentFailures: number;
  downgrades: number;
  /** Event time of the day's last view start, and whether that view was bad (failure or ≥ 2 % rebuffer). */
  lastViewMs: number | null;
  lastViewBad: boolean;
}

export interface PaymentState {
  plan: string;
  autoRenew: boolean;
  /** Current period end (ms), null if unknown. */
  periodEndMs: number | null;
  /** Day of the first subscription_start / first payment seen (tenure). */
  firstDay: number | null;
}

export interface ChurnFeatures {
  days_since_last_view: number | null;
  views_7d: number;
  views_28d: number;
  active_days_7d: number;
  active_days_28d: number;
  playing_hours_7d: number;
  playing_hours_28d: number;
  /** 7 d playing ÷ (28 d playing / 4); 0 when nothing was played in 28 d. */
  trend: number;
  distinct_titles_28d: number;
  revenue_usd_28d: number;
  gift_value_usd_28d: number;
  tenure_days: number | null;
  plan: string;
  auto_renew_off: boolean;
  days_to_period_end: number | null;
  payment_failures_28d: number;
  downgrades_28d: number;
  rebuffer_pct_7d: number;
  vsf_7d: number;
  playback_failures_7d: number;
  startup_p95_ms_7d: number | null;
  last_session_bad: boolean;
}

/** Nearest-rank p95 (ceil(0.95·n)-th smallest). */
export function p95(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.ceil(0.95 * s.length) - 1]!;
}

/** Features as of the end of `asOfDay` over days (asOfDay − W, asOfDay], W = 7 and 28. */
export function churnFeatures(asOfDay: number, days: DailyFacts[], pay: PaymentState): ChurnFeatures {
  const in7 = days.filter((d) => d.day <= asOfDay && d.day > asOfDay - 7);
  const in28 = days.filter((d) => d.day <= asOfDay && d.day > asOfDay - 28);
  const sum = (xs: DailyFacts[], f: (d: DailyFacts) => number) => xs.reduce((a, d) => a + f(d), 0);
  const play7 = sum(in7, (d) => d.playingMs);
  const play28 = sum(in28, (d) => d.playingMs);
  const reb7 = sum(in7, (d) => d.rebufferMs);
  const seen = days.filter((d) => d.day <= asOfDay && d.views > 0);
  const lastViewDay = seen.length ? Math.max(...seen.map((d) => d.day)) : null;
  const last = seen.filter((d) => d.lastViewMs !== null).sort((a, b) => b.lastViewMs! - a.lastViewMs!)[0];
  const endOfDayMs = (asOfDay + 1) * DAY_MS;
  return {
    days_since_last_view: lastViewDay === null ? null : asOfDay - lastViewDay,
    views_7d: sum(in7, (d) => d.views),
    views_28d: sum(in28, (d) => d.views),
    active_days_7d: in7.filter((d) => d.views > 0).length,
    active_days_28d: in28.filter((d) => d.views > 0).length,
    playing_hours_7d: play7 / 3_600_000,
    playing_hours_28d: play28 / 3_600_000,
    trend: play28 === 0 ? 0 : play7 / (play28 / 4),
    distinct_titles_28d: new Set(in28.flatMap((d) => d.titles)).size,
    revenue_usd_28d: sum(in28, (d) => d.revenueUsdMicros) / 1e6,
    gift_value_usd_28d: sum(in28, (d) => d.giftUsdMicros) / 1e6,
    tenure_days: pay.firstDay === null ? null : asOfDay - pay.firstDay,
    plan: pay.plan,
    auto_renew_off: !pay.autoRenew,
    days_to_period_end: pay.periodEndMs === null ? null : Math.floor((pay.periodEndMs - endOfDayMs) / DAY_MS),
    payment_failures_28d: sum(in28, (d) => d.paymentFailures),
    downgrades_28d: sum(in28, (d) => d.downgrades),
    rebuffer_pct_7d: play7 + reb7 === 0 ? 0 : (100 * reb7) / (play7 + reb7),
    vsf_7d: sum(in7, (d) => d.vsf),
    playback_failures_7d: sum(in7, (d) => d.playbackFailures),
    startup_p95_ms_7d: p95(in7.flatMap((d) => d.startupMs)),
    last_session_bad: last?.lastViewBad ?? false,
  };
}

/** Hand-set logistic weights (docs/churn.md gives the reason for each). */
export const CHURN_WEIGHTS = {
  intercept: -3.0,
  /** per week without a view, capped at 4 weeks */
  inactivity_weeks: 0.6,
  /** per unit of decline, max(0, 1 − trend) (trend capped at 1) */
  watch_decline: 1.5,
  /** per failed payment in 28 d, capped at 3 */
  payment_failures: 0.9,
  auto_renew_off: 1.2,
  /** per downgrade in 28 d, capped at 2 */
  downgrades: 0.5,
  /** per rebuffer percentage point in 7 d, capped at 10 */
  rebuffer_pct: 0.15,
  /** per VSF or playback failure in 7 d, capped at 5 */
  failures: 0.2,
  /** per second of p95 startup above 2 s in 7 d, capped at 10 s */
  slow_startup_s: 0.1,
  last_session_bad: 0.4,
  /** tenure under 30 days */
  new_account: 0.3,
} as const;
export type Reason = Exclude<keyof typeof CHURN_WEIGHTS, 'intercept'>;

export interface ChurnScore {
  risk: number;
  level: 'low' | 'medium' | 'high';
  reasons: Reason[];
  contributions: Record<Reason, number>;
}

export function churnScore(f: ChurnFeatures): ChurnScore {
  const w = CHURN_WEIGHTS;
  const inactivity = f.days_since_last_view === null ? 4 : Math.min(f.days_since_last_view, 28) / 7;
  const c: Record<Reason, number> = {
    inactivity_weeks: w.inactivity_weeks * inactivity,
    watch_decline: w.watch_decline * Math.max(0, 1 - Math.min(f.trend, 1)),
    payment_failures: w.payment_failures * Math.min(f.payment_failures_28d, 3),
    auto_renew_off: f.auto_renew_off ? w.auto_renew_off : 0,
    downgrades: w.downgrades * Math.min(f.downgrades_28d, 2),
    rebuffer_pct: w.rebuffer_pct * Math.min(f.rebuffer_pct_7d, 10),
    failures: w.failures * Math.min(f.vsf_7d + f.playback_failures_7d, 5),
    slow_startup_s: w.slow_startup_s * (f.startup_p95_ms_7d === null ? 0 : Math.min(Math.max(0, f.startup_p95_ms_7d / 1000 - 2), 10)),
    last_session_bad: f.last_session_bad ? w.last_session_bad : 0,
    new_account: f.tenure_days !== null && f.tenure_days < 30 ? w.new_account : 0,
  };
  const z = w.intercept + Object.values(c).reduce((a, b) => a + b, 0);
  const risk = 1 / (1 + Math.exp(-z));
  const reasons = (Object.entries(c) as Array<[Reason, number]>)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, 3)
    .map(([k]) => k);
  return { risk, level: riskLevel(risk), reasons, contributions: c };
}

export function riskLevel(risk: number): 'low' | 'medium' | 'high' {
  return risk >= 0.5 ? 'high' : risk >= 0.2 ? 'medium' : 'low';
}

/** Tenure bands for cohorts. */
export function tenureBand(tenureDays: number | null): string {
  if (tenureDays === null) return 'unknown';
  if (tenureDays < 30) return '0-29d';
  if (tenureDays < 90) return '30-89d';
  if (tenureDays < 365) return '90-364d';
  return '365d+';
}
