/**
 * Boots the schema registry: open the Kafka log (REGISTRY_TOPIC, compacted, one partition), read
 * it to the end to rebuild the state, then listen on REGISTRY_HOST:REGISTRY_PORT (0 = any free
 * port; the returned url has the real one). One writer per topic is the supported setup; a
 * second instance catches up before each write, which narrows but does not close the race.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import { buildRegistryApp } from './app.js';
import { KafkaRegistryLog, type RegistryLog } from './log.js';
import { SchemaRegistry } from './registry.js';

export interface RegistryServer {
  /** http://host:port, ready to use as SCHEMA_REGISTRY_URL. */
  url: string;
  app: FastifyInstance;
  registry: SchemaRegistry;
  close(): Promise<void>;
}

export async function startRegistryServer(deps: { config: Config; logger: Logger; log?: RegistryLog }): Promise<RegistryServer> {
  const { config } = deps;
  const logger = deps.logger.child({ role: 'registry' });
  const log =
    deps.log ??
    (await KafkaRegistryLog.open({
      brokers: config.kafkaBrokers,
      topic: config.env.REGISTRY_TOPIC,
      clientId: `${config.env.KAFKA_CLIENT_ID}-registry`,
      logger,
    }));
  const registry = new SchemaRegistry(log);
  const app = buildRegistryApp({ registry, logger });
  try {
    const t0 = Date.now();
    await registry.load();
    logger.info(
      { event: 'registry_loaded', topic: config.env.REGISTRY_TOPIC, subjects: registry.listSubjects().length, ms: Date.now() - t0 },
      'registry state rebuilt from its topic',
    );
    await app.listen({ host: config.env.REGISTRY_HOST, port: config.env.REGISTRY_PORT });
  } catch (err) {
    await app.close().catch(() => {});
    await log.close().catch(() => {});
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.env.REGISTRY_PORT;
  const host = config.env.REGISTRY_HOST === '0.0.0.0' || config.env.REGISTRY_HOST === '::' ? '127.0.0.1' : config.env.REGISTRY_HOST;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info({ event: 'registry_listening', url }, 'schema registry listening');
  let closed = false;
  return {
    url,
    app,
    registry,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await log.close();
    },
  };
}
