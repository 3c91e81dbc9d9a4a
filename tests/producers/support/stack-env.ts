/**
 * Integration-test environment for the producer tests, on the shared Kafka that the global
 * setup provides: a unique prefix per test file (tests/helpers/env.ts), that prefix's topics,
 * a schema registry of its own (stack/registry, in-process on port 0, on its own compacted
 * topic), a codec and an EventProducer. Plus a reader to check what landed in Kafka.
 */
import { randomBytes } from 'node:crypto';
import rdkafka from 'node-rdkafka';
import type { Message } from 'node-rdkafka';
import { AvroCodec } from '../../../lib/avro-codec.js';
import { ensureTopics, streamPulseTopics } from '../../../lib/kafka-admin.js';
import { silentLogger } from '../../../lib/logger.js';
import { createMetrics, type Metrics } from '../../../lib/metrics.js';
import { EventProducer } from '../../../producers/sdk/event-producer.js';
import { startRegistryServer, type RegistryServer } from '../../../stack/registry/server.js';
import { cleanupTestEnv, testEnv, type TestEnv } from '../../helpers/env.js';

export interface ProducerTestEnv {
  t: TestEnv;
  brokers: string;
  topicPrefix: string;
  registry: RegistryServer;
  codec: AvroCodec;
  metrics: Metrics;
  producer: EventProducer;
  close(): Promise<void>;
}

export async function setUpProducerTestEnv(name: string, opts: { now?: () => number } = {}): Promise<ProducerTestEnv> {
  const t = testEnv(name);
  const logger = silentLogger();
  await ensureTopics(t.kafkaBrokers, streamPulseTopics(t.topicPrefix));
  const registry = await startRegistryServer({ config: t.config, logger });
  const codec = await AvroCodec.connect(registry.url, t.topicPrefix);
  const metrics = createMetrics();
  const producer = await EventProducer.connect({
    brokers: t.kafkaBrokers,
    clientId: `test-${name}`,
    topicPrefix: t.topicPrefix,
    codec,
    logger,
    metrics,
    now: opts.now,
  });
  return {
    t,
    brokers: t.kafkaBrokers,
    topicPrefix: t.topicPrefix,
    registry,
    codec,
    metrics,
    producer,
    async close() {
      await producer.close().catch(() => undefined);
      await registry.close().catch(() => undefined);
      await cleanupTestEnv(t);
    },
  };
}

/**
 * Reads `topic` from the beginning until `count` messages arrived or `timeoutMs` passed, with a
 * fresh consumer group (nothing committed). Returns what it got; the caller asserts the count.
 */
export async function consumeMessages(brokers: string, topic: string, count: number, timeoutMs = 20_000): Promise<Message[]> {
  const consumer = new rdkafka.KafkaConsumer(
    {
      'metadata.broker.list': brokers,
      'group.id': `t-reader-${randomBytes(4).toString('hex')}`,
      'enable.auto.commit': false,
      'log.connection.close': false,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve())));
  const out: Message[] = [];
  try {
    consumer.subscribe([topic]);
    const deadline = Date.now() + timeoutMs;
    while (out.length < count && Date.now() < deadline) {
      const batch = await new Promise<Message[]>((resolve, reject) => consumer.consume(500, (err, msgs) => (err ? reject(err) : resolve(msgs))));
      out.push(...batch);
    }
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
  return out;
}

/** Header values of a consumed message as strings, by header name. */
export function headerMap(message: Message): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of message.headers ?? []) for (const [k, v] of Object.entries(h)) out[k] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
  return out;
}
