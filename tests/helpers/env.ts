/**
 * Per-test-file isolation on the one shared Kafka/Redis: every test file gets a unique topic
 * prefix, consumer-group prefix, Redis key prefix and data directory (chdb lives there), so files
 * run in parallel without seeing each other. `pollUntil` replaces sleeps.
 *
 *   const t = testEnv('qoe');              // in the test file, at module level or in beforeAll
 *   t.config.topicPrefix                   // 't.qoe.k3x9q2.'
 *   afterAll(() => cleanupTestEnv(t));     // deletes its topics and data directory
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../lib/config.js';
import { deleteTopics, listTopics } from '../../lib/kafka-admin.js';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * The writer user of ClickHouse ports (http-facade.ts) that tests serve, and the credentials their
 * child processes send with CLICKHOUSE_URL (one random password per test process).
 */
export const TEST_CH_WRITER = { name: 'sp_test_writer', password: randomBytes(18).toString('base64url') };
export const testWriterEnv = () => ({ CLICKHOUSE_USER: TEST_CH_WRITER.name, CLICKHOUSE_PASSWORD: TEST_CH_WRITER.password });

export interface TestEnv {
  /** Unique id of this test environment, e.g. `qoe.k3x9q2`. */
  id: string;
  topicPrefix: string;
  groupPrefix: string;
  redisPrefix: string;
  /** `<repo>/.data/test/<id>`: created, and removed by cleanupTestEnv. */
  dataDir: string;
  /** Embedded ClickHouse directory inside dataDir. */
  chdbPath: string;
  /** Compacted topic for a registry started by this test (`<topicPrefix>_schemas`). */
  registryTopic: string;
  /** The environment the config was loaded from (process.env + the unique keys + overrides). */
  env: Record<string, string | undefined>;
  /** `loadConfig(env)`: pass this (or parts of it) to the components under test. */
  config: Config;
  kafkaBrokers: string;
  redisUrl: string;
}

function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '')
      .slice(0, 24) || 'test'
  );
}

/**
 * A unique environment for one test file. `overrides` are env keys (strings) applied last, e.g.
 * `{ REGISTRY_PORT: '0' }`. The shared services come from process.env (set by the global setup)
 * or the config defaults.
 */
export function testEnv(name = 'test', overrides: Record<string, string> = {}): TestEnv {
  const id = `${slug(name)}.${randomBytes(4).toString('hex')}`;
  const dataDir = join(REPO_ROOT, '.data', 'test', id);
  mkdirSync(dataDir, { recursive: true });
  const topicPrefix = `t.${id}.`;
  const env: Record<string, string | undefined> = {
    ...process.env,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    DATA_DIR: dataDir,
    TOPIC_PREFIX: topicPrefix,
    GROUP_PREFIX: `g.${id}.`,
    REDIS_PREFIX: `t:${id}:`,
    CHDB_PATH: join(dataDir, 'chdb'),
    REGISTRY_TOPIC: `${topicPrefix}_schemas`,
    REGISTRY_PORT: '0',
    HTTP_PORT: '0',
    METRICS_PORT: '0',
    ...overrides,
  };
  const config = loadConfig(env);
  return {
    id,
    topicPrefix: config.topicPrefix,
    groupPrefix: config.env.GROUP_PREFIX,
    redisPrefix: config.env.REDIS_PREFIX,
    dataDir,
    chdbPath: config.clickhouse.chdbPath,
    registryTopic: config.env.REGISTRY_TOPIC,
    env,
    config,
    kafkaBrokers: config.kafkaBrokers,
    redisUrl: config.env.REDIS_URL,
  };
}

/**
 * Deletes the topics and Redis keys under the test's prefixes and its data directory (the
 * shared Kafka and Redis outlive the run: CI and later runs use the same services). Call in
 * afterAll.
 */
export async function cleanupTestEnv(t: TestEnv, opts: { keepData?: boolean } = {}): Promise<void> {
  try {
    const mine = (await listTopics(t.kafkaBrokers, { timeoutMs: 10_000 })).filter((n) => n.startsWith(t.topicPrefix));
    if (mine.length > 0) await deleteTopics(t.kafkaBrokers, mine, { timeoutMs: 30_000 });
    const redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
    try {
      await redis.connect();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${t.redisPrefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  } finally {
    if (!opts.keepData) rmSync(t.dataDir, { recursive: true, force: true });
  }
}

export interface PollOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Wait between attempts (default 100 ms). */
  intervalMs?: number;
  /** Named in the timeout error. */
  description?: string;
}

/**
 * Calls `fn` until it returns something other than undefined, null or false and returns that
 * value. A throw counts as "not yet"; on timeout the error names the last value or error.
 */
export async function pollUntil<T>(fn: () => T | Promise<T>, opts: PollOptions = {}): Promise<Exclude<T, undefined | null | false>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let lastError: unknown;
  for (;;) {
    try {
      last = await fn();
      lastError = undefined;
      if (last !== undefined && last !== null && last !== false) return last as Exclude<T, undefined | null | false>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const what = opts.description ? ` (${opts.description})` : '';
      const detail = lastError !== undefined ? `last error: ${(lastError as Error)?.message ?? String(lastError)}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`pollUntil timed out after ${timeoutMs} ms${what}; ${detail}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A TCP port free on loopback right now (for a child process that must listen on a known port). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
