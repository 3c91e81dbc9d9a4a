/**
 * Mounts the HTTP roles on the process's Fastify instance: the ingest gateway and the Jira webhook
 * (role `ingest`), and the API with the live dashboard (role `api`). One Redis-backed API key store
 * (seeded from API_KEYS) serves both, so a key works the same on every route.
 */
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { isKafkaReachable } from '../lib/kafka-admin.js';
import { queryRows, type ClickHouse } from '../sinks/clickhouse/client.js';
import type { EventProducer } from '../producers/sdk/event-producer.js';
import { ingestPlugin } from '../producers/ingest/ingest.plugin.js';
import { jiraWebhookPlugin } from '../producers/jira/jira-webhook.plugin.js';
import { apiPlugin } from '../api/app.js';
import type { AlertsService } from '../api/alerts-service.js';
import { RedisApiKeyStore } from '../api/api-keys.js';
import { RedisRateLimiter } from '../api/rate-limit.js';

export interface HttpDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  producer: EventProducer;
  redis: Redis;
  ch: ClickHouse | null;
  /** The alerting service, when this process runs it (alert routes answer 503 without one). */
  alerts?: AlertsService | null;
  /** Period of the live dashboard's server-sent events (default 5 s). */
  liveIntervalMs?: number;
}

export async function registerHttpRoles(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { config, logger, metrics, producer, redis, ch } = deps;
  const env = config.env;
  const keys = new RedisApiKeyStore(redis, env.REDIS_PREFIX);
  const seeded = await keys.seed(env.API_KEYS);
  logger.info({ event: 'api_keys_seeded', keys: seeded }, 'API keys seeded into Redis');

  if (config.roles.has('ingest')) {
    await app.register(ingestPlugin, { producer, apiKeys: keys, maxBodyBytes: env.INGEST_MAX_BODY_BYTES, maxEvents: env.INGEST_MAX_EVENTS, metrics });
    await app.register(jiraWebhookPlugin, { producer, secret: env.JIRA_WEBHOOK_SECRET, fieldMap: config.jiraFieldMap, maxBodyBytes: env.INGEST_MAX_BODY_BYTES, metrics });
  }
  // Liveness and metrics for every HTTP process (the API plugin adds /readyz, /docs and / too).
  if (!app.hasRoute({ method: 'GET', url: '/healthz' })) app.get('/healthz', async () => ({ status: 'ok' }));
  if (!app.hasRoute({ method: 'GET', url: '/metrics' })) app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  if (config.roles.has('api')) {
    if (!ch) throw new Error('the api role needs ClickHouse');
    await app.register(apiPlugin, {
      logger: logger.child({ component: 'api' }),
      metrics,
      redis,
      ch,
      keys,
      limiter: new RedisRateLimiter(redis, env.REDIS_PREFIX, 60_000),
      alerts: deps.alerts ?? null,
      liveIntervalMs: deps.liveIntervalMs,
      readiness: {
        redis: async () => void (await redis.ping()),
        clickhouse: async () => void (await queryRows(ch, 'SELECT 1 AS ok')),
        kafka: async () => {
          if (!(await isKafkaReachable(config.kafkaBrokers, 1500))) throw new Error(`no broker answers at ${config.kafkaBrokers}`);
        },
      },
    });
  }
}
