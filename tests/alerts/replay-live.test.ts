/**
 * As-of evaluation (issue 18): every alert metric is a function of the log up to the evaluated
 * time, so evaluating LIVE (the evaluator runs after every 5-minute commit cycle of the pipeline,
 * seeing each table as it was then) and evaluating a REPLAY (the same day evaluated from the start
 * once all of it is in the tables) give identical alert histories.
 *
 * Simulator traffic (seed 5, 30 events/s, 30 s heartbeats) through the real processors into
 * embedded ClickHouse, alert state in the real Redis (two prefixes: live and replay). One day with
 * incidents, and three hand-made Jira issues that a "latest row" reading gets wrong:
 *  - Q1, critical, created 07:10:15 and resolved 07:10:45: opened and resolved between two
 *    1-minute evaluation steps. It must fire (at 07:11) in both runs.
 *  - Q2, critical, created 07:30:20, resolved 07:42:00: live, the 07:35 cycle saw it open; a
 *    replay reading its latest row sees it resolved (it never fired on a replay before).
 *  - Q3, cost $90,000 at 07:50:10, re-estimated to $20,000 at 07:56:30: live, the 07:55 cycle
 *    saw $90,000 at steps 07:51-07:53; a replay reading the latest row never sees it above $50,000.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRules, type RuleSet } from '../../alerts/rules.js';
import type { JiraIssueEvent } from '../../contracts/types.generated.js';
import type { IncidentSpec, SimEvent } from '../../producers/simulator/index.js';
import { openClickHouse, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { alertHistory, liveThenReplay, replayRulesText } from './support/live-replay.js';
import { SimPipeline } from './support/sim-pipeline.js';

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const D0 = Date.UTC(2024, 4, 6);
const START = D0 + 2 * HOUR; // both runs evaluate from here (cursor) ...
const END = D0 + 17 * HOUR; // ... to the frontier of the data backfilled to here

const specs: IncidentSpec[] = [
  { name: 'late-delivery', startMs: D0 + 3 * HOUR, durationMs: 20 * MIN },
  { name: 'production-critical', startMs: D0 + 5 * HOUR, durationMs: 30 * MIN },
  { name: 'abuse-spike', startMs: D0 + 6.5 * HOUR, durationMs: 20 * MIN },
  { name: 'fatal-errors', startMs: D0 + 8 * HOUR, durationMs: 30 * MIN },
  { name: 'payment-outage', startMs: D0 + 9.5 * HOUR, durationMs: 30 * MIN },
  { name: 'vsf-spike', startMs: D0 + 11 * HOUR, durationMs: 20 * MIN },
  { name: 'cdn-degradation', startMs: D0 + 12.5 * HOUR, durationMs: 20 * MIN, target: 'akamai' },
  { name: 'startup-slow', startMs: D0 + 14 * HOUR, durationMs: 20 * MIN },
];

let seq = 0;
function jira(key: string, atMs: number, o: { createdMs: number; critical: boolean; open: boolean; costUsd: number }): SimEvent {
  const e: JiraIssueEvent = {
    event_id: `00000000-0000-4000-8000-${String(++seq).padStart(12, '0')}`,
    event_time: atMs,
    received_time: atMs,
    webhook_event: atMs === o.createdMs ? 'issue_created' : 'issue_updated',
    issue_key: key,
    project_key: 'PRD',
    summary: `hand-made ${key}`,
    issue_type: 'Incident',
    status: o.open ? 'Open' : 'Done',
    status_category: o.open ? 'new' : 'done',
    priority: 'High',
    severity: o.critical ? 'critical' : 'high',
    show_name: 'Replay Show',
    cost_impact_usd: o.costUsd,
    delay_days: 0,
    labels: [],
    created: o.createdMs,
    updated: atMs,
    resolved: o.open ? null : atMs,
    raw_payload: '{}',
  };
  return { kind: 'jira', event: e };
}
const at = (h: number, m: number, s: number) => D0 + h * HOUR + m * MIN + s * SEC;
const Q1 = at(7, 10, 15);
const Q2 = at(7, 30, 20);
const Q3 = at(7, 50, 10);
const handMade: SimEvent[] = [
  jira('PRD-Q1', Q1, { createdMs: Q1, critical: true, open: true, costUsd: 0 }),
  jira('PRD-Q1', at(7, 10, 45), { createdMs: Q1, critical: true, open: false, costUsd: 0 }),
  jira('PRD-Q2', Q2, { createdMs: Q2, critical: true, open: true, costUsd: 0 }),
  jira('PRD-Q2', at(7, 42, 0), { createdMs: Q2, critical: true, open: false, costUsd: 0 }),
  jira('PRD-Q3', Q3, { createdMs: Q3, critical: false, open: true, costUsd: 90_000 }),
  jira('PRD-Q3', at(7, 56, 30), { createdMs: Q3, critical: false, open: true, costUsd: 20_000 }),
];

const t = testEnv('replay-live');
let ch: ClickHouse;
let redis: Redis;
let sim: SimPipeline;
let ruleSet: RuleSet;

beforeAll(async () => {
  ch = await openClickHouse(t.config.clickhouse);
  await migrate(ch);
  redis = new Redis(t.redisUrl);
  ruleSet = parseRules(replayRulesText(), 'default rules');
  sim = await SimPipeline.create(ch, {
    generator: { seed: 5, startMs: D0, ratePerSec: 30, heartbeatMs: 30_000, incidents: specs },
    roles: ['qoe', 'business', 'safety', 'production', 'raw-store'],
    chunkMs: 5 * MIN,
  });
  sim.inject(handMade);
}, 60_000);

afterAll(async () => {
  if (redis) {
    const keys = await redis.keys(`${t.redisPrefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
  await ch?.close();
  await cleanupTestEnv(t);
});

describe('alerts are a function of the log up to the evaluated time', () => {
  it('live evaluation (after every 5-min commit cycle) and a replay of the day give identical alert histories', async () => {
    const { live, replay } = await liveThenReplay({ redis, ch, ruleSet, sim, startMs: START }, t.redisPrefix, END);

    const [liveCur, replayCur] = [await live.store.cursors(), await replay.store.cursors()];
    expect(Object.fromEntries(replayCur)).toEqual(Object.fromEntries(liveCur));
    const a = await alertHistory(live.store, { labels: true });
    const b = await alertHistory(replay.store, { labels: true });
    console.log(`live history (${a.length} transitions):\n${a.join('\n')}`);
    expect(b).toEqual(a);

    // The history is not empty: the incidents and the hand-made issues fired in both runs.
    const fired = (rule: string, key = '') => a.filter((x) => x.includes(` ${rule} `) && x.includes(key) && x.includes('->firing'));
    for (const rule of [
      'qoe_rebuffer_high',
      'qoe_vsf_high',
      'infra_fatal_errors_high',
      'business_payment_failures_high',
      'safety_reports_actions_surge',
      'infra_late_events_high',
    ])
      expect(fired(rule).length, rule).toBeGreaterThanOrEqual(1);
    // Q1, opened and resolved between the steps 07:10 and 07:11, fires at 07:11 in both runs.
    expect(fired('production_new_critical_issue', 'PRD-Q1').map((x) => x.slice(0, 19))).toEqual(['2024-05-06 07:11:00']);
    // Q2 fires at 07:31 (its creation; it was resolved at 07:42, before the replay reached it).
    expect(fired('production_new_critical_issue', 'PRD-Q2').map((x) => x.slice(0, 19))).toEqual(['2024-05-06 07:31:00']);
    // Q3 fires at 07:51 with $90,000 and resolves at 07:57 (re-estimated to $20,000 at 07:56:30).
    expect(fired('production_cost_impact_high', 'PRD-Q3').map((x) => x.replace(/ volume=.*/, ''))).toEqual([
      expect.stringMatching(/^2024-05-06 07:51:00.* value=90000/),
    ]);
    expect(a.filter((x) => x.includes('PRD-Q3') && x.includes('firing->resolved')).map((x) => x.slice(0, 19))).toEqual(['2024-05-06 07:57:00']);
  }, 1_800_000);
});
