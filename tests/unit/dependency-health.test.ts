/** lib/dependency-health.ts: outage bookkeeping with an injected clock, and the retry backoff. */
import { describe, expect, it } from 'vitest';
import { backoffDelayMs, DependencyHealth } from '../../lib/dependency-health.js';
import { createMetrics } from '../../lib/metrics.js';

async function value(m: ReturnType<typeof createMetrics>, name: string, dep: string): Promise<number> {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name)!;
  return (metric.values as Array<{ labels: Record<string, string>; value: number }>).find((v) => v.labels.dependency === dep)?.value ?? 0;
}

describe('backoffDelayMs', () => {
  it('doubles from the base up to the cap, with half of each delay random', () => {
    const lo = (a: number) => backoffDelayMs(a, { baseMs: 200, maxMs: 5_000 }, () => 0);
    const hi = (a: number) => backoffDelayMs(a, { baseMs: 200, maxMs: 5_000 }, () => 1);
    expect([1, 2, 3, 4, 5, 6, 7, 50].map(lo)).toEqual([100, 200, 400, 800, 1600, 2500, 2500, 2500]);
    expect([1, 2, 3, 4, 5, 6, 7, 50].map(hi)).toEqual([200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    expect(backoffDelayMs(3, { baseMs: 200, maxMs: 5_000 }, () => 0.5)).toBe(600);
  });
});

describe('DependencyHealth', () => {
  it('counts the outage from the first failure to the first success, as it goes, per dependency', async () => {
    let now = 1_000_000;
    const m = createMetrics();
    const h = new DependencyHealth(m, () => now);
    expect(await value(m, 'streampulse_dependency_up', 'redis')).toBe(1);
    expect(h.unavailable('redis', new Error('connect ECONNREFUSED'))).toBe(true);
    expect(await value(m, 'streampulse_dependency_up', 'redis')).toBe(0);
    now += 2_500;
    expect(h.unavailable('redis', new Error('still refused'))).toBe(false);
    expect(await value(m, 'streampulse_dependency_unavailable_seconds_total', 'redis')).toBe(2.5);
    now += 1_000;
    h.tick();
    expect(await value(m, 'streampulse_dependency_unavailable_seconds_total', 'redis')).toBe(3.5);
    expect(h.status().redis).toEqual({ up: false, sinceMs: 1_000_000, reason: 'still refused', attempts: 2 });
    expect(h.status().clickhouse).toEqual({ up: true });
    expect(h.isUp('redis')).toBe(false);
    now += 6_500;
    expect(h.available('redis')).toBe(10_000);
    expect(h.available('redis')).toBeNull();
    expect(await value(m, 'streampulse_dependency_unavailable_seconds_total', 'redis')).toBe(10);
    expect(await value(m, 'streampulse_dependency_up', 'redis')).toBe(1);
    expect(await value(m, 'streampulse_dependency_unavailable_seconds_total', 'clickhouse')).toBe(0);
    // A second outage adds to the first.
    h.unavailable('redis', new Error('reset'));
    now += 4_000;
    h.available('redis');
    expect(await value(m, 'streampulse_dependency_unavailable_seconds_total', 'redis')).toBe(14);
  });
});
