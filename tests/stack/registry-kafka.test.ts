/**
 * The registry on the real Kafka, driven by the Confluent client @kafkajs/confluent-schema-registry:
 * register, encode/decode (wire format), latest id, a refused incompatible change, and state
 * that survives a restart because it lives in the compacted topic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SchemaRegistry as ConfluentClient, SchemaType } from '@kafkajs/confluent-schema-registry';
import { Kafka, logLevel } from 'kafkajs';
import { silentLogger } from '../../lib/logger.js';
import { topicHighWatermarks } from '../../lib/kafka-admin.js';
import { KafkaRegistryLog, type LogRecord } from '../../stack/registry/log.js';
import { startRegistryServer, type RegistryServer } from '../../stack/registry/server.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('registry-kafka');
const subject = `${t.topicPrefix}thing-value`;
const V1 = { type: 'record', name: 'Thing', namespace: 'sp.test', fields: [{ name: 'id', type: 'string' }] };
const V2 = { ...V1, fields: [...V1.fields, { name: 'count', type: 'long', default: 0 }] };
const BAD = { ...V1, fields: [...V2.fields, { name: 'required_now', type: 'string' }] };

let server: RegistryServer | undefined;

beforeAll(async () => {
  server = await startRegistryServer({ config: t.config, logger: silentLogger() });
});
afterAll(async () => {
  await server?.close();
  await cleanupTestEnv(t);
});

describe('schema registry on Kafka', () => {
  it('serves the Confluent client and keeps its state across a restart', async () => {
    const client = new ConfluentClient({ host: server!.url });
    const { id: id1 } = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(V1) }, { subject });
    const { id: id2 } = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(V2) }, { subject });
    expect(id2).toBeGreaterThan(id1);
    expect((await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(V2) }, { subject })).id).toBe(id2);
    expect(await client.getLatestSchemaId(subject)).toBe(id2);

    const bytes = await client.encode(id2, { id: 'a-1', count: 7 });
    expect(bytes[0]).toBe(0); // Confluent magic byte
    expect(bytes.readInt32BE(1)).toBe(id2);
    expect(await client.decode(bytes)).toEqual({ id: 'a-1', count: 7 });
    // Data written with v1 is read through v1 (the writer schema from the id).
    expect(await client.decode(await client.encode(id1, { id: 'old' }))).toEqual({ id: 'old' });

    await expect(client.register({ type: SchemaType.AVRO, schema: JSON.stringify(BAD) }, { subject })).rejects.toThrow(/incompatible/i);

    // Every change is one record in the compacted, one-partition topic (the Confluent client
    // also PUTs the subject's compatibility level after its first registration).
    expect(await topicHighWatermarks(t.kafkaBrokers, t.registryTopic)).toEqual([{ partition: 0, low: 0, high: 3 }]);
    const records: LogRecord[] = [];
    const reader = await KafkaRegistryLog.open({ brokers: t.kafkaBrokers, topic: t.registryTopic, logger: silentLogger() });
    await reader.catchUp((r) => records.push(r));
    await reader.close();
    expect(records.map((r) => JSON.parse(r.key!))).toEqual([
      { keytype: 'SCHEMA', subject, version: 1, magic: 1 },
      { keytype: 'CONFIG', subject, magic: 0 },
      { keytype: 'SCHEMA', subject, version: 2, magic: 1 },
    ]);
    expect(JSON.parse(records[2]!.value!)).toMatchObject({ subject, version: 2, id: id2, deleted: false });
    const kafka = new Kafka({ brokers: t.kafkaBrokers.split(','), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const cfg = await admin.describeConfigs({ resources: [{ type: 2, name: t.registryTopic, configNames: ['cleanup.policy'] }], includeSynonyms: false });
      expect(cfg.resources[0]!.configEntries.find((e) => e.configName === 'cleanup.policy')?.configValue).toBe('compact');
    } finally {
      await admin.disconnect();
    }

    // Restart: a new process-equivalent rebuilds everything from the topic before serving.
    await server!.close();
    server = await startRegistryServer({ config: t.config, logger: silentLogger() });
    const fresh = new ConfluentClient({ host: server.url });
    expect(await fresh.getLatestSchemaId(subject)).toBe(id2);
    expect(await fresh.decode(bytes)).toEqual({ id: 'a-1', count: 7 });
    expect((await fresh.register({ type: SchemaType.AVRO, schema: JSON.stringify(V1) }, { subject })).id).toBe(id1);
    const V3 = { ...V2, fields: [...V2.fields, { name: 'tag', type: ['null', 'string'], default: null }] };
    expect((await fresh.register({ type: SchemaType.AVRO, schema: JSON.stringify(V3) }, { subject })).id).toBe(id2 + 1);
    const res = await fetch(`${server.url}/subjects/${encodeURIComponent(subject)}/versions`);
    expect(await res.json()).toEqual([1, 2, 3]);
  });
});
