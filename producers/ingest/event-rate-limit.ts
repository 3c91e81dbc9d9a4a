/**
 * Events per second per API key, counted after the body is parsed (the request limit, by
 * @fastify/rate-limit, runs before the body is read). One Redis counter per key and second,
 * `<prefix>ingest-eps:<key id>:<second>`, shared by every gateway process. A request is charged
 * only when it fits: refused requests cost nothing, so a client that backs off is not punished
 * for its refused attempts. A request into an empty second is always let through, so a batch
 * larger than the per-second budget is not refused for ever (it uses that second alone).
 */
import type { Redis } from 'ioredis';

const TAKE = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if current > 0 and current + n > tonumber(ARGV[2]) then return {current, 0} end
current = redis.call('INCRBY', KEYS[1], n)
if current == n then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {current, 1}
`;

export interface EventBudgetDecision {
  allowed: boolean;
  limit: number;
  /** Events already counted in this second (after this request when allowed). */
  used: number;
  /** Whole seconds until the next window: the Retry-After of a 429. */
  retryAfterSeconds: number;
}

type RedisWithTake = Redis & { streampulseTakeEvents?: (key: string, n: number, limit: number, ttlMs: number) => Promise<[number, number]> };

export class EventRateLimiter {
  private readonly redis: RedisWithTake;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    readonly eventsPerSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.redis = redis;
    if (!this.redis.streampulseTakeEvents) this.redis.defineCommand('streampulseTakeEvents', { numberOfKeys: 1, lua: TAKE });
  }

  async take(keyId: string, events: number): Promise<EventBudgetDecision> {
    const second = Math.floor(this.now() / 1000);
    const [used, ok] = await this.redis.streampulseTakeEvents!(`${this.prefix}ingest-eps:${keyId}:${second}`, events, this.eventsPerSecond, 2000);
    return { allowed: ok === 1, limit: this.eventsPerSecond, used, retryAfterSeconds: 1 };
  }
}
