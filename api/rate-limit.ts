/**
 * Fixed-window rate limit per API key, counted in Redis so every API process shares it:
 * `<prefix>rl:<key hash>:<window index>` is INCR'd and expires with its window.
 */
import type { Redis } from 'ioredis';

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window resets (the Retry-After of a 429). */
  resetSeconds: number;
}

export class RedisRateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async take(subject: string, limit: number, cost = 1): Promise<RateLimitDecision> {
    const now = this.now();
    const window = Math.floor(now / this.windowMs);
    const key = `${this.prefix}rl:${subject}:${window}`;
    const res = await this.redis
      .multi()
      .incrby(key, cost)
      .pexpire(key, this.windowMs + 1000)
      .exec();
    const count = Number(res?.[0]?.[1] ?? 0);
    const resetSeconds = Math.max(1, Math.ceil(((window + 1) * this.windowMs - now) / 1000));
    return { allowed: count <= limit, limit, remaining: Math.max(0, limit - count), resetSeconds };
  }
}
