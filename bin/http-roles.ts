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
import { createAlertsAdapter, type DescribeAlert } from '../api/alerts-adapter.js';
import { createAlertingApi } from '../alerts/index.js';
import { loadRulesFile, type RuleSet } from '../alerts/rules.js';
import { renderTemplate } from '../alerts/evaluator.js';
import { RedisApiKeyStore } from '../api/api-keys.js';
import { RedisRateLimiter } from '../api/rate-limit.js';
import type { AnalystSql } from '../sinks/clickhouse/analyst.js';
import { KafkaRegistryLog } from '../stack/registry/log.js';

/** The compacted topic that holds admin-created API keys (records keyed by key id). */
export const apiKeysTopic = (topicPrefix: string) => `${topicPrefix}api_keys`;

export interface HttpDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  producer: EventProducer;
  redis: Redis;
  ch: ClickHouse | null;
  /**
   * The alert routes' service. Default (undefined) with the `api` role: built from `redis` and
   * REDIS_PREFIX (alert state, silences and acks are in Redis; the evaluator runs in the `alerts`
   * role, possibly in another process). `null` turns the alert routes off (503).
   */
  alerts?: AlertsService | null;
  /** Processing-time clock for silences (default Date.now). */
  clock?: () => number;
  /** Period of the live dashboard's server-sent events (default 5 s). */
  liveIntervalMs?: number;
  /** Where analyst SQL runs (default: the API plugin opens one on `ch` with the configured limits). */
  analyst?: AnalystSql;
}

export async function registerHttpRoles(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { config, logger, metrics, producer, redis, ch } = deps;
  const env = config.env;
  // Admin-created keys are durable in a compacted topic (the built-in registry's log, keyed by key
  // id); Redis is their cache, restored from it (and API_KEYS) whenever it is found empty.
  const keyLog = await KafkaRegistryLog.open({
    brokers: config.kafkaBrokers,
    topic: apiKeysTopic(config.topicPrefix),
    clientId: `${env.KAFKA_CLIENT_ID}-api-keys`,
    logger,
  });
  const keys = new RedisApiKeyStore(redis, env.REDIS_PREFIX, {
    log: keyLog,
    logger: logger.child({ component: 'api-keys' }),
    metrics,
    checkIntervalMs: env.API_KEY_CHECK_INTERVAL_MS,
  });
  app.addHook('onClose', async () => {
    await keys.close();
    await keyLog.close();
  });
  const seeded = await keys.seed(env.API_KEYS);
  keys.startWatchdog();
  logger.info({ event: 'api_keys_seeded', keys: seeded }, 'API keys seeded into Redis');

  if (config.roles.has('ingest')) {
    const bounds = { maxDepth: env.INGEST_MAX_JSON_DEPTH, maxStringBytes: env.INGEST_MAX_STRING_BYTES };
    await app.register(ingestPlugin, {
      producer,
      apiKeys: keys,
      maxBodyBytes: env.INGEST_MAX_BODY_BYTES,
      maxEvents: env.INGEST_MAX_EVENTS,
      metrics,
      bounds,
      rateLimits: {
        redis,
        prefix: env.REDIS_PREFIX,
        requestsPerSecond: env.INGEST_RATE_LIMIT_REQUESTS_PER_S,
        eventsPerSecond: env.INGEST_RATE_LIMIT_EVENTS_PER_S,
      },
      ackTimeoutMs: env.INGEST_ACK_TIMEOUT_MS,
      corsOrigins: config.ingestCorsOrigins,
      logger: logger.child({ component: 'ingest' }),
    });
    await app.register(jiraWebhookPlugin, {
      producer,
      secret: env.JIRA_WEBHOOK_SECRET,
      insecure: env.JIRA_WEBHOOK_INSECURE,
      fieldMap: config.jiraFieldMap,
      maxBodyBytes: env.INGEST_MAX_BODY_BYTES,
      maxDepth: env.INGEST_MAX_JSON_DEPTH,
      metrics,
      logger: logger.child({ component: 'jira-webhook' }),
    });
  }
  // Liveness and metrics for every HTTP process (the API plugin adds /readyz, /docs and / too).
  if (!app.hasRoute({ method: 'GET', url: '/healthz' })) app.get('/healthz', async () => ({ status: 'ok' }));
  if (!app.hasRoute({ method: 'GET', url: '/metrics' }))
    app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  if (config.roles.has('api')) {
    if (!ch) throw new Error('the api role needs ClickHouse');
    await app.register(apiPlugin, {
      logger: logger.child({ component: 'api' }),
      metrics,
      redis,
      ch,
      keys,
      limiter: new RedisRateLimiter(redis, env.REDIS_PREFIX, 60_000),
      alerts: deps.alerts !== undefined ? deps.alerts : alertsService(config, redis, logger, deps.clock),
      liveIntervalMs: deps.liveIntervalMs,
      analyst: deps.analyst,
      sqlLimits: config.sqlLimits,
      analystUser: ch.transport === 'http' ? config.clickhouseAnalyst : null,
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

/**
 * The AlertsService of the `api` role on the shared Redis state of the `alerts` role. Severity and
 * summary come from the rules file (ALERT_RULES_FILE); if it cannot be read the alerts are still
 * listed, with severity `unknown` and no summary.
 */
export function alertsService(config: Config, redis: Redis, logger: Logger, clock: () => number = Date.now): AlertsService {
  let ruleSet: RuleSet | null = null;
  try {
    ruleSet = loadRulesFile(config.env.ALERT_RULES_FILE);
  } catch (err) {
    logger.warn(
      { event: 'api_alert_rules_unreadable', file: config.env.ALERT_RULES_FILE, err: (err as Error).message },
      'alert rules unreadable: alerts are listed without severity and summary',
    );
  }
  const rules = new Map((ruleSet?.rules ?? []).map((r) => [r.name, r]));
  const describe: DescribeAlert = (a) => {
    const r = rules.get(a.rule);
    return r ? { severity: r.severity, summary: renderTemplate(r.annotations.summary, a) } : null;
  };
  return createAlertsAdapter({ alerting: createAlertingApi({ redis, redisPrefix: config.env.REDIS_PREFIX, clock }), clock, describe });
}
