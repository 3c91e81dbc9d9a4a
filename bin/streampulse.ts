/**
 * The one StreamPulse entry point. `ROLES` (default: all) selects what this process runs:
 * registry, ingest, raw-store, business, qoe, churn, safety, production, alerts, api.
 *   npx tsx bin/streampulse.ts                      # everything in one process (embedded ClickHouse)
 *   ROLES=business CLICKHOUSE_URL=http://ch:8123 npx tsx bin/streampulse.ts   # one role per process
 * Kafka and Redis must be running (npm run stack:up); a schema registry already answering at
 * SCHEMA_REGISTRY_URL (stack:up runs one) is used and the registry role left out. SIGINT/SIGTERM
 * stop it cleanly.
 */
import { loadConfig } from '../lib/config.js';
import { ConfigError } from '../lib/errors.js';
import { createLogger } from '../lib/logger.js';
import { createMetrics } from '../lib/metrics.js';
import { adaptRolesToRunning, startPipeline } from './pipeline.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.env.LOG_LEVEL);
  // After `npm run stack:up` the registry already runs: use it rather than fail on its port.
  const adapted = await adaptRolesToRunning(process.env, config);
  config = adapted.config;
  if (adapted.note) logger.info({ event: 'roles_adapted', roles: [...config.roles] }, adapted.note);
  const metrics = createMetrics({ defaultMetrics: true });
  const pipeline = await startPipeline(config, logger, metrics);
  logger.info({ event: 'streampulse_started', roles: [...config.roles] }, 'StreamPulse started');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'streampulse_stopping', signal }, 'stopping');
    await pipeline.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  // A role that fails for good (a processor's non-retriable error) stops the process non-zero with
  // its message: a failed role never hides behind healthy ones (/healthz answers 503 meanwhile).
  await pipeline.failed.catch(async (err) => {
    if (stopping) return;
    stopping = true;
    logger.fatal({ event: 'streampulse_failed', role: (err as { role?: string }).role, err: (err as Error).message }, 'a role failed; stopping the process');
    await pipeline.stop();
    process.exit(1);
  });
}

main().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
