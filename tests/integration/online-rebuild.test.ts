/**
 * Online rebuild (`npm run replay -- --all`, processors/replay-online.ts) on the real services:
 * a live pipeline (a child process with every processor role) serves its tables while traffic
 * keeps arriving; the rebuild runs as a child process too, is SIGKILLed midway, is run again and
 * resumes; the live tables answer throughout. After the swap and the handover the live processors
 * go on from the rebuild's state, and once the log is read to its end every table equals, row for
 * row, a clean rebuild of the same log into a database of its own.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { ProcessorRunner } from '../../processors/core/runner.js';
import { rebuiltTables } from '../../processors/replay-online.js';
import { PROCESSOR_FACTORIES, latenessPolicy, processorFor } from '../../bin/processors.js';
import { runSimulation } from '../../producers/simulator/run.js';
import { queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { runToEndOffsets } from '../../processors/replay.js';
import { ROLLUP_TABLES, sealBusiness, sealQoe, sealedState, type RollupFamily } from '../../sinks/clickhouse/rollups.js';
import { scoreClosedChurnDays } from '../../processors/churn/churn-scores.js';
import { REPO_ROOT, cleanupTestEnv, testEnv } from '../helpers/env.js';
import { compareTables } from '../helpers/compare-tables.js';
import { runnerDeps, scenario, spawnRoles, startServices, waitCaughtUp, type RoleProcess, type Scenario, type Services } from '../helpers/pipeline-harness.js';

const IDLE_OFF = '86400000';
const DAY_MS = 86_400_000;
const START = Date.UTC(2026, 10, 20, 10);
const ROLES = Object.keys(PROCESSOR_FACTORIES);

const t = testEnv('online-rebuild');
let s: Services;
let sc: Scenario;
let live: RoleProcess | null = null;
let feeding = false;
beforeAll(async () => {
  s = await startServices(t);
  sc = await scenario(t, s, 'rb');
});
afterAll(async () => {
  feeding = false;
  await live?.kill('SIGTERM');
  await sc?.close();
  await s?.close();
  await cleanupTestEnv(t);
});

const env = () => sc.childEnv({ IDLE_PARTITION_MS: IDLE_OFF, CHECKPOINT_INTERVAL_MS: '500', ROLLUP_INTERVAL_MS: '1000', CHURN_SCORING_INTERVAL_MS: '2000' });
const chOf = (database: string): ClickHouse => ({ ...s.ch, database });
// FINAL: the rows a reader sees. Without it the count is of stored versions, which a background
// merge lowers (ReplacingMergeTree keeps the newest version of a key): the live pipeline rewrites
// the rows of open minutes at every cycle it is caught up, and "nothing truncated" failed on merges.
const count = async (table: string) =>
  Number((await queryRows<{ n: string }>(chOf(sc.database), `SELECT count() AS n FROM ${sc.database}.${table} FINAL`))[0]!.n);
const tableExists = async (table: string) =>
  (await queryRows(chOf(sc.database), `SELECT 1 FROM system.tables WHERE database = {db:String} AND name = {t:String}`, { db: sc.database, t: table })).length >
  0;

/** Seconds of simulated traffic [fromS, toS) after START, into the scenario's topics. */
async function traffic(fromS: number, toS: number): Promise<number> {
  const r = await runSimulation(
    {
      seed: 5 + fromS,
      ratePerSec: 300,
      fromMs: START + fromS * 1000,
      toMs: START + toS * 1000,
      moderationCasesPerHour: 3600,
      jiraIssuesPerHour: 1800,
      jiraFieldMap: t.config.jiraFieldMap,
    },
    { sink: sc.producer },
  );
  return r.total;
}

function spawnReplay(label: string): { exited: Promise<number | null>; logFile: string; kill: (sig: NodeJS.Signals) => void; running: () => boolean } {
  const logFile = join(t.dataDir, `${label}.log`);
  const out = createWriteStream(logFile);
  const child = spawn(process.execPath, ['--import', 'tsx', 'processors/replay.cli.ts', '--all'], {
    cwd: REPO_ROOT,
    env: env(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  child.on('close', () => out.end());
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig ? -1 : null))));
  return { exited, logFile, kill: (sig) => void child.kill(sig), running: () => child.exitCode === null && child.signalCode === null };
}

async function waitLiveCaughtUp(): Promise<void> {
  const settings = { ch: chOf(sc.database), graceMs: 0, allowedLatenessMs: 0 };
  for (const role of ROLES) await waitCaughtUp(s.redis, t.kafkaBrokers, sc, role, processorFor(role, settings).kinds, 240_000);
}

/** A fused rebuild of the whole log into `<db>_clean`, in this process, with checkpoints of its own. */
async function cleanRebuild(): Promise<ClickHouse> {
  const db = `${sc.database}_clean`;
  const ch = chOf(db);
  await s.ch.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
  await migrate(ch);
  const cfg = loadConfig(env()).env;
  const runner = new ProcessorRunner(
    ROLES.map((r) => processorFor(r, { ch, graceMs: cfg.WINDOW_GRACE_MS, allowedLatenessMs: cfg.ALLOWED_LATENESS_MS, lateness: latenessPolicy(cfg) })),
    runnerDeps(t, s, sc, 'clean', { ch, redisPrefix: `${sc.redisPrefix}clean:` }),
    { checkpointIntervalMs: 1000, idlePartitionMs: Number(IDLE_OFF) },
  );
  await runToEndOffsets(runner, t.kafkaBrokers, 300_000, 'clean rebuild');
  return ch;
}

describe('online rebuild', () => {
  it('rebuilds into shadow tables while the live ones serve, resumes after SIGKILL, and swaps in tables identical to a clean rebuild', async () => {
    // A backlog, and the live pipeline caught up on it.
    let second = 0;
    expect(await traffic(0, 40)).toBeGreaterThan(5_000);
    second = 40;
    live = spawnRoles(t, env(), ROLES.join(','), 'live');
    await waitLiveCaughtUp();
    const before = { raw: await count('raw_playback'), qoe: await count('qoe_minute') };
    expect(before.raw).toBeGreaterThan(0);
    expect(before.qoe).toBeGreaterThan(0);

    // Traffic goes on during the rebuild (one second of event time every second).
    feeding = true;
    const feed = (async () => {
      while (feeding) {
        await traffic(second, second + 1);
        second++;
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();

    // First run: killed once it has checkpointed part of the log into the shadow tables.
    const first = spawnReplay('replay-1');
    for (const deadline = Date.now() + 180_000; ; await new Promise((r) => setTimeout(r, 100))) {
      if (!first.running()) throw new Error(`the replay exited: ${readFileSync(first.logFile, 'utf8').slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`the rebuild did not checkpoint in time: ${readFileSync(first.logFile, 'utf8').slice(-3000)}`);
      const key = (await s.redis.keys(`${sc.redisPrefix}ckpt:qoe__rebuild:*`))[0];
      if ((await tableExists('raw_playback__rebuild')) && key && (await s.redis.hget(key, 'offset')) !== null) break;
    }
    // The live tables answer meanwhile, with everything they had (nothing truncated).
    expect(await count('raw_playback')).toBeGreaterThanOrEqual(before.raw);
    expect(await count('qoe_minute')).toBeGreaterThanOrEqual(before.qoe);
    first.kill('SIGKILL');
    expect(await first.exited).toBe(-1);
    expect(await s.redis.exists(`${sc.redisPrefix}rebuild:qoe`)).toBe(1);
    const shadowBefore = await count('raw_playback__rebuild');

    // Second run: resumes (the shadow rows and checkpoints stay), the live tables answer throughout.
    const second_ = spawnReplay('replay-2');
    let liveReads = 0;
    let sawShadowGrow = false;
    const code = await new Promise<number | null>((resolve) => {
      void second_.exited.then(resolve);
      const poll = async () => {
        for (;;) {
          const done = await Promise.race([second_.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);
          if (done) return;
          const n = await count('raw_playback');
          expect(n).toBeGreaterThanOrEqual(before.raw);
          liveReads++;
          if ((await tableExists('raw_playback__rebuild')) && (await count('raw_playback__rebuild')) > shadowBefore) sawShadowGrow = true;
        }
      };
      void poll();
    });
    const log = readFileSync(second_.logFile, 'utf8');
    expect(code, log).toBe(0);
    const result = JSON.parse(
      log
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{"processors"'))
        .at(-1)!,
    ) as { resumed: boolean; swapped: string[] };
    expect(result.resumed).toBe(true);
    expect(result.swapped).toEqual(expect.arrayContaining(['raw_playback', 'qoe_minute', 'churn_account_daily', 'qoe_minute_rollup']));
    expect(log).toMatch(/\] +\d+\.\d % .* rec\/s +ETA/); // progress lines (not a TTY: plain lines)
    expect(liveReads).toBeGreaterThan(0);
    expect(sawShadowGrow || shadowBefore > 0).toBe(true);
    expect(await tableExists('raw_playback__rebuild')).toBe(false);
    expect(await s.redis.exists(`${sc.redisPrefix}rebuild:qoe`, `${sc.redisPrefix}handover:qoe`)).toBe(0);
    // The live pipeline sees the handover end on its next poll of Redis (every 200 ms) and then
    // reloads every partition's state from the checkpoints: it logs handover_resumed a little
    // after the rebuild's exit (more than a second on a loaded machine), so wait for it.
    for (const deadline = Date.now() + 60_000; !readFileSync(live.logFile, 'utf8').includes('handover_resumed'); ) {
      if (Date.now() > deadline) throw new Error(`the live pipeline did not resume: ${readFileSync(live.logFile, 'utf8').slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // The live pipeline goes on from the rebuild's state; then the whole log is read.
    feeding = false;
    await feed;
    await waitLiveCaughtUp();
    expect(live.child.exitCode).toBeNull();
    await live.kill('SIGTERM');
    live = null;

    // Identical to a clean rebuild of the same log, row for row.
    const clean = await cleanRebuild();
    const liveCh = chOf(sc.database);
    for (const ch of [liveCh, clean]) {
      const [span] = await queryRows<{ first: number | null; last: number | null }>(
        ch,
        `SELECT if(count() = 0, NULL, toInt32(dateDiff('day', toDate('1970-01-01'), min(day)))) AS first, if(count() = 0, NULL, toInt32(dateDiff('day', toDate('1970-01-01'), max(day)))) AS last FROM ${ch.database}.churn_account_daily`,
      );
      if (span?.first !== null && span?.first !== undefined && span.last !== null)
        await scoreClosedChurnDays(ch, { nowMs: (Number(span.last) + 1) * DAY_MS, closeDelayMs: 0, rescoreDays: 0, fromDay: Number(span.first) });
    }
    const sealed = new Set<string>();
    for (const family of ['qoe', 'business'] as RollupFamily[]) {
      sealed.add(ROLLUP_TABLES[family][1]!);
      const until = Math.max(0, ...(await sealedState(liveCh, family)).values());
      expect(until, `${family} rollups sealed after the swap`).toBeGreaterThan(0);
      await (family === 'qoe' ? sealQoe(clean, until) : sealBusiness(clean, until));
      expect([...(await sealedState(clean, family))].sort()).toEqual([...(await sealedState(liveCh, family))].sort());
    }
    const tables = [...new Set(ROLES.flatMap((r) => rebuiltTables(processorFor(r, { ch: liveCh, graceMs: 0, allowedLatenessMs: 0 }))))].filter(
      (x) => !sealed.has(x),
    );
    const { rows, differences } = await compareTables(liveCh, sc.database, clean.database, [...tables, 'late_events']);
    expect(differences).toEqual([]);
    expect(rows).toBeGreaterThan(before.raw);
  }, 900_000);
});
