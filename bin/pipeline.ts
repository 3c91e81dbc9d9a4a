/**
 * Builds and starts the StreamPulse roles of one process: config → logger → metrics → clients →
 * components, each passed down (no import-time singletons). With embedded ClickHouse (chdb) only
 * one process may own the data directory, so it hosts every role that touches ClickHouse; with
 * CLICKHOUSE_URL each role can run as its own process.
 */
import { Redis } from 'ioredis';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../lib/config.js';
import { AvroCodec } from '../lib/avro-codec.js';
import { ensureTopics, streamPulseTopics } from '../lib/kafka-admin.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { openClickHouse, type ClickHouse } from '../sinks/clickhouse/client.js';
import { migrate } from '../sinks/clickhouse/migrate.js';
import { serveClickHouse, type FacadeUser } from '../sinks/clickhouse/http-facade.js';
import { openAnalyst, type AnalystSql } from '../sinks/clickhouse/analyst.js';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { ProcessorRunner } from '../processors/core/runner.js';
import { CheckpointStore } from '../processors/core/checkpoint-store.js';
import { topicSpec } from '../contracts/topics.js';
import { EventProducer } from '../producers/sdk/event-producer.js';
import { startRegistryServer, type RegistryServer } from '../stack/registry/server.js';
import { PROCESSOR_FACTORIES, latenessPolicy, processorFor, type ProcessorRole } from './processors.js';
import { scoreClosedChurnDays } from '../processors/churn/churn-scores.js';
import { queryRows } from '../sinks/clickhouse/client.js';
import { sealBusiness, sealQoe } from '../sinks/clickhouse/rollups.js';
import { applyRetention } from '../sinks/clickhouse/retention.js';
import { startAlerting } from '../alerts/index.js';
import { DependencyHealth } from '../lib/dependency-health.js';
import { startPipelineMonitor } from '../processors/core/pipeline-monitor.js';
import { runUnlessHandover } from '../processors/core/handover.js';

/** What /healthz and /readyz of a pipeline process answer (see `pipelineHealth`). */
export interface PipelineHealth {
  /** Liveness: false once a role failed for good (the process is about to exit non-zero). */
  ok: boolean;
  /** Readiness: every dependency answers the work that needs it. */
  ready: boolean;
  failed: Array<{ role: string; error: string }>;
  dependencies: Record<string, string>;
}

export interface Pipeline {
  ch: ClickHouse | null;
  redis: Redis;
  /** Null when no role of the process uses Kafka (e.g. ROLES=alerts). */
  codec: AvroCodec | null;
  producer: EventProducer | null;
  runners: ProcessorRunner<unknown>[];
  http: FastifyInstance | null;
  /** The metrics app of a process without HTTP roles (/metrics, /healthz, /readyz), else null. */
  metricsApp: FastifyInstance | null;
  registry: RegistryServer | null;
  /** Outages of Redis, ClickHouse and Kafka this process is waiting out. */
  health: DependencyHealth;
  /** Liveness and readiness, as /healthz and /readyz report them. */
  status(): PipelineHealth;
  /**
   * Rejects with the error of the first role that fails for good (a processor runner's fatal
   * error); never resolves otherwise. Entry points exit non-zero on it (bin/streampulse.ts) or
   * say so on screen and stop (bin/demo.ts).
   */
  failed: Promise<never>;
  stop(): Promise<void>;
}

/** Liveness and readiness of a process from its runners' failures and its dependencies' outages. */
export function pipelineHealth(runners: readonly ProcessorRunner<unknown>[], health: DependencyHealth, clock: () => number = Date.now): PipelineHealth {
  health.tick();
  const failed = runners.filter((r) => r.failure).map((r) => ({ role: r.name, error: r.failure!.message }));
  const dependencies: Record<string, string> = {};
  for (const [dep, st] of Object.entries(health.status())) {
    dependencies[dep] = st.up ? 'ok' : `down for ${Math.round((clock() - st.sinceMs!) / 1000)} s: ${st.reason}`;
  }
  return { ok: failed.length === 0, ready: failed.length === 0 && Object.values(dependencies).every((d) => d === 'ok'), failed, dependencies };
}

/**
 * /healthz (liveness: 503 once a role failed for good) and, unless `readyz: false` (the API role
 * serves its own, api/routes/health.ts), /readyz (503 naming the dependency that is out).
 */
function healthRoutes(app: FastifyInstance, status: () => PipelineHealth, opts: { readyz?: boolean } = {}): void {
  app.get('/healthz', async (_req, reply) => {
    const h = status();
    return reply.code(h.ok ? 200 : 503).send(h.ok ? { status: 'ok' } : { status: 'failed', failed: h.failed });
  });
  if (opts.readyz !== false) {
    app.get('/readyz', async (_req, reply) => {
      const h = status();
      return reply.code(h.ready ? 200 : 503).send({
        status: h.ready ? 'ready' : 'not_ready',
        checks: { ...h.dependencies, ...Object.fromEntries(h.failed.map((f) => [`role:${f.role}`, `failed: ${f.error}`])) },
      });
    });
  }
}

const CH_ROLES = new Set(['clickhouse', 'raw-store', 'business', 'qoe', 'churn', 'safety', 'production', 'alerts', 'api']);
/** Roles that need neither Kafka nor the schema registry: only ClickHouse and Redis. */
const KAFKA_FREE_ROLES = new Set(['clickhouse', 'alerts']);

export async function startPipeline(config: Config, logger: Logger, metrics: Metrics, opts: { clock?: () => number; http?: boolean } = {}): Promise<Pipeline> {
  const roles = config.roles;
  const closers: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const c of closers.reverse())
      await c().catch((err) => logger.warn({ event: 'shutdown_step_failed', err: (err as Error).message }, 'shutdown step failed'));
    closers.length = 0;
  };
  try {
    let registry: RegistryServer | null = null;
    if (roles.has('registry')) {
      registry = await startRegistryServer({ config, logger });
      closers.push(() => registry!.close());
    }
    // An alerts-only (or clickhouse-only) process reads ClickHouse and Redis: it starts, and keeps
    // alerting, while Kafka or the registry are down.
    const usesKafka = [...roles].some((r) => !KAFKA_FREE_ROLES.has(r));
    let codec: AvroCodec | null = null;
    if (usesKafka) {
      await ensureTopics(config.kafkaBrokers, streamPulseTopics(config.topicPrefix));
      const registryUrl =
        registry && config.env.SCHEMA_REGISTRY_URL === `http://${config.env.REGISTRY_HOST}:${config.env.REGISTRY_PORT}`
          ? registry.url
          : config.env.SCHEMA_REGISTRY_URL;
      codec = await AvroCodec.connect(registryUrl, config.topicPrefix);
    }

    const health = new DependencyHealth(metrics, opts.clock);
    // Commands fail after 3 reconnection attempts (well under a second), or after 10 s without an
    // answer (a Redis that hangs: paused, swapping, a network partition), so the components that
    // wait out an outage (the runners) retry with their own backoff and count it; the client keeps
    // reconnecting in the background for as long as it takes. Every command the runners repeat is
    // idempotent (a timed-out one may still run later).
    const redis = new Redis(config.env.REDIS_URL, { maxRetriesPerRequest: 3, commandTimeout: 10_000, lazyConnect: true });
    let redisErrorLogged = false;
    redis.on('error', (err) => {
      if (!redisErrorLogged) logger.warn({ event: 'redis_connection_error', err: err.message }, 'Redis connection error; reconnecting');
      redisErrorLogged = true;
    });
    redis.on('ready', () => {
      if (redisErrorLogged) logger.info({ event: 'redis_reconnected' }, 'Redis connection ready again');
      redisErrorLogged = false;
    });
    await redis.connect();
    closers.push(async () => void (await redis.quit()));

    let ch: ClickHouse | null = null;
    let analyst: AnalystSql | undefined;
    if ([...roles].some((r) => CH_ROLES.has(r))) {
      ch = await openClickHouse(config.clickhouse);
      closers.push(() => ch!.close());
      await migrate(ch, logger);
      const ttl = await applyRetention(ch, {
        rawDays: config.env.RETENTION_RAW_DAYS,
        minuteDays: config.env.RETENTION_MINUTE_DAYS,
        hourDays: config.env.RETENTION_HOUR_DAYS,
      });
      if (ttl.length) logger.info({ event: 'retention_applied', tables: ttl }, 'table TTLs set from RETENTION_*_DAYS');
      // Analyst SQL (POST /v1/sql and the analyst user of the ClickHouse port) shares one read-only
      // session or user; opened before the doors that use it, so it closes after them.
      if (roles.has('api') || (roles.has('clickhouse') && ch.transport === 'chdb')) {
        const a = await openAnalyst(ch, { limits: config.sqlLimits, user: ch.transport === 'http' ? config.clickhouseAnalyst : null });
        closers.push(() => a.close());
        analyst = a;
      }
      if (roles.has('clickhouse') && ch.transport === 'chdb') {
        const facade = await serveClickHouse(ch, {
          host: config.env.CLICKHOUSE_HTTP_HOST,
          port: config.env.CLICKHOUSE_HTTP_PORT,
          logger,
          ...facadeUsers(config, logger),
          analystUser: config.clickhouseAnalyst,
          analystSql: analyst,
        });
        closers.push(() => facade.close());
      }
    }

    let producer: EventProducer | null = null;
    if (codec) {
      const p = await EventProducer.connect({
        brokers: config.kafkaBrokers,
        clientId: `${config.env.KAFKA_CLIENT_ID}-producer`,
        topicPrefix: config.topicPrefix,
        codec,
        logger,
        metrics,
        maxFutureSkewMs: config.env.MAX_FUTURE_SKEW_MS,
      });
      producer = p;
      closers.push(() => p.close());
    }

    const runners: ProcessorRunner<unknown>[] = [];
    const processors = (Object.keys(PROCESSOR_FACTORIES) as ProcessorRole[])
      .filter((role) => roles.has(role))
      .map((role) =>
        processorFor(role, {
          ch: ch!,
          graceMs: config.env.WINDOW_GRACE_MS,
          allowedLatenessMs: config.env.ALLOWED_LATENESS_MS,
          lateness: latenessPolicy(config.env),
          viewRowIntervalMs: config.env.VIEW_ROW_INTERVAL_MS,
          dayRowIntervalMs: config.env.CHURN_DAY_ROW_INTERVAL_MS,
        }),
      );
    // Fused (default): one runner, one consumer, each record decoded once for every processor.
    const runnerSets = config.env.FUSE_PROCESSORS ? (processors.length ? [processors] : []) : processors.map((p) => [p]);
    for (const set of runnerSets) {
      const name = set.map((p) => p.name).join('+');
      const runner = new ProcessorRunner(
        set,
        {
          brokers: config.kafkaBrokers,
          groupId: `${config.env.GROUP_PREFIX}${name}`,
          topicPrefix: config.topicPrefix,
          codec: codec!, // processor roles use Kafka
          ch: ch!,
          redis,
          redisPrefix: config.env.REDIS_PREFIX,
          logger: logger.child({ processor: name }),
          metrics,
          health,
          clock: opts.clock,
          // Records every processor refuses alike (undecodable, out of bounds) are dead-lettered by
          // the raw store alone (once per record); a processor's own refusals (ProcessContext.reject)
          // by that processor, in whichever runner it is.
          deadLetters: producer ?? undefined,
          deadLetterStage: 'raw-store',
          maxFutureSkewMs: config.env.MAX_FUTURE_SKEW_MS,
        },
        {
          maxPendingRows: config.env.BATCH_MAX_ROWS,
          maxPendingBytes: config.env.BATCH_MAX_BYTES,
          checkpointIntervalMs: Math.min(config.env.BATCH_MAX_MS, config.env.CHECKPOINT_INTERVAL_MS),
          idleCheckpointBudgetMs: config.env.IDLE_CHECKPOINT_BUDGET_MS,
          caughtUpRecordAgeMs: config.env.CAUGHT_UP_RECORD_AGE_MS,
          idlePartitionMs: config.env.IDLE_PARTITION_MS,
          emitUpdates: config.env.EMIT_WINDOW_UPDATES,
          sinkConcurrency: config.env.SINK_CONCURRENCY,
          // An online rebuild (npm run replay) pauses these runners for its swap and hands them its state.
          handover: true,
        },
      );
      await runner.start();
      runners.push(runner);
      closers.push(() => runner.stop());
    }

    if (roles.has('churn') && ch) {
      // Daily churn scores. A day is closed in EVENT time: once the churn processor's checkpointed
      // watermark on every partition of its topics (whichever instance owns them) has passed the
      // day's end + window grace, its daily facts are final and durable, so each day is scored
      // once, from complete facts, however fast the log is read (live, catch-up after an outage,
      // or a replay). Wall-clock closing scored days of a backfill before their facts were in.
      const progress = new CheckpointStore(redis, config.env.REDIS_PREFIX, 'churn');
      const churnTopics = processors.find((p) => p.name === 'churn')!.kinds.map((k) => topicSpec(config.topicPrefix, k));
      let running = false;
      let current: Promise<void> = Promise.resolve();
      const job = () => {
        if (running) return;
        current = scoreDays();
      };
      const scoreDays = async () => {
        running = true;
        try {
          // Skipped while a rebuild swaps the churn tables (processors/core/handover.ts).
          await runUnlessHandover(redis, config.env.REDIS_PREFIX, 'churn', async () => {
            const wm = await progress.progress(churnTopics);
            // A partition has no checkpoint yet, or no record yet: its watermark is still the -∞ it
            // starts at (Number.MIN_SAFE_INTEGER), which is no day to score (and no UInt64 version).
            if (wm === null || wm < 0) return;
            const [first] = await queryRows<{ d: number | null }>(
              ch,
              `SELECT if(count() = 0, NULL, toInt32(dateDiff('day', toDate('1970-01-01'), min(day)))) AS d FROM ${ch.database}.churn_account_daily`,
            );
            // Facts of a day closed in event time no longer change (later events are late): no rescoring.
            const days = await scoreClosedChurnDays(ch, {
              nowMs: wm,
              closeDelayMs: config.env.WINDOW_GRACE_MS,
              rescoreDays: 0,
              fromDay: first?.d === null || first?.d === undefined ? undefined : Number(first.d),
            });
            if (days.length)
              logger.info(
                {
                  event: 'churn_days_scored',
                  days: days.map((d) => new Date(d * 86_400_000).toISOString().slice(0, 10)),
                  watermark: new Date(wm).toISOString(),
                },
                'churn days scored',
              );
          });
        } catch (err) {
          logger.warn({ event: 'churn_scoring_failed', err: (err as Error).message }, 'churn scoring failed; will retry');
        } finally {
          running = false;
        }
      };
      const every = config.env.CHURN_SCORING_INTERVAL_MS;
      const timer = setInterval(job, every);
      const firstRun = setTimeout(job, Math.min(every, 15_000));
      closers.push(async () => {
        clearInterval(timer);
        clearTimeout(firstRun);
        // Embedded ClickHouse aborts if it is closed under a running query: let the job finish.
        await current;
      });
    }

    for (const family of (['qoe', 'business'] as const).filter((f) => roles.has(f))) {
      if (!ch) break;
      // Rollups for the API (migration 017, docs/api.md): buckets closed in EVENT time, i.e. the
      // processor's checkpointed watermark on every partition past the bucket's end + grace (its
      // rows are final and durable, later events are late), are aggregated once by ClickHouse.
      const progress = new CheckpointStore(redis, config.env.REDIS_PREFIX, family);
      const topics = processors.find((p) => p.name === family)!.kinds.map((k) => topicSpec(config.topicPrefix, k));
      let current: Promise<void> | null = null;
      const seal = async () => {
        try {
          // Skipped while a rebuild swaps the family's tables (processors/core/handover.ts).
          await runUnlessHandover(redis, config.env.REDIS_PREFIX, family, async () => {
            const wm = await progress.progress(topics);
            if (wm === null) return; // a partition has no checkpoint yet
            const closed = wm - config.env.WINDOW_GRACE_MS;
            const done = family === 'qoe' ? await sealQoe(ch, closed) : await sealBusiness(ch, closed);
            if (done.length)
              logger.debug({ event: 'rollups_sealed', family, until: done.map((d) => `${d.name}:${new Date(d.toMs).toISOString()}`) }, 'rollups sealed');
          });
        } catch (err) {
          logger.warn({ event: 'rollup_failed', family, err: (err as Error).message }, 'rollup failed; will retry');
        } finally {
          current = null;
        }
      };
      const timer = setInterval(() => {
        current ??= seal();
      }, config.env.ROLLUP_INTERVAL_MS);
      closers.push(async () => {
        clearInterval(timer);
        // Embedded ClickHouse aborts if it is closed under a running query: let the job finish.
        await current;
      });
    }

    if (roles.has('alerts') && ch) {
      // Rules are validated here: a bad rules file stops the start with the rule and field named.
      const alerting = await startAlerting({ config, logger: logger.child({ role: 'alerts' }), metrics, ch, redis, clock: opts.clock });
      closers.push(() => alerting.stop());
    }

    let http: FastifyInstance | null = null;
    if (opts.http !== false && (roles.has('ingest') || roles.has('api'))) {
      // The process logger, without a line per request (refusals and failures log themselves, rate-limited).
      http = Fastify({
        loggerInstance: logger.child({ component: 'http' }) as unknown as FastifyBaseLogger,
        logController: new LogController({ disableRequestLogging: true }),
        bodyLimit: config.env.INGEST_MAX_BODY_BYTES,
      });
      // The API role adds its own /readyz (pinging Kafka, Redis and ClickHouse); ingest-only processes get this one.
      healthRoutes(http, () => pipelineHealth(runners, health), { readyz: !roles.has('api') });
      http.get('/metrics', async (_req, reply) => {
        health.tick(); // outages still running count up to now
        return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
      });
      const { registerHttpRoles } = await import('./http-roles.js');
      await registerHttpRoles(http, { config, logger, metrics, producer: producer!, redis, ch, clock: opts.clock, analyst }); // HTTP roles use Kafka
      await http.listen({ host: config.env.HTTP_HOST, port: config.env.HTTP_PORT });
      closers.push(() => http!.close());
      logger.info({ event: 'http_listening', url: `http://${config.env.HTTP_HOST}:${(http.server.address() as { port: number }).port}` }, 'HTTP listening');
    }

    let metricsApp: FastifyInstance | null = null;
    if (!http && runners.length > 0) {
      // Processes without an HTTP role still expose their pipeline metrics for Prometheus.
      metricsApp = Fastify({ logger: false });
      healthRoutes(metricsApp, () => pipelineHealth(runners, health));
      metricsApp.get('/metrics', async (_req, reply) => {
        health.tick(); // outages still running count up to now
        return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
      });
      await metricsApp.listen({ host: config.env.HTTP_HOST, port: config.env.METRICS_PORT });
      const app = metricsApp;
      closers.push(() => app.close());
      logger.info({ event: 'metrics_listening', port: (metricsApp.server.address() as { port: number }).port }, 'metrics endpoint listening');
    }

    if (codec && config.env.PIPELINE_MONITOR_INTERVAL_MS > 0 && (roles.has('api') || runners.length > 0)) {
      // Lag and stalls of every processor, read from their checkpoints and Kafka: a processor that
      // stopped (here or in another process) still shows in these metrics.
      const monitor = startPipelineMonitor(
        {
          redis,
          redisPrefix: config.env.REDIS_PREFIX,
          topicPrefix: config.topicPrefix,
          brokers: config.kafkaBrokers,
          metrics,
          logger: logger.child({ component: 'pipeline-monitor' }),
          clock: opts.clock,
        },
        config.env.PIPELINE_MONITOR_INTERVAL_MS,
      );
      // Pushed last, so stopped first: it reads Redis and Kafka, which close after it.
      closers.push(() => monitor.stop());
    }

    // The first runner that fails for good; a runner stopped cleanly resolves and is not a failure.
    const failed = new Promise<never>((_, reject) => {
      for (const r of runners)
        r.done().catch((err: Error) => reject(Object.assign(new Error(`role ${r.name} failed: ${err.message}`, { cause: err }), { role: r.name })));
    });
    failed.catch(() => undefined); // observed by the entry point
    return { ch, redis, codec, producer, runners, http, metricsApp, registry, health, status: () => pipelineHealth(runners, health), failed, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Roles adapt to what already runs: the `registry` role is left out when a schema registry already
 * answers at SCHEMA_REGISTRY_URL (e.g. the one `npm run stack:up` started), instead of failing on
 * its port. Returns the config to start with and a sentence for the operator, or null.
 */
export async function adaptRolesToRunning(env: Record<string, string | undefined>, config: Config): Promise<{ config: Config; note: string | null }> {
  if (!config.roles.has('registry')) return { config, note: null };
  const up = await fetch(`${config.env.SCHEMA_REGISTRY_URL}/subjects`, { signal: AbortSignal.timeout(1000) }).then(
    (r) => r.ok,
    () => false,
  );
  if (!up) return { config, note: null };
  const roles = [...config.roles].filter((r) => r !== 'registry');
  return {
    config: loadConfig({ ...env, ROLES: roles.join(',') }),
    note: `schema registry: using the one already answering at ${config.env.SCHEMA_REGISTRY_URL} (registry role left out)`,
  };
}

/** True for addresses only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * The writer user of the ClickHouse port: CLICKHOUSE_USER / CLICKHOUSE_PASSWORD, the credentials
 * the pipeline's processes send with CLICKHOUSE_URL. Without a password the port refuses to listen
 * beyond loopback; on loopback the writer gets a random password nobody knows (writer login off:
 * a fresh clone's port only serves the analyst user, and only once its password is set).
 */
export function facadeUsers(config: Config, logger: Logger): { writer: FacadeUser } {
  const host = config.env.CLICKHOUSE_HTTP_HOST;
  if (config.env.CLICKHOUSE_PASSWORD) return { writer: { name: config.env.CLICKHOUSE_USER, password: config.env.CLICKHOUSE_PASSWORD } };
  if (!isLoopbackHost(host))
    throw new Error(
      `CLICKHOUSE_HTTP_HOST is ${host}, not loopback: set CLICKHOUSE_PASSWORD (the writer's password) before serving ClickHouse beyond this machine`,
    );
  logger.warn(
    { event: 'clickhouse_facade_writer_disabled', user: config.env.CLICKHOUSE_USER },
    'CLICKHOUSE_PASSWORD is empty: the ClickHouse port accepts no writer login (set it for processes that use CLICKHOUSE_URL)',
  );
  return { writer: { name: config.env.CLICKHOUSE_USER, password: randomBytes(24).toString('base64url') } };
}
