/**
 * Alert state after a Redis that lost its contents, with a REAL alerting process
 * (`bin/streampulse.ts`, ROLES=alerts) on a redis-server of the test's own without persistence
 * (tests/helpers/fault-rig.ts OwnRedis; the shared Redis is never touched), reading embedded
 * ClickHouse through the HTTP facade this test process serves.
 *
 * The behaviour docs/reliability.md documents for a loss: the rules are evaluated again from the
 * newest data; an alert still true goes pending and fires again after its `for` (a repeated firing
 * notification with the same dedup key, so PagerDuty folds it), and resolves as usual once the
 * data recovers. The process neither exits nor stops evaluating.
 * Data: synthetic derived-table rows (support/data.ts), as alerting-restart.test.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { serveClickHouse, type ClickHouseFacade } from '../../sinks/clickhouse/http-facade.js';
import { TEST_CH_WRITER, cleanupTestEnv, pollUntil, testEnv, testWriterEnv } from '../helpers/env.js';
import { freePort, OwnRedis } from '../helpers/fault-rig.js';
import { spawnRoles, type RoleProcess } from '../helpers/pipeline-harness.js';
import { DAY, MIN, writeMinutes, type Incident } from './support/data.js';
import { quickRulesWithHook } from './support/harness.js';
import { TestReceiver } from './support/receiver.js';

const t = testEnv('alerts-redis-loss');
const D0 = Date.UTC(2024, 4, 1);
const I0 = D0 + DAY; // incident start (after one day of history)
const hook = new TestReceiver();
let ch: ClickHouse;
let facade: ClickHouseFacade;
let ownRedis: OwnRedis;
let redis: Redis;
let child: RoleProcess | null = null;
const P = `${t.redisPrefix}alerts:`;
/** The incident lasts 30 minutes of event time; the Redis loss comes 20 minutes into it. */
const incident = (x: number): Incident => (x >= I0 && x < I0 + 30 * MIN ? { paymentOutage: true, fatal: true, vsf: true } : {});
const RULES = ['business_payment_failures_high', 'infra_fatal_errors_high', 'qoe_vsf_high'];

type Notice = { notification_id: string; rule: string; status: string; dedup_key: string };
const notices = (rule: string) => hook.received.map((r) => r.body as Notice).filter((b) => b.rule === rule);
const statuses = (rule: string) => notices(rule).map((b) => b.status);

beforeAll(async () => {
  await hook.start();
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  await migrate(ch);
  facade = await serveClickHouse(ch, { port: 0, writer: TEST_CH_WRITER });
  ownRedis = new OwnRedis(await freePort(), join(t.dataDir, 'redis'), 'none');
  await ownRedis.start();
  redis = new Redis(ownRedis.url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  writeFileSync(join(t.dataDir, 'rules.yaml'), quickRulesWithHook(hook.url));
  await writeMinutes(ch, D0, I0);
}, 120_000);

afterAll(async () => {
  await child?.kill('SIGTERM');
  redis?.disconnect();
  await ownRedis?.stop().catch(() => undefined);
  await facade?.close();
  await ch?.close();
  await hook.down();
  await cleanupTestEnv(t);
});

describe('an alerting process whose Redis restarts empty', () => {
  it('re-evaluates the rules: alerts still true fire again (same dedup key) and resolve later; no exit', async () => {
    child = spawnRoles(
      t,
      {
        ...t.env,
        REDIS_URL: ownRedis.url,
        CLICKHOUSE_URL: facade.url,
        ...testWriterEnv(),
        KAFKA_BROKERS: '127.0.0.1:1', // the alerts role needs neither Kafka nor the schema registry
        SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1',
        ALERT_RULES_FILE: join(t.dataDir, 'rules.yaml'),
        ALERT_WEBHOOK_SECRET: 'loss-secret',
        LOG_LEVEL: 'info',
      },
      'alerts',
      'alerts',
    );
    await pollUntil(async () => (await redis.hlen(`${P}cursor`)) >= 10, {
      timeoutMs: 90_000,
      description: `alerts process evaluating (log: ${child.logFile})`,
    });

    // 20 minutes of the incident: the three alerts fire and are delivered.
    await writeMinutes(ch, I0, I0 + 20 * MIN, incident);
    await pollUntil(() => RULES.every((r) => statuses(r).length === 1), { timeoutMs: 60_000, description: 'three firing notifications delivered' });
    expect(RULES.map(statuses)).toEqual(RULES.map(() => ['firing']));

    // Redis restarted with nothing: alert state, rule cursors, outbox gone. A key the process
    // never writes shows the loss; \`live\` itself may already be rewritten by the time this test
    // reads it (the process reconnects and evaluates within the restart's last milliseconds, as
    // a fresh-clone CI run on a loaded machine saw).
    const marker = `${P}loss-marker`;
    await redis.set(marker, '1');
    await ownRedis.restartEmpty(1_000);
    expect(await redis.exists(marker)).toBe(0);
    // Evaluated again from the newest data: the three alerts are live again (pending, or firing
    // at once for a rule without `for`), the cursors are back.
    await pollUntil(async () => (await redis.hlen(`${P}live`)) === 3 && (await redis.hlen(`${P}cursor`)) >= 10, {
      timeoutMs: 60_000,
      description: 'rules evaluated again after the loss',
    });
    expect(child.child.exitCode).toBeNull();

    // The incident goes on past every rule's `for`: each fires again, with the same dedup key.
    await writeMinutes(ch, I0 + 20 * MIN, I0 + 30 * MIN, incident);
    await pollUntil(() => RULES.every((r) => statuses(r).length === 2), { timeoutMs: 60_000, description: 'firing again after the loss' });

    // The data recovers: each alert resolves, once.
    await writeMinutes(ch, I0 + 30 * MIN, I0 + 120 * MIN, incident);
    await pollUntil(async () => RULES.every((r) => statuses(r).length === 3) && (await redis.hlen(`${P}live`)) === 0, {
      timeoutMs: 90_000,
      description: 'alerts resolved',
    });
    await new Promise((r) => setTimeout(r, 1500)); // anything sent twice would arrive now
    expect(child.child.exitCode).toBeNull();

    for (const rule of RULES) {
      expect(statuses(rule), rule).toEqual(['firing', 'firing', 'resolved']);
      expect(new Set(notices(rule).map((b) => b.dedup_key)).size, `${rule}: one dedup key`).toBe(1);
    }
    const ids = hook.received.map((r) => (r.body as Notice).notification_id);
    expect(new Set(ids).size, 'no notification twice').toBe(ids.length);
  }, 300_000);
});
