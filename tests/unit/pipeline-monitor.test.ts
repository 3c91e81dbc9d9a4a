/** LagTracker (processors/core/pipeline-monitor.ts): lag in records and seconds, stalls, watermark delay, on an injected clock. */
import { describe, expect, it } from 'vitest';
import { LagTracker, tpKey, type CheckpointSeen } from '../../processors/core/pipeline-monitor.js';
import { NO_TIME } from '../../processors/core/watermark.js';

const T = 't.orders';
const ck = (offset: number | null, savedAtMs: number | null, watermarkMs: number | null = null): CheckpointSeen => ({
  processor: 'business',
  topic: T,
  partition: 0,
  offset,
  watermarkMs,
  savedAtMs,
});
const hw = (high: number, low = 0) => new Map([[tpKey(T, 0), { low, high }]]);

describe('LagTracker', () => {
  it('a processor that keeps up: lag follows the log, the stall stays at the checkpoint spacing', () => {
    const tr = new LagTracker();
    expect(tr.observe(0, [ck(10, 0)], hw(10))[0]).toMatchObject({ lagRecords: 0, lagSeconds: 0, stalledSeconds: 0 });
    // 15 s later 50 records arrived, the checkpoint moved 2 s ago to 40.
    expect(tr.observe(15_000, [ck(40, 13_000)], hw(60))[0]).toMatchObject({ lagRecords: 20, lagSeconds: 0, stalledSeconds: 0 });
    expect(tr.observe(30_000, [ck(60, 28_000)], hw(80))[0]).toMatchObject({ lagRecords: 20, lagSeconds: 0, stalledSeconds: 0 });
    // The records beyond 60 arrived by the sample at 30 s: 3 s later they are 3 s old, the checkpoint 5 s.
    expect(tr.observe(33_000, [ck(60, 28_000)], hw(80))[0]).toMatchObject({ lagRecords: 20, lagSeconds: 3, stalledSeconds: 3 });
  });

  it('a processor that stopped: lag and stall grow from when the first waiting record arrived', () => {
    const tr = new LagTracker();
    tr.observe(0, [ck(100, 0)], hw(100));
    tr.observe(10_000, [ck(100, 0)], hw(100)); // nothing new: caught up, 10 s since its last save
    expect(tr.observe(10_000, [ck(100, 0)], hw(100))[0]!.stalledSeconds).toBe(0);
    tr.observe(20_000, [ck(100, 0)], hw(130));
    const h = tr.observe(80_000, [ck(100, 0)], hw(400))[0]!;
    expect(h).toMatchObject({ lagRecords: 300, lagSeconds: 60, stalledSeconds: 60, checkpointAgeSeconds: 80 });
  });

  it('records already waiting when the monitor starts are dated to its first sample (a lower bound)', () => {
    const tr = new LagTracker();
    tr.observe(5_000, [ck(0, 1_000)], hw(50));
    expect(tr.observe(9_000, [ck(0, 1_000)], hw(50))[0]).toMatchObject({ lagRecords: 50, lagSeconds: 4, stalledSeconds: 4 });
  });

  it('a claim without a saved offset counts from the start of the log; no watermark yet: no delay', () => {
    const tr = new LagTracker();
    const [h] = tr.observe(1_000, [ck(null, null, NO_TIME)], hw(70, 20));
    expect(h).toMatchObject({ lagRecords: 50, watermarkDelaySeconds: null, checkpointAgeSeconds: null });
  });

  it('watermark delay is now minus the checkpointed watermark; a partition gone from Kafka is left out', () => {
    const tr = new LagTracker();
    expect(tr.observe(100_000, [ck(5, 99_000, 40_000)], hw(5))[0]!.watermarkDelaySeconds).toBe(60);
    expect(tr.observe(100_000, [ck(5, 99_000, 40_000)], new Map())).toEqual([]);
  });
});
