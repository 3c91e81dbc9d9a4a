/** processors/core/cycle-policy.ts: caught-up rule and the spread checkpoint schedule, with a fake clock. */
import { describe, expect, it } from 'vitest';
import { checkpointSpacingMs, dueCheckpoints, isCaughtUp, type CaughtUpInput } from '../../processors/core/cycle-policy.js';

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
