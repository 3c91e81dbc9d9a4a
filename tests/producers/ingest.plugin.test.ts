/**
 * The ingest gateway through `app.inject()` against the real Kafka and schema registry:
 * answers (counts, errors by index, 413, 400, 401/403, 404), what lands in the event topic
 * (decodes back equal) and what lands in the DLQ (original bytes and headers).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS, dlqTopic, EVENT_KINDS, topicSpec } from '../../contracts/topics.js';
import { InMemoryApiKeyStore } from '../../producers/ingest/api-keys.js';
import { ingestPlugin } from '../../producers/ingest/ingest.plugin.js';
import { consumeMessages, headerMap, setUpProducerTestEnv, type ProducerTestEnv } from './support/stack-env.js';
import { giftEvent, playbackEvent } from './support/events.js';

const NOW = Date.UTC(2026, 10, 20, 12, 0, 0);
const MAX_BODY_BYTES = 64 * 1024;
const MAX_EVENTS = 50;
const INGEST_KEY = 'ingest-key-0123456789';
const ADMIN_KEY = 'admin-key-0123456789';
const VIEWER_KEY = 'viewer-key-0123456789';

let env: ProducerTestEnv;
let app: FastifyInstance;

beforeAll(async () => {
  env = await setUpProducerTestEnv('ingest', { now: () => NOW });
  app = Fastify({ logger: false });
  await app.register(swagger, { openapi: { info: { title: 'StreamPulse', version: 'test' } } });
  await app.register(ingestPlugin, {
    producer: env.producer,
    apiKeys: InMemoryApiKeyStore.fromConfig(`${INGEST_KEY}:ingest,${ADMIN_KEY}:admin,${VIEWER_KEY}:viewer`),
    maxBodyBytes: MAX_BODY_BYTES,
    maxEvents: MAX_EVENTS,
    metrics: env.metrics,
  });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await env?.close();
});

const post = (kind: string, payload: string | object, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url: `/v1/events/${kind}`,
    headers: { 'content-type': 'application/json', 'x-api-key': INGEST_KEY, ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });

/** DLQ records of this test file, read once they are all there. */
async function deadLetters(count: number) {
  return (await consumeMessages(env.brokers, dlqTopic(env.topicPrefix), count)).map((m) => ({ value: m.value, key: m.key?.toString(), headers: headerMap(m) }));
}

describe('auth', () => {
  it('answers 401 without a key or with an unknown one, 403 for a role that may not ingest', async () => {
    const none = await post('gifts', [giftEvent(1)], { 'x-api-key': '' });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({ error: 'unauthorized', message: expect.stringContaining('x-api-key') });
    expect((await post('gifts', [giftEvent(1)], { 'x-api-key': 'nope' })).statusCode).toBe(401);
    const viewer = await post('gifts', [giftEvent(1)], { 'x-api-key': VIEWER_KEY });
    expect(viewer.statusCode).toBe(403);
    expect(viewer.json().message).toMatch(/role viewer/);
  });

  it('accepts an admin key as a Bearer token', async () => {
    const res = await post('gifts', [giftEvent(100)], { 'x-api-key': '', authorization: `Bearer ${ADMIN_KEY}` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ accepted: 1, rejected: 0, errors: [] });
  });
});

describe('POST /v1/events/:kind', () => {
  it('produces the valid events of a JSON array and reports the invalid ones by index; the topic holds them decodable, the DLQ the rejects', async () => {
    const good = [playbackEvent(1), playbackEvent(2), playbackEvent(3)];
    const noViewId: Record<string, unknown> = { ...playbackEvent(4) };
    delete noViewId.view_id;
    const badEnum = { ...playbackEvent(5), event_type: 'teleport' };
    const res = await post('playback', [good[0], noViewId, good[1], badEnum, good[2]]);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ accepted: 3, rejected: 2 });
    expect(body.errors).toEqual([
      { index: 1, reason: expect.stringMatching(/^schema_violation: view_id: expected string, got nothing/) },
      { index: 3, reason: expect.stringMatching(/^schema_violation: event_type: expected one of view_start\|/) },
    ]);

    const messages = await consumeMessages(env.brokers, topicSpec(env.topicPrefix, 'playback').topic, 3);
    expect(messages).toHaveLength(3);
    await env.codec.prepare(messages.map((m) => m.value));
    const decoded = messages.map((m) => {
      const d = env.codec.decode('playback', m.value);
      if (!d.ok) throw new Error(d.reason);
      expect(m.key?.toString()).toBe(d.value.view_id);
      return { ...d.value };
    });
    for (const event of good) {
      const got = decoded.find((d) => d.event_id === event.event_id)!;
      expect(got).toMatchObject({ ...event, received_time: NOW });
      expect(got.error_code).toBeNull(); // absent optional fields decode as their defaults
    }
  });

  it('takes NDJSON: bad lines are rejected alone with their line number and dead-lettered as sent', async () => {
    const lines = [JSON.stringify(giftEvent(10)), '', '{"gift_id": "g-11", ', JSON.stringify({ ...giftEvent(12), quantity: 0 }), JSON.stringify(giftEvent(13))];
    const res = await post('gifts', `${lines.join('\n')}\n`, { 'content-type': 'application/x-ndjson' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      accepted: 2,
      rejected: 2,
      errors: [
        { index: 2, reason: expect.stringMatching(/^invalid_json: line 2 is not valid JSON/) },
        { index: 3, reason: 'schema_violation: quantity: must be > 0' },
      ],
    });
  });

  it('accepts one JSON object as one event', async () => {
    expect((await post('moderation', { event_id: 'not-a-uuid' })).json()).toMatchObject({ accepted: 0, rejected: 1, errors: [{ index: 0 }] });
  });

  it('answers 400 invalid_json for a body that is not JSON, and dead-letters it', async () => {
    const res = await post('payments', '[{"payment_id": ');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'invalid_json', message: expect.stringMatching(/not valid JSON/) });
  });

  it('answers 400 too_many_events above maxEvents', async () => {
    const res = await post(
      'gifts',
      Array.from({ length: MAX_EVENTS + 1 }, (_, i) => giftEvent(i)),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: 'too_many_events',
      message: `${MAX_EVENTS + 1} events in one request; the limit is ${MAX_EVENTS}: split the batch`,
    });
  });

  it('answers 413 oversize above maxBodyBytes', async () => {
    const res = await post('gifts', JSON.stringify([{ ...giftEvent(1), gift_type: 'x'.repeat(MAX_BODY_BYTES) }]));
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ error: 'oversize', message: expect.stringContaining(`limit of ${MAX_BODY_BYTES} bytes`) });
  });

  it('answers 404 for an unknown kind, listing the kinds, and dead-letters the body', async () => {
    const res = await post('telemetry', [{ a: 1 }]);
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'unknown_kind', message: expect.stringContaining(EVENT_KINDS.join(', ')), kinds: [...EVENT_KINDS] });
  });

  it('answers 415 for another content type', async () => {
    const res = await post('gifts', 'a,b,c', { 'content-type': 'text/csv' });
    expect(res.statusCode).toBe(415);
    expect(res.json().error).toBe('unsupported_media_type');
  });

  it('kept every rejected event and request in the DLQ with its bytes and headers', async () => {
    // From the tests above: 2 playback, 2 gifts (ndjson), 1 moderation, 1 payments body, 1 too many events, 1 oversize, 1 unknown kind.
    const dead = await deadLetters(9);
    expect(dead).toHaveLength(9);
    const by = (cls: string, kind: string) => dead.filter((d) => d.headers[DLQ_HEADERS.errorClass] === cls && d.headers[DLQ_HEADERS.kind] === kind);
    for (const d of dead) {
      expect(d.headers).toMatchObject({ [DLQ_HEADERS.partition]: '-1', [DLQ_HEADERS.offset]: '-1', [DLQ_HEADERS.stage]: 'ingest' });
    }
    expect(by('schema_violation', 'playback')).toHaveLength(2);
    expect(by('schema_violation', 'playback')[0]!.headers[DLQ_HEADERS.topic]).toBe(`${env.topicPrefix}playback`);
    expect(by('invalid_json', 'gifts').map((d) => d.value?.toString())).toEqual(['{"gift_id": "g-11", ']);
    expect(JSON.parse(by('schema_violation', 'gifts')[0]!.value!.toString()).quantity).toBe(0);
    expect(by('schema_violation', 'moderation')).toHaveLength(1);
    expect(by('invalid_json', 'payments').map((d) => d.value?.toString())).toEqual(['[{"payment_id": ']);
    const tooMany = by('too_many_events', 'gifts');
    expect(tooMany).toHaveLength(1);
    expect(JSON.parse(tooMany[0]!.value!.toString())).toHaveLength(MAX_EVENTS + 1);
    const oversize = by('oversize', 'gifts');
    expect(oversize).toHaveLength(1);
    expect(oversize[0]!.value).toBeNull();
    expect(oversize[0]!.headers[DLQ_HEADERS.errorMessage]).toContain(`limit of ${MAX_BODY_BYTES} bytes`);
    const unknown = by('unknown_kind', 'telemetry');
    expect(unknown.map((d) => d.value?.toString())).toEqual(['[{"a":1}]']);
    expect(unknown[0]!.headers[DLQ_HEADERS.topic]).toBe(`${env.topicPrefix}telemetry`);
  });

  it('counts requests and events in the metrics', async () => {
    const events = (await env.metrics.ingestEvents.get()).values;
    expect(events.find((v) => v.labels.kind === 'playback' && v.labels.result === 'accepted')?.value).toBe(3);
    const requests = (await env.metrics.ingestRequests.get()).values;
    expect(requests.find((v) => v.labels.status === '413')?.value).toBe(1);
  });

  it('is documented in the OpenAPI spec', async () => {
    const spec = app.swagger() as unknown as {
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> }; responses: Record<string, unknown> }>>;
    };
    const op = spec.paths['/v1/events/{kind}']!.post!;
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '404', '413']));
  });
});
