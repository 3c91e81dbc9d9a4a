/**
 * Runs once per `vitest run`, before any test file: makes sure the shared Kafka and Redis
 * answer. A Kafka already answering on KAFKA_BROKERS (e.g. `npm run stack:up`) is used and left
 * running. Otherwise a throw-away one is started in `<DATA_DIR>/test-kafka` (wiped first) and
 * stopped by the last test run that uses it: several `vitest run`s may share it at once, each
 * registered under `test-kafka/users/<pid>`, with a lock directory around start and stop.
 * A Redis started here is stopped the same way. STREAMPULSE_TEST_STACK=off skips all of this.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/logger.js';
import { kafkaStatus, startKafka, stopKafka, TEST_KAFKA_DIRNAME, wipeKafkaData, type KafkaStackOptions } from '../../stack/kafka.js';
import { delay, isAlive } from '../../stack/proc.js';
import { ensureRedis, redisOptionsFromConfig, stopRedis } from '../../stack/redis.js';

async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock older than the longest start/stop belongs to a run that died.
      if (Date.now() - statSync(lockDir, { throwIfNoEntry: false })!.mtimeMs > 180_000) rmSync(lockDir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`test stack lock ${lockDir} held for too long`, { cause: err });
      await delay(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function liveUsers(usersDir: string): number[] {
  if (!existsSync(usersDir)) return [];
  const live: number[] = [];
  for (const f of readdirSync(usersDir)) {
    const pid = Number(f);
    if (Number.isInteger(pid) && isAlive(pid)) live.push(pid);
    else rmSync(join(usersDir, f), { force: true });
  }
  return live;
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  if (process.env.STREAMPULSE_TEST_STACK === 'off') return async () => {};
  const config = loadConfig(process.env);
  const logger = createLogger(process.env.STACK_LOG_LEVEL ?? 'warn', { component: 'test-stack' });
  const dataDir = resolve(config.env.DATA_DIR);
  const kafkaOpts: KafkaStackOptions = { brokers: config.kafkaBrokers.split(',')[0]!.trim(), dataDir: join(dataDir, TEST_KAFKA_DIRNAME), heapMb: 768, logger };
  // A Redis started for tests keeps its pid file apart from stack:up's, so the last run stops it.
  const redisOpts = { ...redisOptionsFromConfig(config, logger), dataDir: join(dataDir, 'test-redis') };
  const lockDir = join(dataDir, `${TEST_KAFKA_DIRNAME}.lock`);
  const usersDir = join(dataDir, `${TEST_KAFKA_DIRNAME}.users`);
  mkdirSync(dataDir, { recursive: true });
  const t0 = Date.now();

  const { kafka, redis } = await withLock(lockDir, async () => {
    const status = await kafkaStatus(kafkaOpts);
    if (!status.reachable && status.pid === null && liveUsers(usersDir).length === 0) wipeKafkaData(kafkaOpts);
    const kafka = await startKafka(kafkaOpts);
    const redis = await ensureRedis(redisOpts);
    mkdirSync(usersDir, { recursive: true });
    writeFileSync(join(usersDir, String(process.pid)), '');
    return { kafka, redis };
  });
  // kafka.pid comes from the test-kafka pid file: non-null means a broker some test run started.
  const ours = kafka.pid !== null;
  process.stderr.write(
    `[test-stack] Kafka ${kafka.brokers} (${kafka.alreadyRunning ? 'already running' : `started pid ${kafka.pid}`}${ours ? ', test-run broker: stopped by the last run using it' : ', left running'}); ` +
      `Redis ${redis.url} (${redis.alreadyRunning ? 'already running' : `started pid ${redis.pid}`}); ${Date.now() - t0} ms\n`,
  );

  return async () => {
    await withLock(lockDir, async () => {
      rmSync(join(usersDir, String(process.pid)), { force: true });
      if (liveUsers(usersDir).length > 0) return;
      // Only what a test run started lives under test-kafka / redis pid files; stop*() never
      // touches a Kafka or Redis started elsewhere.
      await stopKafka(kafkaOpts);
      await stopRedis(redisOpts);
    });
  };
}
