/**
 * Alerting on embedded ClickHouse + Redis + a local webhook: 8 days of synthetic derived-table
 * rows, then (1) normal traffic → nothing fires; (2) every incident family → each rule fires
 * exactly once with the right severity/labels/value and resolves after recovery; (3) silences and
 * acknowledgements hold notifications back; (4) a receiver that refuses connections while the
 * alerting component is restarted gets every notification once; (5) a bad rules file stops the start.
 */
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAlerting, type AlertingHandle } from '../../alerts/index.js';
import { METRICS } from '../../alerts/metrics.js';
import { parseRules } from '../../alerts/rules.js';
import { createMetrics } from '../../lib/metrics.js';
import { silentLogger } from '../../lib/logger.js';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { pollUntil, testEnv } from '../helpers/env.js';
import { DAY, HOUR, MIN, writeChurnDay, writeHours, writeIssue, writeMinutes, type Incident } from './support/data.js';
import { TestReceiver } from './support/receiver.js';
import { closeAlertTest, defaultRulesText, defaultRulesWithHook } from './support/harness.js';

const t = testEnv('alerts', { ALERT_WEBHOOK_SECRET: 'test-secret' });
const D0 = Date.UTC(2024, 2, 1);
const NOW0 = D0 + 8 * DAY; // end of the backfilled history
const I0 = NOW0 + HOUR; // scenario 2 incident (hour-aligned)
const I1 = I0 + 3 * HOUR; // scenario 3
const I2 = I1 + 3 * HOUR; // scenario 4
let ch: ClickHouse;
let redis: Redis;
const hook = new TestReceiver();
let fakeNow = Date.UTC(2024, 5, 1);
const clock = () => fakeNow;

function rulesText(): string {
  return defaultRulesWithHook(hook.url)
    .replace('evaluation_interval: 15s', 'evaluation_interval: 200ms')
    .replace('retry_base: 1s', 'retry_base: 200ms')
    .replace('retry_max: 5m', 'retry_max: 1s');
}
const start = (manual: boolean) =>
  startAlerting({
    config: t.config,
    logger: silentLogger(),
    metrics: createMetrics(),
    ch,
    redis,
    clock: manual ? clock : Date.now,
    ruleSet: parseRules(rulesText(), 'test'),
    manual,
    deliveryIntervalMs: 100,
  });

let cursor = NOW0; // event time written so far (exclusive)
async function advanceTo(endMs: number, inc: (t: number) => Incident, a: AlertingHandle | null, chunkMs = 20 * MIN): Promise<void> {
  while (cursor < endMs) {
    const to = Math.min(endMs, cursor + chunkMs);
    await writeMinutes(ch, cursor, to, inc);
    const h0 = Math.ceil(cursor / HOUR) * HOUR;
    if (h0 < to) await writeHours(ch, h0, to, (h) => inc(h));
    cursor = to;
    if (a) await a.runOnce();
  }
}

beforeAll(async () => {
  await hook.start();
  ch = await openClickHouse(t.config.clickhouse);
  await migrate(ch);
  redis = new Redis(t.redisUrl);
  // 8 days of steady history, one day per insert.
  for (let d = 0; d < 8; d++) {
    await writeMinutes(ch, D0 + d * DAY, D0 + (d + 1) * DAY);
    await writeHours(ch, D0 + d * DAY, D0 + (d + 1) * DAY);
  }
}, 300_000);

afterAll(() => closeAlertTest({ t, hook, redis, ch }));

describe('alerting end to end on derived tables', () => {
  let a: AlertingHandle;

  it('8 days of normal traffic: nothing fires', async () => {
    a = await start(true);
    await a.runOnce();
    await advanceTo(I0, () => ({}), a);
    await a.runOnce();
    expect(hook.received).toEqual([]);
    expect((await a.listAlerts()).filter((x) => x.status === 'firing')).toEqual([]);
  });

  it('each incident fires its rule exactly once with severity, labels and values, then resolves', async () => {
    const during = (x: number) => x >= I0 && x < I0 + 30 * MIN;
    const inc = (x: number): Incident =>
      during(x)
        ? { rebufferCdn: 'akamai', vsf: true, startupSlow: true, fatal: true, paymentOutage: true, engagementDrop: true, abuse: true, payerDrop: true }
        : {}; // payerDrop acts on the account_activity_1h row of hour I0
    await writeIssue(ch, { key: 'PRD-1', show: 'Night Shift', createdMs: I0 + MIN, updatedMs: I0 + MIN, critical: true, open: true, costUsd: 1000 });
    await writeIssue(ch, { key: 'PRD-2', show: 'Dawn', createdMs: I0 + 2 * MIN, updatedMs: I0 + 2 * MIN, critical: false, open: true, costUsd: 72_500 });
    await advanceTo(I0 + 40 * MIN, inc, a);
    await writeIssue(ch, { key: 'PRD-2', show: 'Dawn', createdMs: I0 + 2 * MIN, updatedMs: I0 + 40 * MIN, critical: false, open: false, costUsd: 72_500 });
    await advanceTo(I0 + 2 * HOUR + 5 * MIN, inc, a);
    await a.runOnce();
    const expected: Record<string, { severity: string; labels?: Record<string, string>; check?: (v: number, b: number | null) => boolean }> = {
      qoe_rebuffer_high: { severity: 'critical', labels: { cdn: 'akamai' }, check: (v) => Math.abs(v - (100 * 0.1) / 0.55) < 0.01 }, // 10 % of watch, playing halved
      qoe_vsf_high: { severity: 'critical', check: (v) => v > 5 && v <= 15 },
      qoe_startup_slow: { severity: 'warning', check: (v) => v > 4 && v < 8.1 },
      business_revenue_drop: { severity: 'warning', check: (v, b) => b !== null && v < b * 0.85 },
      business_payer_rate_drop: { severity: 'warning', check: (v, b) => v === 10 && b === 30 },
      business_payment_failures_high: { severity: 'critical', check: (v) => v > 10 && v <= 50 },
      engagement_playing_time_drop: { severity: 'warning', check: (v, b) => b !== null && v < b * 0.85 },
      safety_reports_actions_surge: { severity: 'warning', check: (v) => v > 50 },
      safety_critical_action: { severity: 'critical', labels: {}, check: (v) => v >= 1 },
      infra_fatal_errors_high: { severity: 'critical', check: (v) => v > 100 },
      production_new_critical_issue: { severity: 'critical', labels: { issue_key: 'PRD-1', show_name: 'Night Shift' } },
      production_cost_impact_high: { severity: 'warning', labels: { issue_key: 'PRD-2', show_name: 'Dawn' }, check: (v) => v === 72_500 },
    };
    for (const [rule, e] of Object.entries(expected)) {
      const firing = hook.of(rule, 'firing');
      expect(firing.length, `${rule} firing notifications`).toBe(1);
      const b = firing[0]!.body as { severity: string; labels: Record<string, string>; value: number; baseline: number | null };
      expect(b.severity, rule).toBe(e.severity);
      expect(b.labels, rule).toMatchObject({ alertname: rule, severity: e.severity, ...(e.labels ?? {}) });
      if (e.check) expect(e.check(b.value, b.baseline), `${rule} value ${b.value} baseline ${b.baseline}`).toBe(true);
      expect(hook.of(rule, 'resolved').length, `${rule} resolve notices`).toBe(1);
    }
    // nothing else fired (e.g. no rebuffer alert for the healthy CDNs)
    expect(new Set(hook.received.map((r) => r.body.rule))).toEqual(new Set(Object.keys(expected)));
    expect(hook.received.length).toBe(2 * Object.keys(expected).length);
    // signed bodies
    const r0 = hook.received[0]!;
    const ts = r0.headers['x-streampulse-timestamp'] as string;
    expect(r0.headers['x-streampulse-signature']).toBe(`sha256=${createHmac('sha256', 'test-secret').update(`${ts}.${r0.raw}`).digest('hex')}`);
    expect(r0.headers['idempotency-key']).toBe(r0.body.notification_id);
    // history in ClickHouse
    const ev = await queryRows<{ to_state: string; n: string }>(
      ch,
      `SELECT to_state, count() AS n FROM ${ch.database}.alert_events FINAL WHERE rule = 'qoe_rebuffer_high' GROUP BY to_state ORDER BY to_state`,
    );
    expect(ev.map((r) => [r.to_state, Number(r.n)])).toEqual([
      ['firing', 1],
      ['pending', 1],
      ['resolved', 1],
    ]);
    const logs = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${ch.database}.notification_log FINAL WHERE result = 'delivered'`);
    expect(Number(logs[0]!.n)).toBe(hook.received.length);
  }, 300_000);

  it('silences hold back a firing notice until they end; acknowledgements stop repeats; resolves still arrive', async () => {
    hook.received.length = 0;
    await advanceTo(I1, () => ({}), a);
    const sil = await a.silence([{ name: 'alertname', value: 'qoe_rebuffer_high' }], fakeNow + HOUR, 'sre@example.com', 'known akamai issue');
    expect((await a.listSilences()).map((s) => s.id)).toContain(sil.id);
    const inc = (x: number): Incident => (x >= I1 && x < I1 + 20 * MIN ? { rebufferCdn: 'akamai', vsf: true } : {});
    await advanceTo(I1 + 20 * MIN, inc, a);
    expect(hook.of('qoe_vsf_high', 'firing').length).toBe(1);
    expect(hook.of('qoe_rebuffer_high').length).toBe(0);
    const alerts = await a.listAlerts();
    const reb = alerts.find((x) => x.rule === 'qoe_rebuffer_high')!;
    expect(reb).toMatchObject({ status: 'firing', silencedBy: sil.id });
    const vsf = alerts.find((x) => x.rule === 'qoe_vsf_high')!;
    expect(await a.acknowledge(vsf.key, 'oncall@example.com')).toBe(true);
    // 4 h of processing time later (repeat_interval) with no new data: the silence has ended, so
    // the rebuffer alert is notified now; the acknowledged VSF alert is not repeated.
    fakeNow += 4 * HOUR;
    await a.runOnce();
    expect(hook.of('qoe_rebuffer_high', 'firing').length).toBe(1);
    expect(hook.of('qoe_vsf_high', 'firing').length).toBe(1);
    expect((await a.listAlerts()).find((x) => x.rule === 'qoe_vsf_high')!.acknowledgedBy).toBe('oncall@example.com');
    await advanceTo(I1 + 40 * MIN, inc, a);
    expect(hook.of('qoe_vsf_high', 'resolved').length).toBe(1);
    expect(hook.of('qoe_rebuffer_high', 'resolved').length).toBe(1);
    // an expired silence no longer matches
    expect(await a.expireSilence(sil.id)).toBe(true);
    await a.stop();
  }, 300_000);

  it('a receiver refusing connections across a restart gets every notification once', async () => {
    hook.received.length = 0;
    await advanceTo(I2, () => ({}), null);
    const port = hook.port;
    await hook.down();
    let b = await start(false);
    const inc = (x: number): Incident => (x >= I2 && x < I2 + 20 * MIN ? { paymentOutage: true, fatal: true } : {});
    await advanceTo(I2 + 10 * MIN, inc, null);
    const redisP = `${t.redisPrefix}alerts:`;
    await pollUntil(async () => (await redis.zcard(`${redisP}outbox`)) >= 1, { timeoutMs: 60_000, description: 'firing notification in the outbox' });
    await new Promise((r) => setTimeout(r, 800)); // a few failed attempts
    await b.stop();
    b = await start(false); // restart with the same Redis prefix
    await advanceTo(I2 + 100 * MIN, inc, null);
    await pollUntil(async () => (await b.listAlerts()).length === 0, { timeoutMs: 90_000, description: 'alerts resolved' });
    await b.stop();
    b = await start(false);
    await hook.start(port);
    await pollUntil(async () => (await redis.zcard(`${redisP}outbox`)) === 0, { timeoutMs: 60_000, description: 'outbox drained' });
    await b.stop();
    for (const rule of ['business_payment_failures_high', 'infra_fatal_errors_high', 'business_revenue_drop']) {
      expect(hook.of(rule, 'firing').length, rule).toBe(1);
      expect(hook.of(rule, 'resolved').length, rule).toBe(1);
    }
    const ids = hook.received.map((r) => r.body.notification_id);
    expect(new Set(ids).size).toBe(ids.length);
    const failed = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${ch.database}.notification_log FINAL WHERE result = 'failed'`);
    expect(Number(failed[0]!.n)).toBeGreaterThan(0);
  }, 300_000);

  it('churn: accounts entering high risk (churn_scores) above the 7-day average fire churn_high_risk_surge', async () => {
    // Own days (after everything above), own Redis prefix, only the churn rule of the default file.
    const C0 = Date.UTC(2024, 3, 1);
    const dayNum = (ms: number) => Math.floor(ms / DAY);
    // 200 accounts scored a day; 20 always high; 10 others enter high each day (a different 10
    // every day), 40 on day 8.
    for (let d = 0; d <= 9; d++) await writeChurnDay(ch, dayNum(C0) + d, d === 8 ? 40 : 10);
    const m = METRICS.churn_high_risk_entries!;
    const rows = await queryRows<{ k: string; value: number | null; volume: number }>(ch, `${m.sql(ch.database, [])} ORDER BY k`, {
      t_first: (C0 + 9 * DAY) / 1000,
      step_s: 86400,
      n: 0,
      window_s: 86400,
      days: 8,
    });
    // k = 0 is day 8; k = 8 is day 0, the first scored day: no previous day → NULL, not 20 + 10.
    expect(rows.map((r) => [Number(r.k), r.value === null ? null : Number(r.value), Number(r.volume)])).toEqual([
      [0, 40, 200],
      [1, 10, 200],
      [2, 10, 200],
      [3, 10, 200],
      [4, 10, 200],
      [5, 10, 200],
      [6, 10, 200],
      [7, 10, 200],
      [8, null, 200],
    ]);
    const churnOnly = rulesText().replace(
      /\nrules:\n[\s\S]*$/,
      `\nrules:\n${rulesText().match(/ {2}- name: churn_high_risk_surge\n(?: {4}.*\n|  {6}.*\n)*/)![0]}`,
    );
    const ruleSet = parseRules(churnOnly, 'churn-only');
    expect(ruleSet.rules.map((r) => r.name)).toEqual(['churn_high_risk_surge']);
    const config = { ...t.config, env: { ...t.config.env, REDIS_PREFIX: `${t.redisPrefix}churn:` } };
    const c = await startAlerting({ config, logger: silentLogger(), metrics: createMetrics(), ch, redis, clock, ruleSet, manual: true });
    // Newest scored day is 9, so the evaluator's frontier is day 9's start: the window is day 8.
    await c.runOnce();
    const firing = await c.listAlerts();
    expect(firing).toHaveLength(1);
    expect(firing[0]).toMatchObject({ rule: 'churn_high_risk_surge', status: 'firing', value: 40, baseline: 10, volume: 200, firingAtMs: C0 + 9 * DAY });
    // Day 10 scored: day 9 has no entries (its new high accounts were already high on day 8) → resolved.
    await writeChurnDay(ch, dayNum(C0) + 10, 10);
    await c.runOnce();
    expect(await c.listAlerts()).toEqual([]);
    expect((await c.listAlerts({ includeResolved: true }))[0]).toMatchObject({ rule: 'churn_high_risk_surge', status: 'resolved', value: 0 });
    await c.stop();
  });

  it('a bad rules file stops the start with the rule and field', async () => {
    const f = join(t.dataDir, 'bad-rules.yaml');
    writeFileSync(f, defaultRulesText().replace('window: 5m\n    condition: "> 5"', 'window: 5 min\n    condition: "> 5"'));
    const config = { ...t.config, env: { ...t.config.env, ALERT_RULES_FILE: f } };
    await expect(startAlerting({ config, logger: silentLogger(), metrics: createMetrics(), ch, redis, clock })).rejects.toThrow(
      /rules\[1\] \(qoe_vsf_high\)\.window: "5 min" is not a duration/,
    );
  });
});
