/**
 * Micro-benchmark of the processors' own cost, without Kafka, Redis or ClickHouse:
 * simulator traffic (producers/simulator/generator.ts) fed through the in-memory
 * ProcessorTestDriver (processors/core/test-driver.ts) the way the runner does it: batches of
 * MICRO_BATCH records across partitions (each followed by a watermark pass per partition), and a
 * flush of every partition (a commit cycle) every MICRO_CYCLE_ROWS records.
 *
 *   node --import tsx bench/processors.micro.ts
 *   MICRO_EVENTS=400000 MICRO_RATE=20000 MICRO_ONLY=qoe,churn MICRO_DIGEST=1 node --import tsx bench/processors.micro.ts
 *   MICRO_EVENTS_FILE=/tmp/events.v8 …   (generates once into the file, later runs load it)
 *
 * Prints events/s per processor (processing only: generation excluded), by wall time and by the
 * process's CPU time (user + system, GC threads included; steadier on a shared machine), rows emitted, the
 * size and serialization time of the final checkpoint. With MICRO_DIGEST=1 it also prints an
 * order-independent digest of every emitted row per table (rows and versions): two versions of a
 * processor that emit the same rows at the same commit points print the same digest.
 * With MICRO_CHECKPOINT=1 every cycle also serializes each partition's checkpoint as the runner
 * does (PartitionTask.freeze: a delta or, when the chain is long, a full base; on a version
 * without it, the full state) and prints the checkpoints' CPU time and bytes apart.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { deserialize, serialize } from 'node:v8';
import { topicSpec } from '../contracts/topics.js';
import { TrafficGenerator, type SimEvent } from '../producers/simulator/generator.js';
import { ProcessorTestDriver, type DriverRecord } from '../processors/core/test-driver.js';
import { PROCESSOR_FACTORIES, type ProcessorRole, type ProcessorSettings } from '../bin/processors.js';

const N = Number(process.env.MICRO_EVENTS ?? 400_000);
const RATE = Number(process.env.MICRO_RATE ?? 20_000);
const SEED = Number(process.env.MICRO_SEED ?? 1);
const BATCH = Number(process.env.MICRO_BATCH ?? 2_000);
const CYCLE_ROWS = Number(process.env.MICRO_CYCLE_ROWS ?? 40_000);
const DIGEST = process.env.MICRO_DIGEST === '1';
const CHECKPOINT = process.env.MICRO_CHECKPOINT === '1';
const ONLY = (process.env.MICRO_ONLY ?? 'business,qoe,churn,safety,production').split(',') as ProcessorRole[];
/** Events are cached here (v8 serialization) so runs of two code versions see the same input. */
const FILE = process.env.MICRO_EVENTS_FILE;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function generate(count: number): SimEvent[] {
  const startMs = Date.UTC(2026, 10, 20);
  const gen = new TrafficGenerator({ seed: SEED, startMs, ratePerSec: RATE });
  const out: SimEvent[] = [];
  for (let t = startMs; out.length < count; ) gen.advanceInto((t += 1000), out);
  out.length = count;
  return out;
}

const t0 = performance.now();
let records: DriverRecord[];
const loaded = !!FILE && existsSync(FILE);
if (loaded) records = deserialize(readFileSync(FILE)) as DriverRecord[];
else {
  records = generate(N).map((e) => {
    const spec = topicSpec('', e.kind);
    const key = String((e.event as unknown as Record<string, unknown>)[spec.keyField] ?? '');
    return { kind: e.kind, partition: fnv(key) % spec.partitions, event: e.event as unknown as Record<string, unknown> };
  });
  if (FILE) writeFileSync(FILE, serialize(records));
}
const spanMs = (records.at(-1)!.event.event_time as number) - (records[0]!.event.event_time as number);
console.log(
  `${loaded ? `loaded ${FILE}: ` : ''}${fmt(records.length)} events (${(spanMs / 1000).toFixed(0)} s of event time) in ${((performance.now() - t0) / 1000).toFixed(1)} s; batch ${BATCH}, cycle ${CYCLE_ROWS} records`,
);

const settings = { ch: undefined, graceMs: 60_000, allowedLatenessMs: 5_000 } as unknown as ProcessorSettings;
for (const role of ONLY) {
  const p = PROCESSOR_FACTORIES[role]!(settings);
  const mine = records.filter((r) => p.kinds.includes(r.kind));
  // Events are deep-copied per run: processors (raw-store) may take ownership of the objects.
  const input = mine.map((r) => ({ ...r, event: structuredClone(r.event) }));
  const driver = new ProcessorTestDriver(p);
  const digest = new Map<string, { rows: number; sum: number; xor: number }>();
  let rows = 0;
  const drain = () => {
    for (const [table, list] of driver.emitted) {
      rows += list.length;
      if (DIGEST) {
        let d = digest.get(table);
        if (!d) digest.set(table, (d = { rows: 0, sum: 0, xor: 0 }));
        for (const r of list) {
          const h = fnv(JSON.stringify(r));
          d.rows++;
          d.sum = (d.sum + h) % 4294967296;
          d.xor = (d.xor ^ Math.imul(h, 2654435761)) >>> 0;
        }
      }
    }
    driver.emitted.clear();
  };
  let busyMs = 0;
  let cpuUs = 0;
  let sinceCycle = 0;
  const ck = { cpuUs: 0, bytes: 0, count: 0, bases: 0 };
  /** The runner's checkpoint of every partition with new records (the string it sends to Redis). */
  const checkpointAll = () => {
    const c = process.cpuUsage();
    const tasks = (
      driver as unknown as {
        tasks: Map<string, { next: number; frozen: number; snapshot(): unknown; freeze?: (l: number, r: number) => { state: string; deltaFrom?: number } }>;
      }
    ).tasks;
    for (const t of tasks.values()) {
      if (t.next === t.frozen) continue;
      const f = t.freeze ? t.freeze(64, 1) : { state: JSON.stringify(t.snapshot()) };
      t.frozen = t.next;
      ck.bytes += f.state.length;
      ck.count++;
      if (f.deltaFrom === undefined) ck.bases++;
    }
    const dc = process.cpuUsage(c);
    ck.cpuUs += dc.user + dc.system;
  };
  for (let i = 0; i < input.length; i += BATCH) {
    const batch = input.slice(i, i + BATCH);
    const t = performance.now();
    const c = process.cpuUsage();
    driver.pipe(batch);
    sinceCycle += batch.length;
    let cycle = false;
    if (sinceCycle >= CYCLE_ROWS || i + BATCH >= input.length) {
      driver.flush();
      sinceCycle = 0;
      cycle = true;
    }
    busyMs += performance.now() - t;
    const dc = process.cpuUsage(c);
    cpuUs += dc.user + dc.system;
    if (cycle && CHECKPOINT) checkpointAll();
    drain();
  }
  const ts = performance.now();
  const ckpt = driver.checkpoint();
  const bytes = JSON.stringify([...ckpt.values()]).length;
  const ckptMs = performance.now() - ts;
  drain();
  console.log(
    `${role.padEnd(10)} ${fmt(input.length).padStart(9)} events  ${fmt(input.length / (busyMs / 1000)).padStart(9)} events/s wall (${(busyMs / 1000).toFixed(2)} s)  ${fmt(input.length / (cpuUs / 1e6)).padStart(9)} events/CPU-s (${(cpuUs / 1e6).toFixed(2)} s)  ${fmt(rows).padStart(8)} rows  checkpoint ${(bytes / 1e6).toFixed(1)} MB in ${fmt(ckptMs)} ms`,
  );
  if (CHECKPOINT)
    console.log(
      `  checkpoints: ${ck.count} (${ck.bases} full) ${(ck.bytes / 1e6).toFixed(1)} MB, ${(ck.cpuUs / 1e6).toFixed(2)} CPU-s (${(ck.cpuUs / 1e6 / (input.length / 1e6)).toFixed(2)} CPU-s per million events)`,
    );
  if (DIGEST)
    for (const [table, d] of [...digest].sort((a, b) => a[0].localeCompare(b[0])))
      console.log(`  digest ${table}: ${d.rows} rows ${d.sum.toString(16)}/${d.xor.toString(16)}`);
}
