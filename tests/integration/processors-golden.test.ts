/**
 * The QoE, safety, production and churn golden inputs through the real pipeline (Kafka, Redis,
 * embedded ClickHouse). For each processor: (a) a straight run in-process, (b) a child process
 * SIGKILLed in the middle of the stream and restarted, and (c) a full replay of (a)'s topics
 * after dropping the tables, and (d) every processor role fused in one child process (one shared
 * consumer), SIGKILLed and restarted. All four must give exactly the same rows. (The hand-worked values
 * of the same inputs are checked by tests/processors/*-golden.test.ts; business has its own
 * Kafka golden test.) The idle-partition rule is pushed out of reach so that processing time
 * cannot influence any result. The in-process runs use the allowed lateness the children take from
 * the settings' defaults (late firings; safety's event 17, 2.8 h late, is counted by a rewrite).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import type { Processor } from '../../processors/core/processor.js';
import { ProcessorRunner } from '../../processors/core/runner.js';
import { replayProcessor } from '../../processors/replay.js';
import { qoeProcessor } from '../../processors/qoe/qoe.processor.js';
import { safetyProcessor } from '../../processors/safety/safety.processor.js';
import { productionProcessor } from '../../processors/production/production.processor.js';
import { churnProcessor } from '../../processors/churn/churn.processor.js';
import { latenessPolicy } from '../../bin/processors.js';
import { loadConfig } from '../../lib/config.js';
import { scoreClosedChurnDays } from '../../processors/churn/churn-scores.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { loadGoldenInput } from '../helpers/golden.js';
import { produceRecords, runnerDeps, scenario, spawnRoles, startServices, waitCaughtUp, type Scenario, type Services } from '../helpers/pipeline-harness.js';

const IDLE_OFF = '86400000';
const t = testEnv('processors-golden', { CHECKPOINT_INTERVAL_MS: '300', BATCH_MAX_MS: '300', IDLE_PARTITION_MS: IDLE_OFF });
let s: Services;

interface Case {
  name: string;
  graceMs: number;
  make: () => Processor<any>;
  extraTables?: string[];
  after?: (ch: ClickHouse) => Promise<void>;
}

const CASES: Case[] = [
  { name: 'qoe', graceMs: 60_000, make: () => qoeProcessor({ graceMs: 60_000, allowedLatenessMs: 5_000 }) },
  { name: 'safety', graceMs: 60_000, make: () => safetyProcessor({ graceMs: 60_000, allowedLatenessMs: 5_000, lateness: latenessPolicy(loadConfig({}).env) }) },
  { name: 'production', graceMs: 60_000, make: () => productionProcessor({ allowedLatenessMs: 5_000 }) },
  {
    name: 'churn',
    graceMs: 3_600_000,
    make: () => churnProcessor({ graceMs: 3_600_000, allowedLatenessMs: 5_000 }),
    extraTables: ['churn_scores'],
    after: async (ch) => {
      const [first] = await queryRows<{ d: number }>(
        ch,
        `SELECT toInt32(dateDiff('day', toDate('1970-01-01'), min(day))) AS d FROM ${ch.database}.churn_account_daily`,
      );
      await scoreClosedChurnDays(ch, { nowMs: Date.UTC(2030, 0, 1), closeDelayMs: 0, fromDay: Number(first!.d) });
    },
  },
];

async function snapshot(ch: ClickHouse, processor: string, tables: string[]): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  // Topic names differ per run only by their prefix: compare the kind part.
  const cols = async (table: string) =>
    (
      await queryRows<{ name: string }>(ch, `SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}`, {
        db: ch.database,
        t: table,
      })
    ).map((r) => r.name);
  const select = async (table: string) => {
    const c = await cols(table);
    const parts = c.filter((n) => n !== 'version').map((n) => (n === 'src_topic' ? `replaceRegexpOne(src_topic, '^.*\\.', '') AS src_topic` : `\`${n}\``));
    return `SELECT ${parts.join(', ')} FROM ${ch.database}.${table} FINAL`;
  };
  for (const table of tables) out[table] = await queryRows(ch, `${await select(table)} ORDER BY ALL`);
  out.late_events = await queryRows(ch, `${await select('late_events')} WHERE processor = {p:String} ORDER BY ALL`, { p: processor });
  return out;
}

const deps = (sc: Scenario) => runnerDeps(t, s, sc, 'x');

beforeAll(async () => {
  s = await startServices(t);
});
afterAll(async () => {
  await s?.close();
  await cleanupTestEnv(t);
});

describe.each(CASES)('$name golden input on Kafka: straight = SIGKILL and restart = replay = fused', (c) => {
  it('gives exactly the same rows four ways', async () => {
    const input = loadGoldenInput(c.name).filter((r) => c.make().kinds.includes(r.kind));
    const processor = c.make();
    const kinds = processor.kinds;
    const tables = [...processor.tables, ...(c.extraTables ?? [])];

    // (a) straight, in-process
    const a = await scenario(t, s, `${c.name}-straight`);
    await produceRecords(a.producer, input);
    const d = { ...deps(a), groupId: `${a.groupPrefix}${processor.name}` };
    const runner = new ProcessorRunner(c.make(), d, { checkpointIntervalMs: 200, idlePartitionMs: Number(IDLE_OFF) });
    await runner.start();
    await waitCaughtUp(s.redis, t.kafkaBrokers, a, processor.name, kinds);
    await runner.stop();
    const chA = { ...s.ch, database: a.database };
    await c.after?.(chA);
    // The history tables of re-fired windows (migration 018) carry the Kafka timestamp of each late
    // record (known_at): a function of the log, timestamps included. (b) and (d) produce the same
    // events into topics of their own at other times, so their histories are compared only on the
    // replay of the same log, (c).
    const straightAll = await snapshot(chA, processor.name, tables);
    const sameLogOnly = tables.filter((x) => x.endsWith('_history'));
    const straight = Object.fromEntries(Object.entries(straightAll).filter(([k]) => !sameLogOnly.includes(k)));
    const crossLog = tables.filter((x) => !sameLogOnly.includes(x));
    expect(Object.values(straight).some((rows) => rows.length > 0)).toBe(true);
    expect(straight[processor.tables[0]!]!.length).toBeGreaterThan(0);

    // (b) SIGKILL in the middle, restart
    const b = await scenario(t, s, `${c.name}-kill`);
    const env = b.childEnv({ WINDOW_GRACE_MS: String(c.graceMs), ALLOWED_LATENESS_MS: '5000', IDLE_PARTITION_MS: IDLE_OFF });
    const cut1 = Math.floor(input.length * 0.4);
    const cut2 = Math.floor(input.length * 0.7);
    await produceRecords(b.producer, input.slice(0, cut1));
    const first = spawnRoles(t, env, processor.name, `${c.name}-kill-1`);
    await waitCaughtUp(s.redis, t.kafkaBrokers, b, processor.name, kinds);
    await produceRecords(b.producer, input.slice(cut1, cut2));
    await new Promise((r) => setTimeout(r, 100));
    expect(await first.kill('SIGKILL')).toBe(-1);
    await produceRecords(b.producer, input.slice(cut2));
    const second = spawnRoles(t, env, processor.name, `${c.name}-kill-2`);
    await waitCaughtUp(s.redis, t.kafkaBrokers, b, processor.name, kinds);
    expect(await second.kill('SIGTERM')).toBe(0);
    const chB = { ...s.ch, database: b.database };
    await c.after?.(chB);
    expect(await snapshot(chB, processor.name, crossLog)).toEqual(straight);

    // (d) fused: every processor role in one child process sharing one consumer (the default),
    // SIGKILLed in the middle and restarted; this processor's rows must be those it gives alone.
    const f = await scenario(t, s, `${c.name}-fused`);
    const fenv = f.childEnv({ WINDOW_GRACE_MS: String(c.graceMs), ALLOWED_LATENESS_MS: '5000', IDLE_PARTITION_MS: IDLE_OFF, FUSE_PROCESSORS: 'true' });
    const allRoles = 'raw-store,business,qoe,safety,production,churn';
    await produceRecords(f.producer, input.slice(0, cut1));
    const f1 = spawnRoles(t, fenv, allRoles, `${c.name}-fused-1`);
    await waitCaughtUp(s.redis, t.kafkaBrokers, f, processor.name, kinds);
    await produceRecords(f.producer, input.slice(cut1, cut2));
    await new Promise((r) => setTimeout(r, 100));
    expect(await f1.kill('SIGKILL')).toBe(-1);
    await produceRecords(f.producer, input.slice(cut2));
    const f2 = spawnRoles(t, fenv, allRoles, `${c.name}-fused-2`);
    await waitCaughtUp(s.redis, t.kafkaBrokers, f, processor.name, kinds);
    await waitCaughtUp(s.redis, t.kafkaBrokers, f, 'raw-store', kinds);
    expect(await f2.kill('SIGTERM')).toBe(0);
    const chF = { ...s.ch, database: f.database };
    await c.after?.(chF);
    expect(await snapshot(chF, processor.name, crossLog)).toEqual(straight);
    // The raw store saw every record once, beside the others.
    const [raw] = await queryRows<{ n: number }>(chF, `SELECT ${kinds.map((k) => `(SELECT count() FROM ${chF.database}.raw_${k} FINAL)`).join(' + ')} AS n`);
    expect(Number(raw!.n)).toBe(new Set(input.map((r) => String(r.event.event_id))).size);
    await f.close();

    // (c) full replay of (a): drop, rebuild from the log
    await replayProcessor(c.make(), d, { fromBeginning: true, checkpointIntervalMs: 200, idlePartitionMs: Number(IDLE_OFF) });
    await c.after?.(chA);
    expect(await snapshot(chA, processor.name, tables)).toEqual(straightAll);
    await a.close();
    await b.close();
  }, 600_000);
});
