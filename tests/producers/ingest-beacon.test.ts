/**
 * What players need of the ingest gateway, over real HTTP against the real Kafka: gzip bodies
 * (and the hostile ones: a zip bomb, bytes that are not gzip, an encoding we do not take),
 * text/plain beacons from navigator.sendBeacon with the key in the URL (role ingest only), and
 * CORS for the configured origins (preflight without a key, headers on refusals too).
 */
import { gzipSync } from 'node:zlib';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS, dlqTopic, topicSpec } from '../../contracts/topics.js';
import { InMemoryApiKeyStore } from '../../producers/ingest/api-keys.js';
import { ingestPlugin } from '../../producers/ingest/ingest.plugin.js';
import { consumeMessages, headerMap, setUpProducerTestEnv, type ProducerTestEnv } from './support/stack-env.js';
import { giftEvent, playbackEvent } from './support/events.js';

const NOW = Date.UTC(2026, 10, 20, 12, 0, 0);
const MAX_BODY_BYTES = 64 * 1024;
const INGEST_KEY = 'ingest-key-beacon-0123456789';
const ADMIN_KEY = 'admin-key-beacon-0123456789';
const PAGE = 'https://player.example.com';

let env: ProducerTestEnv;
let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  env = await setUpProducerTestEnv('ingest-beacon', { now: () => NOW });
  app = Fastify({ logger: false });
  await app.register(ingestPlugin, {
    producer: env.producer,
    apiKeys: InMemoryApiKeyStore.fromConfig(`${INGEST_KEY}:ingest,${ADMIN_KEY}:admin`),
    maxBodyBytes: MAX_BODY_BYTES,
    maxEvents: 100,
    metrics: env.metrics,
    corsOrigins: [PAGE],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await app?.close();
  await env?.close();
});

const ndjson = (events: unknown[]) => events.map((e) => JSON.stringify(e)).join('\n');
const NOT_GZIP = ndjson([giftEvent(210)]);

async function post(
  kind: string,
  body: Buffer | string,
  headers: Record<string, string>,
  query = '',
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/v1/events/${kind}${query}`, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

describe('gzip bodies', () => {
  it('inflates a gzip NDJSON body and stores its events', async () => {
    const events = [giftEvent(201), giftEvent(202), giftEvent(203)];
    const res = await post('gifts', gzipSync(ndjson(events)), { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', 'x-api-key': INGEST_KEY });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ accepted: 3, rejected: 0, errors: [] });
  });

  it('refuses a zip bomb with 413 after inflating at most the body limit', async () => {
    const bomb = gzipSync(Buffer.alloc(40 * 1024 * 1024, 0x20)); // 40 MiB of spaces in about 40 KB
    expect(bomb.length).toBeLessThan(MAX_BODY_BYTES);
    const res = await post('gifts', bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'x-api-key': INGEST_KEY });
    expect(res.status).toBe(413);
    expect(res.json).toMatchObject({ error: 'oversize', message: expect.stringContaining(`inflates to more than the limit of ${MAX_BODY_BYTES} bytes`) });
  });

  it('answers 400 bad_encoding for bytes that are not gzip, 415 unsupported_encoding for br, before reading the body', async () => {
    const notGzip = await post('gifts', NOT_GZIP, { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', 'x-api-key': INGEST_KEY });
    expect(notGzip.status).toBe(400);
    expect(notGzip.json).toMatchObject({ error: 'bad_encoding', message: expect.stringContaining('not valid gzip') });
    const cut = gzipSync(ndjson([giftEvent(211)])).subarray(0, 20);
    expect((await post('gifts', cut, { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', 'x-api-key': INGEST_KEY })).json).toMatchObject({
      error: 'bad_encoding',
    });
    const br = await post('gifts', 'whatever', { 'content-type': 'application/x-ndjson', 'content-encoding': 'br', 'x-api-key': INGEST_KEY });
    expect(br.status).toBe(415);
    expect(br.json).toMatchObject({ error: 'unsupported_encoding' });
  });

  it('dead-lettered the undecodable gzip bodies as sent, and the bomb without its bytes', async () => {
    const dead = (await consumeMessages(env.brokers, dlqTopic(env.topicPrefix), 3)).map((m) => ({ value: m.value, headers: headerMap(m) }));
    expect(dead.map((d) => d.headers[DLQ_HEADERS.errorClass]).sort()).toEqual(['bad_encoding', 'bad_encoding', 'oversize']);
    const bomb = dead.find((d) => d.headers[DLQ_HEADERS.errorClass] === 'oversize')!;
    expect(bomb.value).toBeNull();
    expect(dead.find((d) => d.value?.toString() === NOT_GZIP)).toBeDefined();
  });
});

describe('beacons (text/plain, key in the URL)', () => {
  it('takes NDJSON and JSON-array text/plain bodies with an ingest key in ?api_key=', async () => {
    const sent = [playbackEvent(301), playbackEvent(302), playbackEvent(303)];
    const lines = await post('playback', ndjson(sent.slice(0, 2)), { 'content-type': 'text/plain;charset=UTF-8' }, `?api_key=${INGEST_KEY}`);
    expect(lines.status).toBe(200);
    expect(lines.json).toEqual({ accepted: 2, rejected: 0, errors: [] });
    const array = await post('playback', `  ${JSON.stringify(sent.slice(2))}`, { 'content-type': 'text/plain' }, `?api_key=${INGEST_KEY}`);
    expect(array.json).toEqual({ accepted: 1, rejected: 0, errors: [] });
    const messages = await consumeMessages(env.brokers, topicSpec(env.topicPrefix, 'playback').topic, 3);
    await env.codec.prepare(messages.map((m) => m.value));
    const ids = messages.map((m) => {
      const d = env.codec.decode('playback', m.value);
      if (!d.ok) throw new Error(d.reason);
      expect(d.value.received_time).toBe(NOW);
      return d.value.event_id;
    });
    expect(ids.sort()).toEqual(sent.map((e) => e.event_id).sort());
  });

  it('refuses an admin key in the URL (401), and a URL key that is unknown', async () => {
    const admin = await post('playback', ndjson([playbackEvent(310)]), { 'content-type': 'text/plain' }, `?api_key=${ADMIN_KEY}`);
    expect(admin.status).toBe(401);
    expect(admin.json.message).toMatch(/only keys of role ingest are taken from the URL/);
    expect((await post('playback', ndjson([playbackEvent(311)]), { 'content-type': 'text/plain' }, '?api_key=nope')).status).toBe(401);
  });
});

describe('CORS', () => {
  it('answers the preflight of an allowed origin without a key, and not for another origin', async () => {
    const ok = await fetch(`${url}/v1/events/playback`, {
      method: 'OPTIONS',
      headers: { origin: PAGE, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-api-key' },
    });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(ok.headers.get('access-control-allow-methods')).toBe('POST');
    expect(ok.headers.get('access-control-allow-headers')).toContain('x-api-key');
    const other = await fetch(`${url}/v1/events/playback`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example.net', 'access-control-request-method': 'POST' },
    });
    expect(other.status).toBe(204);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('puts the CORS headers on answers to an allowed origin, refusals included', async () => {
    const res = await post('gifts', ndjson([giftEvent(320)]), { origin: PAGE, 'content-type': 'application/x-ndjson', 'x-api-key': INGEST_KEY });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(res.headers.get('vary')).toMatch(/origin/i);
    const refused = await post('gifts', ndjson([giftEvent(321)]), { origin: PAGE, 'content-type': 'application/x-ndjson' });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(PAGE);
    const other = await post('gifts', ndjson([giftEvent(322)]), {
      origin: 'https://evil.example.net',
      'content-type': 'application/x-ndjson',
      'x-api-key': INGEST_KEY,
    });
    expect(other.status).toBe(200);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});
