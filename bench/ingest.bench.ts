/**
 * `npm run bench:ingest`: throughput of the event backbone on this machine, each figure beside
 * the raw consume rate of the same topics measured in the same run.
 *   SDK       validated-upstream events produced through EventProducer.sendValid (acked)
 *   HTTP      NDJSON POSTs to /v1/events/{kind} (validation + Avro + produce, acked), 4 clients, with
 *             the gateway as bin/http-roles.ts builds it: keys in Redis (RedisApiKeyStore), per-key
 *             rate limits in Redis at the configured values (INGEST_RATE_LIMIT_*), depth and string
 *             bounds checked before parsing
 *   consume   plain node-rdkafka consumption of the same topics (no decode): the reference
 *   decode    consumption + Avro decode
 *   archived  the raw-store processor: consume, decode, write to ClickHouse, checkpoint, commit
 * Results go to bench/RESULTS.md ("Ingest").
 */
import Fastify from 'fastify';
import { createMetrics } from '../lib/metrics.js';
import { openClickHouse } from '../sinks/clickhouse/client.js';
import { migrate } from '../sinks/clickhouse/migrate.js';
import { ProcessorRunner } from '../processors/core/runner.js';
import { rawStoreProcessor } from '../processors/raw-store/raw-store.processor.js';
import { ingestPlugin } from '../producers/ingest/ingest.plugin.js';
import { RedisApiKeyStore } from '../api/api-keys.js';
import { ALL_KINDS, benchEnv, byKind, checkpointedTotal, consumeAll, generateEvents, machine, produceAll, recordResults, topicTotal } from './common.js';

const N_SDK = Number(process.env.BENCH_EVENTS ?? 400_000);
const N_HTTP = Number(process.env.BENCH_HTTP_EVENTS ?? 100_000);

async function main(): Promise<void> {
  const b = await benchEnv('ingest');
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  try {
    const events = generateEvents(N_SDK + N_HTTP, 11);
    const sdkEvents = events.slice(0, N_SDK);
    const httpEvents = events.slice(N_SDK);

    const sdkSeconds = await produceAll(b.producer, sdkEvents);
    const sdkRate = N_SDK / sdkSeconds;
    console.log(`SDK: ${fmt(sdkRate)} events/s (${N_SDK} in ${sdkSeconds.toFixed(2)} s)`);

    const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
    const env = b.config.env;
    const keys = new RedisApiKeyStore(b.redis, env.REDIS_PREFIX);
    await keys.seed('bench-key:ingest');
    await app.register(ingestPlugin, {
      producer: b.producer, apiKeys: keys, maxBodyBytes: 64 * 1024 * 1024, maxEvents: 10_000, metrics: createMetrics(),
      bounds: { maxDepth: env.INGEST_MAX_JSON_DEPTH, maxStringBytes: env.INGEST_MAX_STRING_BYTES },
      rateLimits: { redis: b.redis, prefix: env.REDIS_PREFIX, requestsPerSecond: env.INGEST_RATE_LIMIT_REQUESTS_PER_S, eventsPerSecond: env.INGEST_RATE_LIMIT_EVENTS_PER_S },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const bodies: Array<{ kind: string; body: string; n: number }> = [];
    for (const [kind, list] of byKind(httpEvents)) {
      for (let i = 0; i < list.length; i += 2000) {
        const chunk = list.slice(i, i + 2000);
        bodies.push({ kind, n: chunk.length, body: chunk.map((e) => JSON.stringify(e)).join('\n') });
      }
    }
    const t0 = performance.now();
    let accepted = 0;
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < bodies.length) {
        const job = bodies[next++]!;
        const res = await fetch(`${url}/v1/events/${job.kind}`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': 'bench-key' }, body: job.body });
        const r = (await res.json()) as { accepted: number; rejected: number };
        if (res.status !== 200 || r.rejected > 0) throw new Error(`ingest answered ${res.status}: ${JSON.stringify(r).slice(0, 300)}`);
        accepted += r.accepted;
      }
    }));
    const httpSeconds = (performance.now() - t0) / 1000;
    const httpRate = accepted / httpSeconds;
    console.log(`HTTP: ${fmt(httpRate)} events/s (${accepted} in ${httpSeconds.toFixed(2)} s)`);
    await app.close();

    const total = await topicTotal(b, ALL_KINDS);
    const raw = await consumeAll(b, ALL_KINDS, false);
    const rawRate = raw.records / raw.seconds;
    console.log(`consume (reference): ${fmt(rawRate)} records/s (${raw.records} in ${raw.seconds.toFixed(2)} s)`);
    const dec = await consumeAll(b, ALL_KINDS, true);
    const decRate = dec.records / dec.seconds;
    console.log(`consume + decode: ${fmt(decRate)} events/s`);

    const ch = await openClickHouse(b.config.clickhouse);
    await migrate(ch);
    const runner = new ProcessorRunner(rawStoreProcessor(), {
      brokers: b.config.kafkaBrokers, groupId: `${b.config.env.GROUP_PREFIX}raw-store`, topicPrefix: b.config.topicPrefix, codec: b.codec, ch, redis: b.redis,
      redisPrefix: b.config.env.REDIS_PREFIX, logger: b.logger, metrics: createMetrics(),
    }, { maxPendingRows: b.config.env.BATCH_MAX_ROWS, checkpointIntervalMs: b.config.env.BATCH_MAX_MS });
    const a0 = performance.now();
    await runner.start();
    let first: { t: number; n: number } | null = null;
    for (;;) {
      const n = await checkpointedTotal(b, 'raw-store');
      if (!first && n > 0) first = { t: performance.now(), n };
      if (n >= total) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const a1 = performance.now();
    await runner.stop();
    const archivedRate = (total - first!.n) / ((a1 - first!.t) / 1000);
    const archivedAll = total / ((a1 - a0) / 1000);
    const rows = await ch.client.query({ query: `SELECT sum(c) AS c FROM (${ALL_KINDS.map((k) => `SELECT count() AS c FROM ${ch.database}.raw_${k} FINAL`).join(' UNION ALL ')})`, format: 'JSONEachRow' }).then((r) => r.json<{ c: string }>());
    await ch.close();
    console.log(`archived into ClickHouse: ${fmt(archivedRate)} events/s steady (${fmt(archivedAll)} including start-up); rows ${rows[0]!.c} of ${total} records`);

    recordResults('Ingest (npm run bench:ingest)', `
Machine: ${machine()}. Date: ${new Date().toISOString().slice(0, 10)}. Kafka 4.1.1 (KRaft, single node, same machine), embedded ClickHouse (chdb), ${N_SDK + N_HTTP} simulated events of all kinds; raw-store commit cycle: ${b.config.env.BATCH_MAX_ROWS} rows or ${b.config.env.BATCH_MAX_MS} ms (20,000 rows gave 49,621 events/s archived in a run on the same machine).

| path | events/s |
|---|---|
| SDK \`sendValid\` (windows of 10,000 events sent as one call per kind, 4 in flight, acks=all, idempotent) | ${fmt(sdkRate)} |
| HTTP \`POST /v1/events/{kind}\` NDJSON, 2,000 per request, 4 clients (keys and per-key limits in Redis, bounds on) | ${fmt(httpRate)} |
| **reference**: plain consume of the same topics (no decode) | ${fmt(rawRate)} |
| consume + Avro decode | ${fmt(decRate)} |
| archived into ClickHouse by raw-store (steady; ${fmt(archivedAll)} incl. start-up) | ${fmt(archivedRate)} |

Archived rows (FINAL): ${rows[0]!.c} of ${total} records.
`);
  } finally {
    await b.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
