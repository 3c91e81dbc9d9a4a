/**
 * How fast this machine is right now, in three numbers the pipeline's speed depends on. The
 * benchmarks print them beside their results, because the same machine type here has measured
 * very different memory speeds on different days (bench/RESULTS.md), while plain arithmetic
 * stays the same:
 * - random load: ns per dependent load chasing a random cycle through 128 MiB (cache and TLB
 *   misses: the cost of hash-map lookups and object graphs far larger than the caches, as the
 *   processors' per-view and per-account state is);
 * - first touch: ms to fill 1 GiB of memory the process has just been given (page faults: the
 *   cost of a heap that grows), and the same fill again (warm);
 * - arithmetic: ms for 300 M steps of an integer loop in registers (no memory at all).
 *
 *   node --import tsx bench/machine-probe.ts     (prints the JSON of one probe)
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface MachineProbe {
  randomLoadNs: number;
  firstTouchMsPerGiB: number;
  warmFillMsPerGiB: number;
  arithmeticMs: number;
}

function randomLoadNs(mib: number, loads: number): number {
  const n = (mib * 1024 * 1024) / 4;
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) next[i] = i;
  // Sattolo's shuffle: one cycle through every slot, so the chase visits all of them.
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * i);
    const t = next[i]!;
    next[i] = next[j]!;
    next[j] = t;
  }
  let p = 0;
  for (let i = 0; i < loads / 10; i++) p = next[p]!; // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < loads; i++) p = next[p]!;
  const ns = Number(process.hrtime.bigint() - t0) / loads;
  if (p < 0) throw new Error('unreachable'); // keeps the chase from being optimized away
  return ns;
}

function fillMs(): { first: number; warm: number } {
  const b = Buffer.allocUnsafeSlow(1024 ** 3);
  let t0 = performance.now();
  b.fill(1);
  const first = performance.now() - t0;
  t0 = performance.now();
  b.fill(2);
  return { first, warm: performance.now() - t0 };
}

function arithmeticMs(): number {
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    let x = 0;
    for (let i = 0; i < 300_000_000; i++) x = (x + (i % 7)) | 0;
    if (x === -1) throw new Error('unreachable');
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

export function probeHere(): MachineProbe {
  const fill = fillMs();
  return { randomLoadNs: randomLoadNs(128, 4_000_000), firstTouchMsPerGiB: fill.first, warmFillMsPerGiB: fill.warm, arithmeticMs: arithmeticMs() };
}

/** Runs the probe in a fresh process (its memory is not the caller's heap). Takes a few seconds. */
export function probeMachine(): MachineProbe {
  const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { encoding: 'utf8' });
  return JSON.parse(out) as MachineProbe;
}

export function probeText(p: MachineProbe): string {
  return `random load ${p.randomLoadNs.toFixed(0)} ns, first touch ${p.firstTouchMsPerGiB.toFixed(0)} ms/GiB (warm ${p.warmFillMsPerGiB.toFixed(0)}), arithmetic ${p.arithmeticMs.toFixed(0)} ms`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(`${JSON.stringify(probeHere())}\n`);
