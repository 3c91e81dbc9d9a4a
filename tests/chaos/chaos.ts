/**
 * `npm run chaos`: the long fault-injection runs (the short ones are tests/integration/faults.test.ts
 * in `npm test`). One rig (tests/helpers/fault-rig.ts: its own redis-server, the `clickhouse` role
 * and the processors in child processes) on a Kafka broker of this script's own (stack/kafka.ts,
 * its own port and data directory; the shared broker is never touched), and one seeded simulator
 * run that the faults follow one another in: the feed produces through each fault, then pauses;
 * the processors catch up and every derived table is compared with a clean replay of the log so
 * far, row for row. The replay is resumed after each fault (its own checkpoints, in a Redis no
 * fault touches), so each comparison replays only the log added since the previous one; the
 * processes are started once. A table is printed: fault, downtime, recovery (processing resumed /
 * every partition checkpointed again), processes that exited, events sent during that fault's part
 * of the run, rows compared, differences. Exit code 1 when any comparison differs or a process
 * exited.
 *
 * Settings (environment):
 * - `CHAOS_FAULTS=ch-owner,broker`: only these faults, in that order (ids: redis-10, redis-60,
 *   redis-empty, ch-owner, broker, redis-rebuild; a word of a fault's name works too; `CHAOS_ONLY`
 *   is the older name of the same setting). By default all, the rebuild last (the slowest).
 * - `CHAOS_REBUILD_TIMEOUT_S` (default 420): how long the rebuild after `redis-rebuild` may take
 *   before that fault is reported as not finished.
 * - `CHAOS_KEEP=1`: keep the run's data directory and the processes' logs even when it passed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupTestEnv, pollUntil, testEnv } from '../helpers/env.js';
import { FaultRig, freePort, OwnKafka } from '../helpers/fault-rig.js';

interface Row {
  fault: string;
  downtimeS: number;
  resumedS: number | null;
  allS: number | null;
  exited: number;
  events: number;
  rows: number;
  differences: string;
  note: string;
}

interface Fault {
  /** Short name for CHAOS_FAULTS (e.g. `ch-owner`). */
  id: string;
  name: string;
  /** After the recovery: wait until caught up and report the rebuild's pace (seconds per million log events). */
  timeRebuild?: boolean;
  /** Injects the fault and brings the service back; returns when it is back (ms) and the downtime (s). */
  run(rig: FaultRig): Promise<{ backAt: number; downtimeS: number; note?: string }>;
}

/** The run in progress and the broker, stopped on Ctrl-C so that nothing is left running. */
let currentRig: FaultRig | null = null;
let ownKafka: OwnKafka | null = null;
let aborting = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    aborting = true; // no further fault starts while this one is stopped
    process.stderr.write(`[chaos] ${sig}: stopping what it started…\n`);
    void (async () => {
      await currentRig?.close().catch(() => undefined);
      await ownKafka?.stop().catch(() => undefined);
      process.exit(130);
    })();
  });
}

// A stray rejection in a client of the run (not the pipeline under test) is reported, not fatal:
// the run goes on and its processes are stopped at the end.
process.on('unhandledRejection', (err) => process.stderr.write(`[chaos] unhandled rejection: ${(err as Error)?.message ?? err}\n`));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** User + system CPU seconds of a live process, every thread (/proc/<pid>/stat, 100 ticks a second on Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state) on
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15)
}

function redisDown(seconds: number): Fault {
  return {
    id: `redis-${seconds}`,
    name: `redis down ${seconds} s`,
    async run(rig) {
      const t0 = Date.now();
      await rig.redis.stop();
      await sleep(seconds * 1000);
      await rig.redis.start();
      return { backAt: Date.now(), downtimeS: (Date.now() - t0) / 1000 };
    },
  };
}

const FAULTS: Fault[] = [
  redisDown(10),
  redisDown(60),
  {
    id: 'redis-empty',
    name: 'redis restarted empty',
    async run(rig) {
      const t0 = Date.now();
      await rig.redis.restartEmpty(2_000);
      return { backAt: Date.now(), downtimeS: (Date.now() - t0) / 1000, note: 'state healed from memory' };
    },
  },
  {
    id: 'ch-owner',
    name: 'clickhouse owner killed',
    async run(rig) {
      // SIGKILL of the process owning embedded ClickHouse (the processors' inserts fail), 10 s
      // down, then started again; downtime runs until it answers /ping again.
      const t0 = Date.now();
      await rig.chOwner.kill('SIGKILL');
      await sleep(10_000);
      const s0 = Date.now();
      await rig.startClickHouseOwner();
      return {
        backAt: Date.now(),
        downtimeS: (Date.now() - t0) / 1000,
        note: `down 10 s, then answered ${((Date.now() - s0) / 1000).toFixed(1)} s after its start`,
      };
    },
  },
  {
    id: 'broker',
    name: 'kafka broker killed',
    async run(rig) {
      // SIGKILL of the broker (no clean shutdown: it recovers its logs at the next start), 10 s
      // down, then started again; downtime runs until it answers a metadata request.
      const t0 = Date.now();
      await rig.kafka!.kill();
      await sleep(10_000);
      const s0 = Date.now();
      await rig.kafka!.start();
      return {
        backAt: Date.now(),
        downtimeS: (Date.now() - t0) / 1000,
        note: `down 10 s, then answered ${((Date.now() - s0) / 1000).toFixed(1)} s after its start`,
      };
    },
  },
  {
    id: 'redis-rebuild',
    name: 'redis empty, processors restarted',
    timeRebuild: true,
    async run(rig) {
      // The processors are killed, the store loses everything, the processors start again: nothing
      // in memory, no checkpoint: every partition is rebuilt from the beginning of the log.
      const t0 = Date.now();
      await rig.processors.kill('SIGKILL');
      await rig.redis.restartEmpty(1_000);
      rig.startProcessors();
      return { backAt: Date.now(), downtimeS: (Date.now() - t0) / 1000, note: 'rebuilt from the log' };
    },
  },
];

/**
 * One fault of the run: the feed produces through it; afterwards the feed pauses, the processors
 * catch up and every table is compared with the clean replay of the log so far.
 */
async function runOne(f: Fault, rig: FaultRig, phase: (what: string) => void): Promise<Row> {
  const exitedBefore = rig.exitedOnTheirOwn();
  const feed = rig.feed({ paceMs: 1000 });
  // What was measured before a step failed is still reported (an unfinished rebuild keeps its recovery times).
  let downtimeS = 0;
  let note = '';
  let resumedS: number | null = null;
  let allS: number | null = null;
  try {
    // Some traffic before the fault, so that it hits a pipeline at work.
    await sleep(10_000);
    const injected = await f.run(rig);
    const backAt = injected.backAt;
    downtimeS = injected.downtimeS;
    note = injected.note ?? '';
    phase('fault');
    try {
      const r = await rig.recovery(backAt, { resumedMs: 300_000, allMs: 300_000 });
      resumedS = r.resumedS;
      allS = r.allS;
    } catch {
      /* reported as not recovered */
    }
    phase('recovery');
    let rebuild = '';
    if (f.timeRebuild) {
      // Every processor rebuilt the whole log from offset 0 (all kinds: the processors are fused).
      // The processors' process started with the rebuild: its CPU time is the rebuild's (start-up included).
      await rig.waitCaughtUp(Number(process.env.CHAOS_REBUILD_TIMEOUT_S ?? 420) * 1000);
      const s = (Date.now() - backAt) / 1000;
      const cpuS = cpuSeconds(rig.processors.child.pid!);
      const logEvents = await rig.logEvents();
      const perM = (x: number) => ((x / logEvents) * 1e6).toFixed(0);
      rebuild = `; ${logEvents.toLocaleString('en-US')} log events rebuilt in ${s.toFixed(1)} s, ${cpuS.toFixed(1)} CPU-s of the processors' process, start-up included (${perM(s)} s and ${perM(cpuS)} CPU-s per million)`;
    }
    await sleep(10_000);
    const events = await feed.stop();
    await rig.waitCaughtUp(300_000);
    phase('run on and catch up');
    const cmp = await rig.compareWithCleanReplay(phase);
    const exited = rig.exitedOnTheirOwn() - exitedBefore;
    return {
      fault: f.name,
      downtimeS,
      resumedS,
      allS,
      exited,
      events,
      rows: cmp.rows,
      differences: cmp.differences.length ? cmp.differences.map((d) => `${d.table} -${d.missing}/+${d.extra}`).join(', ') : '0',
      note: `${note}${rebuild}`,
    };
  } catch (err) {
    await feed.stop().catch(() => 0);
    return {
      fault: f.name,
      downtimeS,
      resumedS,
      allS,
      exited: rig.exitedOnTheirOwn() - exitedBefore,
      events: 0,
      rows: 0,
      differences: `error: ${(err as Error).message.slice(0, 160)}`,
      note,
    };
  }
}

/**
 * The faults named by CHAOS_FAULTS (`ch-owner,broker`: ids, or words of their names), in that
 * order; all of them, in this file's order, without it. An unknown name is an error (a typo must
 * not run nothing and pass).
 */
function selectFaults(spec: string | undefined): Fault[] {
  if (!spec?.trim()) return FAULTS;
  const picked: Fault[] = [];
  for (const word of spec
    .split(',')
    .map((w) => w.trim().toLowerCase())
    .filter(Boolean)) {
    const byId = FAULTS.filter((f) => f.id === word);
    const found = byId.length ? byId : FAULTS.filter((f) => f.name.includes(word));
    if (!found.length) throw new Error(`CHAOS_FAULTS: no fault "${word}" (ids: ${FAULTS.map((f) => f.id).join(', ')})`);
    for (const f of found) if (!picked.includes(f)) picked.push(f);
  }
  return picked;
}

function table(rows: Row[]): string {
  const head = ['fault', 'downtime', 'recovery: resumed', 'all partitions', 'processes exited', 'events', 'rows compared', 'differences', 'note'];
  const s = (x: number | null) => (x === null ? 'not recovered' : `${x.toFixed(1)} s`);
  const body = rows.map((r) => [
    r.fault,
    `${r.downtimeS.toFixed(1)} s`,
    s(r.resumedS),
    s(r.allS),
    String(r.exited),
    r.events.toLocaleString('en-US'),
    r.rows.toLocaleString('en-US'),
    r.differences,
    r.note,
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

async function main(): Promise<number> {
  const faults = selectFaults(process.env.CHAOS_FAULTS ?? process.env.CHAOS_ONLY);
  const t0 = Date.now();
  // Where the run's time goes, printed per phase.
  let tPhase = Date.now();
  let current = 'setup';
  const phase = (what: string) => {
    process.stderr.write(`[chaos] ${current}: ${what} ${((Date.now() - tPhase) / 1000).toFixed(1)} s\n`);
    tPhase = Date.now();
  };
  // Two ports free now, one for the broker and one for the controller (a broker port + 1 was taken once).
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const t = testEnv('chaos');
  const kafka = new OwnKafka(port, join(t.dataDir, 'kafka'), controllerPort);
  ownKafka = kafka;
  process.stderr.write(`[chaos] starting a Kafka broker of its own on ${kafka.brokers}\n`);
  await kafka.start();
  phase('kafka broker');
  // One rig for the whole run: its processes are started once, the faults follow one another in
  // one seeded run, and the clean replay is resumed after each fault instead of redone from the
  // first record (it keeps its checkpoints in a Redis of its own that no fault touches).
  const rig = new FaultRig(t, { name: 'chaos', kafka, ratePerSec: 250, resumableReplay: true });
  currentRig = rig;
  const rows: Row[] = [];
  let ok = false;
  try {
    await rig.start();
    phase('rig start');
    const warm = rig.feed({ paceMs: 1000 });
    await pollUntil(() => rig.resumedSince(0), { timeoutMs: 300_000, intervalMs: 500, description: 'first checkpoints' });
    await warm.stop();
    phase('first checkpoints');
    for (const f of faults) {
      if (aborting) break;
      current = f.name;
      process.stderr.write(`[chaos] ${f.name}…\n`);
      const r = await runOne(f, rig, phase);
      rows.push(r);
      process.stderr.write(`[chaos] ${f.name}: ${JSON.stringify(r)}\n`);
    }
    ok = rows.every((r) => r.differences === '0' && r.exited === 0 && r.resumedS !== null);
  } finally {
    await rig.close();
    await kafka.stop().catch(() => undefined);
    await cleanupTestEnv(t, { keepData: !ok || process.env.CHAOS_KEEP === '1' }).catch(() => undefined);
    if (!ok || process.env.CHAOS_KEEP === '1') process.stderr.write(`[chaos] logs kept in ${join(t.dataDir, 'logs')}\n`);
  }
  process.stdout.write(`\n${table(rows)}\n\n${rows.length} faults in ${((Date.now() - t0) / 60_000).toFixed(1)} min (${new Date().toISOString()})\n`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
