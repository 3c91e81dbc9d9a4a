/**
 * A role that fails for good must not hide behind healthy ones: in-process, `failed` rejects with
 * the role and its error, /healthz and /readyz of the process answer 503 naming it; as a process
 * (bin/streampulse.ts), it exits non-zero with the error in its log. The failure used is the one
 * the issue saw in the demo: a checkpoint beyond the end of a recreated topic.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, type Pipeline } from '../../bin/pipeline.js';
import { topicSpec } from '../../contracts/topics.js';
import { silentLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { loadGoldenInput } from '../helpers/golden.js';
import { produceRecords, spawnRoles } from '../helpers/pipeline-harness.js';
import { EventProducer } from '../../producers/sdk/event-producer.js';
import { AvroCodec } from '../../lib/avro-codec.js';

const t = testEnv('role-failure', { ROLES: 'registry,production', SCHEMA_REGISTRY_URL: 'http://127.0.0.1:0' });
let redis: Redis;
let pipeline: Pipeline | null = null;

/** A checkpoint taken on an older, longer log, for partition 0 of the jira topic. */
async function staleCheckpoint(redisPrefix: string): Promise<void> {
  const topic = topicSpec(t.config.topicPrefix, 'jira').topic;
  await redis.hset(
    `${redisPrefix}ckpt:production:${topic}:0`,
    'owner',
    'old-owner',
    'offset',
    '1000',
    'state',
    JSON.stringify({ state: null, time: { maxEventMs: 0, watermarkMs: 0, lastRecordAtMs: 0 }, dedup: null }),
  );
}

beforeAll(async () => {
  redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
});
afterAll(async () => {
  await pipeline?.stop();
  redis?.disconnect();
  await cleanupTestEnv(t);
});

describe('a role that fails for good', () => {
  it('in-process: failed rejects naming the role, /healthz and /readyz answer 503', async () => {
    await staleCheckpoint(t.redisPrefix);
    pipeline = await startPipeline(t.config, silentLogger(), createMetrics(), { http: false });
    const codec = await AvroCodec.connect(pipeline.registry!.url, t.config.topicPrefix);
    const producer = await EventProducer.connect({
      brokers: t.kafkaBrokers,
      clientId: 'role-failure',
      topicPrefix: t.config.topicPrefix,
      codec,
      logger: silentLogger(),
      metrics: createMetrics(),
    });
    await produceRecords(producer, loadGoldenInput('production').slice(0, 3));
    await producer.close();
    await expect(pipeline.failed).rejects.toThrow(/role production failed: .*offset 1000, beyond the end of the log/);
    expect(pipeline.status().ok).toBe(false);
    const base = `http://127.0.0.1:${(pipeline.metricsApp!.server.address() as { port: number }).port}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({
      status: 'failed',
      failed: [{ role: 'production', error: expect.stringMatching(/replay -- --processor production --from-beginning/) }],
    });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks['role:production']).toMatch(/^failed: /);
  });

  it('as a process: exits non-zero with the error in its log', async () => {
    const prefix = `${t.redisPrefix}proc:`;
    await staleCheckpoint(prefix);
    const child = spawnRoles(
      t,
      {
        ...t.env,
        REDIS_PREFIX: prefix,
        GROUP_PREFIX: `${t.groupPrefix}proc.`,
        CHDB_PATH: join(t.dataDir, 'chdb-proc'),
        SCHEMA_REGISTRY_URL: pipeline!.registry!.url,
        LOG_LEVEL: 'info',
      },
      'production',
      'role-failure-proc',
    );
    expect(await child.exited).toBe(1);
    const log = readFileSync(child.logFile, 'utf8');
    expect(log).toMatch(/"event":"streampulse_failed".*"role":"production".*beyond the end of the log/);
  });
});
