/** lib/kafka-admin.ts on the shared Kafka, plus a produce/consume round trip with node-rdkafka. */
import { afterAll, describe, expect, it } from 'vitest';
import rdkafka from 'node-rdkafka';
import { allTopicSpecs, dlqTopic } from '../../contracts/topics.js';
import { deleteTopics, ensureTopics, fetchMetadata, isKafkaReachable, listTopics, streamPulseTopics, topicHighWatermarks } from '../../lib/kafka-admin.js';
import { cleanupTestEnv, pollUntil, testEnv } from '../helpers/env.js';

const t = testEnv('kafka-admin');
afterAll(() => cleanupTestEnv(t));

describe('kafka admin helpers', () => {
  it('creates every StreamPulse topic idempotently with the partition counts of contracts/topics.ts', async () => {
    const specs = streamPulseTopics(t.topicPrefix);
    expect(specs.map((s) => s.topic)).toEqual([...allTopicSpecs(t.topicPrefix).map((s) => s.topic), dlqTopic(t.topicPrefix)]);
    const first = await ensureTopics(t.kafkaBrokers, specs);
    expect(first.created.sort()).toEqual(specs.map((s) => s.topic).sort());
    const second = await ensureTopics(t.kafkaBrokers, specs);
    expect(second).toEqual({ created: [], existing: specs.map((s) => s.topic) });

    const md = await fetchMetadata(t.kafkaBrokers);
    for (const s of specs)
      expect({ topic: s.topic, partitions: md.topics.find((x) => x.name === s.topic)?.partitions.length }).toEqual({
        topic: s.topic,
        partitions: s.partitions,
      });
    const mine = (await listTopics(t.kafkaBrokers)).filter((n) => n.startsWith(t.topicPrefix));
    expect(mine).toEqual(specs.map((s) => s.topic).sort());
    expect((await listTopics(t.kafkaBrokers)).some((n) => n.startsWith('__'))).toBe(false);
  });

  it('produces and consumes with node-rdkafka and reports high watermarks', async () => {
    const topic = `${t.topicPrefix}roundtrip`;
    await ensureTopics(t.kafkaBrokers, [{ topic, partitions: 2 }]);
    const producer = new rdkafka.Producer({ 'metadata.broker.list': t.kafkaBrokers, dr_cb: true, 'enable.idempotence': true });
    await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
    producer.setPollInterval(20);
    const delivered: number[] = [];
    producer.on('delivery-report', (err, r) => {
      if (!err) delivered.push(r.partition);
    });
    for (let i = 0; i < 10; i++) producer.produce(topic, i % 2, Buffer.from(`v${i}`), `k${i}`);
    await pollUntil(() => delivered.length === 10, { description: 'delivery reports' });
    await new Promise<void>((res) => producer.disconnect(() => res()));

    expect(await topicHighWatermarks(t.kafkaBrokers, topic)).toEqual([
      { partition: 0, low: 0, high: 5 },
      { partition: 1, low: 0, high: 5 },
    ]);

    const consumer = new rdkafka.KafkaConsumer(
      { 'metadata.broker.list': t.kafkaBrokers, 'group.id': `${t.groupPrefix}roundtrip`, 'enable.auto.commit': false },
      { 'auto.offset.reset': 'earliest' },
    );
    await new Promise<void>((res, rej) => consumer.connect({}, (err) => (err ? rej(err) : res())));
    const seen = new Set<string>();
    try {
      consumer.subscribe([topic]);
      consumer.setDefaultConsumeTimeout(200);
      await pollUntil(
        async () => {
          const msgs = await new Promise<rdkafka.Message[]>((res, rej) => consumer.consume(100, (err, m) => (err ? rej(err) : res(m))));
          for (const m of msgs) seen.add(m.value!.toString());
          return seen.size === 10;
        },
        { timeoutMs: 60_000, intervalMs: 10, description: 'consume 10 messages' },
      );
    } finally {
      await new Promise<void>((res) => consumer.disconnect(() => res()));
    }
    expect([...seen].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`).sort());
  });

  it('deletes topics (a missing one is fine) and reports an unreachable broker', async () => {
    const topic = `${t.topicPrefix}short-lived`;
    await ensureTopics(t.kafkaBrokers, [{ topic, partitions: 1 }]);
    await deleteTopics(t.kafkaBrokers, [topic, `${t.topicPrefix}never-existed`]);
    await pollUntil(async () => !(await listTopics(t.kafkaBrokers)).includes(topic), { description: 'topic deleted' });
    await expect(topicHighWatermarks(t.kafkaBrokers, `${t.topicPrefix}never-existed`)).rejects.toThrow(/does not exist/);
    expect(await isKafkaReachable('127.0.0.1:1', 1000)).toBe(false);
  });
});
