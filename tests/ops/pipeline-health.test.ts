/**
 * Issue 21's acceptance line for pipeline health: a processor that stops shows in the pipeline's
 * metrics. The production processor runs (registry + production roles, in-process), catches up,
 * and is stopped; records produced afterwards must appear as consumer lag (records and seconds)
 * and as a growing stall for processor="production", exported by the pipeline monitor of the
 * same process (it reads the checkpoints in Redis and the end of the log in Kafka, not the
 * stopped runner).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, type Pipeline } from '../../bin/pipeline.js';
import { AvroCodec } from '../../lib/avro-codec.js';
import { silentLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { EventProducer } from '../../producers/sdk/event-producer.js';
import { cleanupTestEnv, pollUntil, testEnv } from '../helpers/env.js';
import { loadGoldenInput } from '../helpers/golden.js';
import { produceRecords, waitCaughtUp } from '../helpers/pipeline-harness.js';

const t = testEnv('pipeline-health', {
  ROLES: 'registry,production',
  SCHEMA_REGISTRY_URL: 'http://127.0.0.1:0',
  PIPELINE_MONITOR_INTERVAL_MS: '300',
  CHECKPOINT_INTERVAL_MS: '200',
  BATCH_MAX_MS: '200',
});
let redis: Redis;
let pipeline: Pipeline | null = null;
let producer: EventProducer | null = null;

/** Sum of a metric's samples whose labels contain `processor="production"`. */
function sum(text: string, name: string): { n: number; total: number } {
  const re = new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm');
  let n = 0;
  let total = 0;
  for (const m of text.matchAll(re)) {
    if (!m[1]!.includes('processor="production"')) continue;
    n++;
    total += Number(m[2]);
  }
  return { n, total };
}

beforeAll(async () => {
  redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
});
afterAll(async () => {
  await producer?.close();
  await pipeline?.stop();
  redis?.disconnect();
  await cleanupTestEnv(t);
});

describe('pipeline health', () => {
  it('a stopped processor shows its lag and its stall in the metrics', async () => {
    pipeline = await startPipeline(t.config, silentLogger(), createMetrics(), { http: false });
    const metricsUrl = `http://127.0.0.1:${(pipeline.metricsApp!.server.address() as { port: number }).port}/metrics`;
    const scrape = async () => (await fetch(metricsUrl)).text();
    const codec = await AvroCodec.connect(pipeline.registry!.url, t.config.topicPrefix);
    producer = await EventProducer.connect({
      brokers: t.kafkaBrokers,
      clientId: 'pipeline-health',
      topicPrefix: t.config.topicPrefix,
      codec,
      logger: silentLogger(),
      metrics: createMetrics(),
    });
    const input = loadGoldenInput('production');
    const half = Math.floor(input.length / 2);
    const kinds = [...new Set(input.map((r) => r.kind))];
    await produceRecords(producer, input.slice(0, half));
    await waitCaughtUp(redis, t.kafkaBrokers, { topicPrefix: t.config.topicPrefix, redisPrefix: t.redisPrefix }, 'production', kinds, 120_000);

    // Running and caught up: the monitor reports its partitions with no lag and no stall.
    const before = await pollUntil(
      async () => {
        const text = await scrape();
        const lag = sum(text, 'streampulse_consumer_lag_records');
        return lag.n > 0 && lag.total === 0 ? text : null;
      },
      { timeoutMs: 60_000, intervalMs: 200, description: 'lag 0 reported for production' },
    );
    expect(sum(before, 'streampulse_processor_stalled_seconds').total).toBe(0);
    expect(before).toMatch(/^streampulse_watermark_delay_seconds\{processor="production",/m);

    // Stop the processor; the log grows behind it.
    await pipeline.runners[0]!.stop();
    await produceRecords(producer, input.slice(half));
    const after = await pollUntil(
      async () => {
        const text = await scrape();
        return sum(text, 'streampulse_processor_stalled_seconds').total >= 2 ? text : null;
      },
      { timeoutMs: 60_000, intervalMs: 300, description: 'production stalled for 2 s' },
    );
    expect(sum(after, 'streampulse_consumer_lag_records').total).toBeGreaterThan(0);
    expect(sum(after, 'streampulse_consumer_lag_seconds').total).toBeGreaterThanOrEqual(2);
    expect(after).toMatch(/^streampulse_pipeline_monitor_runs_total\{result="ok"\} [1-9]/m);
  }, 240_000);
});
