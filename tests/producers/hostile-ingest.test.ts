/**
 * Hostile input at the ingest gateway, over real HTTP on 127.0.0.1, on the real Kafka and Redis
 * (keys and rate limits in Redis, events and dead letters in Kafka): each class of bad request gets
 * its exact 4xx and reason, is counted by reason in the metrics and, where it carried events, is in
 * the dead-letter topic. Then 10,000 mixed requests (valid and hostile): no 500, every valid event
 * in its topic exactly once (read back by event_id), every refused request counted and
 * dead-lettered, and the refusal log stays a few lines per reason.
 */
import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS, dlqTopic, topicSpec } from '../../contracts/topics.js';
import { RedisApiKeyStore } from '../../api/api-keys.js';
import { topicHighWatermarks } from '../../lib/kafka-admin.js';
import type { Metrics } from '../../lib/metrics.js';
import { MAX_DEAD_LETTER_VALUE_BYTES } from '../../producers/sdk/event-producer.js';
import { ingestPlugin } from '../../producers/ingest/ingest.plugin.js';
import { consumeMessages, headerMap, setUpProducerTestEnv, type ProducerTestEnv } from './support/stack-env.js';
import { giftEvent, playbackEvent } from './support/events.js';

const KEY = 'hostile-ingest-key-0123456789abcdef';
const LIMITED = 'hostile-limited-key-0123456789abcdef';
const LIMITED_EPOCH_MS = Date.UTC(2026, 0, 1);
const VIEWER = 'hostile-viewer-key-0123456789abcdef';
const MAX_BODY = 4 * 1024 * 1024;
const MAX_EVENTS = 100;

let env: ProducerTestEnv;
let redis: Redis;
let app: FastifyInstance;
let url: string;
let metrics: Metrics;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  env = await setUpProducerTestEnv('hostile');
  metrics = env.metrics;
  redis = new Redis(env.t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  const keys = new RedisApiKeyStore(redis, env.t.redisPrefix);
  await keys.seed(`${KEY}:ingest,${LIMITED}:ingest,${VIEWER}:viewer`);
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(l));
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  app = Fastify({ logger: false, bodyLimit: MAX_BODY });
  const common = {
    producer: env.producer,
    apiKeys: keys,
    maxBodyBytes: MAX_BODY,
    maxEvents: MAX_EVENTS,
    metrics,
    logger,
    bounds: { maxDepth: 32, maxStringBytes: 64 * 1024 },
  };
  // The limits are on everywhere; the main gateway's are high enough for the flood below, the
  // /limited one's low enough to be reached by a test.
  await app.register(ingestPlugin, { ...common, rateLimits: { redis, prefix: env.t.redisPrefix, requestsPerSecond: 1_000_000, eventsPerSecond: 10_000_000 } });
  await app.register(ingestPlugin, {
    ...common,
    prefix: '/limited',
    rateLimits: { redis, prefix: `${env.t.redisPrefix}limited:`, requestsPerSecond: 3, eventsPerSecond: 150, now: () => LIMITED_EPOCH_MS },
  } as Parameters<typeof ingestPlugin>[1]);
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}, 120_000);

afterAll(async () => {
  await app?.close();
  await redis?.quit();
  await env?.close();
});

type Body = string | Buffer;
async function post(
  kind: string,
  body: Body,
  headers: Record<string, string> = {},
  base = url,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${base}/v1/events/${kind}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': KEY, ...headers },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const rejected = async (reason: string) =>
  (await metrics.ingestRejectedRequests.get()).values.filter((v) => v.labels.reason === reason).reduce((s, v) => s + v.value, 0);

describe('each hostile class: exact status and reason, counted, dead-lettered when it carried events', () => {
  it('auth: 401 missing or unknown key, 403 a role that may not ingest', async () => {
    expect(await post('gifts', '[]', { 'x-api-key': '' })).toMatchObject({
      status: 401,
      body: { error: 'unauthorized', message: expect.stringContaining('missing API key') },
    });
    expect(await post('gifts', '[]', { 'x-api-key': 'x'.repeat(5000) })).toMatchObject({
      status: 401,
      body: { error: 'unauthorized', message: 'unknown API key' },
    });
    expect(await post('gifts', '[]', { 'x-api-key': VIEWER })).toMatchObject({ status: 403, body: { error: 'forbidden' } });
  });

  it('nesting 10,000 and 100,000 deep, as the body and as a field value: 400 too_deep before parsing', async () => {
    for (const n of [10_000, 100_000]) {
      expect(await post('gifts', deep(n))).toMatchObject({
        status: 400,
        body: { error: 'too_deep', message: 'body refused before parsing: JSON nested deeper than 32 levels (at byte 32)' },
      });
      const asField = JSON.stringify([giftEvent(1)]).replace('"gift_type":"rose"', `"gift_type":${deep(n)}`);
      expect(await post('gifts', asField)).toMatchObject({ status: 400, body: { error: 'too_deep' } });
    }
    // NDJSON: the deep line alone is refused, the others are stored.
    const nd = `${JSON.stringify(giftEvent(2))}\n{"gift_id":${deep(20_000)}}\n${JSON.stringify(giftEvent(3))}`;
    const r = await post('gifts', nd, { 'content-type': 'application/x-ndjson' });
    expect(r).toMatchObject({
      status: 200,
      body: { accepted: 2, rejected: 1, errors: [{ index: 1, reason: expect.stringMatching(/^too_deep: line 1 refused before parsing/) }] },
    });
  });

  it('multi-megabyte values in wrongly typed fields: 400 string_too_long; the dead letter is cut to the broker limit with a note', async () => {
    const huge = JSON.stringify([{ ...giftEvent(4), quantity: 'q'.repeat(3 * 1024 * 1024) }]);
    expect(await post('gifts', huge)).toMatchObject({
      status: 400,
      body: {
        error: 'string_too_long',
        message: `body refused before parsing: a string of ${3 * 1024 * 1024} bytes starts at byte ${huge.indexOf('"qqq')}; the limit is 65536 bytes`,
      },
    });
    const playback = JSON.stringify({ ...playbackEvent(5), seq: 's'.repeat(2 * 1024 * 1024) });
    expect(await post('playback', playback)).toMatchObject({ status: 400, body: { error: 'string_too_long' } });
  });

  it('not JSON, empty, a scalar: 400 invalid_json; an unknown kind 404; another content type 415; too many events 400; a body over the limit 413', async () => {
    expect(await post('gifts', '[{"gift_id": ')).toMatchObject({
      status: 400,
      body: { error: 'invalid_json', message: expect.stringMatching(/^body is not valid JSON/) },
    });
    expect(await post('gifts', '')).toMatchObject({ status: 400, body: { error: 'invalid_json' } });
    expect(await post('gifts', '"just a string"')).toMatchObject({
      status: 400,
      body: { error: 'invalid_json', message: expect.stringMatching(/got string$/) },
    });
    expect(await post('gifts', Buffer.from([0x5b, 0xff, 0xfe, 0x5d]))).toMatchObject({ status: 400, body: { error: 'invalid_json' } });
    expect(await post(`x${'k'.repeat(90)}`, '[{"a":1}]')).toMatchObject({ status: 404, body: { error: 'unknown_kind' } });
    // A path parameter over Fastify's maxParamLength (100) is refused by the router itself, before any plugin.
    expect((await post(`x${'k'.repeat(300)}`, '[{"a":1}]')).status).toBe(414);
    expect(await post('gifts', 'a,b', { 'content-type': 'text/csv' })).toMatchObject({ status: 415, body: { error: 'unsupported_media_type' } });
    expect(await post('gifts', JSON.stringify(Array.from({ length: MAX_EVENTS + 1 }, (_, i) => giftEvent(i))))).toMatchObject({
      status: 400,
      body: { error: 'too_many_events' },
    });
    expect(await post('gifts', `[${'1,'.repeat(MAX_BODY / 2)}1]`)).toMatchObject({ status: 413, body: { error: 'oversize' } });
  });

  it('prototype keys and wrong types inside events are schema violations of that event only (200, dead-lettered)', async () => {
    const r = await post(
      'gifts',
      `[${JSON.stringify(giftEvent(6))},{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}}},${JSON.stringify({ ...giftEvent(7), quantity: { $gt: 0 } })}]`,
    );
    expect(r).toMatchObject({ status: 200, body: { accepted: 1, rejected: 2 } });
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('rate limits per key: 429 with Retry-After for requests/s and for events/s', async () => {
    const limited = `${url}/limited`;
    // Sent at once, so that they land within one or two of the limiter's one-second windows even on a loaded machine.
    const burst = await Promise.all(
      Array.from({ length: 10 }, (_, i) => post('gifts', JSON.stringify([giftEvent(100 + i)]), { 'x-api-key': LIMITED }, limited)),
    );
    const statuses = burst.map((r) => r.status);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    const refused = await post('gifts', '[]', { 'x-api-key': LIMITED }, limited);
    expect(refused).toMatchObject({ status: 429, body: { error: 'rate_limited', message: expect.stringContaining('more than 3 requests per second') } });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Events per second: 150 per key; the events/s windows of this gateway run on a frozen clock
    // (LIMITED_EPOCH_MS), so both requests fall in one window however slow the machine is.
    await new Promise((r) => setTimeout(r, 1100)); // the requests/s window passes
    const a = await post('playback', JSON.stringify(Array.from({ length: 90 }, (_, i) => playbackEvent(200 + i))), { 'x-api-key': LIMITED }, limited);
    const b = await post('playback', JSON.stringify(Array.from({ length: 90 }, (_, i) => playbackEvent(300 + i))), { 'x-api-key': LIMITED }, limited);
    const events429 = [a, b].find((x) => x.status === 429 && String(x.body.message).includes('events per second'));
    expect([a.status, b.status]).toEqual([200, 429]);
    if (events429) expect(events429.headers.get('retry-after')).toBe('1');
    expect(await rejected('rate_limited')).toBeGreaterThanOrEqual(3);
  });

  it('counted every refusal by reason, and dead-lettered the ones that carried events', async () => {
    expect(await rejected('unauthorized')).toBe(2);
    expect(await rejected('forbidden')).toBe(1);
    expect(await rejected('too_deep')).toBe(4);
    expect(await rejected('string_too_long')).toBe(2);
    expect(await rejected('invalid_json')).toBe(4);
    expect(await rejected('unknown_kind')).toBe(1);
    expect(await rejected('unsupported_media_type')).toBe(1);
    expect(await rejected('too_many_events')).toBe(1);
    expect(await rejected('oversize')).toBe(1);
    // Dead letters: 4 too_deep bodies + 1 NDJSON line, 2 string_too_long, 3 invalid_json with bytes (the empty body has none),
    // 1 unknown_kind, 1 too_many_events, 1 oversize (no value), 2 schema violations.
    const dead = (await consumeMessages(env.brokers, dlqTopic(env.topicPrefix), 15)).map((m) => ({
      h: headerMap(m),
      size: m.value?.length ?? 0,
      value: m.value,
    }));
    const count = (cls: string) => dead.filter((d) => d.h[DLQ_HEADERS.errorClass] === cls).length;
    expect([
      count('too_deep'),
      count('string_too_long'),
      count('invalid_json'),
      count('unknown_kind'),
      count('too_many_events'),
      count('oversize'),
      count('schema_violation'),
    ]).toEqual([5, 2, 3, 1, 1, 1, 2]);
    for (const d of dead.filter((x) => x.h[DLQ_HEADERS.errorClass] === 'string_too_long')) {
      expect(d.size).toBe(MAX_DEAD_LETTER_VALUE_BYTES);
      expect(d.h[DLQ_HEADERS.errorMessage]).toMatch(/value truncated to its first 900000 of \d+ bytes/);
    }
    expect(dead.find((d) => d.h[DLQ_HEADERS.errorClass] === 'oversize')!.value).toBeNull();
  });
});

describe('10,000 mixed hostile requests', () => {
  it('no 500; every valid event stored exactly once; every refused request counted and dead-lettered', async () => {
    const N = 10_000;
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    type Job = {
      kind: string;
      body: Body;
      headers: Record<string, string>;
      expect: number;
      reason?: string;
      valid: string[];
      invalidEvents: number;
      deadLetters: number;
    };
    const jobs: Job[] = [];
    let n = 0;
    for (let i = 0; i < N; i++) {
      const r = rand();
      const g = () => giftEvent(10_000 + n++);
      const p = () => playbackEvent(10_000 + n++);
      if (r < 0.3) {
        const events = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => (rand() < 0.5 ? g() : p()));
        const kind = 'view_id' in events[0]! ? 'playback' : 'gifts';
        const same = events.map((e) => (kind === 'playback' ? ('view_id' in e ? e : p()) : 'gift_id' in e ? e : g()));
        jobs.push({ kind, body: JSON.stringify(same), headers: {}, expect: 200, valid: same.map((e) => e.event_id), invalidEvents: 0, deadLetters: 0 });
      } else if (r < 0.4) {
        const events = [g(), g()];
        jobs.push({
          kind: 'gifts',
          body: events.map((e) => JSON.stringify(e)).join('\n'),
          headers: { 'content-type': 'application/x-ndjson' },
          expect: 200,
          valid: events.map((e) => e.event_id),
          invalidEvents: 0,
          deadLetters: 0,
        });
      } else if (r < 0.5) {
        const good = g();
        const bad = { ...g(), quantity: -1 };
        const badLine = '{"gift_id": ';
        jobs.push({
          kind: 'gifts',
          body: [JSON.stringify(good), JSON.stringify(bad), badLine].join('\n'),
          headers: { 'content-type': 'application/x-ndjson' },
          expect: 200,
          valid: [good.event_id],
          invalidEvents: 2,
          deadLetters: 2,
        });
      } else if (r < 0.58) {
        jobs.push({
          kind: 'gifts',
          body: `[${JSON.stringify(g())},`,
          headers: {},
          expect: 400,
          reason: 'invalid_json',
          valid: [],
          invalidEvents: 0,
          deadLetters: 1,
        });
      } else if (r < 0.63) {
        jobs.push({
          kind: 'playback',
          body: deep(10_000 + Math.floor(rand() * 5_000)),
          headers: {},
          expect: 400,
          reason: 'too_deep',
          valid: [],
          invalidEvents: 0,
          deadLetters: 1,
        });
      } else if (r < 0.68) {
        jobs.push({
          kind: 'gifts',
          body: JSON.stringify([g()]).replace('"gift_type":"rose"', `"gift_type":${deep(10_000)}`),
          headers: {},
          expect: 400,
          reason: 'too_deep',
          valid: [],
          invalidEvents: 0,
          deadLetters: 1,
        });
      } else if (r < 0.72) {
        const size = i % 500 === 0 ? 3 * 1024 * 1024 : 66 * 1024 + Math.floor(rand() * 10_000);
        jobs.push({
          kind: 'gifts',
          body: JSON.stringify([{ ...g(), unit_coins: 'x'.repeat(size) }]),
          headers: {},
          expect: 400,
          reason: 'string_too_long',
          valid: [],
          invalidEvents: 0,
          deadLetters: 1,
        });
      } else if (r < 0.77) {
        jobs.push({
          kind: `evil${Math.floor(rand() * 1000)}`,
          body: JSON.stringify([g()]),
          headers: {},
          expect: 404,
          reason: 'unknown_kind',
          valid: [],
          invalidEvents: 0,
          deadLetters: 1,
        });
      } else if (r < 0.82) {
        jobs.push({
          kind: 'gifts',
          body: JSON.stringify([g()]),
          headers: { 'x-api-key': '' },
          expect: 401,
          reason: 'unauthorized',
          valid: [],
          invalidEvents: 0,
          deadLetters: 0,
        });
      } else if (r < 0.87) {
        jobs.push({
          kind: 'gifts',
          body: JSON.stringify([g()]),
          headers: { 'x-api-key': `guess-${i}` },
          expect: 401,
          reason: 'unauthorized',
          valid: [],
          invalidEvents: 0,
          deadLetters: 0,
        });
      } else if (r < 0.9) {
        jobs.push({
          kind: 'gifts',
          body: JSON.stringify([g()]),
          headers: { 'x-api-key': VIEWER },
          expect: 403,
          reason: 'forbidden',
          valid: [],
          invalidEvents: 0,
          deadLetters: 0,
        });
      } else if (r < 0.93) {
        jobs.push({
          kind: 'gifts',
          body: '<xml/>',
          headers: { 'content-type': 'application/xml' },
          expect: 415,
          reason: 'unsupported_media_type',
          valid: [],
          invalidEvents: 0,
          deadLetters: 0,
        });
      } else if (r < 0.95) {
        jobs.push({
          kind: 'gifts',
          body: JSON.stringify(Array.from({ length: MAX_EVENTS + 1 }, () => g())),
          headers: {},
          expect: 400,
          reason: 'too_many_events',
          valid: [],
          invalidEvents: 0,
          deadLetters: 1,
        });
      } else if (r < 0.98) {
        const bad = [
          { ...g(), event_id: 'not-a-uuid' },
          { __proto__: { polluted: true }, ...g(), seq: 'x' },
        ];
        jobs.push({ kind: 'gifts', body: JSON.stringify(bad), headers: {}, expect: 200, valid: [], invalidEvents: 0, deadLetters: 0 });
        const last = jobs[jobs.length - 1]!;
        // The second one is a valid gift (seq is not a gift field; extra fields are ignored or refused by the contract):
        // whichever the contract says, the test reads the answer below and checks the topic against it.
        last.invalidEvents = -1;
        last.valid = [bad[0]!.event_id, (bad[1] as { event_id: string }).event_id];
      } else {
        jobs.push({ kind: 'gifts', body: '', headers: {}, expect: 400, reason: 'invalid_json', valid: [], invalidEvents: 0, deadLetters: 0 });
      }
    }

    const statuses = new Map<number, number>();
    const accepted = new Set<string>();
    const refusedIds = new Set<string>();
    const mismatches: string[] = [];
    let deadLettersExpected = 0;
    let next = 0;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < jobs.length) {
          const job = jobs[next++]!;
          const res = await post(job.kind, job.body, job.headers);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status !== job.expect || (job.reason && res.body.error !== job.reason)) {
            if (mismatches.length < 10)
              mismatches.push(`${job.kind} expected ${job.expect} ${job.reason ?? ''}, got ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
            continue;
          }
          if (res.status !== 200) {
            deadLettersExpected += job.deadLetters;
            continue;
          }
          const errors = (res.body.errors as Array<{ index: number }>) ?? [];
          if (job.invalidEvents === -1) {
            // Decided by the contract: the reply says which of the events were refused.
            job.valid.forEach((id, index) => (errors.some((e) => e.index === index) ? refusedIds.add(id) : accepted.add(id)));
            deadLettersExpected += errors.length;
          } else {
            for (const id of job.valid) accepted.add(id);
            if (errors.length !== job.invalidEvents) mismatches.push(`expected ${job.invalidEvents} refused events, got ${JSON.stringify(errors)}`);
            deadLettersExpected += job.deadLetters;
          }
        }
      }),
    );
    const seconds = (Date.now() - t0) / 1000;
    console.log(
      `10,000 hostile requests in ${seconds.toFixed(1)} s: ${JSON.stringify(Object.fromEntries(statuses))}; ${accepted.size} valid events; ${deadLettersExpected} dead letters expected`,
    );
    expect(mismatches).toEqual([]);
    expect(statuses.get(500) ?? 0).toBe(0);
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true);

    // Every refused request is counted by its reason (the class tests above counted theirs first).
    const byReason = new Map<string, number>();
    for (const j of jobs) if (j.reason) byReason.set(j.reason, (byReason.get(j.reason) ?? 0) + 1);
    const counted = new Map((await metrics.ingestRejectedRequests.get()).values.map((v) => [v.labels.reason as string, v.value]));
    const before: Record<string, number> = {
      unauthorized: 2,
      forbidden: 1,
      too_deep: 4,
      string_too_long: 2,
      invalid_json: 4,
      unknown_kind: 1,
      unsupported_media_type: 1,
      too_many_events: 1,
    };
    for (const [reason, c] of byReason) expect(`${reason}: ${(counted.get(reason) ?? 0) - (before[reason] ?? 0)}`).toBe(`${reason}: ${c}`);

    // Every valid event is in its topic exactly once; no refused one is.
    const topics = ['gifts', 'playback'] as const;
    const seen = new Map<string, number>();
    for (const kind of topics) {
      const topic = topicSpec(env.topicPrefix, kind).topic;
      const inTopic = (await topicHighWatermarks(env.brokers, topic)).reduce((sum, w) => sum + w.high - w.low, 0);
      const messages = await consumeMessages(env.brokers, topic, inTopic, 60_000);
      expect(messages.length).toBe(inTopic);
      await env.codec.prepare(messages.map((m) => m.value));
      for (const m of messages) {
        const d = env.codec.decode(kind, m.value);
        if (!d.ok) throw new Error(d.reason);
        const id = (d.value as { event_id: string }).event_id;
        seen.set(id, (seen.get(id) ?? 0) + 1);
      }
    }
    const missing = [...accepted].filter((id) => seen.get(id) !== 1);
    expect(missing.slice(0, 5)).toEqual([]);
    expect([...refusedIds].filter((id) => seen.has(id))).toEqual([]);

    // Every refusal that carried events, and every refused event, is in the DLQ (the class tests wrote 15 before).
    const dead = await consumeMessages(env.brokers, dlqTopic(env.topicPrefix), 15 + deadLettersExpected, 60_000);
    expect(dead.length).toBe(15 + deadLettersExpected);
    for (const d of dead) expect(d.value === null || d.value.length <= MAX_DEAD_LETTER_VALUE_BYTES).toBe(true);

    // The refusal log is a few lines per reason, not one per request.
    await app.close();
    const refusalLines = logLines.filter((l) => l.event === 'ingest_rejected');
    const summaries = logLines.filter((l) => l.event === 'ingest_rejected_summary');
    expect(refusalLines.length).toBeLessThan(200);
    const logged =
      refusalLines.length + summaries.reduce((s, l) => s + Number(l.count), 0) + refusalLines.reduce((s, l) => s + Number(l.suppressed_before ?? 0), 0);
    expect(logged).toBe([...counted.values()].reduce((s, v) => s + v, 0));
  }, 300_000);
});
