/**
 * The business golden input through the real pipeline: Kafka (KRaft), the schema registry,
 * Redis checkpoints and embedded ClickHouse. Four runs, each on its own topics, group and
 * database, must all give exactly the hand-worked rows of tests/golden/business/expected.json:
 *   (a) straight; (b) the processor SIGKILLed mid-stream and restarted; (c) two instances in one
 *   consumer group, one SIGKILLed; (d) a full replay that drops and rebuilds the tables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { businessProcessor } from '../../processors/business/business.processor.js';
import { ProcessorRunner } from '../../processors/core/runner.js';
import { replayProcessor } from '../../processors/replay.js';
import { cleanupTestEnv, pollUntil, testEnv } from '../helpers/env.js';
import { loadGoldenExpected, loadGoldenInput, sortRows } from '../helpers/golden.js';
import { produceRecords, runnerDeps, scenario, spawnRoles, startServices, waitCaughtUp, type Scenario, type Services } from '../helpers/pipeline-harness.js';

const input = loadGoldenInput('business');
const expected = loadGoldenExpected<Record<string, any>>('business');
const KINDS = ['payments', 'gifts', 'playback'] as const;
// The hand-worked rows are those of the grace alone (p7 is late): the children get no allowed
// lateness, as the in-process processor. Late firings of business: tests/unit/late-firing.test.ts.
const t = testEnv('business-golden', {
  WINDOW_GRACE_MS: String(expected.graceMs),
  ALLOWED_LATENESS_MS: String(expected.allowedLatenessMs),
  CHECKPOINT_INTERVAL_MS: '300',
  BATCH_MAX_MS: '300',
  LATENESS_PAYMENTS_MS: '0',
  LATENESS_GIFTS_MS: '0',
  LATENESS_PLAYBACK_MS: '0',
});
let s: Services;

const num = (rows: Record<string, unknown>[]) =>
  rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v])));

async function assertGolden(ch: ClickHouse, db: string) {
  const pay = await queryRows(
    ch,
    `SELECT toUnixTimestamp(window_start) AS window_start, method, plan, og_tier, country, sum(attempts) AS attempts, sum(succeeded) AS succeeded, sum(failed) AS failed,
      sum(gross_usd_micros) AS gross_usd_micros, sum(refunds_usd_micros) AS refunds_usd_micros, sum(chargebacks_usd_micros) AS chargebacks_usd_micros, sum(net_usd_micros) AS net_usd_micros,
      sum(topups) AS topups, sum(topup_usd_micros) AS topup_usd_micros
    FROM ${db}.kpi_payments_1m FINAL GROUP BY window_start, method, plan, og_tier, country ORDER BY window_start, method, plan, og_tier, country`,
  );
  expect(num(pay)).toEqual(sortRows(expected.kpi_payments_1m, ['window_start', 'method', 'plan', 'og_tier', 'country']));
  const gifts = await queryRows(
    ch,
    `SELECT toUnixTimestamp(window_start) AS window_start, creator_id, sender_account_id, sum(gifts) AS gifts, sum(quantity) AS quantity, sum(coins) AS coins, sum(value_usd_micros) AS value_usd_micros
    FROM ${db}.kpi_gifts_1m FINAL GROUP BY window_start, creator_id, sender_account_id ORDER BY window_start, creator_id, sender_account_id`,
  );
  expect(num(gifts)).toEqual(sortRows(expected.kpi_gifts_1m, ['window_start', 'creator_id', 'sender_account_id']));
  const act = await queryRows(
    ch,
    `SELECT toUnixTimestamp(hour) AS hour, account_id, max(played) AS played, max(paid) AS paid, max(gifted) AS gifted, sum(net_usd_micros) AS net_usd_micros, sum(gift_usd_micros) AS gift_usd_micros
    FROM ${db}.account_activity_1h FINAL GROUP BY hour, account_id ORDER BY hour, account_id`,
  );
  expect(num(act)).toEqual(sortRows(expected.account_activity_1h, ['hour', 'account_id']));
  const late = await queryRows(ch, `SELECT event_id, reason FROM ${db}.late_events FINAL WHERE processor = 'business'`);
  expect(late).toEqual(expected.late_events);
  const [h] = await queryRows<Record<string, number>>(
    ch,
    `SELECT toUnixTimestamp(hour) AS hour, revenue_usd, gross_usd, refunds_usd, chargebacks_usd, payment_failure_rate, active_accounts, payers, net_payers,
      round(arpu_usd, 6) AS arpu_usd, round(arppu_usd, 6) AS arppu_usd, payer_rate, gifts, gift_coins, gift_value_usd, topups, topup_usd FROM ${db}.kpi_business_1h`,
  );
  const e = expected.kpi_business_1h as Record<string, number>;
  for (const [k, v] of Object.entries(e)) expect(Number(h![k]), k).toBeCloseTo(v, 6);
}

function inProcessDeps(sc: Scenario, ch: ClickHouse) {
  return runnerDeps(t, s, sc, 'business', { ch: { ...ch, database: sc.database } });
}
const processor = () => businessProcessor({ graceMs: expected.graceMs, allowedLatenessMs: expected.allowedLatenessMs });

beforeAll(async () => {
  s = await startServices(t);
});
afterAll(async () => {
  await s?.close();
  await cleanupTestEnv(t);
});

describe('business golden run on Kafka, Redis and ClickHouse', () => {
  it('(a) straight, then (d) a full replay that drops and rebuilds the tables', async () => {
    const sc = await scenario(t, s, 'straight');
    await produceRecords(sc.producer, input);
    const deps = inProcessDeps(sc, s.ch);
    const runner = new ProcessorRunner(processor(), deps, { checkpointIntervalMs: 200 });
    await runner.start();
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'business', KINDS);
    await runner.stop();
    await assertGolden(s.ch, sc.database);

    // Pipeline metrics, as Prometheus scrapes them.
    const text = await deps.metrics.registry.metrics();
    const value = (name: string, labels = '') => {
      const re = new RegExp(`^${name}\\{[^}]*${labels}[^}]*\\} (\\S+)$`, 'gm');
      return [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
    };
    expect(value('streampulse_consumed_events_total', 'processor="business"')).toBe(input.length);
    expect(value('streampulse_dedup_hits_total', 'processor="business"')).toBe(expected.dedup_hits);
    expect(value('streampulse_late_events_total', 'processor="business"')).toBe(1);
    expect(value('streampulse_window_emissions_total', 'kind="final"')).toBeGreaterThan(0);
    expect(value('streampulse_window_emissions_total', 'kind="update"')).toBeGreaterThan(0);
    expect(value('streampulse_checkpoint_duration_seconds_count', 'processor="business"')).toBeGreaterThan(0);
    expect(value('streampulse_sink_duration_seconds_count', 'table="kpi_payments_1m"')).toBeGreaterThan(0);
    expect(text).toMatch(/^streampulse_consumer_fetch_lag_records\{processor="business",topic="[^"]+payments",partition="\d"\} 0$/m);
    expect(text).toMatch(/^streampulse_watermark_timestamp_seconds\{processor="business"/m);

    const r = await replayProcessor(processor(), inProcessDeps(sc, s.ch), { fromBeginning: true, checkpointIntervalMs: 200 });
    expect(r.events).toBe(input.length);
    await assertGolden(s.ch, sc.database);
    await sc.close();
  });

  it('(b) SIGKILL in the middle of the stream, then restart', async () => {
    const sc = await scenario(t, s, 'sigkill');
    await produceRecords(sc.producer, input.slice(0, 9));
    const first = spawnRoles(t, sc.childEnv(), 'business', 'sigkill-1');
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'business', KINDS);
    await produceRecords(sc.producer, input.slice(9, 14));
    // Kill while the new records are being processed and before all are checkpointed.
    await new Promise((r) => setTimeout(r, 150));
    expect(await first.kill('SIGKILL')).toBe(-1);
    await produceRecords(sc.producer, input.slice(14));
    const second = spawnRoles(t, sc.childEnv(), 'business', 'sigkill-2');
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'business', KINDS);
    expect(await second.kill('SIGTERM')).toBe(0);
    await assertGolden(s.ch, sc.database);
    await sc.close();
  });

  it('(c) two instances in one consumer group, one SIGKILLed', async () => {
    const sc = await scenario(t, s, 'two');
    const a = spawnRoles(t, sc.childEnv(), 'business', 'two-a');
    const b = spawnRoles(t, sc.childEnv(), 'business', 'two-b');
    // Both members hold partitions before the data arrives.
    const owners = async () => new Set(await Promise.all((await s.redis.keys(`${sc.redisPrefix}ckpt:business:*`)).map((k) => s.redis.hget(k, 'owner'))));
    await pollUntil(async () => (await s.redis.keys(`${sc.redisPrefix}ckpt:business:*`)).length === 12 && (await owners()).size === 2, {
      timeoutMs: 60_000,
      description: 'partitions shared by two members',
    });
    await produceRecords(sc.producer, input.slice(0, 10));
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'business', KINDS);
    expect(await a.kill('SIGKILL')).toBe(-1);
    await produceRecords(sc.producer, input.slice(10));
    // b takes over a's partitions after the session timeout and resumes from a's checkpoints.
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'business', KINDS, 90_000);
    expect(await b.kill('SIGTERM')).toBe(0);
    await assertGolden(s.ch, sc.database);
    await sc.close();
  });
});
