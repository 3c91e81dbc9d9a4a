/**
 * Shared set-up for benchmarks: the local Kafka/Redis (started if not running), a registry on
 * its own topic, unique topics per run, generated traffic, child pipeline processes, and the
 * machine description written beside every figure in bench/RESULTS.md.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { execSync } from 'node:child_process';
import { Redis } from 'ioredis';
import Kafka from 'node-rdkafka';
import { loadConfig, type Config } from '../lib/config.js';
import { AvroCodec } from '../lib/avro-codec.js';
import { deleteTopics, ensureTopics, listTopics, streamPulseTopics, topicHighWatermarks } from '../lib/kafka-admin.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { createMetrics } from '../lib/metrics.js';
import { allTopicSpecs, topicSpec, type EventKind } from '../contracts/topics.js';
import type { EventByKind } from '../contracts/types.generated.js';
import { EventProducer } from '../producers/sdk/event-producer.js';
import { TrafficGenerator, type SimEvent } from '../producers/simulator/generator.js';
import { kafkaOptionsFromConfig, REPO_ROOT, startKafka, stopKafka } from '../stack/kafka.js';
import { ensureRedis, redisOptionsFromConfig } from '../stack/redis.js';
import { startRegistryServer, type RegistryServer } from '../stack/registry/server.js';

export interface BenchEnv {
  id: string;
  config: Config;
  env: Record<string, string | undefined>;
  logger: Logger;
  registry: RegistryServer;
  redis: Redis;
  codec: AvroCodec;
  producer: EventProducer;
  dataDir: string;
  close(): Promise<void>;
}

export async function benchEnv(name: string, extra: Record<string, string> = {}): Promise<BenchEnv> {
  const id = `${name}-${Date.now().toString(36)}`;
  const dataDir = join(REPO_ROOT, '.data', 'bench', id);
  mkdirSync(dataDir, { recursive: true });
  const env: Record<string, string | undefined> = {
    ...process.env,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    TOPIC_PREFIX: `bench.${id}.`,
    GROUP_PREFIX: `bench.${id}.`,
    REDIS_PREFIX: `bench:${id}:`,
    // The writer login of the ClickHouse port a bench child serves to the others (http-facade.ts).
    CLICKHOUSE_USER: process.env.CLICKHOUSE_USER || 'default',
    CLICKHOUSE_PASSWORD: process.env.CLICKHOUSE_PASSWORD || randomBytes(18).toString('base64url'),
    REGISTRY_TOPIC: `bench.${id}._schemas`,
    REGISTRY_PORT: '0',
    HTTP_PORT: '0',
    METRICS_PORT: '0',
    CHDB_PATH: join(dataDir, 'chdb'),
    ...extra,
  };
  const config = loadConfig(env);
  const logger = createLogger(config.env.LOG_LEVEL);
  const kafkaOpts = kafkaOptionsFromConfig(config, logger);
  const kafka = await startKafka(kafkaOpts);
  await ensureRedis(redisOptionsFromConfig(config, logger));
  await ensureTopics(config.kafkaBrokers, streamPulseTopics(config.topicPrefix));
  const registry = await startRegistryServer({ config, logger });
  env.SCHEMA_REGISTRY_URL = registry.url;
  const codec = await AvroCodec.connect(registry.url, config.topicPrefix);
  const producer = await EventProducer.connect({
    brokers: config.kafkaBrokers,
    clientId: `bench-${id}`,
    topicPrefix: config.topicPrefix,
    codec,
    logger,
    metrics: createMetrics(),
    lingerMs: 20,
  });
  const redis = new Redis(config.env.REDIS_URL);
  return {
    id,
    config,
    env,
    logger,
    registry,
    redis,
    codec,
    producer,
    dataDir,
    /** Stops what it started and removes what the run left: its Redis keys, topics and data directory. */
    async close() {
      await producer.close();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.env.REDIS_PREFIX}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
      await registry.close();
      const topics = (await listTopics(config.kafkaBrokers)).filter((t) => t.startsWith(config.topicPrefix));
      if (topics.length)
        await deleteTopics(config.kafkaBrokers, topics).catch((err) => logger.warn({ err: (err as Error).message }, 'bench topics not deleted'));
      if (!kafka.alreadyRunning) await stopKafka(kafkaOpts);
      if (!process.env.BENCH_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `count` events of the simulator's realistic mix (all kinds), in event-time order. */
/**
 * A full garbage collection, run before a measured phase: the simulator leaves about 25 KB of
 * garbage per generated event (2 GB for 80,000), and without this its collection lands in
 * whatever phase runs next and is counted as that phase's CPU time.
 */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

export function generateEvents(count: number, seed = 1, ratePerSec = 20_000, startMs = Date.UTC(2026, 10, 20)): SimEvent[] {
  const gen = new TrafficGenerator({ seed, startMs, ratePerSec });
  const out: SimEvent[] = [];
  let t = startMs;
  while (out.length < count) {
    t += 1000;
    gen.advanceInto(t, out);
  }
  out.length = count;
  return out;
}

export function byKind(events: readonly SimEvent[]): Map<EventKind, unknown[]> {
  const m = new Map<EventKind, unknown[]>();
  for (const e of events) {
    let l = m.get(e.kind);
    if (!l) m.set(e.kind, (l = []));
    l.push(e.event);
  }
  return m;
}

/**
 * Produces events through the SDK; returns seconds taken. Events are taken in windows of
 * `batch` and sent as one sendValid call per kind (order within a kind, hence within a
 * partition, is kept), with up to `inFlight` calls awaiting delivery.
 */
export async function produceAll(producer: EventProducer, events: readonly SimEvent[], batch = 10_000, inFlight = 4): Promise<number> {
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < events.length; i += batch) {
    for (const [kind, list] of byKind(events.slice(i, i + batch))) {
      pending.push(producer.sendValid(kind, list as EventByKind[typeof kind][]));
      if (pending.length >= inFlight) await pending.shift();
    }
  }
  await Promise.all(pending);
  return (performance.now() - t0) / 1000;
}

/** Reads every record of the topics with a plain consumer; optionally decodes each. Returns seconds. */
export async function consumeAll(b: BenchEnv, kinds: readonly EventKind[], decode: boolean): Promise<{ seconds: number; records: number }> {
  const topics = kinds.map((k) => topicSpec(b.config.topicPrefix, k).topic);
  let total = 0;
  for (const t of topics) for (const w of await topicHighWatermarks(b.config.kafkaBrokers, t)) total += w.high;
  const consumer = new Kafka.KafkaConsumer(
    {
      'group.id': `bench-read-${Date.now()}`,
      'metadata.broker.list': b.config.kafkaBrokers,
      'enable.auto.commit': false,
      'queued.max.messages.kbytes': 65536,
      'fetch.wait.max.ms': 50,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((res, rej) => consumer.connect({ timeout: 10_000 }, (e) => (e ? rej(e) : res())));
  consumer.setDefaultConsumeTimeout(100);
  consumer.subscribe(topics);
  const kindOf = new Map(kinds.map((k) => [topicSpec(b.config.topicPrefix, k).topic, k]));
  let n = 0;
  let t0 = 0;
  while (n < total) {
    const msgs = await new Promise<Kafka.Message[]>((res, rej) => consumer.consume(5000, (e, m) => (e ? rej(e) : res(m))));
    if (msgs.length && !t0) t0 = performance.now();
    if (decode) {
      await b.codec.prepare(msgs.map((m) => m.value));
      for (const m of msgs) if (!b.codec.decode(kindOf.get(m.topic)!, m.value).ok) throw new Error('decode failed');
    }
    n += msgs.length;
  }
  const seconds = (performance.now() - t0) / 1000;
  await new Promise<void>((res) => consumer.disconnect(() => res()));
  return { seconds, records: n };
}

/** Sums the high watermarks of the kinds' topics. */
export async function topicTotal(b: BenchEnv, kinds: readonly EventKind[]): Promise<number> {
  let total = 0;
  for (const k of kinds) for (const w of await topicHighWatermarks(b.config.kafkaBrokers, topicSpec(b.config.topicPrefix, k).topic)) total += w.high;
  return total;
}

/** Sum of checkpointed offsets of a processor (events it has made durable). */
export async function checkpointedTotal(b: BenchEnv, processor: string, redisPrefix = b.config.env.REDIS_PREFIX): Promise<number> {
  const keys = await b.redis.keys(`${redisPrefix}ckpt:${processor}:*`);
  let n = 0;
  for (const k of keys) n += Number((await b.redis.hget(k, 'offset')) ?? 0);
  return n;
}

export function machine(): string {
  const c = cpus();
  let kernel = '';
  try {
    kernel = execSync('uname -r').toString().trim();
  } catch {
    /* not Linux */
  }
  return `${c.length} × ${c[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${kernel}, Node ${process.version}`;
}

export function percentile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** Replaces (or adds) the section `## <heading>` of bench/RESULTS.md. */
export function recordResults(heading: string, body: string): void {
  const file = join(REPO_ROOT, 'bench', 'RESULTS.md');
  const head = '# Benchmark results\n\nMeasured on the machine each section names; every section is rewritten by its benchmark.\n';
  let text = existsSync(file) ? readFileSync(file, 'utf8') : head;
  const marker = `\n## ${heading}\n`;
  const start = text.indexOf(marker);
  const section = `${marker}\n${body.trim()}\n`;
  if (start === -1) text = text.trimEnd() + '\n' + section;
  else {
    const next = text.indexOf('\n## ', start + marker.length);
    text = text.slice(0, start) + section + (next === -1 ? '' : text.slice(next));
  }
  writeFileSync(file, text);
  appendFileSync(join(REPO_ROOT, '.data', 'bench', 'history.log'), `${new Date().toISOString()} ${heading}\n${body}\n\n`);
}

export const ALL_KINDS = allTopicSpecs('').map((s) => s.kind);
