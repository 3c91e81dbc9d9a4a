/**
 * The churn alert family (churn_high_risk_surge, DOMAIN §8) on SIMULATOR traffic (issue 5):
 * simulator events → the real churn processor (and raw-store for the catalog) streamed through
 * the runner's PartitionTask (support/sim-pipeline.ts, roles churn + raw-store only), the daily
 * churn scoring job, embedded ClickHouse; the real evaluator with the default rule (only this
 * rule: the other rules' tables are not filled here) and notifier deliver to a local webhook.
 *
 * Why a separate file and this traffic: the churn model's features span 28 days, so accounts
 * entering high risk are only a stationary series after 4 weeks of data (in the 8-day test of
 * simulator-alerts.test.ts they fell from 382 to 30 while the model warmed up). Here: days 0-35
 * of normal traffic, the rule evaluated from day 28 (its 7-day baseline then covers days 21-27,
 * the last warm-up days), a churn-wave on day 36, recovery on days 37-38.
 *
 * Population: the rule compares the day's entries with +20 % of their 7-day average. If entries
 * were Poisson, tens a day would cross +20 % by noise alone (sd of 30 is 5.5 = 18 %); with several
 * hundred, +20 % is many sd (700: sd 26 = 3.8 %, +20 % is 5 sd). In steady state accounts enter
 * high risk when the gap since their last view grows to ~2.5 weeks (inactivity + watch decline,
 * docs/churn.md), or a few days once auto-renew is off; an account watching λ views a day enters
 * at roughly λ·e^(−18λ) a day, most at λ ≈ 1/18. So the world has many accounts that watch
 * rarely: ACCOUNTS accounts at RATE events/s (~RATE × 925 / ACCOUNTS = 0.07 views per
 * account-day), which also makes the backfill cheap (60 s heartbeats: the churn features come
 * from cumulative counters; 2.5 M events in 40 days).
 * Seen (seed 23): 609-787 entries a day on days 21-35 (24,000 accounts scored), each day within
 * −12 %…+8 % of its 7-day average: more spread than Poisson, mostly a step down from ~740 to ~650
 * after day 29 (likely the new-account term, tenure < 30 d, ending for accounts whose first
 * payment in the data was in the first days), a downward drift, the safe side for this rule.
 * Seed 5 (one run, not kept): 623-761 on days 28-35 (within −13 %…+4 %), the same step down; on
 * day 21, still warming up, 801 against 679 (+18 %): why the evaluation starts at day 28.
 * The churn-wave is the simulator's unchanged incident (6 h on day 36: ~20 % of auto-renewing
 * payers cancel, fail a renewal or downgrade, and watch 80 % less): in this population most of the
 * cancelling accounts have not watched for days, so auto-renew off (+1.2) makes them high at once:
 * 1,308 entries against a 660 baseline; day 37 was back to 655 (baseline 740) and resolved it.
 * Wall time alone on the 2-core machine: ~2 min 15 s (of which ~85 s the 29-day warm-up).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAlerting, type AlertingHandle } from '../../alerts/index.js';
import { Evaluator } from '../../alerts/evaluator.js';
import type { Observation } from '../../alerts/state-machine.js';
import { parseRules, type RuleSet } from '../../alerts/rules.js';
import { AlertStore } from '../../alerts/store.js';
import { createMetrics } from '../../lib/metrics.js';
import { silentLogger } from '../../lib/logger.js';
import { openClickHouse, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import type { IncidentSpec } from '../../producers/simulator/index.js';
import { testEnv } from '../helpers/env.js';
import { SimPipeline } from './support/sim-pipeline.js';
import { TestReceiver, type Received } from './support/receiver.js';
import { closeAlertTest, defaultRulesWithHook } from './support/harness.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const D0 = Date.UTC(2024, 0, 1); // a Monday
const RATE = 2;
const ACCOUNTS = 26_000;
const RULE = 'churn_high_risk_surge';
const FIRST_EVAL_DAY = 28;
const WAVE_DAY = 36;
const LAST_DAY = 38; // last day evaluated (day D is evaluated once D + 1 is scored)
/** Evaluation time of day D: the end of its 24 h window. */
const tOf = (day: number) => D0 + (day + 1) * DAY;
const wave: IncidentSpec = { name: 'churn-wave', startMs: D0 + WAVE_DAY * DAY + 6 * HOUR, durationMs: 6 * HOUR };

const t = testEnv('sim-churn');
const hook = new TestReceiver();
let ch: ClickHouse;
let redis: Redis;
let sim: SimPipeline;
let alerting: AlertingHandle | null = null;
let ruleSet: RuleSet;
const clock = () => sim.nowMs;
const wall0 = Date.now();
const timings: Record<string, number> = {};

function rulesText(): string {
  return defaultRulesWithHook(hook.url);
}

/** Backfills day by day to `untilMs`, one evaluator + delivery pass after each day (if started). */
async function advance(untilMs: number): Promise<void> {
  while (sim.nowMs < untilMs) {
    await sim.advanceTo(Math.min(untilMs, sim.nowMs + DAY));
    if (alerting) await alerting.runOnce();
  }
}

async function daily(fromDay: number, toDay: number): Promise<Array<{ day: number; o: Observation | undefined }>> {
  const ev = new Evaluator({ ruleSet, ch, store: new AlertStore(redis, `${t.redisPrefix}x:`), logger: silentLogger(), metrics: createMetrics(), clock });
  const rule = ruleSet.rules[0]!;
  const obs = await ev.observeRange(rule, tOf(fromDay), tOf(toDay), DAY);
  return obs.map((m, j) => ({ day: fromDay + j, o: [...m.values()][0] }));
}
const fmt = (rows: Array<{ day: number; o: Observation | undefined }>) =>
  rows.map(({ day, o }) => `day ${day}: ${o?.value ?? '-'}/${o?.baseline?.toFixed(1) ?? '-'}/${o?.volume ?? '-'}`).join(', ');
const summary = (r: Received) =>
  `${String(r.body.status)} ${String(r.body.rule)} value=${String(r.body.value)} baseline=${String(r.body.baseline)} volume=${String(r.body.volume)} starts=${String(r.body.starts_at)}`;

beforeAll(async () => {
  await hook.start();
  ch = await openClickHouse(t.config.clickhouse);
  await migrate(ch);
  redis = new Redis(t.redisUrl);
  const all = parseRules(rulesText(), 'default rules + test webhook');
  ruleSet = { ...all, rules: all.rules.filter((r) => r.name === RULE) };
  sim = await SimPipeline.create(ch, {
    roles: ['churn', 'raw-store'],
    generator: { seed: 23, startMs: D0, ratePerSec: RATE, accounts: ACCOUNTS, heartbeatMs: 60_000, incidents: [wave] },
    chunkMs: 2 * HOUR,
  });
}, 60_000);

afterAll(async () => {
  console.log(
    `simulator-churn: ${JSON.stringify({ timings, wallMs: Date.now() - wall0, events: sim?.stats.events, rows: sim?.stats.rows, churnDaysScored: sim?.stats.churnDaysScored })}`,
  );
  await closeAlertTest({ t, hook, redis, ch, alerting });
});

describe('churn alert on simulator traffic through the churn processor', () => {
  it(`${FIRST_EVAL_DAY} days of warm-up, then ${WAVE_DAY - FIRST_EVAL_DAY} days of normal traffic with a warm model: the churn rule does not fire`, async () => {
    const w0 = Date.now();
    // Day FIRST_EVAL_DAY is evaluated once day + 1 is scored (its close: end + grace + lateness).
    await advance(tOf(FIRST_EVAL_DAY + 1) + HOUR);
    timings.warmup = Date.now() - w0;
    alerting = await startAlerting({ config: t.config, logger: silentLogger(), metrics: createMetrics(), ch, redis, clock, ruleSet, manual: true });
    await alerting.runOnce();
    expect((await new AlertStore(redis, t.redisPrefix).cursors()).get(RULE), `first evaluated day: ${FIRST_EVAL_DAY}`).toBe(tOf(FIRST_EVAL_DAY));
    await advance(tOf(WAVE_DAY) + HOUR); // days up to WAVE_DAY - 1 evaluated
    timings.normal = Date.now() - w0;
    const rows = await daily(FIRST_EVAL_DAY - 7, WAVE_DAY - 1);
    console.log(`churn entries / 7-day baseline / accounts scored: ${fmt(rows)}`);
    const cursor = (await new AlertStore(redis, t.redisPrefix).cursors()).get(RULE);
    expect(cursor, 'evaluated up to the last normal day').toBe(tOf(WAVE_DAY - 1));
    expect(hook.received.map(summary)).toEqual([]);
    const rule = ruleSet.rules[0]!;
    for (const { day, o } of rows.filter((r) => r.day >= FIRST_EVAL_DAY)) {
      expect(o, `day ${day} observed`).toBeDefined();
      expect(o!.value, `day ${day} entries`).not.toBeNull();
      expect(o!.baseline, `day ${day} baseline`).not.toBeNull();
      expect(o!.volume, `day ${day}: min_volume reached`).toBeGreaterThanOrEqual(rule.minVolume);
      // Enough entries that +20 % is several standard deviations of daily noise (see header).
      expect(o!.value!, `day ${day} entries in the hundreds`).toBeGreaterThanOrEqual(200);
      expect(o!.value!, `day ${day} under +20 %`).toBeLessThanOrEqual(1.2 * o!.baseline!);
    }
  }, 900_000);

  it('a churn-wave makes the rule fire once with its value and baseline, and it resolves on recovery', async () => {
    const w0 = Date.now();
    await advance(tOf(LAST_DAY + 1) + HOUR);
    timings.wave = Date.now() - w0;
    const rows = await daily(WAVE_DAY - 7, LAST_DAY);
    console.log(`churn entries / 7-day baseline / accounts scored: ${fmt(rows)}`);
    console.log(`notifications:\n${hook.received.map(summary).join('\n')}`);
    expect((await new AlertStore(redis, t.redisPrefix).cursors()).get(RULE)).toBe(tOf(LAST_DAY));
    const firing = hook.received.filter((r) => r.body.status === 'firing');
    const resolved = hook.received.filter((r) => r.body.status === 'resolved');
    expect(firing.map(summary), 'exactly one firing notification').toHaveLength(1);
    expect(resolved.map(summary), 'exactly one resolve notice').toHaveLength(1);
    expect(hook.received).toHaveLength(2);
    const f = firing[0]!.body as {
      rule: string;
      severity: string;
      labels: Record<string, string>;
      value: number;
      baseline: number;
      volume: number;
      starts_at: string;
      dedup_key: string;
    };
    const r = resolved[0]!.body as { dedup_key: string; starts_at: string; ends_at: string };
    expect(f.rule).toBe(RULE);
    expect(f.severity).toBe('warning');
    expect(f.labels).toMatchObject({ alertname: RULE, severity: 'warning' });
    // It fires for the wave day, with that day's entries against the average of the 7 days before.
    expect(Date.parse(f.starts_at)).toBe(tOf(WAVE_DAY));
    const byDay = new Map(rows.map((x) => [x.day, x.o]));
    const waveObs = byDay.get(WAVE_DAY)!;
    expect(f.value).toBe(waveObs.value);
    const before = rows.filter((x) => x.day >= WAVE_DAY - 7 && x.day < WAVE_DAY).map((x) => x.o!.value!);
    expect(before).toHaveLength(7);
    const mean = before.reduce((a, b) => a + b, 0) / 7;
    expect(Math.abs(f.baseline - mean)).toBeLessThanOrEqual(1e-9 * mean);
    expect(f.value).toBeGreaterThan(1.2 * f.baseline);
    expect(f.volume).toBeGreaterThanOrEqual(ruleSet.rules[0]!.minVolume);
    // Resolved on a later day, once the entries are back under +20 % of the (now raised) baseline.
    expect(r.dedup_key).toBe(f.dedup_key);
    expect(r.starts_at).toBe(f.starts_at);
    const ends = Date.parse(r.ends_at);
    expect(ends).toBeGreaterThan(tOf(WAVE_DAY));
    expect(ends).toBeLessThanOrEqual(tOf(LAST_DAY));
    const resolvedDay = Math.round((ends - D0) / DAY) - 1;
    const o = byDay.get(resolvedDay)!;
    expect(o.value!, `day ${resolvedDay} back under +20 %`).toBeLessThanOrEqual(1.2 * o.baseline!);
    expect(hook.received.indexOf(resolved[0]!)).toBeGreaterThan(hook.received.indexOf(firing[0]!));
    expect(await alerting!.listAlerts()).toEqual([]);
  }, 900_000);
});
