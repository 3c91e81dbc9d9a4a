/**
 * Faults of the services around the pipeline, on real services of the test's own (fault-rig.ts:
 * its own redis-server and `clickhouse` role process; the processors in a child process of their
 * own), during a seeded simulator run that keeps producing through every fault. In one stream:
 *   1. Redis down (stopped, with its append-only file) for 10 s, then started again;
 *   2. Redis restarted empty (no persistence): every checkpoint and claim lost;
 *   3. the process owning ClickHouse SIGKILLed and started again;
 *   4. ClickHouse inserts that time out after having been applied (a proxy in front of the owner
 *      forwards them and holds the answers past the processors' request timeout).
 * After each: the processors' process has not exited, it said which dependency was missing while
 * it was, processing resumed by itself (every partition checkpointed again) within 30 s of the
 * service coming back; at the end every derived table equals a clean replay of the same log, row
 * for row. The long variants (60 s, a Kafka broker killed, each fault on its own run) are in
 * `npm run chaos` (tests/chaos/chaos.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { cleanupTestEnv, pollUntil, testEnv } from '../helpers/env.js';
import { FaultRig } from '../helpers/fault-rig.js';

const t = testEnv('faults');
let rig: FaultRig;

beforeAll(async () => {
  // 8 s: well above a normal insert's time on a loaded machine (a timeout there would only be
  // retried, but it would slow every cycle), short enough to keep the test quick.
  rig = new FaultRig(t, { name: 'short', ratePerSec: 100, clickhouseProxy: { requestTimeoutMs: 8_000 } });
  await rig.start();
}, 180_000);
let passed = false;
afterAll(async () => {
  await rig?.close();
  // A failed run keeps its data directory (the processes' logs are in <dataDir>/logs).
  await cleanupTestEnv(t, { keepData: !passed }).catch(() => undefined);
});

/** Processing resumes within 30 s of the service coming back; every partition is checkpointed again. */
const recovery = (backAt: number) => rig.recovery(backAt, { resumedMs: 30_000, allMs: 120_000 });
const fmt = (r: { resumedS: number; allS: number }) => `resumed ${r.resumedS.toFixed(1)} s, all partitions ${r.allS.toFixed(1)} s`;

describe('faults of Redis and ClickHouse during a seeded run', () => {
  it('are ridden through without an exit, and the tables equal a clean replay row for row', async () => {
    const feed = rig.feed({ paceMs: 1000 });
    await pollUntil(() => rig.resumedSince(0), { timeoutMs: 120_000, intervalMs: 500, description: 'first checkpoints' });

    // 1. Redis down for 10 s (stopped; its append-only file keeps the checkpoints), then started again.
    await rig.redis.stop();
    const ready = await pollUntil(
      async () => {
        const r = await rig.readyz();
        return r.status === 503 && /down/.test(r.body.checks.redis ?? '') ? r : null;
      },
      { timeoutMs: 30_000, intervalMs: 500, description: '/readyz names redis' },
    );
    expect(ready.body.status).toBe('not_ready');
    await new Promise((r) => setTimeout(r, 10_000));
    await rig.redis.start();
    const back1 = Date.now();
    const rec1 = await recovery(back1);
    expect(rig.processors.child.exitCode).toBeNull();
    await pollUntil(async () => (await rig.readyz()).status === 200, { timeoutMs: 30_000, description: '/readyz ready again' });
    expect(await rig.metricValue('streampulse_dependency_unavailable_seconds_total', 'dependency="redis"')).toBeGreaterThan(5);

    // 2. Redis restarted empty (its append-only file deleted while it was down).
    await rig.redis.restartEmpty(2_000);
    const back2 = Date.now();
    const rec2 = await recovery(back2);
    expect(rig.processors.child.exitCode).toBeNull();
    expect(await rig.metricValue('streampulse_checkpoint_store_losses_total', '')).toBeGreaterThanOrEqual(1);
    const log = readFileSync(rig.processors.logFile, 'utf8');
    expect(log.match(/"event":"checkpoint_store_lost"/g)?.length ?? 0).toBe(1);
    expect(log).not.toMatch(/"event":"partition_fenced"/);

    // 3. The process owning ClickHouse killed, and started again after ~5 s.
    expect(await rig.chOwner.kill('SIGKILL')).toBe(-1);
    await pollUntil(async () => /down/.test((await rig.readyz()).body.checks.clickhouse ?? ''), {
      timeoutMs: 60_000,
      intervalMs: 500,
      description: '/readyz names clickhouse',
    });
    await new Promise((r) => setTimeout(r, 5_000));
    await rig.startClickHouseOwner();
    const back3 = Date.now();
    const rec3 = await recovery(back3);
    expect(rig.processors.child.exitCode).toBeNull();

    // 4. Two inserts applied by ClickHouse whose answers never arrive: the processors time out,
    // write the same rows again (ReplacingMergeTree keys fold them) and checkpoint nothing past them.
    const proxy = rig.proxy!;
    proxy.holdInserts(2);
    await pollUntil(() => proxy.held.length >= 2, { timeoutMs: 60_000, intervalMs: 200, description: 'two inserts applied and their answers held' });
    expect(proxy.held.map((h) => h.status)).toEqual([200, 200]);
    expect(proxy.held.every((h) => /^INSERT INTO/i.test(h.statement))).toBe(true);
    // Timed from when ClickHouse applied them: the runner's one commit cycle waits on them, so
    // the first checkpoint saved after this comes after the retry (the 8 s timeout counts too).
    const back4 = Date.now();
    const rec4 = await recovery(back4);
    expect(rig.processors.child.exitCode).toBeNull();
    expect(readFileSync(rig.processors.logFile, 'utf8')).toMatch(/"dependency":"clickhouse"[^\n]*Timeout|Timeout[^\n]*"dependency":"clickhouse"/);

    const sent = await feed.stop();
    await rig.waitCaughtUp();
    expect(rig.exitedOnTheirOwn()).toBe(0);
    const cmp = await rig.compareWithCleanReplay();
    process.stderr.write(
      `[faults] sent ${sent} events; recovery: redis down 10 s: ${fmt(rec1)}; redis empty: ${fmt(rec2)}; clickhouse killed: ${fmt(rec3)}; applied inserts timed out: ${fmt(rec4)}; ${cmp.rows} rows in ${cmp.tables} tables compared\n`,
    );
    expect(cmp.differences).toEqual([]);
    expect(cmp.rows).toBeGreaterThan(sent);
    passed = true;
  }, 900_000);
});
