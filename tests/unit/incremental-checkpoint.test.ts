/**
 * Incremental checkpoints without Redis (issue 19): the keyed-state store's change tracking, and
 * the processors' deltas through the in-memory driver. A state restored from a base and its
 * deltas must be the live state exactly (the same entries, values, pending rows, tombstones), and
 * a run restored from a chain in the middle must write the same tables as a straight run. The
 * Redis side (commit, fencing, chain order, compaction, compat) is tests/integration/checkpoint-store.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { EmitPolicy, KeyedStore, type KeyedChanges, type KeyedEntry } from '../../processors/core/keyed-store.js';
import { ProcessorTestDriver, type DriverRecord } from '../../processors/core/test-driver.js';
import type { Processor } from '../../processors/core/processor.js';
import { qoeProcessor } from '../../processors/qoe/qoe.processor.js';
import { businessProcessor } from '../../processors/business/business.processor.js';
import { safetyProcessor } from '../../processors/safety/safety.processor.js';
import { churnProcessor } from '../../processors/churn/churn.processor.js';
import { TrafficGenerator } from '../../producers/simulator/generator.js';
import { topicSpec } from '../../contracts/topics.js';
import { partitionOf } from '../helpers/golden.js';

interface V {
  last: number;
  end: number | null;
  n: number;
  closedAt?: number;
}

/** QoE-like: closes at end + 10 (or last + 100), forgotten 50 after it closed; tombstones for 200. */
const mk = () =>
  new KeyedStore<V>(
    {
      closeAt: (v) => (v.end !== null ? v.end + 10 : v.last + 100),
      forgetAt: (v) => v.closedAt! + 50,
      onClose: (e, d) => void (e.value.closedAt = d),
      tombstone: { time: (v) => v.last, until: (t) => t + 200 },
    },
    new EmitPolicy(60),
  );

/** A replica's restore, as a processor's applyDelta does it. */
function apply(replica: KeyedStore<V>, ch: KeyedChanges<V>): void {
  for (const k of ch.deletes) replica.remove(k);
  for (const e of ch.upserts) replica.restore(e.key, structuredClone(e.value), e.dirty, e.closed);
  for (const k of ch.tombstonesRemoved) replica.restoreTombstone(k, undefined);
  for (const [k, t] of ch.tombstones) replica.restoreTombstone(k, t);
}

const content = (s: KeyedStore<V>) => ({
  entries: [...s.entries()].map((e) => [e.key, e.value, e.dirty, e.closed]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  tombstones: [...s.tombstones].sort((a, b) => a[0].localeCompare(b[0])),
});

const rowsOf = () => {
  const rows: string[] = [];
  return { rows, emit: (e: KeyedEntry<V>, final: boolean) => void rows.push(`${e.key}=${e.value.n}${final ? 'F' : ''}`) };
};

describe('KeyedStore change tracking', () => {
  it('lists what changed since the last checkpoint: a replica fed the changes has the same content, rows and deadlines', () => {
    const live = mk();
    const replica = mk();
    live.add('a', { last: 0, end: null, n: 1 });
    live.add('b', { last: 0, end: null, n: 1 });
    live.add('c', { last: 5, end: null, n: 1 });
    apply(replica, live.takeChanges()!);
    expect(content(replica)).toEqual(content(live));
    // b ends (deadline earlier), a's row is written (dirty → clean), c changes in place.
    const b = live.entry('b')!;
    b.value.end = 20;
    b.value.n++;
    live.touch(b);
    live.flushOpen(() => undefined);
    const c = live.entry('c')!;
    c.value.last = 40;
    live.changed(c);
    const ch = live.takeChanges()!;
    expect(ch.upserts.map((e) => e.key).sort()).toEqual(['a', 'b', 'c']);
    apply(replica, ch);
    expect(content(replica)).toEqual(content(live));
    // Nothing changed since: an empty delta.
    expect(live.takeChanges()).toEqual({ cleared: false, upserts: [], deletes: [], tombstones: [], tombstonesRemoved: [] });
    // Both close and forget at the same watermarks and write the same rows.
    for (const wm of [30, 80, 150, 400]) {
      const l = rowsOf();
      const r = rowsOf();
      live.advance(wm, l.emit);
      replica.advance(wm, r.emit);
      expect(r.rows).toEqual(l.rows);
      apply(replica, live.takeChanges()!);
      // The replica's own changes are not a checkpoint's business.
      replica.clearChanges();
      expect(content(replica)).toEqual(content(live));
    }
  });

  it('a key forgotten then added again in one interval is an upsert of the new entry, not a delete; forgotten and not re-added is a delete with its tombstone', () => {
    const live = mk();
    const replica = mk();
    live.add('x', { last: 0, end: 0, n: 1 });
    live.add('y', { last: 0, end: 0, n: 1 });
    apply(replica, live.takeChanges()!);
    // Closed at 10, forgotten at 60: both leave tombstones.
    live.advance(100, () => undefined);
    expect(live.has('x')).toBe(false);
    expect(live.tombstones.has('x')).toBe(true);
    // x comes back (a new state: its tombstone goes).
    live.add('x', { last: 150, end: null, n: 7 });
    const ch = live.takeChanges()!;
    expect(ch.deletes).toEqual(['y']);
    expect(ch.upserts.map((e) => [e.key, e.value.n])).toEqual([['x', 7]]);
    expect(ch.tombstones).toEqual([['y', 0]]);
    expect(ch.tombstonesRemoved).toEqual(['x']);
    apply(replica, ch);
    expect(content(replica)).toEqual(content(live));
    // The tombstone of y expires at 200 in both.
    live.advance(201, () => undefined);
    replica.advance(201, () => undefined);
    apply(replica, live.takeChanges()!);
    replica.clearChanges();
    expect(content(replica)).toEqual(content(live));
    expect(live.tombstones.has('y')).toBe(false);
  });

  it('stops tracking (and says a full checkpoint is due) when the changes outgrow the state, and starts again after clearChanges', () => {
    const s = new KeyedStore<{ n: number }>({});
    const e = s.add('k', { n: 0 });
    s.takeChanges();
    // One key, changed many times: listed once.
    for (let i = 0; i < 5_000; i++) s.markDirty(e);
    expect(s.takeChanges()!.upserts).toHaveLength(1);
    // More removed keys than max(1024, 2 × entries): untracked.
    const t = new KeyedStore<{ last: number }>({ forgetAt: (v) => v.last });
    for (let i = 0; i < 1_500; i++) t.add(`k${i}`, { last: i });
    expect(t.takeChanges()!.upserts).toHaveLength(1_500);
    t.advance(1_200);
    expect(t.tracked).toBe(false);
    expect(t.takeChanges()).toBeNull();
    expect(t.tracked).toBe(true);
    t.advance(1_300);
    expect(t.takeChanges()!.deletes).toHaveLength(100);
  });
});

/** Deep copy with entry lists (arrays of [key, …]) in key order: Map order is not part of the state. */
function canon(x: unknown): unknown {
  if (Array.isArray(x)) {
    const out = x.map(canon);
    const keyed = out.length > 0 && out.every((y) => Array.isArray(y) && (typeof y[0] === 'string' || typeof y[0] === 'number'));
    return keyed ? out.sort((a, b) => JSON.stringify((a as unknown[])[0]).localeCompare(JSON.stringify((b as unknown[])[0]))) : out;
  }
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, canon(v)]));
  return x;
}

const START = Date.UTC(2026, 10, 20, 12);
const MIN = 60_000;

/** Minutes of simulated traffic (every kind `p` reads), as driver records over 2 partitions by topic key. */
function traffic(p: Processor<unknown>, minutes: number, seed = 5): DriverRecord[][] {
  const gen = new TrafficGenerator({ seed, startMs: START, ratePerSec: 40, diurnal: false, moderationCasesPerHour: 2_000 });
  const out: DriverRecord[][] = [];
  for (let m = 1; m <= minutes; m++) {
    out.push(
      gen
        .advance(START + m * MIN)
        .filter((e) => p.kinds.includes(e.kind))
        .map((e) => {
          const ev = e.event as unknown as Record<string, unknown>;
          return {
            kind: e.kind,
            event: ev,
            partition: partitionOf(String(ev[topicSpec('', e.kind).keyField]), 2),
            timestampMs: ev.event_time as number,
          };
        }),
    );
  }
  return out;
}

/** The tasks' full snapshots; lastRecordAtMs is processing time (a restore sets it to now, full or not). */
const snapshots = (d: ProcessorTestDriver<unknown>) =>
  new Map(
    [...d.partitionTasks()].map(([k, t]) => {
      const snap = JSON.parse(JSON.stringify(t.snapshot())) as { time: { lastRecordAtMs?: number } };
      delete snap.time.lastRecordAtMs;
      return [k, canon(snap)];
    }),
  );

/** Key columns of each table (their ORDER BY, less src_topic and src_partition, which the driver adds). */
const KEYS: Record<string, string[]> = {
  qoe_views: ['view_id'],
  qoe_minute: ['window_start', 'cdn', 'device_category', 'country', 'asn', 'content_id'],
  kpi_payments_1m: ['window_start', 'method', 'plan', 'og_tier', 'country'],
  kpi_gifts_1m: ['window_start', 'creator_id', 'sender_account_id'],
  account_activity_1h: ['hour', 'account_id'],
  safety_events_1m: ['window_start', 'event_type', 'policy', 'severity', 'detection_source', 'action_type', 'outcome', 'target_type'],
  safety_cases: ['case_id'],
  churn_account_daily: ['day', 'account_id'],
  late_events: ['processor', 'src_offset'],
};

/** Every table as ReplacingMergeTree FINAL shows it (the highest version per key), without versions. */
function tables(d: ProcessorTestDriver<unknown>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const name of d.emitted.keys()) {
    const keys = KEYS[name];
    if (!keys) throw new Error(`no key columns for ${name}`);
    out[name] = d
      .table(name, keys)
      .map((r) =>
        JSON.stringify(
          Object.entries(r)
            .filter(([c]) => c !== 'version')
            .sort(),
        ),
      )
      .sort();
  }
  return out;
}

const processors: Array<[string, () => Processor<unknown>]> = [
  ['qoe', () => qoeProcessor()],
  ['business', () => businessProcessor({ lateness: { payments: 5 * MIN } })],
  ['safety', () => safetyProcessor({ caseHorizonMs: 20 * MIN })],
  ['churn', () => churnProcessor()],
];

describe.each(processors)('%s: incremental checkpoints', (_name, make) => {
  const batches = traffic(make(), 40);

  it('a base and its deltas restore the live state exactly, at every checkpoint, across compactions', () => {
    const live = new ProcessorTestDriver(make());
    let compactions = 0;
    let maxLinks = 0;
    let prevLinks = new Map<string, number>();
    for (const [i, batch] of batches.entries()) {
      live.nowMs = START + (i + 1) * MIN;
      live.pipe(batch);
      // Short chains (4 links) so that compaction happens several times in the run.
      const chains = live.checkpointIncremental(4, 1);
      const links = live.chainLengths();
      for (const [k, n] of links) {
        if (n < (prevLinks.get(k) ?? 0)) compactions++;
        maxLinks = Math.max(maxLinks, n);
      }
      prevLinks = links;
      const restored = new ProcessorTestDriver(make());
      restored.nowMs = live.nowMs;
      restored.restore(chains);
      // Compared before snapshots: a snapshot resets the tracking of the live driver's next delta,
      // which is fine here since both are compared in full.
      expect(snapshots(restored)).toEqual(snapshots(live));
    }
    expect(maxLinks).toBe(4);
    expect(compactions).toBeGreaterThan(0);
  });

  it('a crash in the middle, restored from base + deltas, writes the same tables as a straight run', () => {
    const straight = new ProcessorTestDriver(make());
    for (const [i, b] of batches.entries()) {
      straight.nowMs = START + (i + 1) * MIN;
      straight.pipe(b);
      straight.checkpointIncremental();
    }
    straight.flush();
    const crashed = new ProcessorTestDriver(make());
    let chains = new Map();
    for (const [i, b] of batches.entries()) {
      crashed.nowMs = START + (i + 1) * MIN;
      crashed.pipe(b);
      if (i % 7 === 6) {
        // Work after the checkpoint is lost; the restore processes the log after it again.
        crashed.restore(chains);
      }
      chains = crashed.checkpointIncremental();
    }
    crashed.flush();
    expect([...crashed.chainLengths().values()].some((n) => n > 0)).toBe(true);
    expect(tables(crashed)).toEqual(tables(straight));
  });
});
