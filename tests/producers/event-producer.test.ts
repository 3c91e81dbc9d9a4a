/**
 * EventProducer on the real Kafka and schema registry: what `send` accepts lands in the topic,
 * keyed and decodable back to the same event; what it rejects lands in the DLQ with the
 * original JSON and the dead-letter headers; `sendValid` keeps up with bulk traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS, dlqTopic, topicSpec } from '../../contracts/topics.js';
import { schemaJson } from '../../contracts/schemas.js';
import type { EventKind } from '../../contracts/topics.js';
import type { PlaybackEvent } from '../../contracts/types.generated.js';
import { consumeMessages, headerMap, setUpProducerTestEnv, type ProducerTestEnv } from './support/stack-env.js';
import { giftEvent, playbackEvent } from './support/events.js';

const NOW = Date.UTC(2026, 10, 20, 12, 0, 0);
let env: ProducerTestEnv;

beforeAll(async () => {
  env = await setUpProducerTestEnv('sdk', { now: () => NOW });
});
afterAll(async () => {
  await env?.close();
});

/** The event as a reader sees it: every optional field present with its Avro default. */
function asDecoded(kind: EventKind, event: object): Record<string, unknown> {
  const defaults = Object.fromEntries(
    schemaJson(kind)
      .fields.filter((f) => f.default !== undefined)
      .map((f) => [f.name, f.default]),
  );
  return { ...defaults, ...event };
}

describe('EventProducer.send', () => {
  it('produces valid events keyed by the key field, dead-letters invalid ones, and reports both by index', async () => {
    const good = [giftEvent(1), giftEvent(2), giftEvent(3, { received_time: 1_700_000_000_000 })];
    const bad = { ...giftEvent(4), quantity: 'many' };
    const unknownField = { ...giftEvent(5), colour: 'red' };
    const result = await env.producer.send('gifts', [good[0], bad, good[1], unknownField, good[2]]);

    expect(result.accepted).toBe(3);
    expect(result.rejected).toBe(2);
    expect(result.errors.map((e) => e.index)).toEqual([1, 3]);
    expect(result.errors[0]!.reason).toMatch(/^schema_violation: quantity: expected int/);
    expect(result.errors[1]!.reason).toMatch(/colour: unknown field/);

    const topic = topicSpec(env.topicPrefix, 'gifts').topic;
    const messages = await consumeMessages(env.brokers, topic, 3);
    expect(messages).toHaveLength(3);
    await env.codec.prepare(messages.map((m) => m.value));
    const byId = new Map(
      messages.map((m) => {
        const decoded = env.codec.decode('gifts', m.value);
        if (!decoded.ok) throw new Error(decoded.reason);
        return [decoded.value.event_id as string, { value: { ...decoded.value }, key: m.key?.toString() }];
      }),
    );
    for (const event of good) {
      const got = byId.get(event.event_id)!;
      expect(got.key).toBe(event.stream_id);
      // received_time is set at ingest unless the sender already set it.
      expect(got.value).toEqual(asDecoded('gifts', { ...event, received_time: event.received_time || NOW }));
    }

    const dead = await consumeMessages(env.brokers, dlqTopic(env.topicPrefix), 2);
    expect(dead).toHaveLength(2);
    const deadBad = dead.find((m) => JSON.parse(m.value!.toString()).event_id === bad.event_id)!;
    expect(JSON.parse(deadBad.value!.toString())).toEqual(bad);
    expect(deadBad.key?.toString()).toBe(bad.stream_id);
    const h = headerMap(deadBad);
    expect(h[DLQ_HEADERS.topic]).toBe(topic);
    expect(h[DLQ_HEADERS.partition]).toBe('-1');
    expect(h[DLQ_HEADERS.offset]).toBe('-1');
    expect(h[DLQ_HEADERS.errorClass]).toBe('schema_violation');
    expect(h[DLQ_HEADERS.errorMessage]).toMatch(/quantity: expected int/);
    expect(h[DLQ_HEADERS.stage]).toBe('ingest');
    expect(h[DLQ_HEADERS.kind]).toBe('gifts');
    expect(h[DLQ_HEADERS.timestamp]).toBe(String(NOW));

    expect((await env.metrics.producedMessages.get()).values.find((v) => v.labels.topic === topic)?.value).toBe(3);
  });

  it('answers an empty batch without producing', async () => {
    expect(await env.producer.send('payments', [])).toEqual({ accepted: 0, rejected: 0, errors: [] });
  });
});

describe('EventProducer.sendDeadLetter and produceRaw', () => {
  it('writes a dead letter of any stage with the original bytes and all headers', async () => {
    const original = Buffer.from([0, 0, 0, 0, 42, 1, 2, 3]);
    await env.producer.sendDeadLetter({
      originalTopic: `${env.topicPrefix}playback`,
      partition: 4,
      offset: 1234,
      key: 'view-9',
      value: original,
      errorClass: 'unknown_schema',
      message: 'schema id 42 is not in the registry',
      stage: 'qoe',
    });
    const messages = await consumeMessages(env.brokers, dlqTopic(env.topicPrefix), 3);
    const dl = messages.find((m) => headerMap(m)[DLQ_HEADERS.stage] === 'qoe')!;
    expect(dl.value).toEqual(original);
    expect(dl.key?.toString()).toBe('view-9');
    expect(headerMap(dl)).toMatchObject({
      [DLQ_HEADERS.topic]: `${env.topicPrefix}playback`,
      [DLQ_HEADERS.partition]: '4',
      [DLQ_HEADERS.offset]: '1234',
      [DLQ_HEADERS.errorClass]: 'unknown_schema',
    });
    expect(headerMap(dl)[DLQ_HEADERS.kind]).toBeUndefined();
  });

  it('rejects with a KafkaError when a message cannot be delivered', async () => {
    await expect(env.producer.produceRaw(`${env.topicPrefix}dlq`, null, Buffer.alloc(2_000_000))).rejects.toMatchObject({ code: 'KAFKA' });
  });
});

describe('EventProducer.sendValid', () => {
  it("stamps received_time in the encoded record without changing the caller's events", async () => {
    const zero = giftEvent(50, { received_time: 0, stream_id: 'stream-stamp' });
    const absent = giftEvent(51, { stream_id: 'stream-stamp' });
    const kept = giftEvent(52, { received_time: 1_700_000_000_000, stream_id: 'stream-stamp' });
    await env.producer.sendValid('gifts', [zero, absent, kept]);
    expect(zero.received_time).toBe(0);
    expect('received_time' in absent).toBe(false);
    const messages = (await consumeMessages(env.brokers, topicSpec(env.topicPrefix, 'gifts').topic, 6)).filter((m) => m.key?.toString() === 'stream-stamp');
    const stamps = Object.fromEntries(
      messages.map((m) => {
        const d = env.codec.decode('gifts', m.value);
        if (!d.ok) throw new Error(d.reason);
        return [d.value.event_id as string, d.value.received_time];
      }),
    );
    expect(stamps).toEqual({ [zero.event_id]: NOW, [absent.event_id]: NOW, [kept.event_id]: 1_700_000_000_000 });
  });

  it('produces every event of large batches, keyed, and measures throughput', async () => {
    const total = 60_000;
    const batchSize = 2_000;
    const events: PlaybackEvent[] = Array.from({ length: total }, (_, i) => playbackEvent(i));
    const started = performance.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < total; i += batchSize) {
      inFlight.push(env.producer.sendValid('playback', events.slice(i, i + batchSize)));
      if (inFlight.length >= 4) await inFlight.shift();
    }
    await Promise.all(inFlight);
    const seconds = (performance.now() - started) / 1000;
    const perSecond = Math.round(total / seconds);
    process.stderr.write(`[producers] sendValid: ${total} playback events in ${seconds.toFixed(2)} s = ${perSecond} events/s\n`);
    expect(perSecond).toBeGreaterThan(5_000); // a floor for a busy shared 2-core machine; the bench reports the real figure

    const topic = topicSpec(env.topicPrefix, 'playback').topic;
    const messages = await consumeMessages(env.brokers, topic, total, 60_000);
    expect(messages).toHaveLength(total);
    const sample = messages[12_345]!;
    const decoded = env.codec.decode('playback', sample.value);
    expect(decoded.ok && sample.key?.toString() === decoded.value.view_id).toBe(true);
    expect(decoded.ok && decoded.value.received_time).toBe(NOW);
  });
});
