/**
 * Time and value bounds on the real services (Kafka, the registry, Redis, embedded ClickHouse).
 * Another producer (the SDK's encoder, validation bypassed) writes records the edge would refuse
 * straight into the topics, in the middle of the business golden input: a payment dated 2099, a
 * payment of 1e12 USD cents (1e16 micro-dollars: past 2^53, unencodable in the business rows)
 * and a gift whose coin is valued at 1e12 micro-dollars. The raw store and the business
 * processor, fused as in the pipeline, must keep going: each such record is in the dead-letter
 * topic once, with the reason, in no table, the watermark is not moved (no golden event turns
 * late), and every other event is counted exactly once (the hand-worked golden rows), also after
 * a full replay of the log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS, dlqTopic, topicSpec } from '../../contracts/topics.js';
import { validateEvent } from '../../contracts/validate.js';
import { createMetrics } from '../../lib/metrics.js';
import { queryRows } from '../../sinks/clickhouse/client.js';
import { businessProcessor } from '../../processors/business/business.processor.js';
import { rawStoreProcessor } from '../../processors/raw-store/raw-store.processor.js';
import { ProcessorRunner } from '../../processors/core/runner.js';
import { replayProcessor } from '../../processors/replay.js';
import type { Processor } from '../../processors/core/processor.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { loadGoldenExpected, loadGoldenInput, sortRows } from '../helpers/golden.js';
import { produceRecords, readTopic, runnerDeps, scenario, startServices, waitCaughtUp, type Services } from '../helpers/pipeline-harness.js';

const input = loadGoldenInput('business');
const expected = loadGoldenExpected<Record<string, any>>('business');
const KINDS = ['payments', 'gifts', 'playback'] as const;
const t = testEnv('bounds', { CHECKPOINT_INTERVAL_MS: '300', BATCH_MAX_MS: '300' });
let s: Services;

const num = (rows: Record<string, unknown>[]) =>
  rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v])));

beforeAll(async () => {
  s = await startServices(t);
});
afterAll(async () => {
  await s?.close();
  await cleanupTestEnv(t);
});

describe('records out of bounds written by another producer', () => {
  it('are dead-lettered once with the reason; the pipeline keeps going and counts every other event exactly once', async () => {
    const sc = await scenario(t, s, 'hostile');
    const firstPayment = input.find((r) => r.kind === 'payments')!.event;
    const firstGift = input.find((r) => r.kind === 'gifts')!.event;
    // Same keys as golden events, so they land on partitions whose later events they would spoil.
    const future = {
      ...firstPayment,
      event_id: 'b0b0b0b0-0000-4000-8000-000000000001',
      payment_id: 'p-2099',
      event_time: Date.UTC(2099, 0, 1),
      received_time: Date.UTC(2099, 0, 1),
    };
    const huge = {
      ...firstPayment,
      event_id: 'b0b0b0b0-0000-4000-8000-000000000002',
      payment_id: 'p-huge',
      account_id: 'a3',
      amount_minor: 1e12,
      currency: 'USD',
    };
    const giftHuge = { ...firstGift, event_id: 'b0b0b0b0-0000-4000-8000-000000000003', gift_id: 'g-huge', coin_value_usd_micros: 1e12 };
    // The edge refuses all three; another producer's bytes are what reach the processors.
    for (const [kind, e] of [
      ['payments', future],
      ['payments', huge],
      ['gifts', giftHuge],
    ] as const) {
      expect(validateEvent(kind, e, { referenceMs: Date.now() })).toMatchObject({ ok: false, errorClass: 'out_of_bounds' });
    }
    await produceRecords(sc.producer, input.slice(0, 2));
    await sc.producer.sendValid('payments', [future, huge] as never);
    await sc.producer.sendValid('gifts', [giftHuge] as never);
    await produceRecords(sc.producer, input.slice(2));

    const metrics = createMetrics();
    const runner = new ProcessorRunner(
      [rawStoreProcessor(), businessProcessor({ graceMs: expected.graceMs, allowedLatenessMs: expected.allowedLatenessMs })],
      runnerDeps(t, s, sc, 'raw-store+business', { metrics, deadLetters: sc.producer, deadLetterStage: 'raw-store', maxFutureSkewMs: 300_000 }),
      { checkpointIntervalMs: 200 },
    );
    await runner.start();
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'raw-store', KINDS);
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'business', KINDS);
    await runner.stop();
    await expect(runner.done()).resolves.toBeUndefined(); // no fatal error: the commit cycle went on

    // Business rows: exactly the golden ones (no golden event late, nothing of the three counted).
    const db = sc.database;
    const pay = await queryRows(
      s.ch,
      `SELECT toUnixTimestamp(window_start) AS window_start, method, plan, og_tier, country, sum(attempts) AS attempts, sum(succeeded) AS succeeded, sum(failed) AS failed,
        sum(gross_usd_micros) AS gross_usd_micros, sum(refunds_usd_micros) AS refunds_usd_micros, sum(chargebacks_usd_micros) AS chargebacks_usd_micros, sum(net_usd_micros) AS net_usd_micros,
        sum(topups) AS topups, sum(topup_usd_micros) AS topup_usd_micros
      FROM ${db}.kpi_payments_1m FINAL GROUP BY window_start, method, plan, og_tier, country ORDER BY window_start, method, plan, og_tier, country`,
    );
    expect(num(pay)).toEqual(sortRows(expected.kpi_payments_1m, ['window_start', 'method', 'plan', 'og_tier', 'country']));
    const gifts = await queryRows(
      s.ch,
      `SELECT toUnixTimestamp(window_start) AS window_start, creator_id, sender_account_id, sum(gifts) AS gifts, sum(quantity) AS quantity, sum(coins) AS coins, sum(value_usd_micros) AS value_usd_micros
      FROM ${db}.kpi_gifts_1m FINAL GROUP BY window_start, creator_id, sender_account_id ORDER BY window_start, creator_id, sender_account_id`,
    );
    expect(num(gifts)).toEqual(sortRows(expected.kpi_gifts_1m, ['window_start', 'creator_id', 'sender_account_id']));
    const act = await queryRows(
      s.ch,
      `SELECT toUnixTimestamp(hour) AS hour, account_id, max(played) AS played, max(paid) AS paid, max(gifted) AS gifted, sum(net_usd_micros) AS net_usd_micros, sum(gift_usd_micros) AS gift_usd_micros
      FROM ${db}.account_activity_1h FINAL GROUP BY hour, account_id ORDER BY hour, account_id`,
    );
    expect(num(act)).toEqual(sortRows(expected.account_activity_1h, ['hour', 'account_id']));
    expect(await queryRows(s.ch, `SELECT event_id, reason FROM ${db}.late_events FINAL WHERE processor = 'business'`)).toEqual(expected.late_events);
    // No partition's watermark is anywhere near 2099.
    const wms = await Promise.all((await s.redis.keys(`${sc.redisPrefix}ckpt:business:*`)).map((k) => s.redis.hget(k, 'wm')));
    expect(wms.length).toBeGreaterThan(0);
    for (const wm of wms) expect(Number(wm)).toBeLessThan(Date.UTC(2027, 0, 1));

    // Raw tables: every golden event once, none of the three.
    for (const kind of KINDS) {
      const want = [...new Set(input.filter((r) => r.kind === kind).map((r) => r.event.event_id as string))].sort();
      const rows = await queryRows<{ event_id: string; n: string | number }>(
        s.ch,
        `SELECT event_id, count() AS n FROM ${db}.raw_${kind} FINAL GROUP BY event_id ORDER BY event_id`,
      );
      expect(
        rows.map((r) => r.event_id),
        kind,
      ).toEqual(want);
      expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
    }

    // Dead letters: one per record, from the raw store, with the original bytes and the reason.
    const dead = await readTopic(t.kafkaBrokers, dlqTopic(sc.topicPrefix), 3);
    await new Promise((r) => setTimeout(r, 500));
    const again = await readTopic(t.kafkaBrokers, dlqTopic(sc.topicPrefix), 4, 2_000);
    expect(again).toHaveLength(3); // not written twice (business does not write them too)
    const idOf = (d: (typeof dead)[number]) => {
      const decoded = sc.codec.decode(d.headers[DLQ_HEADERS.kind] as 'payments' | 'gifts', d.value);
      return decoded.ok ? String(decoded.value.event_id) : 'undecodable';
    };
    const byId = new Map(dead.map((d) => [idOf(d), d]));
    const check = (id: string, kind: string, message: RegExp) => {
      const d = byId.get(id);
      expect(d, id).toBeDefined();
      expect(d!.headers[DLQ_HEADERS.errorClass]).toBe('out_of_bounds');
      expect(d!.headers[DLQ_HEADERS.stage]).toBe('raw-store');
      expect(d!.headers[DLQ_HEADERS.topic]).toBe(topicSpec(sc.topicPrefix, kind as 'payments').topic);
      expect(Number(d!.headers[DLQ_HEADERS.offset])).toBeGreaterThanOrEqual(0);
      expect(d!.headers[DLQ_HEADERS.errorMessage]).toMatch(message);
    };
    check(
      future.event_id,
      'payments',
      /^event_time: 2099-01-01T00:00:00\.000Z is \d+ ms ahead of the reference clock \(.*\); at most 300000 ms \(MAX_FUTURE_SKEW_MS\) is accepted/,
    );
    check(huge.event_id, 'payments', /^amount_minor: 1000000000000 is out of bounds \[0, 100000000\] \(one million USD in USD\)$/);
    check(giftHuge.event_id, 'gifts', /^coin_value_usd_micros: 1000000000000 is out of bounds/);

    // A full replay of business from the log, later in wall-clock time, decides the same
    // (reference: the Kafka timestamps) and writes no dead letter.
    await replayProcessor(
      businessProcessor({ graceMs: expected.graceMs, allowedLatenessMs: expected.allowedLatenessMs }),
      runnerDeps(t, s, sc, 'business', { maxFutureSkewMs: 300_000 }),
      { fromBeginning: true, checkpointIntervalMs: 200 },
    );
    const replayed = await queryRows(
      s.ch,
      `SELECT toUnixTimestamp(window_start) AS window_start, method, plan, og_tier, country, sum(attempts) AS attempts, sum(succeeded) AS succeeded, sum(failed) AS failed,
        sum(gross_usd_micros) AS gross_usd_micros, sum(refunds_usd_micros) AS refunds_usd_micros, sum(chargebacks_usd_micros) AS chargebacks_usd_micros, sum(net_usd_micros) AS net_usd_micros,
        sum(topups) AS topups, sum(topup_usd_micros) AS topup_usd_micros
      FROM ${db}.kpi_payments_1m FINAL GROUP BY window_start, method, plan, og_tier, country ORDER BY window_start, method, plan, og_tier, country`,
    );
    expect(num(replayed)).toEqual(sortRows(expected.kpi_payments_1m, ['window_start', 'method', 'plan', 'og_tier', 'country']));
    expect(await queryRows(s.ch, `SELECT event_id, reason FROM ${db}.late_events FINAL WHERE processor = 'business'`)).toEqual(expected.late_events);
    expect(await readTopic(t.kafkaBrokers, dlqTopic(sc.topicPrefix), 4, 2_000)).toHaveLength(3);

    const text = await metrics.registry.metrics();
    const count = (labels: string) =>
      [...text.matchAll(new RegExp(`^streampulse_dead_letters_total\\{[^}]*${labels}[^}]*\\} (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
    // The raw store's are counted by the dead-letter sink that delivered them; business skips and counts.
    expect(count('processor="business",error_class="out_of_bounds"')).toBe(3);
    await sc.close();
  });

  it('a row its table cannot hold (the last resort at the sink) is dead-lettered and left out; the other rows are written and the cycle goes on', async () => {
    const sc = await scenario(t, s, 'badrow');
    const payments = input.filter((r) => r.kind === 'payments');
    await produceRecords(sc.producer, payments);
    const poison = payments[2]!.event.event_id as string;
    // A processor with a bug: for one payment it emits a sum past 2^53, which no Avro long holds.
    const buggy: Processor<null> = {
      name: 'buggy',
      kinds: ['payments'],
      tables: ['kpi_payments_1m'],
      allowedLatenessMs: 0,
      dedupHorizonMs: 0,
      needsDedup: () => false,
      init: () => null,
      onWatermark: () => undefined,
      onFlush: () => undefined,
      serialize: () => null,
      deserialize: () => null,
      process(_s, ev, _rec, ctx) {
        ctx.emit('kpi_payments_1m', {
          window_start: Math.floor((ev.event_time as number) / 60_000) * 60,
          method: ev.event_id as string,
          plan: 'basic',
          og_tier: 0,
          country: 'NP',
          attempts: 1,
          succeeded: 1,
          failed: 0,
          gross_usd_micros: ev.event_id === poison ? 2 ** 60 : 1,
          refunds_usd_micros: 0,
          chargebacks_usd_micros: 0,
          net_usd_micros: 0,
          topups: 0,
          topup_usd_micros: 0,
          is_final: 1,
        });
      },
    };
    const runner = new ProcessorRunner(buggy, runnerDeps(t, s, sc, 'buggy', { deadLetters: sc.producer }), { checkpointIntervalMs: 200 });
    await runner.start();
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'buggy', ['payments']);
    await runner.stop();
    await expect(runner.done()).resolves.toBeUndefined();
    const rows = await queryRows<{ method: string }>(s.ch, `SELECT method FROM ${sc.database}.kpi_payments_1m FINAL ORDER BY method`);
    expect(rows.map((r) => r.method)).toEqual([...new Set(payments.map((r) => r.event.event_id as string))].filter((id) => id !== poison).sort());
    const [d] = await readTopic(t.kafkaBrokers, dlqTopic(sc.topicPrefix), 1);
    expect(d!.headers[DLQ_HEADERS.errorClass]).toBe('unencodable_row');
    expect(d!.headers[DLQ_HEADERS.stage]).toBe('buggy');
    expect(d!.headers[DLQ_HEADERS.topic]).toBe(topicSpec(sc.topicPrefix, 'payments').topic);
    expect(d!.headers[DLQ_HEADERS.errorMessage]).toMatch(/kpi_payments_1m: gross_usd_micros = 1152921504606847000/);
    expect(JSON.parse(d!.value!.toString())).toMatchObject({ method: poison, gross_usd_micros: 2 ** 60 });
    expect(d!.key?.toString()).toBe('kpi_payments_1m');
    await sc.close();
  });
});
