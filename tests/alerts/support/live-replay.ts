/**
 * Live evaluation beside a replay of the same log (the as-of property of alerts): one evaluator
 * ticks after every 5-minute commit cycle of the simulated pipeline, a second one evaluates the
 * whole range afterwards from the same start; the tests compare their cursors and histories.
 * Used by replay-live.test.ts and late-firing-replay.test.ts.
 */
import type { Redis } from 'ioredis';
import { Evaluator } from '../../../alerts/evaluator.js';
import type { RuleSet } from '../../../alerts/rules.js';
import { AlertStore, type AlertEventRow } from '../../../alerts/store.js';
import { silentLogger } from '../../../lib/logger.js';
import { createMetrics } from '../../../lib/metrics.js';
import type { ClickHouse } from '../../../sinks/clickhouse/client.js';
import { defaultRulesText } from './harness.js';
import type { SimPipeline } from './sim-pipeline.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

/** The default rules, allowed to catch up a day of 1-minute steps in a few ticks. */
export const replayRulesText = () => defaultRulesText().replace('step: 1m', 'step: 1m\n  max_catch_up_steps: 2000\n  batch_steps: 720');

export interface LiveReplayRig {
  redis: Redis;
  ch: ClickHouse;
  ruleSet: RuleSet;
  sim: SimPipeline;
  /** Both runs evaluate from here (every rule's cursor is set there; a new rule would start at the frontier). */
  startMs: number;
}

export interface Run {
  ev: Evaluator;
  store: AlertStore;
}

function evaluator(rig: LiveReplayRig, prefix: string): Run {
  const store = new AlertStore(rig.redis, prefix);
  return {
    ev: new Evaluator({ ruleSet: rig.ruleSet, ch: rig.ch, store, logger: silentLogger(), metrics: createMetrics(), clock: () => rig.sim.nowMs }),
    store,
  };
}

async function startAt(rig: LiveReplayRig, store: AlertStore): Promise<void> {
  for (const r of rig.ruleSet.rules) {
    const lookBack = r.metric === 'business_payer_rate_pct' ? HOUR : r.metric === 'churn_high_risk_entries' ? 24 * HOUR : MIN;
    await rig.redis.hset(`${store.p}cursor`, r.name, String(rig.startMs - lookBack));
  }
}

/**
 * Advances the simulated pipeline from the start to `endMs` in 5-minute cycles with a live
 * evaluation after each, drains it, then evaluates the same range again from scratch (the replay).
 */
export async function liveThenReplay(rig: LiveReplayRig, prefix: string, endMs: number): Promise<{ live: Run; replay: Run }> {
  const live = evaluator(rig, `${prefix}live:`);
  await rig.sim.advanceTo(rig.startMs);
  await startAt(rig, live.store);
  while (rig.sim.nowMs < endMs) {
    await rig.sim.advanceTo(rig.sim.nowMs + 5 * MIN);
    await live.ev.tick();
  }
  await rig.sim.drain();
  await live.ev.tick();

  const replay = evaluator(rig, `${prefix}replay:`);
  await startAt(rig, replay.store);
  for (let i = 0; i < 10 && (await replay.ev.tick()).steps > 0; i++);
  return { live, replay };
}

/** The alert history (transitions in event time), without the processing-time `at`, sorted. */
export async function alertHistory(store: AlertStore, o: { labels?: boolean } = {}): Promise<string[]> {
  const rows = (await store.peekHistory('events', 1_000_000)).map((r) => JSON.parse(r) as AlertEventRow);
  return rows
    .map(
      (r) =>
        `${r.event_time} ${r.rule} ${r.alert_key}${o.labels ? ` ${JSON.stringify(r.labels)}` : ''} ${r.from_state}->${r.to_state} value=${r.value} baseline=${r.baseline} volume=${r.volume}`,
    )
    .sort();
}
