import { describe, expect, it } from 'vitest';
import type { RunnerDeps } from '../../processors/core/runner.js';
import { progressLine, rebuildOnline } from '../../processors/replay-online.js';
import type { ClickHouse } from '../../sinks/clickhouse/client.js';

describe('online rebuild progress line', () => {
  it('shows the bar, the records, the rate and the time left', () => {
    expect(progressLine({ phase: 'rebuild', done: 1000, total: 3000, ratePerS: 250, etaS: 8 }, 18)).toBe(
      '[######------------]  33.3 %  1,000 / 3,000 records  250 rec/s  ETA 8s  rebuild',
    );
  });
  it('writes minutes past a minute, and -- while the rate is unknown', () => {
    expect(progressLine({ phase: 'catch-up', done: 0, total: 10, ratePerS: 0, etaS: 59.6 }, 4)).toContain('ETA 1m00s  catch-up');
    expect(progressLine({ phase: 'rebuild', done: 5, total: 10, ratePerS: 0, etaS: null }, 4)).toBe('[##--]  50.0 %  5 / 10 records  0 rec/s  ETA --  rebuild');
  });
  it('is full when there is nothing to read', () => {
    expect(progressLine({ phase: 'done', done: 0, total: 0, ratePerS: 0, etaS: 0 }, 4)).toMatch(/^\[####\] 100\.0 %/);
  });
});

describe('online rebuild on a ClickHouse cluster', () => {
  it('is refused before any statement or Redis call, naming the in-place replay', async () => {
    const touched: string[] = [];
    // Any use of ClickHouse or Redis would be recorded (and fail): the refusal comes first.
    const trap = (name: string) =>
      new Proxy({}, { get: (_t, k) => (k === 'then' ? undefined : (touched.push(`${name}.${String(k)}`), () => Promise.reject(new Error('touched')))) });
    const ch = { database: 'streampulse', cluster: 'streampulse', client: trap('client') } as unknown as ClickHouse;
    const deps = { ch, redis: trap('redis'), redisPrefix: 'x:', logger: trap('logger') } as unknown as RunnerDeps;
    await expect(rebuildOnline([], deps, { graceMs: 60_000 })).rejects.toThrow(
      /not supported on a ClickHouse cluster \(CLICKHOUSE_CLUSTER=streampulse\).*--in-place/,
    );
    expect(touched).toEqual([]);
  });
});
