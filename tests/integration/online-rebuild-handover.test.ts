/**
 * The online rebuild's handover on the real services, in one process (the SIGKILL and resume
 * case, with child processes, is tests/integration/online-rebuild.test.ts): a live fused runner of
 * every processor (handover on) serves its tables; the rebuild, through the ClickHouse HTTP port
 * as `npm run replay` uses it, writes shadow tables, pauses the live runner, swaps, and hands it
 * its state. Events produced while the live runner is paused are read by the live runner after
 * the handover, and every table then equals a clean rebuild of the log, row for row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { ProcessorRunner } from '../../processors/core/runner.js';
import { rebuildOnline, type RebuildProgress } from '../../processors/replay-online.js';
import { PROCESSOR_FACTORIES, latenessPolicy, processorFor } from '../../bin/processors.js';
import { runSimulation } from '../../producers/simulator/run.js';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { runToEndOffsets } from '../../processors/replay.js';
import { TEST_CH_WRITER, cleanupTestEnv, testEnv } from '../helpers/env.js';
import { compareTables } from '../helpers/compare-tables.js';
import { runnerDeps, scenario, startServices, waitCaughtUp, type Scenario, type Services } from '../helpers/pipeline-harness.js';

const IDLE_OFF = 86_400_000;
const START = Date.UTC(2026, 10, 20, 10);
const ROLES = Object.keys(PROCESSOR_FACTORIES);

const t = testEnv('online-rebuild-handover');
let s: Services;
let sc: Scenario;
let http: ClickHouse;
beforeAll(async () => {
  s = await startServices(t);
  sc = await scenario(t, s, 'ho');
  http = await openClickHouse({
    ...t.config.clickhouse,
    url: s.facade.url,
    user: TEST_CH_WRITER.name,
    password: TEST_CH_WRITER.password,
    database: sc.database,
  });
});
afterAll(async () => {
  await http?.close();
  await sc?.close();
  await s?.close();
  await cleanupTestEnv(t);
});

const cfg = () => loadConfig(sc.childEnv()).env;
const make = (ch: ClickHouse) =>
  ROLES.map((r) => processorFor(r, { ch, graceMs: cfg().WINDOW_GRACE_MS, allowedLatenessMs: cfg().ALLOWED_LATENESS_MS, lateness: latenessPolicy(cfg()) }));
const traffic = (fromS: number, toS: number) =>
  runSimulation(
    {
      seed: 3 + fromS,
      ratePerSec: 60,
      fromMs: START + fromS * 1000,
      toMs: START + toS * 1000,
      moderationCasesPerHour: 3600,
      jiraIssuesPerHour: 1800,
      jiraFieldMap: t.config.jiraFieldMap,
    },
    { sink: sc.producer },
  );
const count = async (ch: ClickHouse, table: string) => Number((await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${ch.database}.${table}`))[0]!.n);

function runner(ch: ClickHouse, groupSuffix: string, redisPrefix: string, handover: boolean): ProcessorRunner {
  return new ProcessorRunner(make(ch), runnerDeps(t, s, sc, groupSuffix, { ch, redisPrefix }), {
    checkpointIntervalMs: 300,
    idlePartitionMs: IDLE_OFF,
    handover,
  });
}

describe('online rebuild handover', () => {
  it('pauses the live runner, swaps, and the live runner goes on from the rebuild to tables equal to a clean rebuild', async () => {
    const liveCh: ClickHouse = { ...s.ch, database: sc.database };
    expect((await traffic(0, 20)).total).toBeGreaterThan(500);
    const live = runner(liveCh, 'live', sc.redisPrefix, true);
    await live.start();
    try {
      for (const p of make(liveCh)) await waitCaughtUp(s.redis, t.kafkaBrokers, sc, p.name, p.kinds, 120_000);
      const before = await count(liveCh, 'qoe_minute');
      expect(before).toBeGreaterThan(0);
      // Damage a live table (as a bug would have): only the swap can make it equal a clean rebuild.
      expect(await count(liveCh, 'raw_payments')).toBeGreaterThan(0);
      await s.ch.client.command({ query: `TRUNCATE TABLE ${sc.database}.raw_payments` });
      const phases = new Set<string>();
      let duringPause = 0;
      const deps = runnerDeps(t, s, sc, 'rebuild', { ch: http });
      // The first run dies during the handover, right after the qoe tables were swapped.
      const crash = new Error('crash after the qoe swap');
      const first = rebuildOnline(make(http), deps, {
        graceMs: cfg().WINDOW_GRACE_MS,
        checkpointIntervalMs: 300,
        idlePartitionMs: IDLE_OFF,
        onProgress: (p: RebuildProgress) => void phases.add(p.phase),
        onStep: async (step, processor) => {
          if (step === 'paused') {
            // The live runner acknowledged: it holds everything durable and reads nothing more.
            const acks = await s.redis.keys(`${sc.redisPrefix}handover:ack:qoe:*`);
            expect(acks.length).toBe(1);
            // The live tables answer, untouched; the shadow tables hold the rebuild's rows.
            expect(await count(liveCh, 'qoe_minute')).toBeGreaterThanOrEqual(before);
            expect(await count(liveCh, 'qoe_minute__rebuild')).toBeGreaterThan(0);
            // Events arriving while paused: the rebuild reads them before it stops.
            duringPause = (await traffic(20, 25)).total;
          }
          if (step === 'handed' && processor === 'qoe') {
            // The live checkpoints are now the rebuild's: same offsets, partition by partition.
            for (const k of await s.redis.keys(`${sc.redisPrefix}ckpt:qoe__rebuild:*`)) {
              const mine = await s.redis.hget(k, 'offset');
              expect(mine).not.toBeNull();
              expect(await s.redis.hget(k.replace(':qoe__rebuild:', ':qoe:'), 'offset')).toBe(mine);
            }
          }
          if (step === 'swapped' && processor === 'raw-store') expect(await count(liveCh, 'raw_payments')).toBeGreaterThan(0);
          if (step === 'swapped' && processor === 'qoe') throw crash;
        },
      });
      await expect(first).rejects.toBe(crash);
      // Past the point of no return the live runner stays paused (a request without expiry) ...
      expect(await s.redis.pttl(`${sc.redisPrefix}handover:qoe`)).toBe(-1);
      expect(await s.redis.hget(`${sc.redisPrefix}rebuild:qoe`, 'phase')).toBe('handover');
      // ... until the replay runs again and finishes the handover (the qoe tables are not swapped back).
      const result = await rebuildOnline(make(http), deps, {
        graceMs: cfg().WINDOW_GRACE_MS,
        checkpointIntervalMs: 300,
        idlePartitionMs: IDLE_OFF,
        onProgress: (p: RebuildProgress) => void phases.add(p.phase),
      });
      expect(result.resumed).toBe(true);
      expect(result.swapped).not.toContain('qoe_minute');
      expect(result.swapped).toEqual(expect.arrayContaining(['safety_cases', 'churn_account_daily', 'churn_scores']));
      expect(await count(liveCh, 'raw_payments')).toBeGreaterThan(0);
      expect([...phases]).toEqual(expect.arrayContaining(['rebuild', 'pause', 'finish', 'done']));
      expect(duringPause).toBeGreaterThan(0);
      // Events after the handover: the live runner reads them from the rebuild's offsets.
      expect((await traffic(25, 35)).total).toBeGreaterThan(0);
      for (const p of make(liveCh)) await waitCaughtUp(s.redis, t.kafkaBrokers, sc, p.name, p.kinds, 120_000);
      expect(live.failure).toBeNull();
      const keys = [
        ...(await s.redis.keys(`${sc.redisPrefix}ckpt:*__rebuild:*`)),
        ...(await s.redis.keys(`${sc.redisPrefix}handover:*`)),
        ...(await s.redis.keys(`${sc.redisPrefix}rebuild:*`)),
      ];
      expect(keys).toEqual([]);
      const left = await queryRows(liveCh, `SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE '%\\_\\_rebuild'`, { db: sc.database });
      expect(left).toEqual([]);
    } finally {
      await live.stop();
    }

    // A clean rebuild of the same log into a database of its own.
    const cleanDb = `${sc.database}_clean`;
    const clean: ClickHouse = { ...s.ch, database: cleanDb };
    await s.ch.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${cleanDb}` });
    await migrate(clean);
    await runToEndOffsets(runner(clean, 'clean', `${sc.redisPrefix}clean:`, false), t.kafkaBrokers, 120_000, 'clean rebuild');
    // The processors' own tables (the job tables are derived at different points in time: the
    // rebuild derives them at the handover, and nothing here runs the jobs afterwards).
    const tables = [...new Set(make(liveCh).flatMap((p) => p.tables)), 'late_events'];
    const { rows, differences } = await compareTables(s.ch, sc.database, cleanDb, tables);
    expect(differences).toEqual([]);
    expect(rows).toBeGreaterThan(0);
    // The job tables were rebuilt too: rollups sealed and churn days scored at the handover.
    expect(await count(liveCh, 'rollup_sealed_qoe')).toBeGreaterThan(0);
  }, 300_000);
});
