/**
 * `npm run chaos`: the long fault-injection runs (the short ones are tests/integration/faults.test.ts
 * in `npm test`). Every fault on a run of its own (tests/helpers/fault-rig.ts: its own redis-server,
 * the `clickhouse` role and the processors in child processes), all on one Kafka broker of this
 * script's own (stack/kafka.ts, its own port and data directory; the shared broker is never
 * touched), during a seeded simulator run that keeps producing through the fault. After each, the
 * derived tables are compared with a clean replay of the same log, row for row, and a table is
 * printed: fault, downtime, recovery (processing resumed / every partition checkpointed again),
 * processes that exited, events, rows compared, differences. Exit code 1 when any run differs or
 * a process exited. `CHAOS_ONLY=kafka,60` runs the faults whose names contain those words, in that order.
 */
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
  name: string;
  /** After the recovery: wait until caught up and report the rebuild's pace (seconds per million log events). */
  timeRebuild?: boolean;
  /** Injects the fault and brings the service back; returns when it is back (ms) and the downtime (s). */
  run(rig: FaultRig): Promise<{ backAt: number; downtimeS: number; note?: string }>;
}

/** The run in progress and the broker, stopped on Ctrl-C so that nothing is left running. */
let current: FaultRig | null = null;
let ownKafka: OwnKafka | null = null;
let aborting = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    aborting = true; // no further fault starts while this one is stopped
    process.stderr.write(`[chaos] ${sig}: stopping what it started…\n`);
    void (async () => {
      await current?.close().catch(() => undefined);
      await ownKafka?.stop().catch(() => undefined);
      process.exit(130);
    })();
  });
}

// A stray rejection in a client of the run (not the pipeline under test) is reported, not fatal:
// the run goes on and its processes are stopped at the end.
process.on('unhandledRejection', (err) => process.stderr.write(`[chaos] unhandled rejection: ${(err as Error)?.message ?? err}\n`));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function redisDown(seconds: number): Fault {
  return {
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
    name: 'redis restarted empty',
    async run(rig) {
      const t0 = Date.now();
      await rig.redis.restartEmpty(2_000);
      return { backAt: Date.now(), downtimeS: (Date.now() - t0) / 1000, note: 'state healed from memory' };
    },
  },
  {
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
  {
    name: 'clickhouse owner killed',
    async run(rig) {
      const t0 = Date.now();
      await rig.chOwner.kill('SIGKILL');
      await sleep(10_000);
      await rig.startClickHouseOwner();
      return { backAt: Date.now(), downtimeS: (Date.now() - t0) / 1000 };
    },
  },
  {
    name: 'kafka broker killed',
    async run(rig) {
      const t0 = Date.now();
      rig.kafka!.kill();
      await sleep(10_000);
      await rig.kafka!.start();
      return { backAt: Date.now(), downtimeS: (Date.now() - t0) / 1000 };
    },
  },
];

async function runOne(f: Fault, kafka: OwnKafka): Promise<Row> {
  const slug = f.name.replace(/[^a-z0-9]+/gi, '-');
  const t = testEnv(`chaos-${slug}`);
  const rig = new FaultRig(t, { name: slug, kafka, ratePerSec: 250 });
  current = rig;
  const exitedBefore = (): number => [rig.processors, rig.chOwner].filter((p) => p.child.exitCode !== null && p.child.signalCode === null).length;
  let ok = false;
  try {
    await rig.start();
    const feed = rig.feed({ paceMs: 1000 });
    await pollUntil(() => rig.resumedSince(0), { timeoutMs: 180_000, intervalMs: 500, description: 'first checkpoints' });
    await sleep(10_000);
    const firstProcessors = rig.processors;
    const { backAt, downtimeS, note } = await f.run(rig);
    // A process exiting on its own (not killed by the fault) is a failure.
    const exited = firstProcessors !== rig.processors ? 0 : exitedBefore();
    let resumedS: number | null = null;
    let allS: number | null = null;
    try {
      const r = await rig.recovery(backAt, { resumedMs: 300_000, allMs: 300_000 });
      resumedS = r.resumedS;
      allS = r.allS;
    } catch {
      /* reported as not recovered */
    }
    let rebuild = '';
    if (f.timeRebuild) {
      // Every processor rebuilt the whole log from offset 0 (all kinds: the processors are fused).
      await rig.waitCaughtUp(600_000);
      const s = (Date.now() - backAt) / 1000;
      const logEvents = await rig.logEvents();
      rebuild = `; ${logEvents.toLocaleString('en-US')} log events rebuilt in ${s.toFixed(1)} s (${((s / logEvents) * 1e6).toFixed(0)} s per million)`;
    }
    await sleep(10_000);
    const events = await feed.stop();
    await rig.waitCaughtUp(300_000);
    const cmp = await rig.compareWithCleanReplay();
    const exitedAfter = exited + exitedBefore();
    ok = cmp.differences.length === 0 && exitedAfter === 0 && resumedS !== null;
    return { fault: f.name, downtimeS, resumedS, allS, exited: exitedAfter, events, rows: cmp.rows, differences: cmp.differences.length ? cmp.differences.map((d) => `${d.table} -${d.missing}/+${d.extra}`).join(', ') : '0', note: `${note ?? ''}${rebuild}` };
  } catch (err) {
    return { fault: f.name, downtimeS: 0, resumedS: null, allS: null, exited: exitedBefore(), events: 0, rows: 0, differences: `error: ${(err as Error).message.slice(0, 120)}`, note: '' };
  } finally {
    await rig.close();
    await cleanupTestEnv(t, { keepData: !ok }).catch(() => undefined);
    if (!ok) process.stderr.write(`[chaos] ${f.name}: logs kept in ${join(t.dataDir, 'logs')}\n`);
  }
}

function table(rows: Row[]): string {
  const head = ['fault', 'downtime', 'recovery: resumed', 'all partitions', 'processes exited', 'events', 'rows compared', 'differences', 'note'];
  const s = (x: number | null) => (x === null ? 'not recovered' : `${x.toFixed(1)} s`);
  const body = rows.map((r) => [r.fault, `${r.downtimeS.toFixed(1)} s`, s(r.resumedS), s(r.allS), String(r.exited), r.events.toLocaleString('en-US'), r.rows.toLocaleString('en-US'), r.differences, r.note]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

async function main(): Promise<number> {
  const only = process.env.CHAOS_ONLY?.split(',').map((s) => s.trim().toLowerCase());
  // In the order CHAOS_ONLY names them (all, in this file's order, without it).
  const faults = only ? only.flatMap((o) => FAULTS.filter((f) => f.name.includes(o))).filter((f, i, all) => all.indexOf(f) === i) : FAULTS;
  const t0 = Date.now();
  let port = await freePort();
  while (port > 65_000) port = await freePort();
  const kafkaEnv = testEnv('chaos-kafka');
  const kafka = new OwnKafka(port, join(kafkaEnv.dataDir, 'kafka'));
  ownKafka = kafka;
  process.stderr.write(`[chaos] starting a Kafka broker of its own on ${kafka.brokers}\n`);
  await kafka.start();
  const rows: Row[] = [];
  try {
    for (const f of faults) {
      if (aborting) break;
      process.stderr.write(`[chaos] ${f.name}…\n`);
      const r = await runOne(f, kafka);
      rows.push(r);
      process.stderr.write(`[chaos] ${f.name}: ${JSON.stringify(r)}\n`);
    }
  } finally {
    await kafka.stop().catch(() => undefined);
    await cleanupTestEnv(kafkaEnv).catch(() => undefined);
  }
  process.stdout.write(`\n${table(rows)}\n\n${rows.length} faults in ${((Date.now() - t0) / 60_000).toFixed(1)} min (${new Date().toISOString()})\n`);
  return rows.every((r) => r.differences === '0' && r.exited === 0 && r.resumedS !== null) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
