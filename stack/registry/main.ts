/**
 * Stand-alone registry process (what `npm run stack:up` runs in the background). The main entry
 * point runs the same server in-process as the `registry` role via startRegistryServer.
 */
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/logger.js';
import { startRegistryServer } from './server.js';

const config = loadConfig(process.env);
const logger = createLogger(config.env.LOG_LEVEL, { role: 'registry' });
try {
  const server = await startRegistryServer({ config, logger });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'registry_stopping', signal }, 'stopping');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ event: 'registry_stop_failed', err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (err) {
  logger.fatal({ event: 'registry_start_failed', err }, (err as Error).message);
  process.exit(1);
}
