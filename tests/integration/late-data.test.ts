/**
 * Late data with a policy per source (issue 18) on Kafka, the schema registry, Redis and embedded
 * ClickHouse: the safety role runs as a child `bin/streampulse.ts` with the default settings
 * (LATENESS_MODERATION_MS = 6 h), and /v1/safety/summary is asked over the period of two cases.
 *   1. A moderation action arrives 3 h after newer events (its minute closed 3 h ago, within the
 *      allowed lateness): it is counted (the closed minute's row rewritten), so `actions` equals
 *      `cases_actioned`, and nothing is late. The processor is SIGKILLed just after the late
 *      action is produced and restarted.
 *   2. Another action arrives 7.5 h late (beyond): its case takes it, the minute does not; the
 *      answer's `late_events` reports it.
 *   3. A replay from the beginning gives the same tables (exactly-once with late firings), the
 *      history of the re-fired minute (its revisions, known at the late record's Kafka timestamp) too.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiPlugin } from '../../api/app.js';
import { RedisApiKeyStore } from '../../api/api-keys.js';
import { RedisRateLimiter } from '../../api/rate-limit.js';
import { latenessPolicy, processorFor } from '../../bin/processors.js';
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { replayProcessor } from '../../processors/replay.js';
import { queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { produceRecords, runnerDeps, scenario, spawnRoles, startServices, waitCaughtUp, type Scenario, type Services } from '../helpers/pipeline-harness.js';
import type { GoldenRecord } from '../helpers/golden.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** Two days ago, on the hour: every event time is in the past of its Kafka timestamp (bounds). */
const T0 = Math.floor((Date.now() - 2 * 24 * HOUR) / HOUR) * HOUR;
const KEY = 'viewer-key-late-0123456789abcdef';
const STARTED = Date.now();
const t = testEnv('late-data', { CHECKPOINT_INTERVAL_MS: '300', BATCH_MAX_MS: '300' });
let s: Services;
let sc: Scenario;
let app: FastifyInstance;
/** Children still to stop if an assertion fails before the test stops them. */
const children: Array<{ kill(signal: NodeJS.Signals): Promise<number | null> }> = [];

let seq = 0;
function mod(at: number, caseId: string, type: 'report_created' | 'action_taken'): GoldenRecord {
  const n = ++seq;
  return {
    kind: 'moderation',
    event: {
      event_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
      event_time: at,
      received_time: at + 500,
      case_id: caseId,
      event_type: type,
      // One target: every event in one partition, so the fillers move the late events' watermark.
      target_type: 'stream',
      target_id: 'late-target',
      creator_id: 'cr1',
      policy: 'harassment',
      severity: 'medium',
      detection_source: 'user_report',
      action_type: type === 'action_taken' ? 'remove' : null,
      outcome: null,
    },
  };
}
/** Reports of other cases every 5 min in (fromMin, toMin]: they move the partition's watermark. */
const fillers = (fromMin: number, toMin: number) => {
  const out: GoldenRecord[] = [];
  for (let m = fromMin + 5; m <= toMin; m += 5) out.push(mod(T0 + m * MIN, `F${m}`, 'report_created'));
  return out;
};

async function summary(): Promise<Record<string, number>> {
  const r = await app.inject({
    method: 'GET',
    url: `/v1/safety/summary?from=${new Date(T0).toISOString()}&to=${new Date(T0 + 10 * MIN).toISOString()}`,
    headers: { 'x-api-key': KEY },
  });
  expect(r.statusCode, r.body).toBe(200);
  return r.json<Record<string, number>>();
}

/** The tables as FINAL reads them, summed over source partitions (what every view reads). */
async function tables(ch: ClickHouse, db: string) {
  return {
    counts: await queryRows(
      ch,
      `SELECT toUnixTimestamp(window_start) AS w, event_type, sum(events) AS n FROM ${db}.safety_events_1m FINAL GROUP BY w, event_type ORDER BY w, event_type`,
    ),
    cases: await queryRows(ch, `SELECT case_id, action_time, violation, last_event_time FROM ${db}.safety_cases FINAL ORDER BY case_id`),
    late: await queryRows(ch, `SELECT event_id, reason FROM ${db}.late_events FINAL WHERE processor = 'safety' ORDER BY event_id`),
    // Revisions of re-fired minutes (migration 018), read as of t by the alert metrics.
    history: await queryRows(
      ch,
      `SELECT toUnixTimestamp(window_start) AS w, event_type, events, toUnixTimestamp64Milli(known_at) AS known_at FROM ${db}.safety_events_1m_history FINAL ORDER BY w, event_type, known_at`,
    ),
  };
}

beforeAll(async () => {
  s = await startServices(t);
  sc = await scenario(t, s, 'late');
  const keys = new RedisApiKeyStore(s.redis, sc.redisPrefix);
  await keys.seed(`${KEY}:viewer`);
  app = Fastify({ logger: false });
  await app.register(apiPlugin, {
    logger: createLogger('silent'),
    metrics: createMetrics(),
    redis: s.redis,
    ch: { ...s.ch, database: sc.database },
    keys,
    limiter: new RedisRateLimiter(s.redis, sc.redisPrefix, 60_000),
    now: () => T0 + 8 * HOUR,
    docs: false,
  });
}, 120_000);
afterAll(async () => {
  for (const c of children) await c.kill('SIGKILL');
  await app?.close();
  await sc?.close();
  await s?.close();
  await cleanupTestEnv(t);
});

describe('late moderation actions on Kafka and ClickHouse (allowed lateness 6 h by default)', () => {
  it('counts an action 3 h late, reports one 7.5 h late in late_events, and a replay gives the same tables', async () => {
    const first = spawnRoles(t, sc.childEnv(), 'safety', 'late-1');
    children.push(first);
    await produceRecords(sc.producer, [mod(T0, 'C1', 'report_created'), mod(T0 + 30_000, 'C2', 'report_created'), ...fillers(0, 180)]);
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'safety', ['moderation'], 120_000);
    // Minute [T0+2, T0+3) closed at T0+4 min; the watermark is at T0+3 h.
    const action1 = mod(T0 + 2 * MIN, 'C1', 'action_taken');
    await produceRecords(sc.producer, [action1]);
    await new Promise((r) => setTimeout(r, 150));
    expect(await first.kill('SIGKILL')).toBe(-1);
    const second = spawnRoles(t, sc.childEnv(), 'safety', 'late-2');
    children.push(second);
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'safety', ['moderation'], 120_000);

    const a = await summary();
    expect(a.cases_actioned).toBe(1);
    expect(a.actions).toBe(a.cases_actioned);
    expect(a.late_events).toBe(0);

    const action2 = mod(T0 + 3 * MIN, 'C2', 'action_taken');
    await produceRecords(sc.producer, [...fillers(180, 450), action2]);
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'safety', ['moderation'], 120_000);
    const b = await summary();
    // C2's case took its action (cases_actioned 2), its minute did not: the answer says so.
    expect([b.actions, b.cases_actioned, b.late_events]).toEqual([1, 2, 1]);
    const live = await tables(s.ch, sc.database);
    expect(live.late).toEqual([{ event_id: action2.event.event_id, reason: 'window_closed' }]);
    expect(live.counts.filter((r) => r.event_type === 'action_taken')).toEqual([{ w: (T0 + 2 * MIN) / 1000, event_type: 'action_taken', n: 1 }]);
    // Its minute's history: one revision (the minute had no action on time), known at the late
    // record's Kafka timestamp (written by this test, after it started), not at the event time.
    expect(live.history.map((r) => [r.w, r.event_type, r.events])).toEqual([[(T0 + 2 * MIN) / 1000, 'action_taken', 1]]);
    expect(Number(live.history[0]!.known_at)).toBeGreaterThanOrEqual(STARTED);
    expect(await second.kill('SIGTERM')).toBe(0);

    // A replay from offset 0 with the same settings: identical tables.
    const config = loadConfig(sc.childEnv());
    const processor = processorFor('safety', {
      ch: { ...s.ch, database: sc.database },
      graceMs: config.env.WINDOW_GRACE_MS,
      allowedLatenessMs: config.env.ALLOWED_LATENESS_MS,
      lateness: latenessPolicy(config.env),
    });
    const r = await replayProcessor(processor, runnerDeps(t, s, sc, 'safety'), { fromBeginning: true, checkpointIntervalMs: 200 });
    expect(r.events).toBe(seq);
    expect(await tables(s.ch, sc.database)).toEqual(live);
  });
});
