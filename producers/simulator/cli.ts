/**
 * `npm run simulate -- --rate 2000 --duration 60s [--seed 42] [--from 2026-11-17 --to 2026-11-25]
 *  [--incident cdn-degradation] [--accounts 5000] [--brokers ...] [--registry ...] [--topic-prefix sp.]`
 *
 * Entry point: config → logger → topics → codec → producer → runSimulation. Progress is one line
 * updated in place on a terminal, plain periodic lines otherwise. Ctrl-C stops after flushing;
 * a second Ctrl-C exits at once.
 */
import { loadConfig } from '../../lib/config.js';
import { AvroCodec } from '../../lib/avro-codec.js';
import { ensureTopics, streamPulseTopics } from '../../lib/kafka-admin.js';
import { createLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { EventProducer } from '../sdk/event-producer.js';
import { USAGE, incidentList, parseCliArgs } from './cli-args.js';
import { defaultAccounts } from './generator.js';
import { formatProgress, runSimulation, type SimProgress } from './run.js';

async function main(): Promise<number> {
  let args;
  try {
    args = parseCliArgs(process.argv.slice(2), Date.now());
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.listIncidents) {
    process.stdout.write(`${incidentList()}\n`);
    return 0;
  }

  const config = loadConfig(process.env);
  const brokers = args.brokers ?? config.kafkaBrokers;
  const registryUrl = args.registry ?? config.env.SCHEMA_REGISTRY_URL;
  const topicPrefix = args.topicPrefix ?? config.topicPrefix;
  const logger = createLogger(config.env.LOG_LEVEL, { role: 'simulator' });
  const tty = process.stdout.isTTY === true;

  const { created } = await ensureTopics(brokers, streamPulseTopics(topicPrefix), { clientId: `${config.env.KAFKA_CLIENT_ID}-simulator-admin` });
  logger.info({ event: 'simulate_topics', created, brokers, topic_prefix: topicPrefix }, 'topics ready');
  const codec = await AvroCodec.connect(registryUrl, topicPrefix);
  const producer = await EventProducer.connect({
    brokers,
    clientId: `${config.env.KAFKA_CLIENT_ID}-simulator`,
    topicPrefix,
    codec,
    logger,
    metrics: createMetrics(),
    lingerMs: 20,
  });

  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts > 1) {
      process.stderr.write('\nsecond interrupt: exiting without flushing\n');
      process.exit(130);
    }
    process.stderr.write('\nstopping: flushing what was produced (Ctrl-C again to exit at once)\n');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const mode = args.toMs !== undefined ? 'backfill' : args.fromMs !== undefined ? 'catch-up then real time' : 'real time';
  logger.info(
    {
      event: 'simulate_start',
      mode,
      rate_per_sec: args.ratePerSec,
      seed: args.seed,
      accounts: args.accounts ?? defaultAccounts(args.ratePerSec),
      from: args.fromMs !== undefined ? new Date(args.fromMs).toISOString() : undefined,
      to: args.toMs !== undefined ? new Date(args.toMs).toISOString() : undefined,
      duration_ms: args.durationMs,
      incidents: args.incidents.map((i) => i.name),
    },
    'simulation starting',
  );

  let lastPlainAt = 0;
  const onProgress = (p: SimProgress) => {
    const line = formatProgress(p);
    if (tty) {
      process.stdout.write(`\r\x1b[2K${line}${p.phase === 'done' ? '\n' : ''}`);
    } else if (p.phase === 'done' || p.elapsedMs - lastPlainAt >= 10_000) {
      lastPlainAt = p.elapsedMs;
      process.stdout.write(`${new Date().toISOString()} ${line}\n`);
    }
  };

  let code = 0;
  try {
    const result = await runSimulation(
      {
        seed: args.seed,
        ratePerSec: args.ratePerSec,
        ...(args.accounts !== undefined ? { accounts: args.accounts } : {}),
        ...(args.fromMs !== undefined ? { fromMs: args.fromMs } : {}),
        ...(args.toMs !== undefined ? { toMs: args.toMs } : {}),
        ...(args.durationMs !== undefined ? { durationMs: args.durationMs } : {}),
        incidents: args.incidents,
        diurnal: args.diurnal,
        jiraFieldMap: config.jiraFieldMap,
        batchSize: args.batchSize,
      },
      { sink: producer, signal: abort.signal, logger, onProgress },
    );
    logger.info(
      { event: 'simulate_done', stopped: result.stopped, total: result.total, sent: result.sentByKind, elapsed_ms: result.elapsedMs },
      'simulation finished',
    );
  } catch (err) {
    if (tty) process.stdout.write('\n');
    logger.error({ event: 'simulate_failed', err }, 'simulation failed');
    code = 1;
  } finally {
    await producer.close().catch((err: unknown) => logger.warn({ event: 'simulate_close_failed', err }, 'producer close failed'));
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`simulate: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
