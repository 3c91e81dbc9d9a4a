/**
 * The handover protocol between an online rebuild (processors/replay-online.ts) and the live
 * processors and jobs, through Redis (all keys under REDIS_PREFIX):
 *   live:<processor>:<owner>           a live runner of <processor> is alive (refreshed every 2 s, TTL 15 s)
 *   handover:<processor>               a rebuild asks <processor> to pause; value: the request's token
 *   handover:ack:<processor>:<owner>   the runner <owner> paused for that token: its rows and
 *                                      checkpoints are durable and it writes nothing until the
 *                                      request is gone (refreshed while paused, TTL 15 s)
 *   handover:job:<processor>:<id>      a scheduled job deriving from <processor>'s tables (rollup
 *                                      sealing, churn scoring) is running (TTL 10 min)
 * A runner that sees the request finishes a forced commit cycle, acknowledges and waits; once the
 * request is deleted it reloads every partition's state from the checkpoints (the rebuild wrote
 * its own there) and seeks to their offsets. A job checks the request after announcing itself and
 * skips its run while a request stands, so the rebuild, having seen no job key after its request,
 * knows no job writes during the swap (each side writes before it reads the other's key).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

export const LIVE_TTL_MS = 15_000;
export const ACK_TTL_MS = 15_000;
const JOB_TTL_MS = 10 * 60_000;

export const liveKey = (prefix: string, processor: string, owner: string) => `${prefix}live:${processor}:${owner}`;
export const pauseKey = (prefix: string, processor: string) => `${prefix}handover:${processor}`;
export const ackKey = (prefix: string, processor: string, owner: string) => `${prefix}handover:ack:${processor}:${owner}`;
export const jobKey = (prefix: string, processor: string, id: string) => `${prefix}handover:job:${processor}:${id}`;

/** Pause requests standing for `processors`: processor → token. */
export async function pauseRequests(redis: Redis, prefix: string, processors: readonly string[]): Promise<Map<string, string>> {
  const values = await redis.mget(...processors.map((p) => pauseKey(prefix, p)));
  const out = new Map<string, string>();
  processors.forEach((p, i) => {
    const v = values[i];
    if (v) out.set(p, v);
  });
  return out;
}

/** Keys matching a pattern (SCAN). */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out;
}

/**
 * Runs a scheduled job deriving from `processor`'s tables unless a handover of that processor is
 * under way; returns false when it skipped. The job announces itself before it looks for a request.
 */
export async function runUnlessHandover(redis: Redis, prefix: string, processor: string, job: () => Promise<void>): Promise<boolean> {
  const key = jobKey(prefix, processor, randomUUID());
  await redis.set(key, '1', 'PX', JOB_TTL_MS);
  try {
    if (await redis.exists(pauseKey(prefix, processor))) return false;
    await job();
    return true;
  } finally {
    await redis.del(key).catch(() => undefined);
  }
}
