/**
 * The main job on the local stack: `npm run demo [-- --rate 2000 --incident cdn-degradation]`.
 * Starts Kafka (KRaft, from the Maven jars) and Redis if they are not running, then one
 * StreamPulse process with every role (registry, ingest + API on HTTP_PORT, all processors,
 * embedded ClickHouse also served over HTTP on CLICKHOUSE_HTTP_PORT) and the simulator feeding
 * it. Every 5 s it prints the row counts of the raw tables and the latest business KPIs.
 * Ctrl-C stops the simulator, the pipeline, and the Kafka/Redis it started: nothing is left behind.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { createMetrics } from '../lib/metrics.js';
import { queryRows } from '../sinks/clickhouse/client.js';
import { kafkaOptionsFromConfig, startKafka, stopKafka } from '../stack/kafka.js';
import { ensureRedis, redisOptionsFromConfig, stopRedis } from '../stack/redis.js';
import { runSimulation } from '../producers/simulator/run.js';
import type { IncidentName } from '../producers/simulator/incidents.js';
import { adaptRolesToRunning, startPipeline } from './pipeline.js';

function readClusterId(kafkaDataDir: string): string | null {
  try {
    return /^cluster\.id=(.+)$/m.exec(readFileSync(join(kafkaDataDir, 'data', 'meta.properties'), 'utf8'))?.[1]?.trim() ?? null;
  } catch {
    return null;
  }
}

/** The query the README documents: rows per raw table. */
export const ROW_COUNTS_SQL = (db: string) => ['playback', 'payments', 'gifts', 'moderation', 'jira', 'catalog']
  .map((k) => `SELECT '${k}' AS kind, count() AS rows FROM ${db}.raw_${k}`)
  .join(' UNION ALL ');

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rate: { type: 'string', default: '2000' }, seed: { type: 'string', default: '42' }, incident: { type: 'string' }, 'incident-after': { type: 'string', default: '60' } } });
  // A registry already answering (e.g. from `npm run stack:up`) is used instead of starting one.
  const adapted = await adaptRolesToRunning(process.env, loadConfig({ ...process.env, ROLES: process.env.ROLES ?? 'all' }));
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
  say(`  kafka ${kafka.brokers} (${kafka.alreadyRunning ? 'already running' : `started, pid ${kafka.pid}`}), redis ${redis.url} (${redis.alreadyRunning ? 'already running' : 'started'})`);

  // The demo's Kafka lives in DATA_DIR: checkpoints in Redis belong to one Kafka cluster, so
  // their keys carry its id (a re-formatted local Kafka starts with fresh checkpoints).
  const clusterId = readClusterId(kafkaOpts.dataDir);
  if (clusterId && !process.env.REDIS_PREFIX) {
    config = loadConfig({ ...process.env, ROLES: [...config.roles].join(','), REDIS_PREFIX: `sp:${clusterId}:` });
  }
  const pipeline = await startPipeline(config, logger, metrics);
  const http = pipeline.http ? `http://${config.env.HTTP_HOST}:${(pipeline.http.server.address() as { port: number }).port}` : '(no HTTP role)';
  say(`  pipeline: roles ${[...config.roles].join(', ')}; HTTP ${http}; ClickHouse over HTTP on ${config.env.CLICKHOUSE_HTTP_HOST}:${config.env.CLICKHOUSE_HTTP_PORT} (${config.clickhouseAnalyst ? `analyst user ${config.clickhouseAnalyst.name}` : 'no analyst login: set CLICKHOUSE_ANALYST_PASSWORD'})`);

  const abort = new AbortController();
  const incidents = values.incident ? values.incident.split(',').map((name) => ({ name: name as IncidentName, startOffsetMs: Number(values['incident-after']) * 1000, durationMs: 10 * 60_000 })) : [];
  say(`  simulator: ${values.rate} events/s, seed ${values.seed}${incidents.length ? `, incident ${values.incident} after ${values['incident-after']} s` : ''}. Ctrl-C stops everything.`);
  const sim = runSimulation(
    // Moderation and Jira are rare in real traffic (8 cases, 1 issue an hour); the demo raises them
    // so that every kind visibly flows within the first minute.
    { seed: Number(values.seed), ratePerSec: Number(values.rate), incidents, jiraFieldMap: config.jiraFieldMap, moderationCasesPerHour: 900, jiraIssuesPerHour: 600 },
    { sink: pipeline.producer!, signal: abort.signal, logger },
  );

  // Outages the processors are waiting out (Redis, ClickHouse, Kafka) are shown while they last.
  let lastOutage = '';
  const db = config.clickhouse.database;
  const ch = pipeline.ch!;
  const timer = setInterval(async () => {
    try {
      const counts = await queryRows<{ kind: string; rows: string }>(ch, ROW_COUNTS_SQL(db));
      const [kpi] = await queryRows<Record<string, string>>(ch, `SELECT hour, revenue_usd, active_accounts, payer_rate, payment_failure_rate, gift_value_usd FROM ${db}.kpi_business_1h ORDER BY hour DESC LIMIT 1`);
      const [qoe] = await queryRows<Record<string, string>>(ch, `SELECT count() AS views, countIf(outcome = 'play') AS plays FROM ${db}.qoe_views FINAL`).catch(() => [undefined]);
      counts.sort((a, b) => a.kind.localeCompare(b.kind));
      say(`[${new Date().toISOString().slice(11, 19)}] raw rows: ${counts.map((c) => `${c.kind} ${c.rows}`).join(' | ')}`);
      if (kpi) say(`           business ${kpi.hour}: revenue $${Number(kpi.revenue_usd).toFixed(2)}, active ${kpi.active_accounts}, payer rate ${Number(kpi.payer_rate).toFixed(3)}, failure rate ${Number(kpi.payment_failure_rate).toFixed(3)}, gifts $${Number(kpi.gift_value_usd).toFixed(2)}`);
      if (qoe) say(`           qoe: ${qoe.views} views, ${qoe.plays} plays`);
      const h = pipeline.status();
      const outage = Object.entries(h.dependencies).filter(([, d]) => d !== 'ok').map(([dep, d]) => `${dep} ${d}`).join('; ');
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
  console.error(err instanceof Error ? err.stack ?? err.message : err);
  process.exit(1);
});
