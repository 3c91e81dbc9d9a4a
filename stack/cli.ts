/**
 * `npm run stack:up` / `npm run stack:down` / `tsx stack/cli.ts status|jars`.
 *
 * up: Kafka (KRaft, from the Maven jars), Redis (existing or a local redis-server), the StreamPulse
 * topics for TOPIC_PREFIX, and the schema registry as a background process; with `--prometheus`
 * also a local Prometheus scraping the pipeline (stack/prometheus.ts); prints what runs where and
 * the command that starts the pipeline on it. down: stops what `up` (or a test run) started,
 * using the pid files under DATA_DIR.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadConfig, type Config } from '../lib/config.js';
import { StackError } from '../lib/errors.js';
import { ensureTopics, streamPulseTopics } from '../lib/kafka-admin.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { ensureKafkaJars, kafkaOptionsFromConfig, REPO_ROOT, startKafka, stopKafka, TEST_KAFKA_DIRNAME, type KafkaHandle } from './kafka.js';
import { delay, isAlive, livePid, removeFile, stopPid, tailFile } from './proc.js';
import { ensureRedis, redisOptionsFromConfig, stopRedis, type RedisHandle } from './redis.js';
import { prometheusPaths, startPrometheus, stopPrometheus } from './prometheus.js';

const REGISTRY_MAIN = 'stack/registry/main.ts';

export interface StackHandle {
  kafka: KafkaHandle;
  redis: RedisHandle;
  /** null when the registry was not asked for. */
  registry: { url: string; pid: number | null; alreadyRunning: boolean } | null;
  topics: { created: string[]; existing: string[] };
}

function registryPaths(config: Config) {
  const dir = resolve(config.env.DATA_DIR, 'registry');
  return { dir, pidFile: join(dir, 'registry.pid'), logFile: join(dir, 'registry.log') };
}

async function registryAnswers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

/** Starts the registry as a detached background process (unless one answers already). */
async function startRegistryProcess(config: Config, logger: Logger): Promise<{ url: string; pid: number | null; alreadyRunning: boolean }> {
  const url = `http://${config.env.REGISTRY_HOST}:${config.env.REGISTRY_PORT}`;
  const p = registryPaths(config);
  if (await registryAnswers(url)) return { url, pid: livePid(p.pidFile, REGISTRY_MAIN), alreadyRunning: true };
  mkdirSync(p.dir, { recursive: true });
  const out = openSync(p.logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', REGISTRY_MAIN], { cwd: REPO_ROOT, detached: true, stdio: ['ignore', out, out], env: process.env });
  closeSync(out);
  if (child.pid === undefined) throw new StackError('could not spawn the registry process');
  child.unref();
  writeFileSync(p.pidFile, `${child.pid}\n`);
  const deadline = Date.now() + 60_000;
  while (!(await registryAnswers(url))) {
    if (!isAlive(child.pid)) throw new StackError(`the registry exited during startup:\n${tailFile(p.logFile, 20)}`);
    if (Date.now() > deadline) {
      await stopPid(child.pid, 5000);
      throw new StackError(`the registry did not answer on ${url} within 60 s:\n${tailFile(p.logFile, 20)}`);
    }
    await delay(200);
  }
  logger.info({ event: 'registry_started', url, pid: child.pid }, 'registry started');
  return { url, pid: child.pid, alreadyRunning: false };
}

/** Kafka + Redis (+ topics) and, unless `registry: false`, the registry in the background. */
export async function startStack(opts: { config: Config; logger: Logger; registry?: boolean; topics?: boolean }): Promise<StackHandle> {
  const { config, logger } = opts;
  const kafka = await startKafka(kafkaOptionsFromConfig(config, logger));
  const redis = await ensureRedis(redisOptionsFromConfig(config, logger));
  const topics = opts.topics === false ? { created: [], existing: [] } : await ensureTopics(config.kafkaBrokers, streamPulseTopics(config.topicPrefix));
  const registry = opts.registry === false ? null : await startRegistryProcess(config, logger);
  return { kafka, redis, registry, topics };
}

/** Stops what startStack (and a crashed test run) left: registry, Kafka, Redis we started. */
export async function stopStack(opts: { config: Config; logger: Logger }): Promise<string[]> {
  const { config, logger } = opts;
  const stopped: string[] = [];
  const rp = registryPaths(config);
  const promPid = await stopPrometheus(config);
  if (promPid !== null) stopped.push(`prometheus (pid ${promPid})`);
  const regPid = livePid(rp.pidFile, REGISTRY_MAIN);
  if (regPid !== null) {
    await stopPid(regPid, 10_000);
    stopped.push(`registry (pid ${regPid})`);
  }
  removeFile(rp.pidFile);
  const kafkaOpts = kafkaOptionsFromConfig(config, logger);
  if (await stopKafka(kafkaOpts)) stopped.push('kafka');
  if (await stopKafka({ ...kafkaOpts, dataDir: resolve(config.env.DATA_DIR, TEST_KAFKA_DIRNAME) })) stopped.push('kafka (test run)');
  if (await stopRedis(redisOptionsFromConfig(config, logger))) stopped.push('redis');
  if (await stopRedis({ ...redisOptionsFromConfig(config, logger), dataDir: resolve(config.env.DATA_DIR, 'test-redis') })) stopped.push('redis (test run)');
  return stopped;
}

async function main(cmd: string | undefined, args: readonly string[] = []): Promise<number> {
  const config = loadConfig(process.env);
  const logger = createLogger(process.env.LOG_LEVEL ?? 'warn', { component: 'stack' });
  switch (cmd) {
    case 'up': {
      const s = await startStack({ config, logger });
      const said = (already: boolean, pid: number | null) => (already ? 'already running' : `started, pid ${pid}`);
      console.log(`kafka     ${s.kafka.brokers}  (${said(s.kafka.alreadyRunning, s.kafka.pid)}; logs ${s.kafka.logFile})`);
      console.log(`redis     ${s.redis.url}  (${said(s.redis.alreadyRunning, s.redis.pid)})`);
      console.log(`registry  ${s.registry!.url}  (${said(s.registry!.alreadyRunning, s.registry!.pid)}; logs ${registryPaths(config).logFile})`);
      console.log(`topics    ${[...s.topics.created, ...s.topics.existing].sort().join(', ')} (${s.topics.created.length} created)`);
      if (args.includes('--prometheus')) {
        const pr = await startPrometheus(config, logger);
        console.log(
          `prometheus ${pr.url}  (${said(pr.alreadyRunning, pr.pid)}; scrapes 127.0.0.1:${config.env.HTTP_PORT} and :${config.env.METRICS_PORT}; logs ${prometheusPaths(config).logFile})`,
        );
      }
      // The registry runs here already: `npm start` leaves the role out when one answers (bin/streampulse.ts).
      console.log('run the pipeline on it with: npm start        stop the stack with: npm run stack:down');
      return 0;
    }
    case 'down': {
      const stopped = await stopStack({ config, logger });
      console.log(stopped.length > 0 ? `stopped: ${stopped.join(', ')}` : 'nothing of ours was running');
      return 0;
    }
    case 'status': {
      const k = kafkaOptionsFromConfig(config, logger);
      const { kafkaStatus } = await import('./kafka.js');
      const ks = await kafkaStatus(k);
      const { pingRedis } = await import('./redis.js');
      const url = `http://${config.env.REGISTRY_HOST}:${config.env.REGISTRY_PORT}`;
      console.log(`kafka     ${k.brokers}  ${ks.reachable ? 'up' : 'down'}${ks.pid ? ` (pid ${ks.pid})` : ''}`);
      console.log(`redis     ${config.env.REDIS_URL}  ${(await pingRedis(config.env.REDIS_URL)) ? 'up' : 'down'}`);
      console.log(`registry  ${url}  ${(await registryAnswers(url)) ? 'up' : 'down'}`);
      return 0;
    }
    case 'jars':
      console.log(ensureKafkaJars({ logger }));
      return 0;
    default:
      console.error('usage: tsx stack/cli.ts up [--prometheus]|down|status|jars');
      return 2;
  }
}

if (import.meta.url === pathToFileURL(resolve(process.argv[1] ?? '')).href) {
  main(process.argv[2], process.argv.slice(3)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof StackError ? `stack: ${err.message}` : err);
      process.exit(1);
    },
  );
}
