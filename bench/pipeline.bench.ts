/**
 * `npm run bench`: the processors on this machine, each figure beside the consume-and-decode-only
 * rate of the same topics measured in the same run. The pipeline runs as a child process
 * (`bin/streampulse.ts`, embedded ClickHouse, served over HTTP for the freshness probes), so its
 * peak RSS (VmHWM) is its own.
 *   1. business alone, from a preloaded topic: events/s, peak RSS
 *   2. every processor together (raw-store, business, qoe, safety, production, churn) from the
 *      same preloaded topics: fused (the default), unfused and split over two processes for
 *      comparison, and the raw store alone; log events/s, the machine's and the processes' CPU
 *      time over the measured span, peak RSS
 *   3. the whole pipeline (all six, fused) at a steady 2,000 events/s in real time, after a warm-up under the same traffic: p50/p90/p99
 *      freshness, i.e. event time to the row being queryable, from probe payments of unique
 *      accounts (business's account_activity_1h)
 *   On the longer dense backlog (1c), beside the fused pipeline and business alone: the Kafka
 *   Streams anchors (bench/anchors.ts) over the same topics, reported as ratios.
 * Results go to bench/RESULTS.md ("Processors").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { EventKind } from '../contracts/topics.js';
import { loadConfig } from '../lib/config.js';
import type { PaymentEvent } from '../contracts/types.generated.js';
import { createMetrics } from '../lib/metrics.js';
import { EventProducer } from '../producers/sdk/event-producer.js';
import { REPO_ROOT } from '../stack/kafka.js';
import { probeMachine, probeText } from './machine-probe.js';
import { buildStreamsAnchor, runStreamsAnchor, STREAMS_ANCHOR_TITLES, type AnchorResult, type StreamsAnchorMode } from './anchors.js';
import {
  benchEnv,
  checkpointedTotal,
  consumeAll,
  generateEvents,
  machine,
  percentile,
  produceAll,
  recordResults,
  topicTotal,
  type BenchEnv,
} from './common.js';

const N = Number(process.env.BENCH_EVENTS ?? 400_000);
/** Simulated events per second of event time: 20,000 puts the preloaded events in ~20 s of event time. */
const EVENT_RATE = Number(process.env.BENCH_EVENT_RATE ?? 20_000);
/** The sparser history replayed in run 1b (400: the same events span ~17 min of event time). */
const HISTORY_RATE = Number(process.env.BENCH_HISTORY_RATE ?? 400);
/**
 * The longer dense backlog of run 1c: the same traffic as the preloaded runs (EVENT_RATE), for
 * SUSTAINED_EVENTS events (2,000,000: 100 s of event time). A 400,000-event replay of 20 s is
 * mostly start-up and end: every view, account-day and account-hour is new, and at the end every
 * open row is written at once. Over minutes, open rows are written once per minute of event time.
 */
const SUSTAINED_EVENTS = Number(process.env.BENCH_SUSTAINED_EVENTS ?? 2_000_000);
// A rate the whole pipeline sustains on this machine (freshness is meaningless beyond capacity).
const STEADY_RATE = Number(process.env.BENCH_STEADY_RATE ?? 2_000);
const STEADY_SECONDS = Number(process.env.BENCH_STEADY_SECONDS ?? 40);
/** Seconds the pipeline runs under the steady traffic before the measured span (its probes are reported apart). */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 30);
/**
 * Runs of each 400,000-event whole-pipeline configuration (interleaved; RESULTS.md gives the
 * median and the range): on this 2-core machine the same code varies by 10 % and more between runs.
 */
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** `auth`: the writer login of the child's ClickHouse port (CLICKHOUSE_USER / CLICKHOUSE_PASSWORD of the bench env). */
interface Child {
  proc: ChildProcess;
  chUrl: string;
  auth: Record<string, string>;
  stop(): Promise<number>;
}

async function startPipeline(b: BenchEnv, roles: string, label: string, extra: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Child> {
  const port = await freePort();
  // BENCH_ROOT in a spec's env (`a+b@BENCH_ROOT=/path`): the child runs the checkout at that path
  // (another version of the code, with its own node_modules) on the same topics: an A/B in one run.
  const { BENCH_ROOT: root, ...env } = extra;
  extra = env;
  // As `npm start` runs it (package.json): a 64 MiB young generation.
  const proc = spawn(process.execPath, ['--max-semi-space-size=64', ...nodeArgs, '--import', 'tsx', 'bin/streampulse.ts'], {
    cwd: root ?? REPO_ROOT,
    // With CLICKHOUSE_URL in `extra` the child writes to another child's embedded ClickHouse over HTTP.
    env: {
      ...b.env,
      ROLES: extra.CLICKHOUSE_URL ? roles : ['clickhouse', roles].filter(Boolean).join(','),
      CHDB_PATH: join(b.dataDir, `chdb-${label}`),
      CLICKHOUSE_HTTP_PORT: String(port),
      LOG_LEVEL: 'warn',
      ...extra,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number>((r) => proc.on('exit', (c) => r(c ?? -1)));
  return {
    proc,
    chUrl: `http://127.0.0.1:${port}`,
    auth: { 'x-clickhouse-user': b.env.CLICKHOUSE_USER ?? 'default', 'x-clickhouse-key': b.env.CLICKHOUSE_PASSWORD ?? '' },
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * The pipeline children of one run, a list of processor names per process. One process hosts the
 * embedded ClickHouse; with more, the first hosts it (an empty first list: a process that only
 * hosts it) and the others, started together once it answers, write to it over HTTP.
 */
async function startChildren(
  b: BenchEnv,
  groups: readonly string[][],
  label: string,
  extra: Record<string, string>,
  nodeArgs: (childLabel: string) => string[] = () => [],
): Promise<Child[]> {
  const start = (g: readonly string[], i: number, host?: Child) => {
    const childLabel = groups.length > 1 ? `${label}${i}` : label;
    return startPipeline(b, g.join(','), childLabel, { ...(host ? { CLICKHOUSE_URL: host.chUrl } : {}), ...extra }, nodeArgs(childLabel));
  };
  const host = await start(groups[0]!, 0);
  if (groups.length === 1) return [host];
  await clickHouseUp(host);
  return [host, ...(await Promise.all(groups.slice(1).map((g, i) => start(g, i + 1, host))))];
}

/** Resolves once the child's ClickHouse answers over HTTP (after its migrations). */
async function clickHouseUp(child: Child, timeoutMs = 120_000): Promise<void> {
  const chUrl = child.chUrl;
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await query(child, 'SELECT 1')).trim() === '1') return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > until) throw new Error(`ClickHouse at ${chUrl} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The fields of a /proc `stat` file after the command name: [0] is field 3 (state) of proc(5). */
function statFields(path: string): string[] {
  return readFileSync(path, 'utf8').split(') ')[1]!.split(' ');
}

/** user + system time (s) of a /proc `stat` file (a process's: all its threads; a task's: that thread). */
function statCpuSeconds(path: string): number {
  const f = statFields(path);
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * The process's CPU time (s) split by thread: the main (JavaScript) thread; Node's other threads
 * (V8's platform workers: parallel and concurrent GC, compilers; libuv's pool: file writes), named
 * "node" up to Node 20 and `V8Worker`, `DelayedTaskSche`, `libuv-worker` from Node 22 on; all the
 * rest (embedded ClickHouse's insert, merge and query threads, librdkafka's `rdk:` threads).
 */
const NODE_THREADS = new Set(['node', 'V8Worker', 'DelayedTaskSche', 'libuv-worker']);

function threadCpu(pid: number): { main: number; v8: number; other: number } {
  const out = { main: 0, v8: 0, other: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let s: number;
    let comm: string;
    try {
      s = statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue; // the thread ended meanwhile
    }
    if (Number(tid) === pid) out.main += s;
    else if (NODE_THREADS.has(comm)) out.v8 += s;
    else out.other += s;
  }
  return out;
}

/** Busy and total CPU time (s, all cores) of the machine so far, from /proc/stat (busy: not idle or iowait). */
function machineCpuSeconds(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, x) => a + x, 0);
  return { busy: (total - f[3]! - f[4]!) / 100, total: total / 100 };
}

/** Minor page faults of a process so far (all its threads): each first touch of a page the kernel hands it. */
function minorFaults(pid: number): number {
  return Number(statFields(`/proc/${pid}/stat`)[7]);
}

/** CPU used by the machine and by the pipeline processes' threads between two marks, and their minor page faults. */
interface CpuMark {
  machine: ReturnType<typeof machineCpuSeconds>;
  threads: ReturnType<typeof threadCpu>;
  faults: number;
}

function cpuMark(pids: readonly number[]): CpuMark {
  const threads = { main: 0, v8: 0, other: 0 };
  let faults = 0;
  for (const pid of pids) {
    const t = threadCpu(pid);
    threads.main += t.main;
    threads.v8 += t.v8;
    threads.other += t.other;
    faults += minorFaults(pid);
  }
  return { machine: machineCpuSeconds(), threads, faults };
}

function cpuSince(a: CpuMark, pids: readonly number[]): CpuMark {
  const b = cpuMark(pids);
  return {
    machine: { busy: b.machine.busy - a.machine.busy, total: b.machine.total - a.machine.total },
    threads: { main: b.threads.main - a.threads.main, v8: b.threads.v8 - a.threads.v8, other: b.threads.other - a.threads.other },
    faults: b.faults - a.faults,
  };
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * Waits until the processors' checkpoints cover the topics. The clock starts when the first
 * partition is claimed (the consumer has joined its group; process start-up excluded) and stops
 * when every event's results are durable: rate = all events / that time.
 */
async function timeCatchUp(
  b: BenchEnv,
  processors: Array<{ name: string; kinds: EventKind[] }>,
  redisPrefix = b.config.env.REDIS_PREFIX,
  pids: readonly number[] = [],
): Promise<{ rate: number; seconds: number; cpu: CpuMark }> {
  const totals = await Promise.all(processors.map((p) => topicTotal(b, p.kinds)));
  const grand = totals.reduce((a, x) => a + x, 0);
  let start: number | null = null;
  let mark: CpuMark | null = null;
  for (;;) {
    if (start === null) {
      const claimed = (await Promise.all(processors.map((p) => b.redis.keys(`${redisPrefix}ckpt:${p.name}:*`)))).some((k) => k.length > 0);
      if (claimed) {
        start = performance.now();
        mark = cpuMark(pids);
      }
    }
    const done = await Promise.all(processors.map((p) => checkpointedTotal(b, p.name, redisPrefix)));
    if (start !== null && done.every((d, i) => d >= totals[i]!)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - start) / 1000;
  return { rate: grand / seconds, seconds, cpu: cpuSince(mark!, pids) };
}

/** The CPU of a measured run, as RESULTS.md prints it. */
function cpuText(c: CpuMark, seconds: number, processes: number): string {
  const cores = c.machine.total / seconds;
  const t = c.threads;
  return `in the measured ${seconds.toFixed(1)} s the machine's ${cores.toFixed(0)} cores were ${Math.round((100 * c.machine.busy) / c.machine.total)} % busy (${c.machine.busy.toFixed(1)} core-s, Kafka broker and Redis included); ${processes > 1 ? `the ${processes} pipeline processes` : 'the pipeline process'} used ${(t.main + t.v8 + t.other).toFixed(1)} s: main thread${processes > 1 ? 's' : ''} ${t.main.toFixed(1)} s, Node's V8/libuv threads ${t.v8.toFixed(1)} s, ClickHouse and other native threads ${t.other.toFixed(1)} s; ${(c.faults / 1e6).toFixed(2)} M minor page faults`;
}

async function query(child: Child, sql: string): Promise<string> {
  const res = await fetch(child.chUrl, { method: 'POST', body: sql, headers: child.auth });
  const text = await res.text();
  if (!res.ok) throw new Error(text);
  return text;
}

const BUSINESS_KINDS: EventKind[] = ['payments', 'gifts', 'playback'];
const ALL: EventKind[] = ['playback', 'payments', 'gifts', 'moderation', 'jira', 'catalog'];
const PROCESSOR_KINDS: Record<string, EventKind[]> = {
  'raw-store': ALL,
  business: BUSINESS_KINDS,
  qoe: ['playback'],
  safety: ['moderation'],
  production: ['jira'],
  churn: ['payments', 'playback', 'gifts'],
};

/**
 * BENCH_NODE_ARGS='--heap-prof --heap-prof-dir=/tmp/h', BENCH_CPU_PROF=<dir>: extra node flags for the pipeline children of whole-pipeline runs.
 * BENCH_ONLY=qoe,churn: each named processor alone (one child process each; `a+b` runs a and b in one child) from one preloaded
 * set of topics, beside the consume + decode rate of its topics; prints, writes no results. `kstreams-windows` and
 * `kstreams-accounts` run the Kafka Streams anchors (bench/anchors.ts) on the same topics.
 */
async function only(names: string[]): Promise<void> {
  console.log(`machine probe: ${probeText(probeMachine())}`);
  const b = await benchEnv('only');
  try {
    await produceAll(b.producer, generateEvents(N, 21, EVENT_RATE));
    let repeat = 0;
    if (names.some((n) => n.startsWith('kstreams-'))) buildStreamsAnchor();
    for (const spec of names) {
      if (spec.startsWith('kstreams-')) {
        const mode = spec.slice('kstreams-'.length) as StreamsAnchorMode;
        if (!STREAMS_ANCHOR_TITLES[mode]) throw new Error(`BENCH_ONLY: unknown anchor ${spec} (kstreams-windows, kstreams-accounts)`);
        const ref = await consumeAll(b, BUSINESS_KINDS, true);
        const a = await runStreamsAnchor(b, mode, `${mode}${repeat++}`);
        console.log(`${spec}: ${anchorText(a)}; ref consume+decode ${fmt(ref.records / ref.seconds)}`);
        continue;
      }
      // `a+b` runs processors a and b together in one child; `a+b@KEY=v;KEY2=w` with extra env for that child.
      const [name, envSpec = ''] = spec.split('@') as [string, string?];
      const envExtra = Object.fromEntries(
        envSpec
          .split(';')
          .filter(Boolean)
          .map((kv) => kv.split('=') as [string, string]),
      );
      // `a+b|c+d`: a and b in one child (which hosts ClickHouse), c and d in another that writes to
      // it over HTTP; `|a+b|c+d`: a child that only hosts ClickHouse, and a+b and c+d beside it.
      const groups = name.split('|').map((g) =>
        g
          .split('+')
          .filter(Boolean)
          .map((n) => {
            const k = PROCESSOR_KINDS[n];
            if (!k) throw new Error(`BENCH_ONLY: unknown processor ${n}`);
            return { name: n, kinds: k };
          }),
      );
      const procs = groups.flat();
      const kinds = [...new Set(procs.flatMap((p) => p.kinds))];
      const ref = await consumeAll(b, kinds, true);
      const label =
        `${name.replace(/[+|]/g, '_')}${envSpec ? `_${Object.values(envExtra).join('_')}` : ''}_${names.indexOf(spec) === names.lastIndexOf(spec) ? '' : repeat++}`.replace(
          /[^\w.-]/g,
          '_',
        );
      const run = await wholePipelineOnce(
        b,
        { label, title: spec, groups: groups.map((g) => g.map((p) => p.name)), extra: envExtra, procs },
        label,
        await topicTotal(b, kinds),
      );
      console.log(
        `${spec}: ${fmt(run.rate)} log events/s (${fmt(run.processorRate)} processor-events/s) from partition claim to durable; ref consume+decode ${fmt(ref.records / ref.seconds)}`,
      );
    }
  } finally {
    await b.close();
  }
}

const ALL_PROCS = [
  { name: 'raw-store', kinds: ALL },
  { name: 'business', kinds: BUSINESS_KINDS },
  { name: 'qoe', kinds: ['playback'] as EventKind[] },
  { name: 'safety', kinds: ['moderation'] as EventKind[] },
  { name: 'production', kinds: ['jira'] as EventKind[] },
  { name: 'churn', kinds: ['payments', 'playback', 'gifts'] as EventKind[] },
];

interface WholeRun {
  label: string;
  title: string;
  /** Processor names per pipeline process (see startChildren). */
  groups: string[][];
  extra: Record<string, string>;
  procs: typeof ALL_PROCS;
}

interface RunResult {
  /** Log events (every record once) per second. */
  rate: number;
  /** Events per second summed over the processors (a record read by four counts four times). */
  processorRate: number;
  withStartRate: number;
  cpu: string;
  /** CPU seconds of the pipeline processes (all threads) over the measured span. */
  cpuSeconds: number;
  rss: string;
  /** Peak RSS of the largest pipeline process. */
  peakRssMb: number;
}

/** An anchor's figures as the bench prints them. */
function anchorText(a: AnchorResult): string {
  return `${fmt(a.eventsPerSec)} events/s over ${fmt(a.events)} events in ${a.seconds.toFixed(1)} s from first record to committed; ${a.cpuSecondsPerMillion.toFixed(1)} CPU-s per million events (${a.cpuSeconds.toFixed(1)} s, every JVM thread); peak RSS ${a.peakRssMb.toFixed(0)} MiB`;
}

/** Node flags for the pipeline children: BENCH_CPU_PROF=<dir> (a CPU profile per child), BENCH_NODE_ARGS. */
const childNodeArgs = (childLabel: string) => [
  ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}/${childLabel}`] : []),
  ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
];

/** One run of the pipeline children of `r` on the preloaded topics of `b` (`pipelineEvents` log events), timed to durable. */
async function wholePipelineOnce(b: BenchEnv, r: WholeRun, label: string, pipelineEvents: number): Promise<RunResult> {
  const prefix = `${b.config.env.REDIS_PREFIX}${label}:`;
  const children = await startChildren(
    b,
    r.groups,
    label,
    { REDIS_PREFIX: prefix, GROUP_PREFIX: `${b.config.env.GROUP_PREFIX}${label}.`, ...r.extra },
    childNodeArgs,
  );
  const t0 = performance.now();
  const run = await timeCatchUp(
    b,
    r.procs,
    prefix,
    children.map((c) => c.proc.pid!),
  );
  const withStart = (performance.now() - t0) / 1000;
  const rss = children.map((c) => peakRssMb(c.proc.pid!));
  for (const c of [...children].reverse()) await c.stop();
  const t = run.cpu.threads;
  const out = {
    rate: pipelineEvents / run.seconds,
    processorRate: run.rate,
    withStartRate: pipelineEvents / withStart,
    cpu: cpuText(run.cpu, run.seconds, children.length),
    cpuSeconds: t.main + t.v8 + t.other,
    rss: `${rss.map((x) => x.toFixed(0)).join(' + ')} MiB`,
    peakRssMb: Math.max(...rss),
  };
  console.log(`${label}: ${fmt(out.rate)} log events/s from first claim (${fmt(out.withStartRate)} incl. start-up); ${out.cpu}; peak RSS ${out.rss}`);
  return out;
}

/**
 * Runs each of `runs` `repeats` times, interleaved (a, b, a, b, …: the machine's drift spreads
 * over all of them), and returns their RESULTS.md rows: the median run by events/s, with the range.
 */
async function wholePipelineRuns(
  b: BenchEnv,
  runs: readonly WholeRun[],
  pipelineEvents: number,
  refAllRate: number,
  repeats: number,
): Promise<{ rows: string[]; medians: RunResult[] }> {
  const results = runs.map(() => [] as RunResult[]);
  for (let i = 0; i < repeats; i++) {
    for (const [j, r] of runs.entries()) results[j]!.push(await wholePipelineOnce(b, r, i ? `${r.label}${i}` : r.label, pipelineEvents));
  }
  const medians: RunResult[] = [];
  const rows = runs.map((r, j) => {
    const sorted = [...results[j]!].sort((x, y) => x.rate - y.rate);
    const med = sorted[Math.floor((sorted.length - 1) / 2)]!;
    medians.push(med);
    const spread = sorted.length > 1 ? `median of ${sorted.length} runs, ${sorted.map((x) => fmt(x.rate)).join(' · ')}; median run: ` : 'one run: ';
    return `| ${r.title}: ${fmt(pipelineEvents)} log events (${spread}${fmt(med.withStartRate)}/s incl. process start-up; ${med.cpu}; ${((1e6 * med.cpuSeconds) / pipelineEvents).toFixed(1)} CPU-s per million log events) | ${fmt(med.rate)} log events/s | ${fmt(refAllRate)} | ${med.rss} |`;
  });
  return { rows, medians };
}

async function main(): Promise<void> {
  if (process.env.BENCH_ONLY?.startsWith('freshness'))
    return onlyFreshness(
      process.env.BENCH_ONLY.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
  if (process.env.BENCH_ONLY)
    return only(
      process.env.BENCH_ONLY.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
  const lines: string[] = [];
  const b0 = { config: loadConfig(process.env) };
  const probeStart = probeMachine();
  console.log(`machine probe: ${probeText(probeStart)}`);

  // 1 and 3: preloaded topics
  {
    const b = await benchEnv('pipeline');
    try {
      const events = generateEvents(N, 21, EVENT_RATE);
      await produceAll(b.producer, events);
      const ref = await consumeAll(b, BUSINESS_KINDS, true);
      const refRate = ref.records / ref.seconds;
      console.log(`consume + decode (business topics): ${fmt(refRate)} events/s`);
      const child = await startPipeline(b, 'business', 'business');
      const biz = await timeCatchUp(b, [{ name: 'business', kinds: BUSINESS_KINDS }]);
      const bizRss = peakRssMb(child.proc.pid!);
      await child.stop();
      console.log(`business: ${fmt(biz.rate)} events/s, peak RSS ${bizRss.toFixed(0)} MiB`);

      const refAll = await consumeAll(b, ALL, true);
      const refAllRate = refAll.records / refAll.seconds;
      const pipelineEvents = await topicTotal(b, ALL);
      const procs = ALL_PROCS;
      // The whole pipeline in one process: fused (the default: one consumer, each record decoded
      // once), then one consumer per processor for comparison; and the raw store alone, the
      // floor of any pipeline that archives every event.
      const names = procs.map((x) => x.name);
      const runs: WholeRun[] = [
        { label: 'all', title: 'all six processors in one process, fused (default: one consumer, one decode per record)', groups: [names], extra: {}, procs },
        {
          label: 'unfused',
          title: 'all six in one process, a consumer per processor (`FUSE_PROCESSORS=false`)',
          groups: [names],
          extra: { FUSE_PROCESSORS: 'false' },
          procs,
        },
        {
          label: 'split',
          title:
            'all six in two processes, fused in each: raw-store, business, safety and production in the one that hosts ClickHouse, QoE and churn in the other, writing to it over HTTP',
          groups: [
            ['raw-store', 'business', 'safety', 'production'],
            ['qoe', 'churn'],
          ],
          extra: {},
          procs,
        },
        { label: 'raw', title: 'raw-store alone (archive every event)', groups: [['raw-store']], extra: {}, procs: procs.slice(0, 1) },
      ];
      lines.push(...(await wholePipelineRuns(b, runs, pipelineEvents, refAllRate, REPEATS)).rows);
      lines.unshift(
        `| business alone, preloaded ${fmt(N)} events (${fmt(await topicTotal(b, BUSINESS_KINDS))} on its topics) | ${fmt(biz.rate)} | ${fmt(refRate)} | ${bizRss.toFixed(0)} MiB |`,
      );
    } finally {
      await b.close();
    }
  }

  // 1b: the same number of events as a replay of a sparser history: HISTORY_RATE simulated
  // events/s, so the log spans minutes of event time (windows close, views end, small state)
  // instead of ~20 s of a platform 50× busier (hundreds of thousands of open views).
  {
    const b = await benchEnv('history');
    try {
      const events = generateEvents(N, 21, HISTORY_RATE);
      const spanMin = (events.at(-1)!.event.event_time - events[0]!.event.event_time) / 60_000;
      await produceAll(b.producer, events);
      const refAll = await consumeAll(b, ALL, true);
      const all = ALL_PROCS.map((x) => x.name);
      lines.push(
        ...(
          await wholePipelineRuns(
            b,
            [
              {
                label: 'history',
                groups: [all],
                extra: {},
                procs: ALL_PROCS,
                title: `all six, fused, replaying a sparser history: the same number of events at ${fmt(HISTORY_RATE)} simulated events/s (${spanMin.toFixed(0)} min of event time)`,
              },
            ],
            await topicTotal(b, ALL),
            refAll.records / refAll.seconds,
            REPEATS,
          )
        ).rows,
      );
    } finally {
      await b.close();
    }
  }

  // 1c: the dense traffic as a longer backlog (steady state rather than start-up and end), and
  // on the same topics business alone and the Kafka Streams anchors, reported as ratios.
  {
    buildStreamsAnchor(); // before the runs: a first build downloads from Maven Central
    const b = await benchEnv('sustained');
    try {
      const events = generateEvents(SUSTAINED_EVENTS, 21, EVENT_RATE);
      const spanS = (events.at(-1)!.event.event_time - events[0]!.event.event_time) / 1000;
      await produceAll(b.producer, events);
      events.length = 0;
      const refAll = await consumeAll(b, ALL, true);
      const all = ALL_PROCS.map((x) => x.name);
      const logEvents = await topicTotal(b, ALL);
      const fused = await wholePipelineRuns(
        b,
        [
          {
            label: 'sustained',
            groups: [all],
            extra: {},
            procs: ALL_PROCS,
            title: `all six, fused, the preloaded runs' dense traffic as a longer backlog: ${fmt(SUSTAINED_EVENTS)} events (${spanS.toFixed(0)} s of event time)`,
          },
        ],
        logEvents,
        refAll.records / refAll.seconds,
        1,
      );
      lines.push(...fused.rows);
      const bizEvents = await topicTotal(b, BUSINESS_KINDS);
      const ref = await consumeAll(b, BUSINESS_KINDS, true);
      const biz = await wholePipelineOnce(
        b,
        { label: 'sustained-business', title: 'business', groups: [['business']], extra: {}, procs: [{ name: 'business', kinds: BUSINESS_KINDS }] },
        'sustained-business',
        bizEvents,
      );
      lines.push(
        `| business alone, the same backlog (${fmt(bizEvents)} events on its topics; ${biz.cpu}; ${((1e6 * biz.cpuSeconds) / bizEvents).toFixed(1)} CPU-s per million events) | ${fmt(biz.rate)} | ${fmt(ref.records / ref.seconds)} | ${biz.rss} |`,
      );
      const anchors: Record<StreamsAnchorMode, AnchorResult> = {
        windows: await runStreamsAnchor(b, 'windows', 'sustained-windows'),
        accounts: await runStreamsAnchor(b, 'accounts', 'sustained-accounts'),
      };
      for (const a of Object.values(anchors)) {
        console.log(`kstreams-${a.mode}: ${anchorText(a)}`);
        lines.push(
          `| ${STREAMS_ANCHOR_TITLES[a.mode]}: the same backlog (${fmt(a.events)} events on playback, payments and gifts; exactly_once_v2, ${a.threads} stream thread, ${a.seconds.toFixed(1)} s from first record to committed; ${a.cpuSeconds.toFixed(1)} CPU-s of the JVM, ${a.cpuSecondsPerMillion.toFixed(1)} per million events) | ${fmt(a.eventsPerSec)} | ${fmt(ref.records / ref.seconds)} | ${a.peakRssMb.toFixed(0)} MiB |`,
        );
      }
      const f = fused.medians[0]!;
      const ratio = (name: string, p: { rate: number; cpuPerM: number; rssMb: number }, a: AnchorResult) =>
        `| ratio: ${name} ÷ Kafka Streams ${a.mode} | ${(p.rate / a.eventsPerSec).toFixed(2)}× the events/s | CPU per event ${(p.cpuPerM / a.cpuSecondsPerMillion).toFixed(2)}× | peak RSS ${(p.rssMb / a.peakRssMb).toFixed(2)}× |`;
      lines.push(ratio('all six fused', { rate: f.rate, cpuPerM: (1e6 * f.cpuSeconds) / logEvents, rssMb: f.peakRssMb }, anchors.accounts));
      lines.push(ratio('business alone', { rate: biz.rate, cpuPerM: (1e6 * biz.cpuSeconds) / bizEvents, rssMb: biz.peakRssMb }, anchors.windows));
    } finally {
      await b.close();
    }
  }

  // 2: freshness at a steady rate, after a warm-up under the same traffic
  let fresh: FreshnessResult;
  {
    const b = await benchEnv('fresh');
    try {
      fresh = await steadyFreshness(b, 'fresh', { rate: STEADY_RATE, seconds: STEADY_SECONDS, warmupS: WARMUP_SECONDS });
      console.log(freshnessText(fresh, STEADY_RATE, STEADY_SECONDS, WARMUP_SECONDS));
      const ms = fresh.measured.map((p) => p.ms);
      lines.push(
        `| all six processors (fused) at a steady ${fmt(STEADY_RATE)} events/s for ${STEADY_SECONDS} s (real time) after a ${WARMUP_SECONDS} s warm-up under the same traffic (warm-up probes: p50 ${fmt(percentile(fresh.warmup.length ? fresh.warmup.map((p) => p.ms) : [0], 0.5))} ms, max ${fmt(Math.max(0, ...fresh.warmup.map((p) => p.ms)))} ms); load average ${fresh.loadStart.toFixed(2)} → ${fresh.loadEnd.toFixed(2)} | freshness p50 ${fmt(percentile(ms, 0.5))} ms, p90 ${fmt(percentile(ms, 0.9))} ms, p99 ${fmt(percentile(ms, 0.99))} ms (${ms.length} probes) | – | ${fresh.peakRssMb.toFixed(0)} MiB |`,
      );
    } finally {
      await b.close();
    }
  }

  const probeEnd = probeMachine();
  console.log(`machine probe: ${probeText(probeEnd)}`);
  recordResults(
    'Processors (npm run bench)',
    `
Machine: ${machine()}. Date: ${new Date().toISOString().slice(0, 10)}. Machine probe (bench/machine-probe.ts) before → after the runs: ${probeText(probeStart)} → ${probeText(probeEnd)}. Kafka 4.1.1 (KRaft, single node, same machine), Redis, embedded ClickHouse (chdb) in the pipeline process; simulated traffic of all kinds (≈90 % playback). Commit cycle: BATCH_MAX_ROWS ${b0.config.env.BATCH_MAX_ROWS}, BATCH_MAX_MS ${b0.config.env.BATCH_MAX_MS}; state checkpoints at least CHECKPOINT_INTERVAL_MS ${b0.config.env.CHECKPOINT_INTERVAL_MS} apart and spaced by their cost.

| run | events/s (or freshness) | reference: consume + decode only, same topics, same run | peak RSS of each pipeline process |
|---|---|---|---|
${lines.join('\n')}

Events/s = all events on the processor's topics (log events: every record of every topic, each counted once however many processors read it) ÷ the time from the first partition claim (process start-up excluded) until Redis checkpoints of every processor cover every offset, i.e. until every event's results are durable in ClickHouse. Each 400,000-event configuration runs ${REPEATS} times, interleaved with the others of its topics (\`BENCH_REPEATS\`), and its row gives the median run and every run's figure: on this machine the same code varies by 10 % and more between runs. CPU, over the measured time only: the machine's busy time from /proc/stat (every process: the pipeline, the Kafka broker, Redis, the benchmark's own polling), and the user + system time of the pipeline process (all threads, including embedded ClickHouse) split by thread: the main thread runs the JavaScript (consuming, decoding, processors, row encoding, checkpoint serialization); Node's V8/libuv threads are its other threads (named \`node\`: V8's parallel and concurrent garbage collection and compilers, libuv's pool for file writes); the rest are embedded ClickHouse's (inserts, merges) and librdkafka's. At 50,000 events/s the 400,000-event runs would have 8 s, 16 core-s of the 2 cores, and at most 8 s of one main thread. Freshness = time a probe payment's account becomes visible in \`account_activity_1h\` minus its event time (= send time), over the probes of the measured span: the pipeline first runs ${WARMUP_SECONDS} s under the same traffic (\`BENCH_WARMUP_SECONDS\`; a pipeline in production runs continuously), whose probes are reported apart (what a restart costs). The preloaded events span about 20 s of event time (20,000 simulated events/s: a platform busy enough to feed 20,000 events/s, with large state: QoE's per-view state checkpoints at 49 MB, churn's at 22 MB, measured by bench/processors.micro.ts on the same traffic): nearly every view, account-day and account-hour is new, and at the end every open row is written at once, so these rows measure a burst. The longer-backlog row is the same traffic for ${fmt(SUSTAINED_EVENTS)} events, where open rows are written once per minute of event time (the steady state of a catch-up); in the sparser-history row the same 400,000 events span minutes (windows close, views end, state stays small). Every run catches up a backlog: open-window rows are written once per minute of watermark time while behind and every cycle once caught up (docs/processing.md), and no day closes, so the daily churn scoring (a per-day job, closed in event time) does not run inside the measured time. Rows go to ClickHouse as Avro (raw rows as the records' own bytes; docs/processing.md, "Writing to ClickHouse"). The machine probe says how fast the machine was during the runs: the processors look up state far larger than the caches (per view, per account, per window), so their speed follows the random-load time, and runs on different days compare only beside their probes. Minor page faults: first touches of memory the kernel hands the pipeline process (heap growth), over the measured time. Kafka Streams anchors (bench/anchors.ts, bench/anchors/kafka-streams/): Kafka Streams 4.1.1 on the machine's Java (default heap, one stream thread, RocksDB state, exactly_once_v2, Avro decoded with GenericDatumReader and the contracts' schemas), over the longer backlog's topics in the same run, after the pipeline and business alone; events/s = records on playback, payments and gifts ÷ the time from the JVM's first record read (start-up excluded) until its consumer group's committed offsets cover every source and repartition partition (every result committed with them); CPU = the JVM's user + system time over that span (every thread: stream thread, RocksDB, garbage collection, JIT); peak RSS = its VmHWM. Ratio rows: pipeline ÷ anchor (events/s above 1 is faster than the anchor; CPU per event and RSS below 1 is cheaper); the fused pipeline's events are all six topics' (log events), the anchors' and business's their three topics'.
`,
  );
}

interface FreshnessResult {
  /** Freshness (ms) of the probes sent in the measured span, in send order, with their second since the start of the feed. */
  measured: Array<{ atS: number; ms: number; ackMs: number }>;
  /** The same for the probes sent during the warm-up. */
  warmup: Array<{ atS: number; ms: number; ackMs: number }>;
  probesSent: number;
  peakRssMb: number;
  /** Load average (1 min) when the feed started and when it stopped. */
  loadStart: number;
  loadEnd: number;
  /** CPU of the pipeline process over the measured span (s, all threads). */
  cpuSeconds: number;
  /** Probes sent over 250 ms late, and the feed's late or backpressured loops (bench/steady-feed.ts). */
  stalls: string[];
}

/**
 * The whole pipeline (all six processors, fused) in a child, fed at `rate` events/s in real time
 * for `warmupS` + `seconds`; a probe payment of a unique account every 500 ms. Freshness = when the
 * probe's account is first seen in account_activity_1h (polled every 50 ms) minus its event time
 * (= send time). Probes sent during the warm-up (the pipeline's first seconds under the traffic:
 * JIT, heap growth, every account and view new) are reported apart from the measured ones.
 */
async function steadyFreshness(
  b: BenchEnv,
  label: string,
  opts: { rate: number; seconds: number; warmupS: number; extra?: Record<string, string> },
): Promise<FreshnessResult> {
  const child = await startPipeline(b, 'raw-store,business,qoe,safety,production,churn', label, opts.extra ?? {}, childNodeArgs(label));
  let feed: ChildProcess | undefined;
  try {
    // Wait for the child to own its partitions.
    for (;;) {
      if ((await b.redis.keys(`${b.config.env.REDIS_PREFIX}ckpt:business:*`)).length >= 12) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const totalMs = (opts.warmupS + opts.seconds) * 1000;
    // The traffic comes from a process of its own (bench/steady-feed.ts: the simulator's world and
    // garbage, and its collections, stay out of this process, which sends and times the probes).
    const feeder = spawn(process.execPath, ['--max-semi-space-size=64', '--import', 'tsx', join(REPO_ROOT, 'bench', 'steady-feed.ts')], {
      cwd: REPO_ROOT,
      env: { ...b.env, BENCH_FEED_RATE: String(opts.rate), BENCH_FEED_MS: String(totalMs) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    feed = feeder;
    const feedExit = new Promise<number>((r) => feeder.on('exit', (c) => r(c ?? -1)));
    const feedMessages: Array<{ type: string; startMs?: number; events?: number; stalls?: string[] }> = [];
    const feedMessage = (type: string) =>
      new Promise<(typeof feedMessages)[number]>((resolve, reject) => {
        const found = feedMessages.find((m) => m.type === type);
        if (found) return resolve(found);
        const onMessage = (m: (typeof feedMessages)[number]) => m.type === type && (feeder.off('exit', onExit), resolve(m));
        const onExit = (c: number) => reject(new Error(`bench/steady-feed.ts exited (${c}) before '${type}'`));
        feeder.on('message', onMessage);
        feeder.once('exit', onExit);
      });
    feeder.on('message', (m: (typeof feedMessages)[number]) => feedMessages.push(m));
    // Probes go through a producer of their own, as an SDK client's (default linger.ms 5).
    const probeProducer = await EventProducer.connect({
      brokers: b.config.kafkaBrokers,
      clientId: `bench-probe-${b.id}`,
      topicPrefix: b.config.topicPrefix,
      codec: b.codec,
      logger: b.logger,
      metrics: createMetrics(),
    });
    await new Promise((r) => setTimeout(r, 200)); // the feed's producer connects
    feeder.send({ type: 'go' });
    const start = (await feedMessage('started')).startMs!;
    console.log(`${label}: feed started at ${new Date(start).toISOString()}`);
    const probes = new Map<string, { eventMs: number; ackedMs?: number; seenMs?: number }>();
    // Probe sends that were over 250 ms late (this process stalled): second since the feed started: ms late.
    const stalls: string[] = [];
    let stop = false;
    const poller = (async () => {
      while (!stop || [...probes.values()].some((p) => p.seenMs === undefined)) {
        const text = await query(
          child,
          `SELECT DISTINCT account_id FROM ${b.config.clickhouse.database}.account_activity_1h WHERE account_id LIKE 'probe-%' FORMAT TSV`,
        ).catch(() => '');
        const now = Date.now();
        for (const id of text.split('\n').filter(Boolean)) {
          const p = probes.get(id);
          if (p && p.seenMs === undefined) p.seenMs = now;
        }
        await new Promise((r) => setTimeout(r, 50));
        if (stop && Date.now() - start > totalMs + 60_000) break;
      }
    })();
    const loadStart = loadavg()[0]!;
    let mark: CpuMark | null = null;
    const sends: Promise<void>[] = [];
    // A probe payment of a unique account every 500 ms, each sent on its own (not behind the feed's batches).
    for (let i = 0; ; i++) {
      const due = start + i * 500;
      if (due - start >= totalMs) break;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
      const now = Date.now();
      if (now - due > 250) stalls.push(`${((due - start) / 1000).toFixed(1)}s:${now - due}ms`);
      if (mark === null && now - start >= opts.warmupS * 1000) mark = cpuMark([child.proc.pid!]);
      const id = `probe-${i}`;
      const probe: { eventMs: number; ackedMs?: number; seenMs?: number } = { eventMs: now };
      probes.set(id, probe);
      const payment: PaymentEvent = {
        event_id: crypto.randomUUID(),
        event_time: now,
        received_time: now,
        payment_id: `probe-pay-${i}`,
        account_id: id,
        kind: 'coin_topup',
        status: 'succeeded',
        amount_minor: 100,
        currency: 'USD',
        method: 'card',
        plan: 'basic',
        og_tier: 0,
        auto_renew: true,
        period_end: null,
        failure_code: null,
        country: 'NP',
      };
      sends.push(probeProducer.sendValid('payments', [payment]).then(() => void (probe.ackedMs = Date.now())));
    }
    await Promise.all(sends);
    const fed = await feedMessage('done');
    if ((await feedExit) !== 0) throw new Error('bench/steady-feed.ts failed');
    await probeProducer.close();
    stalls.push(...(fed.stalls ?? []).map((x) => `feed ${x}`));
    console.log(
      `${label}: the feed produced ${fed.events} events in ${(totalMs / 1000).toFixed(0)} s (${((fed.events ?? 0) / (totalMs / 1000)).toFixed(0)}/s)`,
    );
    const cpu = cpuSince(mark ?? cpuMark([child.proc.pid!]), [child.proc.pid!]);
    const loadEnd = loadavg()[0]!;
    stop = true;
    await poller;
    const rssMb = peakRssMb(child.proc.pid!);
    const seen = [...probes.values()]
      .filter((p) => p.seenMs !== undefined)
      .map((p) => ({ atS: Math.round((p.eventMs - start) / 100) / 10, ms: p.seenMs! - p.eventMs, ackMs: (p.ackedMs ?? p.eventMs) - p.eventMs }));
    const warmEnd = opts.warmupS;
    return {
      measured: seen.filter((p) => p.atS >= warmEnd),
      warmup: seen.filter((p) => p.atS < warmEnd),
      probesSent: [...probes.values()].filter((p) => p.eventMs - start >= warmEnd * 1000).length,
      peakRssMb: rssMb,
      loadStart,
      loadEnd,
      cpuSeconds: cpu.threads.main + cpu.threads.v8 + cpu.threads.other,
      stalls,
    };
  } finally {
    if (feed && feed.exitCode === null) feed.kill('SIGTERM');
    await child.stop();
  }
}

/** p50/p90/p99 of a freshness run as the bench prints them. */
function freshnessText(r: FreshnessResult, rate: number, seconds: number, warmupS: number): string {
  const ms = r.measured.map((p) => p.ms);
  const q = (x: number) => (ms.length ? fmt(percentile(ms, x)) : '–');
  const slow = r.measured.filter((p) => p.ms > 2000).map((p) => `${p.atS}s:${fmt(p.ms)}(ack ${fmt(p.ackMs)})`);
  const warm = r.warmup.map((p) => p.ms);
  const warmSlow = r.warmup.filter((p) => p.ms > 2000).map((p) => `${p.atS}s:${fmt(p.ms)}`);
  return (
    `freshness at ${fmt(rate)}/s for ${seconds} s after a ${warmupS} s warm-up: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms, max ${ms.length ? fmt(Math.max(...ms)) : '–'} ms ` +
    `over ${ms.length}/${r.probesSent} probes; warm-up probes p50 ${warm.length ? fmt(percentile(warm, 0.5)) : '–'} ms, max ${warm.length ? fmt(Math.max(...warm)) : '–'} ms (${warm.length}); ` +
    `pipeline CPU ${r.cpuSeconds.toFixed(1)} s over the measured span; load average ${r.loadStart.toFixed(2)} → ${r.loadEnd.toFixed(2)}; peak RSS ${r.peakRssMb.toFixed(0)} MiB; ` +
    `probes over 2 s (second since the feed started: ms (ms until Kafka acknowledged it)): ${slow.length ? slow.join(' ') : 'none'}; in the warm-up: ${warmSlow.length ? warmSlow.join(' ') : 'none'}; ` +
    `stalls (probes sent late, second: ms late; feed loops late or waiting for acknowledgements, second: events/ms late/ms waited): ${r.stalls.length ? r.stalls.join(' ') : 'none'}`
  );
}

/**
 * BENCH_ONLY=freshness: the steady phase alone (BENCH_STEADY_RATE, BENCH_STEADY_SECONDS, BENCH_WARMUP_SECONDS);
 * `freshness@KEY=v;KEY2=w` with extra env for the child; several specs run one after the other on fresh topics. Prints, writes no results.
 */
async function onlyFreshness(specs: string[]): Promise<void> {
  console.log(`machine probe: ${probeText(probeMachine())}`);
  for (const [n, spec] of specs.entries()) {
    const [, envSpec = ''] = spec.split('@') as [string, string?];
    const extra = Object.fromEntries(
      envSpec
        .split(';')
        .filter(Boolean)
        .map((kv) => kv.split('=') as [string, string]),
    );
    const b = await benchEnv(`fresh${n}`);
    try {
      const r = await steadyFreshness(b, `fresh${n}`, { rate: STEADY_RATE, seconds: STEADY_SECONDS, warmupS: WARMUP_SECONDS, extra });
      console.log(`${spec}: ${freshnessText(r, STEADY_RATE, STEADY_SECONDS, WARMUP_SECONDS)}`);
    } finally {
      await b.close();
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
