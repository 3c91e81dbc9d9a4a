/**
 * Day-close scoring (DOMAIN §5): churn_account_daily (partial rows per source partition) →
 * one churn_scores row per (day, account) with the §5 features, the risk, its level, top
 * reasons and contributions, plus plan / tenure band / top genre for the churn_cohorts view
 * (008_churn_scores.sql). The features and score come from churn-model.ts, so there is one
 * formula, in TypeScript; ClickHouse only sums partial rows and aggregates scored rows.
 *
 *   churnScoreRows(asOfDay, rows, genreOf)   pure: the rows of one day, from daily facts
 *   scoreChurnDay(ch, day, versionMs)        I/O: reads FINAL facts + catalog, writes churn_scores
 *   scoreClosedChurnDays(ch, opts)           the scheduled job: scores every closed day not yet final
 *
 * Idempotent: rows are keyed by (day, account_id) in a ReplacingMergeTree and are a pure function
 * of the facts as of that day, so scoring a day again (after a replay, a late correction or a
 * crash half-way) gives the same rows; the newest version wins.
 */
import { command, insertRows, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { churnFeatures, churnScore, DAY_MS, tenureBand, type ChurnFeatures, type DailyFacts, type PaymentState } from './churn-model.js';

/** One churn_account_daily row (a partial of one source partition), as the driver or ClickHouse gives it. */
export interface ChurnDailyRow {
  day: number;
  account_id: string;
  views: number;
  playing_ms: number;
  rebuffer_ms: number;
  vsf: number;
  playback_failures: number;
  startup_ms: number[];
  titles: string[];
  revenue_usd_micros: number;
  gift_usd_micros: number;
  payment_failures: number;
  downgrades: number;
  /** ms since epoch or null */
  last_view_time: number | null;
  last_view_bad: number;
  pay_state_time: number | null;
  plan: string;
  auto_renew: number;
  period_end: number | null;
  first_payment_time: number | null;
}

export type ChurnScoreRow = ChurnFeatures & {
  day: number;
  account_id: string;
  tenure_band: string;
  top_genre: string;
  risk: number;
  level: 'low' | 'medium' | 'high';
  reasons: string[];
  contributions: Record<string, number>;
};

/** Accounts that get a score on day D: activity in (D − 28, D] or a subscription period still running at the end of D. */
export const SCORE_WINDOW_DAYS = 28;
export const NO_PLAN = 'none';

/** Per-account daily facts (partials summed) and the latest payment state as of `asOfDay`. */
export function accountInputs(asOfDay: number, rows: readonly ChurnDailyRow[]): Map<string, { days: DailyFacts[]; pay: PaymentState; recent: boolean }> {
  const byAccount = new Map<string, { days: Map<number, DailyFacts>; payAt: number; pay: PaymentState; recent: boolean }>();
  for (const r of rows) {
    const day = Number(r.day);
    if (day > asOfDay) continue;
    let a = byAccount.get(r.account_id);
    if (!a)
      byAccount.set(
        r.account_id,
        (a = { days: new Map(), payAt: -1, pay: { plan: NO_PLAN, autoRenew: true, periodEndMs: null, firstDay: null }, recent: false }),
      );
    if (day > asOfDay - SCORE_WINDOW_DAYS) a.recent = true;
    let d = a.days.get(day);
    if (!d) {
      a.days.set(
        day,
        (d = {
          day,
          views: 0,
          playingMs: 0,
          rebufferMs: 0,
          vsf: 0,
          playbackFailures: 0,
          startupMs: [],
          titles: [],
          revenueUsdMicros: 0,
          giftUsdMicros: 0,
          paymentFailures: 0,
          downgrades: 0,
          lastViewMs: null,
          lastViewBad: false,
        }),
      );
    }
    d.views += Number(r.views);
    d.playingMs += Number(r.playing_ms);
    d.rebufferMs += Number(r.rebuffer_ms);
    d.vsf += Number(r.vsf);
    d.playbackFailures += Number(r.playback_failures);
    d.startupMs.push(...r.startup_ms.map(Number));
    for (const t of r.titles) if (!d.titles.includes(t)) d.titles.push(t);
    d.revenueUsdMicros += Number(r.revenue_usd_micros);
    d.giftUsdMicros += Number(r.gift_usd_micros);
    d.paymentFailures += Number(r.payment_failures);
    d.downgrades += Number(r.downgrades);
    // The day's last view is the latest across source partitions; its badness comes with it.
    if (r.last_view_time !== null && (d.lastViewMs === null || r.last_view_time >= d.lastViewMs)) {
      d.lastViewBad = r.last_view_time === d.lastViewMs ? d.lastViewBad || r.last_view_bad === 1 : r.last_view_bad === 1;
      d.lastViewMs = r.last_view_time;
    }
    // Payment state: the latest payment event across days (payments are keyed by account: one partition).
    if (r.pay_state_time !== null && r.pay_state_time > a.payAt) {
      a.payAt = r.pay_state_time;
      a.pay = { ...a.pay, plan: r.plan || NO_PLAN, autoRenew: r.auto_renew === 1, periodEndMs: r.period_end };
    }
    if (r.first_payment_time !== null) {
      const fd = Math.floor(r.first_payment_time / DAY_MS);
      if (a.pay.firstDay === null || fd < a.pay.firstDay) a.pay = { ...a.pay, firstDay: fd };
    }
  }
  const out = new Map<string, { days: DailyFacts[]; pay: PaymentState; recent: boolean }>();
  for (const [id, a] of [...byAccount].sort((x, y) => x[0].localeCompare(y[0]))) {
    const days = [...a.days.values()]
      .sort((x, y) => x.day - y.day)
      .map((d) => ({ ...d, startupMs: d.startupMs.sort((x, y) => x - y), titles: d.titles.sort() }));
    out.set(id, { days, pay: a.pay, recent: a.recent });
  }
  return out;
}

/**
 * Top genre of an account over (D − 28, D]: the genre with the most title-days (a title counts
 * once per day it was watched); ties go to the alphabetically first genre. Titles missing from
 * the catalog count as 'unknown'; no title watched → 'none'.
 */
export function topGenre(asOfDay: number, days: readonly DailyFacts[], genreOf: ReadonlyMap<string, string>): string {
  const n = new Map<string, number>();
  for (const d of days) {
    if (d.day <= asOfDay - SCORE_WINDOW_DAYS || d.day > asOfDay) continue;
    for (const t of d.titles) {
      const g = genreOf.get(t) ?? 'unknown';
      n.set(g, (n.get(g) ?? 0) + 1);
    }
  }
  const best = [...n].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0];
  return best ? best[0] : 'none';
}

/** The churn_scores rows of day `asOfDay` (days since epoch, UTC), sorted by account. Pure. */
export function churnScoreRows(asOfDay: number, rows: readonly ChurnDailyRow[], genreOf: ReadonlyMap<string, string>): ChurnScoreRow[] {
  const out: ChurnScoreRow[] = [];
  const endOfDayMs = (asOfDay + 1) * DAY_MS;
  for (const [account, { days, pay, recent }] of accountInputs(asOfDay, rows)) {
    if (!recent && !(pay.periodEndMs !== null && pay.periodEndMs >= endOfDayMs)) continue;
    const f = churnFeatures(asOfDay, days, pay);
    const s = churnScore(f);
    out.push({
      day: asOfDay,
      account_id: account,
      ...f,
      tenure_band: tenureBand(f.tenure_days),
      top_genre: topGenre(asOfDay, days, genreOf),
      risk: s.risk,
      level: s.level,
      reasons: s.reasons,
      contributions: s.contributions,
    });
  }
  return out;
}

/** churn_scores columns for ClickHouse (booleans as 0/1). */
export function toClickHouseRow(r: ChurnScoreRow, version: number): Record<string, unknown> {
  return { ...r, auto_renew_off: r.auto_renew_off ? 1 : 0, last_session_bad: r.last_session_bad ? 1 : 0, version };
}

const ms = (col: string) => `if(isNull(${col}), NULL, toUnixTimestamp64Milli(${col}))`;

/** Reads the facts of day `day` from ClickHouse (FINAL, partial rows) and the catalog genres. */
export async function loadChurnInputs(ch: ClickHouse, day: number): Promise<{ rows: ChurnDailyRow[]; genreOf: Map<string, string> }> {
  const db = ch.database;
  const raw = await queryRows<Record<string, unknown>>(
    ch,
    `
    SELECT toInt32(dateDiff('day', toDate('1970-01-01'), day)) AS day_num, account_id, views, playing_ms, rebuffer_ms, vsf, playback_failures,
      startup_ms, titles, revenue_usd_micros, gift_usd_micros, payment_failures, downgrades,
      ${ms('last_view_time')} AS last_view_time, last_view_bad, ${ms('pay_state_time')} AS pay_state_time, plan, auto_renew,
      ${ms('period_end')} AS period_end, ${ms('first_payment_time')} AS first_payment_time
    FROM ${db}.churn_account_daily FINAL
    WHERE day <= toDate({d:Int32}) AND (day > toDate({d:Int32}) - ${SCORE_WINDOW_DAYS} OR pay_state_time IS NOT NULL OR first_payment_time IS NOT NULL
      OR (account_id, day) IN (SELECT account_id, max(day) FROM ${db}.churn_account_daily FINAL WHERE day <= toDate({d:Int32}) AND views > 0 GROUP BY account_id))`,
    { d: day },
  );
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const rows: ChurnDailyRow[] = raw.map((r) => ({
    day: Number(r.day_num),
    account_id: String(r.account_id),
    views: Number(r.views),
    playing_ms: Number(r.playing_ms),
    rebuffer_ms: Number(r.rebuffer_ms),
    vsf: Number(r.vsf),
    playback_failures: Number(r.playback_failures),
    startup_ms: (r.startup_ms as unknown[]).map(Number),
    titles: (r.titles as unknown[]).map(String),
    revenue_usd_micros: Number(r.revenue_usd_micros),
    gift_usd_micros: Number(r.gift_usd_micros),
    payment_failures: Number(r.payment_failures),
    downgrades: Number(r.downgrades),
    last_view_time: num(r.last_view_time),
    last_view_bad: Number(r.last_view_bad),
    pay_state_time: num(r.pay_state_time),
    plan: String(r.plan),
    auto_renew: Number(r.auto_renew),
    period_end: num(r.period_end),
    first_payment_time: num(r.first_payment_time),
  }));
  const titles = [...new Set(rows.filter((r) => r.day > day - SCORE_WINDOW_DAYS).flatMap((r) => r.titles))];
  const genreOf = new Map<string, string>();
  if (titles.length) {
    const g = await queryRows<{ content_id: string; genre: string }>(
      ch,
      `SELECT content_id, argMax(genre, event_time) AS genre FROM ${db}.raw_catalog WHERE content_id IN {ids:Array(String)} GROUP BY content_id`,
      { ids: titles },
    );
    for (const r of g) genreOf.set(r.content_id, r.genre);
  }
  return { rows, genreOf };
}

/** Scores day `day` and writes its churn_scores rows (version = versionMs, from the caller's clock). */
export async function scoreChurnDay(ch: ClickHouse, day: number, versionMs: number): Promise<ChurnScoreRow[]> {
  const { rows, genreOf } = await loadChurnInputs(ch, day);
  const scored = churnScoreRows(day, rows, genreOf);
  if (scored.length)
    await insertRows(
      ch,
      'churn_scores',
      scored.map((r) => toClickHouseRow(r, versionMs)),
    );
  await command(ch, `INSERT INTO ${ch.database}.churn_score_days (day, accounts, version) VALUES (toDate({d:Int32}), {n:UInt32}, {v:UInt64})`, {
    d: day,
    n: scored.length,
    v: versionMs,
  });
  return scored;
}

export interface ScoreJobOptions {
  nowMs: number;
  /** A day is scored once its end + closeDelayMs has passed (window grace + lateness + flush interval). */
  closeDelayMs: number;
  /** Days before the last closed day scored again each run, to pick up late corrections. Default 1. */
  rescoreDays?: number;
  /** First day to score when nothing was scored yet (days since epoch). Default: the last closed day. */
  fromDay?: number;
}

/**
 * The scheduled job (run it every few minutes from the churn role): scores every closed day after
 * the last one scored, and rescores the `rescoreDays` before it. Returns the days scored.
 */
export async function scoreClosedChurnDays(ch: ClickHouse, o: ScoreJobOptions): Promise<number[]> {
  const lastClosed = Math.floor((o.nowMs - o.closeDelayMs) / DAY_MS) - 1;
  const [done] = await queryRows<{ d: number | null }>(
    ch,
    `SELECT if(count() = 0, NULL, toInt32(dateDiff('day', toDate('1970-01-01'), max(day)))) AS d FROM ${ch.database}.churn_score_days`,
  );
  const lastDone = done?.d === null || done?.d === undefined ? null : Number(done.d);
  const from = lastDone === null ? (o.fromDay ?? lastClosed) : lastDone + 1 - (o.rescoreDays ?? 1);
  const days: number[] = [];
  for (let d = from; d <= lastClosed; d++) {
    await scoreChurnDay(ch, d, o.nowMs);
    days.push(d);
  }
  return days;
}
