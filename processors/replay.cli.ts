/**
 * `npm run replay -- --processor <name> | --all [--restart]`
 * Online rebuild (processors/replay-online.ts): rebuilds the processors' tables from the Kafka log
 * into shadow tables while the live ones keep serving and the live processors keep running, then
 * swaps them in and hands the live processors the rebuild's state and offsets. A progress bar
 * with rate and ETA on a terminal (a progress line every 10 s otherwise). Interrupted (Ctrl-C, a
 * crash), it goes on from its last checkpoint when run again; `--restart` starts it over.
 * `--in-place [--from-beginning]`: the offline replay of before (processors/replay.ts): the
 * processor's live role must be stopped, and its tables are truncated first.
 * With embedded ClickHouse, the pipeline process owns the data directory: run the pipeline with
 * the `clickhouse` role and point this command at it with CLICKHOUSE_URL.
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { loadConfig } from '../lib/config.js';
import { AvroCodec } from '../lib/avro-codec.js';
import { createLogger } from '../lib/logger.js';
import { createMetrics } from '../lib/metrics.js';
import { openClickHouse } from '../sinks/clickhouse/client.js';
import { migrate } from '../sinks/clickhouse/migrate.js';
import { PROCESSOR_FACTORIES, latenessPolicy, processorFor } from '../bin/processors.js';
import { replayProcessor } from './replay.js';
import { progressLine, rebuildOnline, SHADOW_SUFFIX, type RebuildProgress } from './replay-online.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      processor: { type: 'string' },
      all: { type: 'boolean', default: false },
      restart: { type: 'boolean', default: false },
      'in-place': { type: 'boolean', default: false },
      'from-beginning': { type: 'boolean', default: false },
    },
  });
  const known = Object.keys(PROCESSOR_FACTORIES);
  const names = values.all ? known : values.processor ? values.processor.split(',') : [];
  if (names.length === 0 || names.some((n) => !known.includes(n)) || (values['in-place'] && names.length !== 1)) {
    console.error(
      `usage: npm run replay -- (--processor <${known.join('|')}>[,…] | --all) [--restart]\n       npm run replay -- --in-place --processor <name> [--from-beginning]`,
    );
    process.exit(2);
  }
  const config = loadConfig(process.env);
  const logger = createLogger(config.env.LOG_LEVEL);
  const ch = await openClickHouse(config.clickhouse);
  await migrate(ch, logger);
  const redis = new Redis(config.env.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  const codec = await AvroCodec.connect(config.env.SCHEMA_REGISTRY_URL, config.topicPrefix);
  const settings = {
    ch,
    graceMs: config.env.WINDOW_GRACE_MS,
    allowedLatenessMs: config.env.ALLOWED_LATENESS_MS,
    lateness: latenessPolicy(config.env),
    viewRowIntervalMs: config.env.VIEW_ROW_INTERVAL_MS,
    dayRowIntervalMs: config.env.CHURN_DAY_ROW_INTERVAL_MS,
  };
  const processors = names.map((n) => processorFor(n, settings));
  const deps = {
    brokers: config.kafkaBrokers,
    topicPrefix: config.topicPrefix,
    codec,
    ch,
    redis,
    redisPrefix: config.env.REDIS_PREFIX,
    logger,
    metrics: createMetrics(),
    maxFutureSkewMs: config.env.MAX_FUTURE_SKEW_MS,
  };
  const runnerOpts = {
    maxPendingRows: config.env.BATCH_MAX_ROWS,
    maxPendingBytes: config.env.BATCH_MAX_BYTES,
    checkpointIntervalMs: config.env.CHECKPOINT_INTERVAL_MS,
    idlePartitionMs: config.env.IDLE_PARTITION_MS,
  };
  let result: unknown;
  if (values['in-place']) {
    result = await replayProcessor(
      processors[0]!,
      { ...deps, groupId: `${config.env.GROUP_PREFIX}${names[0]}` },
      { ...runnerOpts, fromBeginning: values['from-beginning'] ?? false },
    );
  } else {
    const tty = process.stderr.isTTY === true;
    let lastLine = 0;
    let lastPhase = '';
    const onProgress = (p: RebuildProgress) => {
      const now = Date.now();
      if (tty) {
        process.stderr.write(`\r${progressLine(p, Math.max(10, Math.min(40, (process.stderr.columns ?? 100) - 80)))}\u001b[K`);
        if (p.phase === 'done') process.stderr.write('\n');
      } else if (now - lastLine >= 10_000 || p.phase !== lastPhase) {
        process.stderr.write(`${new Date(now).toISOString()} ${progressLine(p, 20)}\n`);
        lastLine = now;
      }
      lastPhase = p.phase;
    };
    // Ctrl-C: stop at once; the rebuild's checkpoints are its progress (run it again to go on).
    process.once('SIGINT', () => {
      if (tty) process.stderr.write('\n');
      console.error('interrupted: run the same command again to resume the rebuild from its last checkpoint');
      process.exit(130);
    });
    result = await rebuildOnline(
      processors,
      { ...deps, groupId: `${config.env.GROUP_PREFIX}${names.join('+')}${SHADOW_SUFFIX}` },
      {
        ...runnerOpts,
        graceMs: config.env.WINDOW_GRACE_MS,
        restart: values.restart ?? false,
        onProgress,
      },
    );
  }
  console.log(JSON.stringify(result));
  await redis.quit();
  await ch.close();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
