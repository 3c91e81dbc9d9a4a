/**
 * The main job on the local stack: `npm run demo [-- --rate 2000 --incident cdn-degradation]`.
 * Starts Kafka (KRaft, from the Maven jars) and Redis if they are not running, then one
 * StreamPulse process with every role (registry, ingest + API on HTTP_PORT, all processors,
 * embedded ClickHouse also served over HTTP on CLICKHOUSE_HTTP_PORT) and the simulator feeding
 * it. It prints where to look: the live dashboard's URL with a viewer key made for this run
 * (`#key=…`), the API docs, the ClickHouse SQL door and its read-only user; then, every 5 s, the
 * row counts of the raw tables and the latest business KPIs, and one line per role whenever a
 * role's state changes (running, caught up, failed).
 * Ctrl-C stops the simulator, the pipeline, and the Kafka/Redis it started: nothing is left behind.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { createMetrics, type Metrics } from '../lib/metrics.js';
import { queryRows } from '../sinks/clickhouse/client.js';
import { kafkaOptionsFromConfig, startKafka, stopKafka } from '../stack/kafka.js';
import { ensureRedis, redisOptionsFromConfig, stopRedis } from '../stack/redis.js';
import { runSimulation } from '../producers/simulator/run.js';
import type { IncidentName } from '../producers/simulator/incidents.js';
import { adaptRolesToRunning, startPipeline, type Pipeline } from './pipeline.js';

function readClusterId(kafkaDataDir: string): string | null {
  try {
    return /^cluster\.id=(.+)$/m.exec(readFileSync(join(kafkaDataDir, 'data', 'meta.properties'), 'utf8'))?.[1]?.trim() ?? null;
  } catch {
    return null;
  }
}

/** The query the README documents: rows per raw table. */
export const ROW_COUNTS_SQL = (db: string) =>
  ['playback', 'payments', 'gifts', 'moderation', 'jira', 'catalog']
    .map((k) => `SELECT '${k}' AS kind, count() AS rows FROM ${db}.raw_${k}`)
    .join(' UNION ALL ');

const PROCESSOR_ROLES = new Set(['raw-store', 'business', 'qoe', 'churn', 'safety', 'production']);

/**
 * A one-line status per role: a processor is `failed` (its runner stopped for good), `caught up`
 * (no record beyond its checkpoints older than 30 s) or `running, N records behind`, from the pipeline monitor's
 * lag (processors/core/pipeline-monitor.ts); the other roles are `running` while the process is.
 */
async function roleStatuses(config: Config, pipeline: Pipeline, metrics: Metrics): Promise<Array<[string, string]>> {
  const lag = new Map<string, { records: number; seconds: number }>();
  for (const v of (await metrics.lagRecords.get()).values) {
    const p = String(v.labels.processor);
    const l = lag.get(p) ?? { records: 0, seconds: 0 };
    l.records += v.value;
    lag.set(p, l);
  }
  for (const v of (await metrics.lagSeconds.get()).values) {
    const l = lag.get(String(v.labels.processor));
    if (l) l.seconds = Math.max(l.seconds, v.value);
  }
  return [...config.roles].map((role): [string, string] => {
    if (!PROCESSOR_ROLES.has(role)) return [role, 'running'];
    const failed = pipeline.runners.find((r) => r.processors.some((p) => p.name === role) && r.failure);
    if (failed) return [role, `failed, ${failed.failure!.message}`];
    const l = lag.get(role);
    if (!l) return [role, 'running, no checkpoint yet'];
    // Records of the last few seconds always wait for the next commit cycle: within 30 s counts as caught up
    // (otherwise the lines would flap with every cycle).
    return [
      role,
      l.records === 0 || l.seconds < 30 ? 'caught up' : `running, ${l.records.toLocaleString('en-US')} records behind (oldest ${Math.round(l.seconds)} s)`,
    ];
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '2000' },
      seed: { type: 'string', default: '42' },
      incident: { type: 'string' },
      'incident-after': { type: 'string', default: '60' },
    },
  });
  // A first run shows itself: a viewer key made for this run (added to API_KEYS, so it works only
  // while this demo runs) opens the dashboard, and the read-only analyst user of the SQL door gets
  // a password of this run unless one is set.
  const viewerKey = `demo-viewer-${randomBytes(18).toString('base64url')}`;
  const demoEnv: Record<string, string | undefined> = {
    ...process.env,
    ROLES: process.env.ROLES ?? 'all',
    API_KEYS: [process.env.API_KEYS, `${viewerKey}:viewer`].filter(Boolean).join(','),
    CLICKHOUSE_ANALYST_PASSWORD: process.env.CLICKHOUSE_ANALYST_PASSWORD || randomBytes(12).toString('base64url'),
    // Role statuses (caught up or behind) come from the pipeline monitor: every 5 s here.
    PIPELINE_MONITOR_INTERVAL_MS: process.env.PIPELINE_MONITOR_INTERVAL_MS ?? '5000',
  };
  // A registry already answering (e.g. from `npm run stack:up`) is used instead of starting one.
  const adapted = await adaptRolesToRunning(demoEnv, loadConfig(demoEnv));
  let config = adapted.config;
  const logger = createLogger(process.env.LOG_LEVEL ?? 'warn');
  const metrics = createMetrics({ defaultMetrics: true });
  const say = (s: string) => process.stdout.write(`${s}\n`);

  say('StreamPulse demo: starting the local stack (Kafka KRaft, Redis)…');
  const kafkaOpts = kafkaOptionsFromConfig(config, logger);
  const kafka = await startKafka(kafkaOpts);
  const redisOpts = redisOptionsFromConfig(config, logger);
  const redis = await ensureRedis(redisOpts);
  if (adapted.note) say(`  ${adapted.note}`);
  say(
    `  kafka ${kafka.brokers} (${kafka.alreadyRunning ? 'already running' : `started, pid ${kafka.pid}`}), redis ${redis.url} (${redis.alreadyRunning ? 'already running' : 'started'})`,
  );

  // The demo's Kafka lives in DATA_DIR: checkpoints in Redis belong to one Kafka cluster, so
  // their keys carry its id (a re-formatted local Kafka starts with fresh checkpoints).
  const clusterId = readClusterId(kafkaOpts.dataDir);
  if (clusterId && !process.env.REDIS_PREFIX) {
    config = loadConfig({ ...demoEnv, ROLES: [...config.roles].join(','), REDIS_PREFIX: `sp:${clusterId}:` });
  }
  const pipeline = await startPipeline(config, logger, metrics);
  // A wildcard listen address is reached on loopback from this machine.
  const host = (h: string) => (h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h);
  const http = pipeline.http ? `http://${host(config.env.HTTP_HOST)}:${(pipeline.http.server.address() as { port: number }).port}` : null;
  say(`  pipeline: roles ${[...config.roles].join(', ')}`);
  if (http) {
    say(`  dashboard: ${http}/#key=${viewerKey}   (a viewer key made for this run)`);
    say(`  API docs:  ${http}/docs   (send X-API-Key; roles and keys: docs/api.md)   metrics: ${http}/metrics`);
  }
  if (config.roles.has('clickhouse') && config.clickhouseAnalyst) {
    const a = config.clickhouseAnalyst;
    say(
      `  SQL door:  http://${host(config.env.CLICKHOUSE_HTTP_HOST)}:${config.env.CLICKHOUSE_HTTP_PORT}/ as the read-only user ${a.name}${process.env.CLICKHOUSE_ANALYST_PASSWORD ? ' (password: CLICKHOUSE_ANALYST_PASSWORD)' : ` (password of this run: ${a.password})`}, e.g.`,
    );
    say(
      `             curl -s -u '${a.name}:${process.env.CLICKHOUSE_ANALYST_PASSWORD ? '$CLICKHOUSE_ANALYST_PASSWORD' : a.password}' 'http://${host(config.env.CLICKHOUSE_HTTP_HOST)}:${config.env.CLICKHOUSE_HTTP_PORT}/' --data-binary 'SELECT count() FROM ${config.clickhouse.database}.raw_playback'`,
    );
  }

  const abort = new AbortController();
  const incidents = values.incident
    ? values.incident
        .split(',')
        .map((name) => ({ name: name as IncidentName, startOffsetMs: Number(values['incident-after']) * 1000, durationMs: 10 * 60_000 }))
    : [];
  say(
    `  simulator: ${values.rate} events/s, seed ${values.seed}${incidents.length ? `, incident ${values.incident} after ${values['incident-after']} s` : ''}. Ctrl-C stops everything.`,
  );
  const sim = runSimulation(
    // Moderation and Jira are rare in real traffic (8 cases, 1 issue an hour); the demo raises them
    // so that every kind visibly flows within the first minute.
    {
      seed: Number(values.seed),
      ratePerSec: Number(values.rate),
      incidents,
      jiraFieldMap: config.jiraFieldMap,
      moderationCasesPerHour: 900,
      jiraIssuesPerHour: 600,
    },
    { sink: pipeline.producer!, signal: abort.signal, logger },
  );

  // Outages the processors are waiting out (Redis, ClickHouse, Kafka) are shown while they last.
  let lastOutage = '';
  let lastRoles = '';
  const db = config.clickhouse.database;
  const ch = pipeline.ch!;
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- the whole body is in a try whose catch only prints
  const timer = setInterval(async () => {
    try {
      const counts = await queryRows<{ kind: string; rows: string }>(ch, ROW_COUNTS_SQL(db));
      const [kpi] = await queryRows<Record<string, string>>(
        ch,
        `SELECT hour, revenue_usd, active_accounts, payer_rate, payment_failure_rate, gift_value_usd FROM ${db}.kpi_business_1h ORDER BY hour DESC LIMIT 1`,
      );
      const [qoe] = await queryRows<Record<string, string>>(ch, `SELECT count() AS views, countIf(outcome = 'play') AS plays FROM ${db}.qoe_views FINAL`).catch(
        () => [undefined],
      );
      counts.sort((a, b) => a.kind.localeCompare(b.kind));
      say(`[${new Date().toISOString().slice(11, 19)}] raw rows: ${counts.map((c) => `${c.kind} ${c.rows}`).join(' | ')}`);
      if (kpi)
        say(
          `           business ${kpi.hour}: revenue $${Number(kpi.revenue_usd).toFixed(2)}, active ${kpi.active_accounts}, payer rate ${Number(kpi.payer_rate).toFixed(3)}, failure rate ${Number(kpi.payment_failure_rate).toFixed(3)}, gifts $${Number(kpi.gift_value_usd).toFixed(2)}`,
        );
      if (qoe) say(`           qoe: ${qoe.views} views, ${qoe.plays} plays`);
      const h = pipeline.status();
      // One line per role when a role's state changes (and at the first report).
      const roles = await roleStatuses(config, pipeline, metrics);
      const states = roles.map(([role, st]) => `${role}:${st.split(',')[0]}`).join(' ');
      if (states !== lastRoles) for (const [role, st] of roles) say(`           ${role.padEnd(10)} ${st}`);
      lastRoles = states;
      const outage = Object.entries(h.dependencies)
        .filter(([, d]) => d !== 'ok')
        .map(([dep, d]) => `${dep} ${d}`)
        .join('; ');
      if (outage) say(`           WAITING: ${outage} (processing pauses and resumes by itself)`);
      else if (lastOutage) say('           dependencies back: processing resumed');
      lastOutage = outage;
    } catch (err) {
      say(`  (status query failed: ${(err as Error).message})`);
    }
  }, 5_000);

  let stopping = false;
  const stop = async (code = 0) => {
    if (stopping) return;
    stopping = true;
    say('\nstopping: simulator, pipeline, then the stack it started…');
    clearInterval(timer);
    abort.abort();
    await sim.catch(() => undefined);
    await pipeline.stop();
    if (!kafka.alreadyRunning) await stopKafka(kafkaOpts);
    if (!redis.alreadyRunning) await stopRedis(redisOpts);
    say('stopped.');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  // A role that fails for good must not hide behind the others: say so on screen, loudly, and stop
  // with a non-zero exit (the status lines would otherwise go on showing stale numbers).
  pipeline.failed.catch((err: Error) => {
    if (stopping) return;
    const bar = '!'.repeat(100);
    say(`\n${bar}\nFAILED: ${err.message}\nThe pipeline cannot go on without it; /healthz answers 503. Stopping the demo (exit 1).\n${bar}`);
    void stop(1);
  });
  await sim.catch((err) => say(`simulator stopped: ${(err as Error).message}`));
}

main().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
