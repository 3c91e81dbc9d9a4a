/** processors/core/cycle-policy.ts: caught-up rule, the spread checkpoint schedule and the time-sliced idle cycles, with a fake clock. */
import { describe, expect, it } from 'vitest';
import {
  checkpointSpacingMs,
  dueCheckpoints,
  idleCycleDue,
  isCaughtUp,
  takeIdleCheckpoints,
  type CaughtUpInput,
  type IdleCycleInput,
} from '../../processors/core/cycle-policy.js';

const base: CaughtUpInput = { lag: 0, fetched: 0, batch: 2_000, consumed: 0, newestRecordMs: null, nowMs: 100_000, maxRecordAgeMs: 3_000 };

describe('isCaughtUp', () => {
  it('by the offsets: no more left than one cycle consumed or one batch', () => {
    expect(isCaughtUp({ ...base, lag: 2_000 })).toBe(true);
    expect(isCaughtUp({ ...base, lag: 15_000, consumed: 16_000 })).toBe(true);
    expect(isCaughtUp({ ...base, lag: 30_000, consumed: 16_000 })).toBe(false);
    // High watermarks not known yet: a short fetch is caught up, a full one is not.
    expect(isCaughtUp({ ...base, lag: null, fetched: 500 })).toBe(true);
    expect(isCaughtUp({ ...base, lag: null, fetched: 2_000 })).toBe(false);
  });

  it('a stall of a few seconds leaves a backlog of fresh records: still caught up', () => {
    // 3 s of traffic at 10,000/s behind, the newest record consumed 2.6 s old.
    expect(isCaughtUp({ ...base, lag: 30_000, consumed: 8_000, newestRecordMs: 100_000 - 2_600 })).toBe(true);
    expect(isCaughtUp({ ...base, lag: 30_000, consumed: 8_000, newestRecordMs: 100_000 - 3_000 })).toBe(true);
    // Further behind (an overload: the records consumed are seconds old): rows are held back again.
    expect(isCaughtUp({ ...base, lag: 30_000, consumed: 8_000, newestRecordMs: 100_000 - 3_001 })).toBe(false);
  });

  it('a backlog of old records (catch-up, replay) is behind; 0 turns the age rule off', () => {
    expect(isCaughtUp({ ...base, lag: 1_900_000, consumed: 40_000, newestRecordMs: 100_000 - 120_000 })).toBe(false);
    expect(isCaughtUp({ ...base, lag: 30_000, consumed: 8_000, newestRecordMs: 100_000 - 1_000, maxRecordAgeMs: 0 })).toBe(false);
    // Nothing consumed since the last cycle: the offsets decide.
    expect(isCaughtUp({ ...base, lag: 30_000, consumed: 0, newestRecordMs: null })).toBe(false);
  });
});

describe('dueCheckpoints', () => {
  const slots = (ats: number[]) => ats.map((savedAtMs, i) => ({ savedAtMs, i }));

  it('small state (spacing = one cycle): every partition at every cycle', () => {
    const s = slots([0, 0, 0, 0, 0, 0]);
    expect(dueCheckpoints(s, 1_000, 1_000, 1_000).map((x) => x.i)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('nothing due before the spacing has passed', () => {
    expect(dueCheckpoints(slots([0, 500, 900]), 9_999, 10_000, 1_000)).toEqual([]);
  });

  it('partitions saved together are spread over the cycles, oldest first, each once per spacing', () => {
    // Six partitions, all last saved at 0; checkpoints 10 s apart; a cycle every second.
    const parts = slots([0, 0, 0, 0, 0, 0]);
    const perCycle: number[][] = [];
    const savedAt: number[][] = parts.map(() => []);
    for (let now = 1_000; now <= 60_000; now += 1_000) {
      const chosen = dueCheckpoints(parts, now, 10_000, 1_000);
      perCycle.push(chosen.map((x) => x.i));
      for (const c of chosen) {
        c.savedAtMs = now;
        savedAt[c.i]!.push(now);
      }
    }
    // At most ceil(6 × 1 s / 10 s) = 1 partition per cycle.
    expect(Math.max(...perCycle.map((c) => c.length))).toBe(1);
    // Each partition is saved about once per spacing (never twice within it), none starved.
    for (const times of savedAt) {
      expect(times.length).toBeGreaterThanOrEqual(4);
      for (let k = 1; k < times.length; k++) expect(times[k]! - times[k - 1]!).toBeGreaterThanOrEqual(10_000);
      for (let k = 1; k < times.length; k++) expect(times[k]! - times[k - 1]!).toBeLessThanOrEqual(16_000);
    }
    // Once spread, the saves stay spread: one per cycle in the last 40 s, never two.
    expect(perCycle.slice(20).filter((c) => c.length === 1).length).toBeGreaterThanOrEqual(20);
  });

  it('the share follows the time since the last cycle (a long cycle takes more)', () => {
    const s = slots([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(dueCheckpoints(s, 20_000, 10_000, 1_000)).toHaveLength(1);
    expect(dueCheckpoints(s, 20_000, 10_000, 3_000)).toHaveLength(3);
    expect(dueCheckpoints(s, 20_000, 10_000, 60_000)).toHaveLength(10);
  });
});

describe('checkpointSpacingMs', () => {
  it('at least the interval, else ratio × the cost of a round, at most the cap', () => {
    expect(checkpointSpacingMs(20, 1_000, 10, 30_000)).toBe(1_000);
    expect(checkpointSpacingMs(900, 1_000, 10, 30_000)).toBe(9_000);
    expect(checkpointSpacingMs(9_000, 1_000, 10, 30_000)).toBe(30_000);
  });
});

describe('idleCycleDue', () => {
  const idle: IdleCycleInput = { fetched: 0, unsaved: true, nowMs: 10_000, lastSnapshotMs: 7_000, intervalMs: 2_000, cutShort: false };

  it('an empty fetch with unsaved work, once the last checkpoint is an interval old', () => {
    expect(idleCycleDue(idle)).toBe(true);
    expect(idleCycleDue({ ...idle, lastSnapshotMs: 8_000 })).toBe(true);
    expect(idleCycleDue({ ...idle, lastSnapshotMs: 8_001 })).toBe(false);
  });

  it('never after a fetch with records, nor with nothing unsaved', () => {
    expect(idleCycleDue({ ...idle, fetched: 1 })).toBe(false);
    expect(idleCycleDue({ ...idle, fetched: 1, cutShort: true })).toBe(false);
    expect(idleCycleDue({ ...idle, unsaved: false })).toBe(false);
    expect(idleCycleDue({ ...idle, unsaved: false, cutShort: true })).toBe(false);
  });

  it('a round its budget cut short goes on at the next empty fetch, however recent the last checkpoint', () => {
    expect(idleCycleDue({ ...idle, lastSnapshotMs: 9_990, cutShort: true })).toBe(true);
    expect(idleCycleDue({ ...idle, lastSnapshotMs: 9_990, cutShort: false })).toBe(false);
  });
});

describe('takeIdleCheckpoints', () => {
  /** Partitions whose serialization takes `costs` ms each (the fake clock advances by it in `take`). */
  const rig = (costs: number[], savedAt: number[] = costs.map((_, i) => i)) => {
    let now = 0;
    const parts = costs.map((cost, i) => ({ i, cost, savedAtMs: savedAt[i]!, freezeMs: 0, idleRound: 0 }));
    const clock = () => now;
    const take = (p: (typeof parts)[number]) => {
      now += p.cost;
      p.freezeMs = p.cost;
    };
    return { parts, clock, take, at: () => now };
  };

  it("oldest checkpoint first, while the measured time plus the next one's last cost fits the budget", () => {
    const { parts, clock, take } = rig([30, 30, 30, 30], [400, 100, 300, 200]);
    for (const p of parts) p.freezeMs = p.cost; // costs known from the last saves
    const r = takeIdleCheckpoints(parts, 1, 100, clock, take);
    // 100 (30 ms) + 200 (30) + 300 (30) = 90 ms; 400 would make 120 > 100.
    expect(r.taken.map((p) => p.savedAtMs)).toEqual([100, 200, 300]);
    expect(r.left.map((p) => p.savedAtMs)).toEqual([400]);
  });

  it('at least one partition, however large, so every cycle makes progress', () => {
    const { parts, clock, take, at } = rig([900, 10]);
    parts[0]!.freezeMs = 900;
    const r = takeIdleCheckpoints(parts, 1, 50, clock, take);
    expect(r.taken.map((p) => p.i)).toEqual([0]);
    expect(r.left.map((p) => p.i)).toEqual([1]);
    expect(at()).toBe(900);
  });

  it('costs not known yet (no save so far): taken while time is left, so at most one partition over the budget', () => {
    const { parts, clock, take, at } = rig([20, 20, 20, 20, 20, 20, 20]);
    const r = takeIdleCheckpoints(parts, 1, 50, clock, take);
    // After 3 × 20 = 60 ms > 50 the fourth is not started.
    expect(r.taken).toHaveLength(3);
    expect(r.left).toHaveLength(4);
    expect(at()).toBe(60);
  });

  it('back-to-back idle cycles go round every partition once, oldest first, each cycle within budget (+ one partition), then the round is complete', () => {
    // 40 partitions of a large state: 1.5 s of serialization in all, 10-70 ms each.
    const costs = Array.from({ length: 40 }, (_, i) => 10 + ((i * 37) % 61));
    const { parts, clock, take } = rig(
      costs,
      costs.map((_, i) => 1_000 + ((i * 13) % 40)),
    );
    for (const p of parts) p.freezeMs = p.cost;
    const round = 7;
    const order: number[] = [];
    let cycles = 0;
    let left = parts.length;
    while (left > 0) {
      const t0 = clock();
      const r = takeIdleCheckpoints(parts, round, 100, clock, (p) => {
        take(p);
        p.idleRound = round;
        order.push(p.savedAtMs);
      });
      cycles++;
      expect(r.taken.length).toBeGreaterThanOrEqual(1);
      // Each cycle's pause stays within the budget (costs known: never over it).
      expect(clock() - t0).toBeLessThanOrEqual(100);
      left = r.left.length;
      expect(cycles).toBeLessThan(100);
    }
    expect(order).toHaveLength(40);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(cycles).toBeGreaterThanOrEqual(Math.ceil(costs.reduce((a, b) => a + b, 0) / 100));
    // The round is complete: every partition taken once; under live traffic they have unsaved work
    // again at once, but the same round takes none of them a second time.
    expect(takeIdleCheckpoints(parts, round, 100, clock, take)).toEqual({ taken: [], left: [] });
    // A new round starts over with all of them.
    expect(takeIdleCheckpoints(parts, round + 1, 10_000, clock, take).taken).toHaveLength(40);
  });
});
