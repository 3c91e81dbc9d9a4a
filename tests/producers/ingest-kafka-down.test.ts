/**
 * Ingest and the Jira webhook when Kafka cannot be reached: 503 with Retry-After and a clear
 * error, never 500, and 200 again once the broker is back. The broker is one this test starts
 * and stops itself on its own ports (stack/kafka.ts), never the shared one; the schema registry
 * runs on the shared broker.
 */
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AvroCodec } from '../../lib/avro-codec.js';
import { ensureTopics, streamPulseTopics } from '../../lib/kafka-admin.js';
import { silentLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { InMemoryApiKeyStore } from '../../producers/ingest/api-keys.js';
import { ingestPlugin } from '../../producers/ingest/ingest.plugin.js';
import { jiraWebhookPlugin } from '../../producers/jira/jira-webhook.plugin.js';
import { EventProducer } from '../../producers/sdk/event-producer.js';
import { startKafka, stopKafka, type KafkaStackOptions } from '../../stack/kafka.js';
import { startRegistryServer, type RegistryServer } from '../../stack/registry/server.js';
import { cleanupTestEnv, freePort, pollUntil, testEnv } from '../helpers/env.js';
import { giftEvent } from './support/events.js';

const t = testEnv('kafka-down');
// Ports free right now, both listeners (a random pick in 21,000-39,000 could fall on another
// process's port, e.g. an ephemeral one from 32,768 up: the broker then exited during startup).
const kafka: KafkaStackOptions = {
  brokers: `127.0.0.1:${await freePort()}`,
  controllerPort: await freePort(),
  dataDir: join(t.dataDir, 'kafka'),
  heapMb: 256,
  logger: silentLogger(),
};
const KEY = 'kafka-down-ingest-key-0123456789';
const metrics = createMetrics();
let registry: RegistryServer;
let producer: EventProducer;
let app: FastifyInstance;

beforeAll(async () => {
  await startKafka(kafka);
  await ensureTopics(kafka.brokers, streamPulseTopics(t.topicPrefix));
  registry = await startRegistryServer({ config: t.config, logger: silentLogger() });
  const codec = await AvroCodec.connect(registry.url, t.topicPrefix);
  producer = await EventProducer.connect({
    brokers: kafka.brokers,
    clientId: 'kafka-down',
    topicPrefix: t.topicPrefix,
    codec,
    logger: silentLogger(),
    metrics,
  });
  app = Fastify({ logger: false });
  await app.register(ingestPlugin, {
    producer,
    apiKeys: InMemoryApiKeyStore.fromConfig(`${KEY}:ingest`),
    maxBodyBytes: 1 << 20,
    maxEvents: 100,
    metrics,
    ackTimeoutMs: 3000,
  });
  await app.register(jiraWebhookPlugin, { producer, insecure: true, fieldMap: {}, maxBodyBytes: 1 << 20, metrics, ackTimeoutMs: 3000 });
  await app.ready();
}, 180_000);

afterAll(async () => {
  await app?.close();
  await producer?.close();
  await registry?.close();
  await stopKafka(kafka);
  await cleanupTestEnv(t);
}, 120_000);

let i = 0;
const post = () =>
  app.inject({
    method: 'POST',
    url: '/v1/events/gifts',
    headers: { 'content-type': 'application/json', 'x-api-key': KEY },
    payload: JSON.stringify([giftEvent(i++)]),
  });

describe('Kafka unreachable', () => {
  it('answers 503 with Retry-After (at once while librdkafka reports every broker down), and 200 again when the broker is back', async () => {
    expect((await post()).statusCode).toBe(200);
    await stopKafka(kafka);

    const first = await post();
    expect(first.statusCode).toBe(503);
    expect(first.headers['retry-after']).toBe('5');
    expect(first.json()).toMatchObject({ error: 'unavailable', message: expect.stringMatching(/^kafka is unreachable .*retry after 5 s/) });

    // Once librdkafka reports every broker down, the answer comes at once, without queueing the events.
    const fast = await pollUntil(
      async () => {
        const t0 = Date.now();
        const r = await post();
        return r.statusCode === 503 && /no Kafka broker answers since/.test(r.json().message) ? Date.now() - t0 : null;
      },
      { timeoutMs: 30_000, intervalMs: 200, description: 'fast 503 while brokers are down' },
    );
    expect(fast).toBeLessThan(1000);
    expect(producer.brokersDownSince).not.toBeNull();

    const webhook = await app.inject({ method: 'POST', url: '/v1/webhooks/jira', headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect(webhook.statusCode).toBe(503);
    expect(webhook.headers['retry-after']).toBe('5');

    const unavailable = (await metrics.ingestRejectedRequests.get()).values
      .filter((v) => v.labels.reason === 'unavailable_kafka')
      .reduce((s, v) => s + v.value, 0);
    expect(unavailable).toBeGreaterThanOrEqual(3);

    await startKafka(kafka);
    await pollUntil(async () => (await post()).statusCode === 200, {
      timeoutMs: 90_000,
      intervalMs: 500,
      description: 'ingest answers 200 after the broker is back',
    });
    expect(producer.brokersDownSince).toBeNull();
  }, 240_000);
});
