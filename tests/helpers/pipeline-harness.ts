/**
 * Runs StreamPulse components on the real services for integration tests: a schema registry
 * (in-process, on its own compacted topic), topics under a unique prefix, the SDK producer,
 * Redis, embedded ClickHouse owned by the test process and served over HTTP to child processes
 * (the `clickhouse` role), and child processes running `bin/streampulse.ts` with chosen roles,
 * so a test can SIGKILL a processor for real.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { AvroCodec } from '../../lib/avro-codec.js';
import { ensureTopics, streamPulseTopics, topicHighWatermarks } from '../../lib/kafka-admin.js';
import { silentLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { topicSpec, type EventKind } from '../../contracts/topics.js';
import type { EventByKind } from '../../contracts/types.generated.js';
import { openClickHouse, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { serveClickHouse, type ClickHouseFacade } from '../../sinks/clickhouse/http-facade.js';
import { EventProducer } from '../../producers/sdk/event-producer.js';
import type { RunnerDeps } from '../../processors/core/runner.js';
import { startRegistryServer, type RegistryServer } from '../../stack/registry/server.js';
import { REPO_ROOT, TEST_CH_WRITER, pollUntil, testWriterEnv, type TestEnv } from './env.js';
import type { GoldenRecord } from './golden.js';

export interface Services {
  registry: RegistryServer;
  redis: Redis;
  ch: ClickHouse;
  facade: ClickHouseFacade;
  close(): Promise<void>;
}

/** Registry + Redis + embedded ClickHouse (served over HTTP) for one test file. */
export async function startServices(t: TestEnv): Promise<Services> {
  const logger = silentLogger();
  const registry = await startRegistryServer({ config: t.config, logger });
  const redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  const ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  const facade = await serveClickHouse(ch, { port: 0, writer: TEST_CH_WRITER });
  return {
    registry,
    redis,
    ch,
    facade,
    async close() {
      await facade.close().catch(() => undefined);
      await ch.close().catch(() => undefined);
      await redis.quit().catch(() => undefined);
      await registry.close().catch(() => undefined);
    },
  };
}

/** One isolated run inside a test file: its own topics, group, Redis keys and database. */
export interface Scenario {
  name: string;
  topicPrefix: string;
  groupPrefix: string;
  redisPrefix: string;
  database: string;
  codec: AvroCodec;
  producer: EventProducer;
  /** Env for a child `bin/streampulse.ts`. */
  childEnv(extra?: Record<string, string>): Record<string, string | undefined>;
  close(): Promise<void>;
}

export async function scenario(t: TestEnv, s: Services, name: string): Promise<Scenario> {
  const safe = name.replace(/[^a-z0-9]/gi, '_').toLowerCase();
  const topicPrefix = `${t.topicPrefix}${safe}.`;
  const database = `${t.id.replace(/[^a-z0-9]/gi, '_')}_${safe}`;
  await ensureTopics(t.kafkaBrokers, streamPulseTopics(topicPrefix));
  const codec = await AvroCodec.connect(s.registry.url, topicPrefix);
  const producer = await EventProducer.connect({
    brokers: t.kafkaBrokers,
    clientId: `test-${safe}`,
    topicPrefix,
    codec,
    logger: silentLogger(),
    metrics: createMetrics(),
  });
  const ch = { ...s.ch, database };
  await s.ch.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
  await migrate(ch);
  return {
    name,
    topicPrefix,
    groupPrefix: `${t.groupPrefix}${safe}.`,
    redisPrefix: `${t.redisPrefix}${safe}:`,
    database,
    codec,
    producer,
    childEnv: (extra = {}) => ({
      ...t.env,
      TOPIC_PREFIX: topicPrefix,
      GROUP_PREFIX: `${t.groupPrefix}${safe}.`,
      REDIS_PREFIX: `${t.redisPrefix}${safe}:`,
      CLICKHOUSE_URL: s.facade.url,
      ...testWriterEnv(),
      CLICKHOUSE_DATABASE: database,
      SCHEMA_REGISTRY_URL: s.registry.url,
      LOG_LEVEL: 'info',
      ...extra,
    }),
    close: () => producer.close(),
  };
}

/**
 * What a ProcessorRunner run in the test process needs, on the scenario's topics, Redis keys and
 * database, in the consumer group `<scenario's group prefix><group>`; `more` overrides or adds.
 */
export function runnerDeps(t: TestEnv, s: Pick<Services, 'ch' | 'redis'>, sc: Scenario, group: string, more: Partial<RunnerDeps> = {}): RunnerDeps {
  return {
    brokers: t.kafkaBrokers,
    groupId: `${sc.groupPrefix}${group}`,
    topicPrefix: sc.topicPrefix,
    codec: sc.codec,
    ch: { ...s.ch, database: sc.database },
    redis: s.redis,
    redisPrefix: sc.redisPrefix,
    logger: silentLogger(),
    metrics: createMetrics(),
    ...more,
  };
}

/** Produces golden records in order (consecutive records of one kind go as one batch). */
export async function produceRecords(producer: EventProducer, records: readonly GoldenRecord[]): Promise<void> {
  let i = 0;
  while (i < records.length) {
    const kind = records[i]!.kind;
    const batch: Record<string, unknown>[] = [];
    while (i < records.length && records[i]!.kind === kind) batch.push(records[i++]!.event);
    await producer.sendValid(kind, batch as unknown as EventByKind[typeof kind][]);
  }
}

/** True once every partition of the kinds has a checkpoint at (or past) its high watermark. */
export async function caughtUp(
  redis: Redis,
  brokers: string,
  sc: Pick<Scenario, 'topicPrefix' | 'redisPrefix'>,
  processor: string,
  kinds: readonly EventKind[],
): Promise<boolean> {
  for (const kind of kinds) {
    const topic = topicSpec(sc.topicPrefix, kind).topic;
    for (const w of await topicHighWatermarks(brokers, topic)) {
      if (w.high === 0) continue;
      const offset = await redis.hget(`${sc.redisPrefix}ckpt:${processor}:${topic}:${w.partition}`, 'offset');
      if (offset === null || Number(offset) < w.high) return false;
    }
  }
  return true;
}

export async function waitCaughtUp(
  redis: Redis,
  brokers: string,
  sc: Pick<Scenario, 'topicPrefix' | 'redisPrefix'>,
  processor: string,
  kinds: readonly EventKind[],
  timeoutMs = 60_000,
): Promise<void> {
  await pollUntil(() => caughtUp(redis, brokers, sc, processor, kinds), { timeoutMs, intervalMs: 200, description: `${processor} caught up` });
}

export interface RoleProcess {
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** Starts `bin/streampulse.ts` as a child process with ROLES=roles; output goes to a log file. */
export function spawnRoles(t: TestEnv, env: Record<string, string | undefined>, roles: string, label: string): RoleProcess {
  const dir = join(t.dataDir, 'logs');
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, `${label}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/streampulse.ts'], {
    cwd: REPO_ROOT,
    env: { ...env, ROLES: roles },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Both streams into one file: neither may end it while the other still writes (a SIGKILLed
  // child's stdout can close before its stderr is drained); it ends when the child is gone.
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  child.on('close', () => out.end());
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig ? -1 : null))));
  return {
    child,
    logFile,
    exited,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface ConsumedRecord {
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** Reads a topic from the beginning until `count` records arrived (or the timeout passes). */
export async function readTopic(brokers: string, topic: string, count: number, timeoutMs = 30_000): Promise<ConsumedRecord[]> {
  const Kafka = (await import('node-rdkafka')).default;
  const consumer = new Kafka.KafkaConsumer(
    { 'group.id': `read-${topic}-${Date.now()}`, 'metadata.broker.list': brokers, 'enable.auto.commit': false },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve())));
  consumer.subscribe([topic]);
  const out: ConsumedRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  try {
    while (out.length < count && Date.now() < deadline) {
      const msgs = await new Promise<import('node-rdkafka').Message[]>((resolve, reject) =>
        consumer.consume(500, (err, m) => (err ? reject(err) : resolve(m))),
      );
      for (const m of msgs) {
        const headers: Record<string, string> = {};
        for (const h of m.headers ?? []) for (const [k, v] of Object.entries(h)) headers[k] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
        out.push({ partition: m.partition, offset: m.offset, key: (m.key as Buffer | null | undefined) ?? null, value: m.value, headers });
      }
    }
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
  return out;
}
