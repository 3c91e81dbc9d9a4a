/**
 * `npm run bench:ingest`: throughput of the event backbone on this machine, each figure beside
 * the raw consume rate of the same topics measured in the same run.
 *   SDK       validated-upstream events produced through EventProducer.sendValid (acked)
 *   HTTP      NDJSON POSTs to /v1/events/{kind} (validation + Avro + produce, acked), 4 clients
 *             (BENCH_HTTP_CLIENTS) in a child process (bench/ingest-clients.ts), each with its own API key, with the gateway
 *             as bin/http-roles.ts builds it: keys in Redis (RedisApiKeyStore), per-key rate limits
 *             in Redis at the configured values (INGEST_RATE_LIMIT_*), depth and string bounds
 *             checked before parsing, and a producer of its own built as bin/pipeline.ts builds the
 *             gateway's (linger.ms 5; the SDK run's linger.ms 20 made each 2,000-event request wait
 *             about 50 ms for its acknowledgement, and 4 clients wait in turn, not in parallel
 *             with 40,000 events in flight like the SDK run). BENCH_HTTP_PRODUCER=shared: the SDK
 *             run's producer, as before (to compare)
 *   CPU       CPU seconds (user + system, every thread: librdkafka's too) of this process per
 *             million events, for the SDK run and for the gateway (the clients are not in it):
 *             on a shared machine wall-clock rates move with the neighbours' load, this much less
 *   consume   plain node-rdkafka consumption of the same topics (no decode): the reference
 *   decode    consumption + Avro decode
 *   archived  the raw-store processor: consume, decode, write to ClickHouse, checkpoint, commit
 * Results go to bench/RESULTS.md ("Ingest").
 */
import { fork } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import { createMetrics } from '../lib/metrics.js';
import { openClickHouse } from '../sinks/clickhouse/client.js';
import { migrate } from '../sinks/clickhouse/migrate.js';
import { ProcessorRunner } from '../processors/core/runner.js';
import { rawStoreProcessor } from '../processors/raw-store/raw-store.processor.js';
import { ingestPlugin } from '../producers/ingest/ingest.plugin.js';
import { RedisApiKeyStore } from '../api/api-keys.js';
import { EventProducer } from '../producers/sdk/event-producer.js';
import type { SimEvent } from '../producers/simulator/generator.js';
import type { ClientJob, ClientsResult } from './ingest-clients.js';
import {
  ALL_KINDS,
  benchEnv,
  byKind,
  checkpointedTotal,
  collectGarbage,
  consumeAll,
  generateEvents,
  machine,
  produceAll,
  recordResults,
  topicTotal,
} from './common.js';

const N_SDK = Number(process.env.BENCH_EVENTS ?? 400_000);
const N_HTTP = Number(process.env.BENCH_HTTP_EVENTS ?? 100_000);
/** Concurrent HTTP clients (connections), each with its own API key: BENCH_HTTP_CLIENTS, 4 by default. */
const HTTP_CLIENTS = Number(process.env.BENCH_HTTP_CLIENTS ?? 4);
/** BENCH_INGEST_ONLY=1: SDK and HTTP only, nothing written to RESULTS.md (for runs alternating with other code). */
const INGEST_ONLY = process.env.BENCH_INGEST_ONLY === '1';
/** BENCH_HTTP_PRODUCER=shared: the gateway produces through the SDK run's producer (linger.ms 20) instead of one built like bin/pipeline.ts's. */
const HTTP_SHARED_PRODUCER = process.env.BENCH_HTTP_PRODUCER === 'shared';

const cpuSecondsSince = (start: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
};

/**
 * CPU seconds of this process by thread name (Linux /proc: `node` is the event loop, `rdk:*`
 * librdkafka, `V8 *` and `node` workers GC and compile); empty elsewhere. Names are grouped with
 * digits removed (`rdk:broker1` and `rdk:broker2` are `rdk:broker`).
 */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync('/proc/self/task')) return out;
  const tick = 100; // USER_HZ on Linux
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+/g, '');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / tick);
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

/** `name s, …` of the CPU seconds per thread name spent between two threadCpu() readings, per million events. */
function threadCpuPerM(before: Map<string, number>, after: Map<string, number>, events: number): string {
  return [...after]
    .map(([name, s]) => [name, ((s - (before.get(name) ?? 0)) / events) * 1e6] as const)
    .filter(([, v]) => v >= 0.5)
    .sort((a, b) => b[1] - a[1])
    .map(([name, v]) => `${name} ${v.toFixed(1)}`)
    .join(', ');
}

/** Runs the clients in a child process; this process's CPU is counted from `go` to the answer. */
async function runClients(url: string, jobsFile: string): Promise<ClientsResult & { gatewayCpuSeconds: number }> {
  const child = fork(new URL('./ingest-clients.ts', import.meta.url).pathname, [url, jobsFile, String(HTTP_CLIENTS)], { execArgv: ['--import', 'tsx'] });
  return new Promise((resolve, reject) => {
    let cpu0: NodeJS.CpuUsage | null = null;
    child.on('message', (m: { type: string; result?: ClientsResult; message?: string }) => {
      if (m.type === 'ready') {
        cpu0 = process.cpuUsage();
        child.send({ type: 'go' });
      } else if (m.type === 'done') resolve({ ...m.result!, gatewayCpuSeconds: cpuSecondsSince(cpu0!) });
      else reject(new Error(`bench clients: ${m.message}`));
    });
    child.on('exit', (code) => code !== 0 && reject(new Error(`bench clients exited with ${code}`)));
  });
}

const clientKeyNames = () => Array.from({ length: HTTP_CLIENTS }, (_, i) => `bench-key-${i}`);

/**
 * Generates the events of both phases, writes the HTTP phase's request bodies (2,000 events of
 * one kind each) to `jobsFile` for the clients, and returns the SDK phase's events. Nothing of
 * the HTTP events stays in this process: a heap that kept them (and their JSON) through the
 * gateway's phase made each full collection there mark hundreds of MB that a gateway never holds.
 */
function prepareEvents(jobsFile: string): SimEvent[] {
  const events = generateEvents(N_SDK + N_HTTP, 11);
  const clientKeys = clientKeyNames();
  const jobs: ClientJob[] = [];
  for (const [kind, list] of byKind(events.slice(N_SDK))) {
    for (let i = 0; i < list.length; i += 2000) {
      const chunk = list.slice(i, i + 2000);
      jobs.push({ kind, key: clientKeys[jobs.length % HTTP_CLIENTS]!, body: chunk.map((e) => JSON.stringify(e)).join('\n') });
    }
  }
  writeFileSync(jobsFile, JSON.stringify(jobs));
  return events.slice(0, N_SDK);
}

async function main(): Promise<void> {
  const b = await benchEnv('ingest');
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  try {
    const jobsFile = join(b.dataDir, 'http-jobs.json');
    const sdk = { events: prepareEvents(jobsFile) };

    collectGarbage(); // the simulator's garbage is no phase's cost
    const sdkCpu0 = process.cpuUsage();
    const sdkThreads0 = threadCpu();
    const sdkSeconds = await produceAll(b.producer, sdk.events);
    sdk.events = []; // the HTTP phase's heap holds none of them
    const sdkThreads = threadCpuPerM(sdkThreads0, threadCpu(), N_SDK);
    const sdkCpuPerM = (cpuSecondsSince(sdkCpu0) / N_SDK) * 1e6;
    const sdkRate = N_SDK / sdkSeconds;
    console.log(
      `SDK: ${fmt(sdkRate)} events/s (${N_SDK} in ${sdkSeconds.toFixed(2)} s), ${sdkCpuPerM.toFixed(1)} CPU-s per million events (by thread: ${sdkThreads})`,
    );

    const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
    const env = b.config.env;
    const keys = new RedisApiKeyStore(b.redis, env.REDIS_PREFIX);
    // One key per client (four apps): the per-key events/s limit stays on at its configured value.
    const clientKeys = clientKeyNames();
    await keys.seed(clientKeys.map((k) => `${k}:ingest`).join(','));
    // The gateway's producer as bin/pipeline.ts builds it (default linger.ms), connected before the phase.
    const gatewayProducer = HTTP_SHARED_PRODUCER
      ? b.producer
      : await EventProducer.connect({
          brokers: b.config.kafkaBrokers,
          clientId: `bench-${b.id}-gateway`,
          topicPrefix: b.config.topicPrefix,
          codec: b.codec,
          logger: b.logger,
          metrics: createMetrics(),
          maxFutureSkewMs: env.MAX_FUTURE_SKEW_MS,
        });
    await app.register(ingestPlugin, {
      producer: gatewayProducer,
      apiKeys: keys,
      maxBodyBytes: 64 * 1024 * 1024,
      maxEvents: 10_000,
      metrics: createMetrics(),
      bounds: { maxDepth: env.INGEST_MAX_JSON_DEPTH, maxStringBytes: env.INGEST_MAX_STRING_BYTES },
      rateLimits: {
        redis: b.redis,
        prefix: env.REDIS_PREFIX,
        requestsPerSecond: env.INGEST_RATE_LIMIT_REQUESTS_PER_S,
        eventsPerSecond: env.INGEST_RATE_LIMIT_EVENTS_PER_S,
      },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    collectGarbage();
    const httpThreads0 = threadCpu();
    const http = await runClients(url, jobsFile);
    const httpThreads = threadCpuPerM(httpThreads0, threadCpu(), http.accepted);
    const { accepted } = http;
    const httpSeconds = http.seconds;
    const httpRate = accepted / httpSeconds;
    const httpCpuPerM = (http.gatewayCpuSeconds / accepted) * 1e6;
    const clientCpuPerM = (http.cpuSeconds / accepted) * 1e6;
    console.log(
      `HTTP (${HTTP_SHARED_PRODUCER ? "SDK run's producer, linger.ms 20" : 'own producer, linger.ms 5'}): ${fmt(httpRate)} events/s (${accepted} in ${httpSeconds.toFixed(2)} s), gateway ${httpCpuPerM.toFixed(1)} CPU-s per million events (clients ${clientCpuPerM.toFixed(1)}; gateway by thread: ${httpThreads}); ${(httpRate / sdkRate).toFixed(2)} of the SDK rate`,
    );
    await app.close();
    if (gatewayProducer !== b.producer) await gatewayProducer.close();
    if (INGEST_ONLY) return;

    const total = await topicTotal(b, ALL_KINDS);
    const raw = await consumeAll(b, ALL_KINDS, false);
    const rawRate = raw.records / raw.seconds;
    console.log(`consume (reference): ${fmt(rawRate)} records/s (${raw.records} in ${raw.seconds.toFixed(2)} s)`);
    const dec = await consumeAll(b, ALL_KINDS, true);
    const decRate = dec.records / dec.seconds;
    console.log(`consume + decode: ${fmt(decRate)} events/s`);

    const ch = await openClickHouse(b.config.clickhouse);
    await migrate(ch);
    const runner = new ProcessorRunner(
      rawStoreProcessor(),
      {
        brokers: b.config.kafkaBrokers,
        groupId: `${b.config.env.GROUP_PREFIX}raw-store`,
        topicPrefix: b.config.topicPrefix,
        codec: b.codec,
        ch,
        redis: b.redis,
        redisPrefix: b.config.env.REDIS_PREFIX,
        logger: b.logger,
        metrics: createMetrics(),
      },
      { maxPendingRows: b.config.env.BATCH_MAX_ROWS, checkpointIntervalMs: b.config.env.BATCH_MAX_MS },
    );
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
    const rows = await ch.client
      .query({
        query: `SELECT sum(c) AS c FROM (${ALL_KINDS.map((k) => `SELECT count() AS c FROM ${ch.database}.raw_${k} FINAL`).join(' UNION ALL ')})`,
        format: 'JSONEachRow',
      })
      .then((r) => r.json<{ c: string }>());
    await ch.close();
    console.log(
      `archived into ClickHouse: ${fmt(archivedRate)} events/s steady (${fmt(archivedAll)} including start-up); rows ${rows[0]!.c} of ${total} records`,
    );

    recordResults(
      'Ingest (npm run bench:ingest)',
      `
Machine: ${machine()}. Date: ${new Date().toISOString().slice(0, 10)}. Kafka 4.1.1 (KRaft, single node, same machine), embedded ClickHouse (chdb), ${N_SDK + N_HTTP} simulated events of all kinds; raw-store commit cycle: ${b.config.env.BATCH_MAX_ROWS} rows or ${b.config.env.BATCH_MAX_MS} ms (20,000 rows gave 49,621 events/s archived in a run on the same machine).

| path | events/s |
|---|---|
| SDK \`sendValid\` (windows of 10,000 events sent as one call per kind, 4 in flight, acks=all, idempotent); ${sdkCpuPerM.toFixed(1)} CPU-s per million events | ${fmt(sdkRate)} |
| HTTP \`POST /v1/events/{kind}\` NDJSON, 2,000 per request, ${HTTP_CLIENTS} clients with a key each, in a child process (keys and per-key limits in Redis, bounds on, ${HTTP_SHARED_PRODUCER ? "the SDK run's producer, linger.ms 20" : 'its own producer as deployed, linger.ms 5'}); gateway ${httpCpuPerM.toFixed(1)} CPU-s per million events, ${(httpRate / sdkRate).toFixed(2)} of the SDK rate | ${fmt(httpRate)} |
| **reference**: plain consume of the same topics (no decode) | ${fmt(rawRate)} |
| consume + Avro decode | ${fmt(decRate)} |
| archived into ClickHouse by raw-store (steady; ${fmt(archivedAll)} incl. start-up) | ${fmt(archivedRate)} |

Archived rows (FINAL): ${rows[0]!.c} of ${total} records.
`,
    );
  } finally {
    await b.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
