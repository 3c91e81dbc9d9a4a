/**
 * The `alerts` role: `startAlerting(deps)` validates the rules file (a bad file throws a
 * RulesError naming the rule and field, so the start stops), applies migrations, then runs three
 * loops on processing time: the event-time evaluator, the outbox delivery worker and the copy of
 * history rows to ClickHouse. `stop()` lets the current pass finish and returns.
 * `createAlertingApi` gives the API its functions (silences, acknowledgements, alert list).
 */
import type { Redis } from 'ioredis';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { insertRows, type ClickHouse } from '../sinks/clickhouse/client.js';
import { migrate } from '../sinks/clickhouse/migrate.js';
import { deliverDue } from './delivery.js';
import { Evaluator } from './evaluator.js';
import { loadRulesFile, type RuleSet } from './rules.js';
import { AlertStore, isSilenced, type Matcher, type Silence } from './store.js';
import type { AlertState } from './state-machine.js';

export { RulesError, parseRules, loadRulesFile } from './rules.js';

export interface AlertingDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  ch: ClickHouse;
  redis: Redis;
  /** Processing-time clock (ms); event time comes from the data. */
  clock?: () => number;
  /** Overrides for tests: a parsed rule set instead of ALERT_RULES_FILE, and loop periods. */
  ruleSet?: RuleSet;
  deliveryIntervalMs?: number;
  /** No background loops: the caller drives `runOnce()` (deterministic tests). */
  manual?: boolean;
}

export interface AlertView extends AlertState {
  acknowledgedBy: string | null;
  silencedBy: string | null;
}

export interface AlertingApi {
  silence(matchers: Matcher[], endsAt: Date | number, createdBy: string, comment: string): Promise<Silence>;
  listSilences(): Promise<Silence[]>;
  expireSilence(id: string): Promise<boolean>;
  acknowledge(alertKey: string, by: string): Promise<boolean>;
  listAlerts(opts?: { includeResolved?: boolean }): Promise<AlertView[]>;
}

export function createAlertingApi(deps: { redis: Redis; redisPrefix: string; clock?: () => number }): AlertingApi {
  const store = new AlertStore(deps.redis, deps.redisPrefix);
  const clock = deps.clock ?? Date.now;
  return {
    silence: (m, endsAt, by, comment) => store.silence(m, typeof endsAt === 'number' ? endsAt : endsAt.getTime(), by, comment, clock()),
    listSilences: () => store.listSilences(),
    expireSilence: (id) => store.expireSilence(id, clock()),
    acknowledge: (key, by) => store.acknowledge(key, by, clock()),
    async listAlerts(opts = {}) {
      const acks = await store.acks();
      const silences = await store.activeSilences(clock());
      const all = [...(await store.live()), ...(opts.includeResolved ? await store.resolvedAlerts() : [])];
      return all.map((a) => ({
        ...a,
        acknowledgedBy: acks.get(a.key)?.by ?? null,
        silencedBy: isSilenced({ ...a.labels, alertname: a.rule }, silences)?.id ?? null,
      }));
    },
  };
}

export interface AlertingHandle extends AlertingApi {
  ruleSet: RuleSet;
  /** Runs one evaluator pass, one delivery pass and one history copy now (tests). */
  runOnce(): Promise<void>;
  stop(): Promise<void>;
}

export async function startAlerting(deps: AlertingDeps): Promise<AlertingHandle> {
  const { config, logger, metrics, ch, redis } = deps;
  const clock = deps.clock ?? Date.now;
  const ruleSet = deps.ruleSet ?? loadRulesFile(config.env.ALERT_RULES_FILE);
  await migrate(ch, logger);
  const store = new AlertStore(redis, config.env.REDIS_PREFIX);
  const evaluator = new Evaluator({ ruleSet, ch, store, logger, metrics, clock });
  const delivery = { ruleSet, store, logger, metrics, clock, secret: config.env.ALERT_WEBHOOK_SECRET };
  logger.info({ event: 'alerting_started', rules: ruleSet.rules.length, receivers: ruleSet.receivers.map((r) => r.name) }, 'alerting started');

  const copyHistory = async () => {
    for (const [list, table] of [
      ['events', 'alert_events'],
      ['notifications', 'notification_log'],
    ] as const) {
      const raw = await store.peekHistory(list, 1000);
      if (raw.length === 0) continue;
      await insertRows(
        ch,
        table,
        raw.map((r) => JSON.parse(r) as object),
      );
      await store.dropHistory(list, raw.length);
    }
  };

  let stopped = false;
  const loops: Promise<void>[] = [];
  const loop = (name: string, periodMs: number, fn: () => Promise<unknown>) => {
    loops.push(
      (async () => {
        while (!stopped) {
          try {
            await fn();
          } catch (err) {
            logger.error({ event: 'alerting_loop_error', loop: name, err }, `${name} pass failed; retrying next period`);
          }
          await new Promise<void>((r) => {
            const t = setTimeout(() => {
              wake.delete(w);
              r();
            }, periodMs);
            const w = () => {
              clearTimeout(t);
              r();
            };
            wake.add(w);
          });
        }
      })(),
    );
  };
  const wake = new Set<() => void>();
  if (!deps.manual) {
    loop('evaluator', ruleSet.settings.evaluationIntervalMs, () => evaluator.tick());
    loop('delivery', deps.deliveryIntervalMs ?? Math.min(1000, ruleSet.settings.retryBaseMs), () => deliverDue(delivery));
    loop('history', Math.max(1000, ruleSet.settings.evaluationIntervalMs), copyHistory);
  }

  const api = createAlertingApi({ redis, redisPrefix: config.env.REDIS_PREFIX, clock });
  return {
    ...api,
    ruleSet,
    async runOnce() {
      await evaluator.tick();
      await deliverDue(delivery);
      await copyHistory();
    },
    async stop() {
      stopped = true;
      for (const w of wake) w();
      await Promise.all(loops);
      await copyHistory().catch((err) => logger.warn({ event: 'alert_history_copy_failed', err }, 'history copy at stop failed'));
      logger.info({ event: 'alerting_stopped' }, 'alerting stopped');
    },
  };
}
