/**
 * Delivery across a crash of a REAL alerting process: `node --import tsx bin/streampulse.ts` with
 * ROLES=alerts, reading embedded ClickHouse through the HTTP facade this test process serves
 * (chdb locks its directory to one process) and Redis under a unique prefix. KAFKA_BROKERS points
 * at a closed port: the alerts role needs neither Kafka nor the schema registry.
 *
 * The webhook receiver refuses connections (closed port) while three alerts fire; the process is
 * SIGKILLed with their notifications failing in the outbox, the recovery data arrives while it is
 * dead, a new process evaluates the resolves (still failing), is SIGKILLed again and restarted,
 * and only then the receiver comes back: every notification that was enqueued arrives exactly
 * once (ids = Idempotency-Key), each alert's firing notice before its resolve, nothing twice.
 * Data: synthetic derived-table rows (support/data.ts); the simulator path is simulator-alerts.test.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { serveClickHouse, type ClickHouseFacade } from '../../sinks/clickhouse/http-facade.js';
import { TEST_CH_WRITER, cleanupTestEnv, pollUntil, testEnv, testWriterEnv } from '../helpers/env.js';
import { spawnRoles, type RoleProcess } from '../helpers/pipeline-harness.js';
import { DAY, MIN, writeMinutes, type Incident } from './support/data.js';
import { quickRulesWithHook } from './support/harness.js';
import { TestReceiver } from './support/receiver.js';

const t = testEnv('alerts-restart');
const D0 = Date.UTC(2024, 4, 1);
const I0 = D0 + DAY; // incident start (after one day of history)
const hook = new TestReceiver();
let ch: ClickHouse;
let facade: ClickHouseFacade;
let redis: Redis;
let child: RoleProcess | null = null;
const P = `${t.redisPrefix}alerts:`;
const incident = (x: number): Incident => (x >= I0 && x < I0 + 20 * MIN ? { paymentOutage: true, fatal: true, vsf: true } : {});
const RULES = ['business_payment_failures_high', 'infra_fatal_errors_high', 'qoe_vsf_high'];

function startAlertsProcess(label: string): RoleProcess {
  const rulesFile = join(t.dataDir, 'rules.yaml');
  return spawnRoles(
    t,
    {
      ...t.env,
      CLICKHOUSE_URL: facade.url,
      ...testWriterEnv(),
      KAFKA_BROKERS: '127.0.0.1:1', // nothing listens: the alerts role must not need Kafka
      SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1',
      ALERT_RULES_FILE: rulesFile,
      ALERT_WEBHOOK_SECRET: 'restart-secret',
      LOG_LEVEL: 'info',
    },
    'alerts',
    label,
  );
}

const outbox = () => redis.zcard(`${P}outbox`);
type LogRow = { id: string; result: string; notification_id: string };
/** notification_log rows: those copied to ClickHouse and those still waiting in Redis (deduplicated by row id). */
async function notificationLog(): Promise<LogRow[]> {
  const pending = (await redis.lrange(`${P}history:notifications`, 0, -1)).map((r) => JSON.parse(r) as LogRow);
  const copied = await queryRows<LogRow>(ch, `SELECT id, result, notification_id FROM ${ch.database}.notification_log FINAL`);
  return [...new Map([...copied, ...pending].map((r) => [r.id, r])).values()];
}
const count = async (result: string) => (await notificationLog()).filter((r) => r.result === result).length;

beforeAll(async () => {
  await hook.start();
  await hook.down(); // refuse connections from the start; the port is reused when it comes back
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  await migrate(ch);
  facade = await serveClickHouse(ch, { port: 0, writer: TEST_CH_WRITER });
  redis = new Redis(t.redisUrl);
  writeFileSync(join(t.dataDir, 'rules.yaml'), quickRulesWithHook(hook.url));
  await writeMinutes(ch, D0, I0);
}, 120_000);

afterAll(async () => {
  await child?.kill('SIGTERM');
  const keys = await redis.keys(`${t.redisPrefix}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await facade?.close();
  await ch?.close();
  await hook.down();
  await cleanupTestEnv(t);
});

describe('a real alerting process killed while the receiver is down', () => {
  it('delivers every pending notification exactly once after restarts, firing before resolve', async () => {
    child = startAlertsProcess('alerts-1');
    // Started and evaluating (its rule cursors appear), without Kafka.
    await pollUntil(async () => (await redis.hlen(`${P}cursor`)) >= 10, {
      timeoutMs: 90_000,
      description: `alerts process evaluating (log: ${child.logFile})`,
    });

    // The incident: three alerts fire; their notices fail against the closed port.
    await writeMinutes(ch, I0, I0 + 20 * MIN, incident);
    await pollUntil(async () => (await count('enqueued')) === 3, { timeoutMs: 60_000, description: 'three firing notifications enqueued' });
    await pollUntil(async () => (await count('failed')) >= 6, { timeoutMs: 30_000, description: 'failed delivery attempts' });
    expect(await child.kill('SIGKILL')).toBe(-1);
    expect(await outbox()).toBe(3);

    // Recovery arrives while no alerting process runs; the next one resolves the alerts.
    await writeMinutes(ch, I0 + 20 * MIN, I0 + 110 * MIN, incident);
    child = startAlertsProcess('alerts-2');
    await pollUntil(async () => (await redis.hlen(`${P}live`)) === 0 && (await outbox()) === 6, {
      timeoutMs: 90_000,
      description: 'alerts resolved, resolve notices pending',
    });
    await new Promise((r) => setTimeout(r, 1000)); // more failing attempts
    expect(await child.kill('SIGKILL')).toBe(-1);

    child = startAlertsProcess('alerts-3');
    await new Promise((r) => setTimeout(r, 3000)); // it runs (and fails) for a while …
    await hook.start(hook.port); // … then the receiver comes back
    await pollUntil(async () => (await outbox()) === 0, { timeoutMs: 60_000, description: 'outbox drained' });
    await new Promise((r) => setTimeout(r, 1500)); // anything sent twice would arrive now
    expect(await child.kill('SIGTERM')).toBe(0);
    child = null;

    const got = hook.received.map((r) => r.body as { notification_id: string; rule: string; status: string; dedup_key: string });
    const ids = got.map((b) => b.notification_id);
    expect(new Set(ids).size, 'no notification twice').toBe(ids.length);
    expect(hook.received.every((r) => r.headers['idempotency-key'] === r.body.notification_id)).toBe(true);
    // Exactly the notifications that were enqueued (history rows written by the three processes).
    const all = await notificationLog();
    const enqueuedIds = new Set(all.filter((r) => r.result === 'enqueued').map((r) => r.notification_id));
    expect(new Set(ids)).toEqual(enqueuedIds);
    expect(all.some((r) => r.result === 'failed')).toBe(true);
    for (const rule of RULES) {
      const mine = got.filter((b) => b.rule === rule);
      expect(
        mine.map((b) => b.status),
        rule,
      ).toEqual(['firing', 'resolved']);
      expect(new Set(mine.map((b) => b.dedup_key)).size, rule).toBe(1);
    }
    expect(got.length).toBe(2 * RULES.length);
  }, 300_000);
});
