/** Events per second per key on the real Redis, with an injected clock (no timing in the test). */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventRateLimiter } from '../../producers/ingest/event-rate-limit.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('event-rate-limit');
let redis: Redis;
beforeAll(async () => {
  redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
});
afterAll(async () => {
  await redis?.quit();
  await cleanupTestEnv(t);
});

describe('EventRateLimiter', () => {
  it('charges a request only when it fits in the second; a new second starts empty; keys are separate', async () => {
    let now = 1_800_000_000_250;
    const limiter = new EventRateLimiter(redis, t.redisPrefix, 150, () => now);
    expect(await limiter.take('key_a', 90)).toEqual({ allowed: true, limit: 150, used: 90, retryAfterSeconds: 1 });
    expect(await limiter.take('key_a', 90)).toEqual({ allowed: false, limit: 150, used: 90, retryAfterSeconds: 1 });
    expect(await limiter.take('key_a', 60)).toMatchObject({ allowed: true, used: 150 });
    expect(await limiter.take('key_a', 1)).toMatchObject({ allowed: false, used: 150 });
    expect(await limiter.take('key_b', 150)).toMatchObject({ allowed: true, used: 150 });
    now += 1000;
    expect(await limiter.take('key_a', 1)).toMatchObject({ allowed: true, used: 1 });
  });

  it('lets a batch larger than the budget into an empty second (alone), never for ever refused', async () => {
    const limiter = new EventRateLimiter(redis, t.redisPrefix, 100, () => 1_800_000_100_000);
    expect(await limiter.take('key_c', 500)).toMatchObject({ allowed: true, used: 500 });
    expect(await limiter.take('key_c', 1)).toMatchObject({ allowed: false, used: 500 });
  });

  it('counters expire with their window', async () => {
    const limiter = new EventRateLimiter(redis, t.redisPrefix, 100, () => 1_800_000_200_000);
    await limiter.take('key_d', 5);
    const ttl = await redis.pttl(`${t.redisPrefix}ingest-eps:key_d:1800000200`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2000);
  });
});
