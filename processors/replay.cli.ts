/**
 * `npm run replay -- --processor <name> [--from-beginning]`
 * Drops and rebuilds a processor's derived tables from Kafka (with --from-beginning), or catches
 * a stopped processor up to the end of the log (without). Stop the processor's live role first.
 * With embedded ClickHouse, the pipeline process owns the data directory: stop it, or run the
 * pipeline with the `clickhouse` role and point this command at it with CLICKHOUSE_URL.
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

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { processor: { type: 'string' }, 'from-beginning': { type: 'boolean', default: false } } });
  const name = values.processor;
  if (!name || !(name in PROCESSOR_FACTORIES)) {
    console.error(`usage: npm run replay -- --processor <${Object.keys(PROCESSOR_FACTORIES).join('|')}> [--from-beginning]`);
    process.exit(2);
  }
  const config = loadConfig(process.env);
  const logger = createLogger(config.env.LOG_LEVEL);
  const ch = await openClickHouse(config.clickhouse);
  await migrate(ch, logger);
  const redis = new Redis(config.env.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  const codec = await AvroCodec.connect(config.env.SCHEMA_REGISTRY_URL, config.topicPrefix);
  const processor = processorFor(name, { ch, graceMs: config.env.WINDOW_GRACE_MS, allowedLatenessMs: config.env.ALLOWED_LATENESS_MS, lateness: latenessPolicy(config.env) });
  const result = await replayProcessor(processor, {
    brokers: config.kafkaBrokers, groupId: `${config.env.GROUP_PREFIX}${processor.name}`, topicPrefix: config.topicPrefix, codec, ch, redis,
    redisPrefix: config.env.REDIS_PREFIX, logger, metrics: createMetrics(), maxFutureSkewMs: config.env.MAX_FUTURE_SKEW_MS,
  }, { fromBeginning: values['from-beginning'] ?? false, maxPendingRows: config.env.BATCH_MAX_ROWS, checkpointIntervalMs: config.env.CHECKPOINT_INTERVAL_MS });
  console.log(JSON.stringify(result));
  await redis.quit();
  await ch.close();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
