/**
 * Golden files: tests/golden/<name>/input.jsonl (one {"kind", "event"} per line, in produce
 * order) and expected.json (rows worked out by hand). Helpers shared by the in-memory and the
 * Kafka-based golden runs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { topicSpec, type EventKind } from '../../contracts/topics.js';
import type { DriverRecord } from '../../processors/core/test-driver.js';
import { REPO_ROOT } from './env.js';

export interface GoldenRecord {
  kind: EventKind;
  event: Record<string, unknown>;
}

export function goldenDir(name: string): string {
  return join(REPO_ROOT, 'tests', 'golden', name);
}

export function loadGoldenInput(name: string): GoldenRecord[] {
  return readFileSync(join(goldenDir(name), 'input.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as GoldenRecord);
}

export function loadGoldenExpected<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(join(goldenDir(name), 'expected.json'), 'utf8')) as T;
}

/** A stable key → partition mapping for in-memory runs (FNV-1a). */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

/** Assigns each golden record a partition by its topic key, as Kafka would. */
export function toDriverRecords(input: GoldenRecord[], partitions: number): DriverRecord[] {
  return input.map((r) => {
    const keyField = topicSpec('', r.kind).keyField;
    return { kind: r.kind, event: r.event, partition: partitionOf(String(r.event[keyField]), partitions) };
  });
}

/** Sums numeric columns of rows grouped by key columns (partial rows of source partitions). */
export function sumBy(
  rows: Record<string, unknown>[],
  keyCols: string[],
  valueCols: string[],
  reducer: Record<string, 'sum' | 'max'> = {},
): Record<string, unknown>[] {
  const out = new Map<string, Record<string, unknown>>();
  for (const r of rows) {
    const k = JSON.stringify(keyCols.map((c) => r[c]));
    let acc = out.get(k);
    if (!acc) {
      acc = Object.fromEntries(keyCols.map((c) => [c, r[c]]));
      for (const v of valueCols) acc[v] = 0;
      out.set(k, acc);
    }
    for (const v of valueCols) {
      const x = Number(r[v]);
      acc[v] = reducer[v] === 'max' ? Math.max(acc[v] as number, x) : (acc[v] as number) + x;
    }
  }
  return [...out.values()].sort((a, b) => JSON.stringify(keyCols.map((c) => a[c])).localeCompare(JSON.stringify(keyCols.map((c) => b[c]))));
}

export function sortRows(rows: Record<string, unknown>[], keyCols: string[]): Record<string, unknown>[] {
  return [...rows].sort((a, b) => JSON.stringify(keyCols.map((c) => a[c])).localeCompare(JSON.stringify(keyCols.map((c) => b[c]))));
}
