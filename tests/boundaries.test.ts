/**
 * Import boundaries between the folders (docs/ARCHITECTURE.md): pure contracts import no I/O,
 * a processor never imports another processor, sinks do not reach into processors, and so on.
 * Reads every TypeScript file and checks its relative imports.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/env.js';

const TOP = ['contracts', 'lib', 'producers', 'processors', 'sinks', 'api', 'alerts', 'stack', 'grafana', 'bin', 'bench', 'tests'];

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

interface Edge {
  from: string;
  to: string;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const top of TOP) {
    for (const f of files(join(REPO_ROOT, top))) {
      const src = readFileSync(f, 'utf8');
      for (const m of src.matchAll(/(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2]!;
        out.push({ from: relative(REPO_ROOT, f), to: relative(REPO_ROOT, resolve(dirname(f), spec)) });
      }
    }
  }
  return out;
}

const topOf = (p: string) => p.split('/')[0]!;
const ALLOWED: Record<string, string[]> = {
  contracts: ['contracts'],
  lib: ['lib', 'contracts'],
  sinks: ['sinks', 'lib', 'contracts'],
  producers: ['producers', 'lib', 'contracts'],
  processors: ['processors', 'lib', 'contracts', 'sinks', 'bin'],
  alerts: ['alerts', 'lib', 'contracts', 'sinks'],
  api: ['api', 'lib', 'contracts', 'sinks', 'producers', 'alerts'],
  stack: ['stack', 'lib', 'contracts'],
  grafana: ['grafana', 'lib', 'contracts'],
};

describe('import boundaries', () => {
  const all = edges();

  it('finds the imports it checks', () => {
    expect(all.length).toBeGreaterThan(200);
  });

  it.each(Object.keys(ALLOWED))('%s imports only what it may', (top) => {
    const bad = all.filter((e) => topOf(e.from) === top && !ALLOWED[top]!.includes(topOf(e.to)));
    // processors/replay.cli.ts is an entry point: it may use bin/processors.ts's role table.
    const real = bad.filter((e) => !(top === 'processors' && e.from === 'processors/replay.cli.ts'));
    expect(real).toEqual([]);
    if (top === 'processors') expect(bad.every((e) => e.from === 'processors/replay.cli.ts')).toBe(true);
  });

  it('a processor never imports another processor', () => {
    const bad = all.filter((e) => {
      const [a, pa] = e.from.split('/');
      const [b, pb] = e.to.split('/');
      return (
        a === 'processors' &&
        b === 'processors' &&
        pa !== pb &&
        pb !== 'core' &&
        pa !== 'core' &&
        !e.from.startsWith('processors/replay') &&
        !e.to.startsWith('processors/replay')
      );
    });
    expect(bad).toEqual([]);
  });

  it('the processing core and the contracts import no I/O client', () => {
    const pure = [
      'processors/core/windows.ts',
      'processors/core/watermark.ts',
      'processors/core/dedup.ts',
      'processors/core/processor.ts',
      'processors/core/partition-task.ts',
      'processors/core/test-driver.ts',
      ...files(join(REPO_ROOT, 'contracts')).map((f) => relative(REPO_ROOT, f)),
    ];
    for (const f of pure) {
      const src = readFileSync(join(REPO_ROOT, f), 'utf8');
      expect(src, f).not.toMatch(/from ['"](node-rdkafka|kafkajs|ioredis|@clickhouse\/client|chdb[^'"]*|fastify|node:http|node:net)['"]/);
      expect(src, f).not.toMatch(/Date\.now\(\)/);
    }
  });
});
