/**
 * As-of reads of late-fired windows (issue 18): data that arrives after the settle delay but
 * within the allowed lateness of its kind rewrites closed window rows (late firings). The live
 * evaluation of t saw the rows before that; a replay that evaluates t afterwards would see the
 * corrected rows. The alert metrics read each re-fired row in its latest revision known before
 * t + settle_delay − 1 min (the history tables of migration 018), so both give the same alerts.
 *
 * Simulator traffic (seed 11, 10 events/s) through the real business and safety processors into
 * embedded ClickHouse, alert state in the real Redis (live and replay prefixes), default rules.
 * Hand-made late events:
 *  - 50 failed card renewals in the minute 02:04, delivered in the 02:10-02:15 commit cycle
 *    (6-11 min late, within payments' 15 min): they take the 15-min failure rate above 10 %.
 *    Live, the steps up to 02:13 saw none of them; as of t they count from the first step whose
 *    cut passes their known_at, in both runs. A read of the latest rows would put the rule
 *    pending at 02:05 on a replay only.
 *  - one critical ban at 01:30:10 delivered two hours later (within moderation's 6 h): live never
 *    saw it in a 15-min window; as of t, neither does the replay (by the time it is known its
 *    minute has left every window), while the final table counts it.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRules, type RuleSet } from '../../alerts/rules.js';
import { metricSql } from '../../contracts/metrics-catalog.js';
import type { ModerationEvent, PaymentEvent } from '../../contracts/types.generated.js';
import type { SimEvent } from '../../producers/simulator/index.js';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { alertHistory, liveThenReplay, replayRulesText } from './support/live-replay.js';
import { SimPipeline } from './support/sim-pipeline.js';

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const D0 = Date.UTC(2024, 6, 2);
const START = D0 + HOUR;
const END = D0 + 4 * HOUR;
const H = D0 + 2 * HOUR; // the late failures' minute: [H + 4 min, H + 5 min)
const BAN = D0 + HOUR + 30 * MIN + 10 * SEC;

let seq = 0;
const uuid = () => `00000000-0000-4000-9000-${String(++seq).padStart(12, '0')}`;
function failedRenewal(atMs: number, account: string): SimEvent {
  const e: PaymentEvent = {
    event_id: uuid(),
    event_time: atMs,
    received_time: atMs,
    payment_id: `late-pay-${seq}`,
    account_id: account,
    kind: 'renewal',
    status: 'failed',
    amount_minor: 999,
    currency: 'USD',
    method: 'card',
    plan: 'standard',
    og_tier: 0,
    auto_renew: true,
    period_end: null,
    failure_code: 'card_declined',
    country: 'NP',
  };
  return { kind: 'payments', event: e };
}
const lateFailures: SimEvent[] = Array.from({ length: 50 }, (_, j) => failedRenewal(H + 4 * MIN + j * SEC, `late-acct-${j}`));
const ban: ModerationEvent = {
  event_id: uuid(),
  event_time: BAN,
  received_time: BAN,
  case_id: 'late-case-1',
  event_type: 'action_taken',
  target_type: 'account',
  target_id: 'late-target-1',
  creator_id: null,
  policy: 'fraud',
  severity: 'critical',
  detection_source: 'staff',
  action_type: 'ban_account',
  outcome: null,
};

const t = testEnv('late-firing-replay');
let ch: ClickHouse;
let redis: Redis;
let sim: SimPipeline;
let ruleSet: RuleSet;

const chTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

beforeAll(async () => {
  ch = await openClickHouse(t.config.clickhouse);
  await migrate(ch);
  redis = new Redis(t.redisUrl);
  ruleSet = parseRules(replayRulesText(), 'default rules');
  sim = await SimPipeline.create(ch, {
    generator: { seed: 11, startMs: D0, ratePerSec: 10, heartbeatMs: 30_000 },
    roles: ['business', 'safety'],
    chunkMs: 5 * MIN,
  });
  sim.inject(lateFailures, H + 12 * MIN);
  sim.inject([{ kind: 'moderation', event: ban }], BAN + 2 * HOUR);
}, 60_000);

afterAll(async () => {
  if (redis) {
    const keys = await redis.keys(`${t.redisPrefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
  await ch?.close();
  await cleanupTestEnv(t);
});

describe('late firings and as-of alert reads', () => {
  it('live evaluation and a replay give identical alert histories when late events rewrite closed windows', async () => {
    const { live, replay } = await liveThenReplay({ redis, ch, ruleSet, sim, startMs: START }, t.redisPrefix, END);

    expect(Object.fromEntries(await replay.store.cursors())).toEqual(Object.fromEntries(await live.store.cursors()));
    const a = await alertHistory(live.store);
    const b = await alertHistory(replay.store);
    console.log(`live history (${a.length} transitions):\n${a.join('\n')}`);
    expect(b).toEqual(a);

    const db = ch.database;
    // The late failures were counted (late firings): the final rows the API and Grafana read hold them ...
    const [fin] = await queryRows<{ failed: number }>(
      ch,
      `SELECT sum(failed) AS failed FROM ${db}.kpi_payments_1m FINAL WHERE window_start >= toDateTime({a:Int64}) AND window_start < toDateTime({b:Int64})`,
      { a: H / 1000, b: (H + 5 * MIN) / 1000 },
    );
    expect(Number(fin!.failed)).toBeGreaterThanOrEqual(50);
    // ... and the re-fired rows kept their revisions: the on-time one (known at the minute's end,
    // 02:05) and the late one.
    const revs = await queryRows<{ ws: number; n: number; first: number; last: number }>(
      ch,
      `SELECT toUnixTimestamp(window_start) AS ws, count() AS n,
        toUnixTimestamp64Milli(min(known_at)) AS first, toUnixTimestamp64Milli(max(known_at)) AS last
      FROM ${db}.kpi_payments_1m_history FINAL WHERE window_start >= toDateTime({a:Int64}) AND window_start < toDateTime({b:Int64}) AND method = 'card' AND plan = 'standard' AND country = 'NP'
      GROUP BY ws ORDER BY ws`,
      { a: H / 1000, b: (H + 5 * MIN) / 1000 },
    );
    expect(revs.length).toBeGreaterThanOrEqual(1);
    // Known at the records' Kafka timestamp: the end of the 02:10-02:15 commit cycle.
    const knownAt = Math.max(...revs.map((r) => Number(r.last)));
    expect(knownAt).toBe(H + 15 * MIN);
    // (A source partition that had no such payment on time has the late revision only.)
    for (const r of revs) expect([H + 5 * MIN, H + 15 * MIN]).toContain(Number(r.first));

    // The failure rule goes pending at the first step whose cut (t + settle − 1 min = t + 1 min)
    // passes the late rows' known_at, and fires 2 min later (for: 2m), in both runs.
    const fail = a.filter((x) => x.includes(' business_payment_failures_high '));
    const firstStep = Math.floor((knownAt - MIN) / MIN) * MIN + MIN;
    expect(fail.map((x) => x.split(' value=')[0]!.replace(/ business_payment_failures_high \S+/, ''))).toEqual(
      expect.arrayContaining([`${chTime(firstStep)} inactive->pending`, `${chTime(firstStep + 2 * MIN)} pending->firing`]),
    );
    expect(fail.filter((x) => x < chTime(firstStep))).toEqual([]);
    // What a read of the latest rows gives at 02:06 (the 15-min window holds the 50 failures):
    // above 10 % with enough attempts, so a replay reading the final rows would page 8 min before
    // the live evaluation could (the reason for the as-of reads).
    const at = H + 6 * MIN;
    const [latest] = await queryRows<{ pct: number; n_attempts: number }>(
      ch,
      `SELECT ${metricSql('payment_failure_pct', 'payment_minute')} AS pct, sum(attempts) AS n_attempts
      FROM ${db}.kpi_payments_1m FINAL WHERE window_start >= toDateTime({a:Int64}) AND window_start < toDateTime({b:Int64})`,
      { a: (at - 15 * MIN) / 1000, b: at / 1000 },
    );
    expect(Number(latest!.pct)).toBeGreaterThan(10);
    expect(Number(latest!.n_attempts)).toBeGreaterThanOrEqual(20);
    // As of 02:06 (cut 02:07) the evaluator reads what the live step read: below the threshold.
    const rule = ruleSet.rules.find((r) => r.name === 'business_payment_failures_high')!;
    const [obs] = [...(await replay.ev.observe(rule, at)).values()];
    expect(obs!.value!).toBeLessThan(10);

    // The late critical ban is in the final table (02:30 minute's row rewritten two hours later) ...
    const [bans] = await queryRows<{ n: number }>(
      ch,
      `SELECT sum(events) AS n FROM ${db}.safety_events_1m FINAL WHERE severity = 'critical' AND event_type = 'action_taken' AND window_start = toDateTime({w:Int64})`,
      { w: Math.floor(BAN / MIN) * 60 },
    );
    expect(Number(bans!.n)).toBe(1);
    const [banRev] = await queryRows<{ k: number }>(
      ch,
      `SELECT toUnixTimestamp64Milli(known_at) AS k FROM ${db}.safety_events_1m_history FINAL WHERE severity = 'critical' AND window_start = toDateTime({w:Int64})`,
      { w: Math.floor(BAN / MIN) * 60 },
    );
    // Known at its record's Kafka timestamp (the end of the commit cycle that delivered it: the
    // simulated pipeline writes each chunk's records at its end), not at the moderation
    // partition's stream time, which lags the payments behind the frontier by minutes.
    expect(Number(banRev!.k)).toBe(BAN - (BAN % (5 * MIN)) + 2 * HOUR + 5 * MIN);
    // ... but no 15-min window evaluated after it was known holds it: the rule never fired, live or replayed.
    expect(a.filter((x) => x.includes(' safety_critical_action '))).toEqual([]);
    const crit = ruleSet.rules.find((r) => r.name === 'safety_critical_action')!;
    expect([...(await replay.ev.observe(crit, Math.floor(BAN / MIN) * MIN + MIN)).values()].filter((o) => o.active)).toEqual([]);
  }, 1_800_000);
});
