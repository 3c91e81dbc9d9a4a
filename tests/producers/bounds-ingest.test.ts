/**
 * Hostile input, time and value bounds at the edge: the ingest gateway (`app.inject()`) with an
 * injected producer clock, on the real Kafka and schema registry. Each far-future time, too-old
 * time, oversized amount or value is refused with its exact reason (`out_of_bounds: …`, or the
 * Avro contract's `schema_violation` for numbers JSON cannot carry as an Avro long), answered 200
 * with the other events accepted (never 500), dead-lettered with stage `ingest`, and never
 * produced to its topic.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS, dlqTopic, topicSpec } from '../../contracts/topics.js';
import { InMemoryApiKeyStore } from '../../producers/ingest/api-keys.js';
import { ingestPlugin } from '../../producers/ingest/ingest.plugin.js';
import { consumeMessages, headerMap, setUpProducerTestEnv, type ProducerTestEnv } from './support/stack-env.js';
import { giftEvent, playbackEvent } from './support/events.js';

const NOW = Date.UTC(2026, 10, 20, 12, 0, 0);
const KEY = 'ingest-key-bounds-0123456789';
const SKEW = 5 * 60_000;
let env: ProducerTestEnv;
let app: FastifyInstance;
let n = 0;
const uuid = () => `c0c0c0c0-0000-4000-8000-${String(++n).padStart(12, '0')}`;

function payment(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: uuid(),
    event_time: NOW - 60_000,
    payment_id: `p-${n}`,
    account_id: 'acct-1',
    kind: 'renewal',
    status: 'succeeded',
    amount_minor: 999,
    currency: 'USD',
    method: 'card',
    plan: 'basic',
    og_tier: 0,
    auto_renew: true,
    country: 'US',
    ...over,
  };
}

beforeAll(async () => {
  env = await setUpProducerTestEnv('bounds-ingest', { now: () => NOW });
  app = Fastify({ logger: false });
  await app.register(swagger, { openapi: { info: { title: 'StreamPulse', version: 'test' } } });
  await app.register(ingestPlugin, {
    producer: env.producer,
    apiKeys: InMemoryApiKeyStore.fromConfig(`${KEY}:ingest`),
    maxBodyBytes: 1024 * 1024,
    maxEvents: 100,
    metrics: env.metrics,
  });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await env?.close();
});

const post = (kind: string, body: string) =>
  app.inject({ method: 'POST', url: `/v1/events/${kind}`, headers: { 'content-type': 'application/json', 'x-api-key': KEY }, payload: body });

describe('time and value bounds at the ingest gateway', () => {
  it('refuses each event outside the bounds with its exact reason, accepts the rest, and dead-letters the refused ones', async () => {
    const cases: Array<{ event: Record<string, unknown>; reason: string | null }> = [
      { event: payment(), reason: null },
      { event: payment({ event_time: NOW + SKEW }), reason: null }, // at the skew: accepted
      {
        event: payment({ event_time: NOW + SKEW + 1 }),
        reason: `out_of_bounds: event_time: 2026-11-20T12:05:00.001Z is 300001 ms ahead of the reference clock (2026-11-20T12:00:00.000Z); at most 300000 ms (MAX_FUTURE_SKEW_MS) is accepted`,
      },
      {
        event: payment({ event_time: Date.UTC(2099, 0, 1) }),
        reason: `out_of_bounds: event_time: 2099-01-01T00:00:00.000Z is ${Date.UTC(2099, 0, 1) - NOW} ms ahead of the reference clock (2026-11-20T12:00:00.000Z); at most 300000 ms (MAX_FUTURE_SKEW_MS) is accepted`,
      },
      {
        event: payment({ event_time: Date.UTC(1999, 11, 31) }),
        reason: 'out_of_bounds: event_time: 1999-12-31T00:00:00.000Z is before 2000-01-01T00:00:00.000Z, the earliest accepted',
      },
      { event: payment({ event_time: Date.UTC(2012, 0, 1) }), reason: null }, // old history: a backfill
      { event: payment({ amount_minor: 1e12 }), reason: 'out_of_bounds: amount_minor: 1000000000000 is out of bounds [0, 100000000] (one million USD in USD)' },
      { event: payment({ amount_minor: 100_000_000 }), reason: null },
      {
        event: payment({ currency: 'JPY', amount_minor: 149_253_732 }),
        reason: 'out_of_bounds: amount_minor: 149253732 is out of bounds [0, 149253731] (one million USD in JPY)',
      },
      { event: payment({ currency: 'JPY', amount_minor: 149_253_731 }), reason: null },
      { event: payment({ og_tier: 200 }), reason: 'schema_violation: og_tier: must be 0..5' },
      {
        event: payment({ period_end: Date.UTC(2150, 0, 1) }),
        reason: `out_of_bounds: period_end: ${Date.UTC(2150, 0, 1)} is out of bounds [${Date.UTC(2000, 0, 1)}, ${Date.UTC(2100, 0, 1) - 1}] (ms since epoch, 2000-01-01 to 2099-12-31)`,
      },
      {
        event: payment({ received_time: -5 }),
        reason: `out_of_bounds: received_time: -5 is out of bounds [${Date.UTC(2000, 0, 1)}, ${Date.UTC(2100, 0, 1) - 1}] (ms since epoch, 2000-01-01 to 2099-12-31)`,
      },
    ];
    // A number past 2^53 and one past the largest double, as JSON text: the Avro long refuses them.
    const raw =
      JSON.stringify(cases.map((c) => c.event)).slice(0, -1) +
      `,${JSON.stringify(payment()).replace('"amount_minor":999', '"amount_minor":9007199254740993')}` +
      `,${JSON.stringify(payment()).replace('"amount_minor":999', '"amount_minor":1e400')}]`;
    const res = await post('payments', raw);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const want = cases.map((c, index) => ({ index, reason: c.reason })).filter((x) => x.reason !== null);
    want.push({ index: cases.length, reason: 'schema_violation: amount_minor: expected long, got 9007199254740992' });
    want.push({ index: cases.length + 1, reason: 'schema_violation: amount_minor: expected long, got null' });
    expect(body.errors).toEqual(want);
    expect(body).toMatchObject({ accepted: cases.filter((c) => c.reason === null).length, rejected: want.length });

    const gifts = await post(
      'gifts',
      JSON.stringify([
        giftEvent(1),
        { ...giftEvent(2), quantity: 10_000, unit_coins: 1_000_000, coin_value_usd_micros: 1_000_000 },
        { ...giftEvent(3), coin_value_usd_micros: 1e12 },
      ]),
    );
    expect(gifts.json()).toEqual({
      accepted: 1,
      rejected: 2,
      errors: [
        {
          index: 1,
          reason:
            'out_of_bounds: gift value: quantity × unit_coins × coin_value_usd_micros = 10000000000000000 USD micros is over 1000000000000 (one million USD)',
        },
        { index: 2, reason: 'out_of_bounds: coin_value_usd_micros: 1000000000000 is out of bounds [0, 1000000] (at most 1 USD per coin)' },
      ],
    });
    const views = await post(
      'playback',
      JSON.stringify([playbackEvent(1), { ...playbackEvent(2), cum_playing_ms: 1e15 }, { ...playbackEvent(3), bitrate_kbps: 2_000_000_000 }]),
    );
    expect(views.json()).toEqual({
      accepted: 1,
      rejected: 2,
      errors: [
        {
          index: 1,
          reason: 'out_of_bounds: cum_playing_ms: 1000000000000000 is out of bounds [0, 2678400000] (31 days per view; qoe/churn sums (UInt64/Int64))',
        },
        { index: 2, reason: 'out_of_bounds: bitrate_kbps: 2000000000 is out of bounds [0, 200000] (200 Mbit/s)' },
      ],
    });

    // Dead letters: each refused event once, stage ingest, with its class and reason.
    const outOfBounds = want.filter((w) => w.reason!.startsWith('out_of_bounds')).length + 4;
    const schema = want.length - (outOfBounds - 4);
    const dead = (await consumeMessages(env.brokers, dlqTopic(env.topicPrefix), outOfBounds + schema)).map(headerMap);
    expect(dead).toHaveLength(outOfBounds + schema);
    expect(dead.filter((h) => h[DLQ_HEADERS.errorClass] === 'out_of_bounds')).toHaveLength(outOfBounds);
    for (const h of dead) expect(h[DLQ_HEADERS.stage]).toBe('ingest');
    expect(dead.map((h) => h[DLQ_HEADERS.errorMessage])).toContain('amount_minor: 1000000000000 is out of bounds [0, 100000000] (one million USD in USD)');
    // The topics hold the accepted events only.
    const accepted = await consumeMessages(env.brokers, topicSpec(env.topicPrefix, 'payments').topic, body.accepted + 1, 3_000);
    expect(accepted).toHaveLength(body.accepted);
  });
});
