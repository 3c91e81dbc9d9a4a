/**
 * State and offsets checkpointed together, per topic-partition, in one Redis hash:
 *   <prefix>ckpt:<processor>:<topic>:<partition> = { owner, offset, state, saved_at, wm }
 * `wm` is the partition's watermark when the checkpoint was taken: every row up to it is durable
 * in ClickHouse. It is also refreshed alone (without state) when only the watermark moved (an
 * idle partition advanced by the idle rule), so jobs that need a processor's event-time progress
 * across all its partitions (the daily churn scoring) can read it here (`progress`).
 * A new owner claims the partition on assignment; a save is applied only while the caller is
 * still the owner (a Lua compare-and-set), so a consumer that lost a partition in a rebalance
 * can never overwrite the state of its successor.
 */
import type { Redis } from 'ioredis';
import { StateError } from '../../lib/errors.js';

const SAVE_LUA = `
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  if ARGV[3] == '' then
    redis.call('HSET', KEYS[1], 'saved_at', ARGV[4], 'wm', ARGV[5])
  else
    redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'state', ARGV[3], 'saved_at', ARGV[4], 'wm', ARGV[5])
  end
  return 1
end
return 0`;

export interface CheckpointEntry {
  topic: string;
  partition: number;
  offset: number;
  /** State to save; `null`: only the watermark moved (the saved state and offset stay). */
  state: unknown;
  /** The partition's watermark at this checkpoint (every row up to it is durable). */
  watermarkMs?: number;
}

export interface Checkpoint {
  /** Next offset to process. */
  offset: number;
  state: unknown;
}

export class CheckpointStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly processor: string,
  ) {}

  key(topic: string, partition: number): string {
    return `${this.prefix}ckpt:${this.processor}:${topic}:${partition}`;
  }

  /** Takes ownership of a partition and returns its last checkpoint, if any. */
  async claim(topic: string, partition: number, owner: string): Promise<Checkpoint | null> {
    try {
      const k = this.key(topic, partition);
      const [, [, got]] = (await this.redis.multi().hset(k, 'owner', owner).hmget(k, 'offset', 'state').exec()) as [[null, unknown], [null, [string | null, string | null]]];
      const [offset, state] = got;
      if (offset === null || state === null) return null;
      return { offset: Number(offset), state: JSON.parse(state) };
    } catch (err) {
      throw new StateError(`cannot claim checkpoint of ${topic}/${partition}: ${(err as Error).message}`, true, { cause: err });
    }
  }

  /** Saves state + next offset of each partition; returns the partitions this owner no longer owns. */
  /** `state` may be given already serialized (a string), as the runner does to freeze it in time. */
  async save(owner: string, entries: readonly CheckpointEntry[], nowMs: number): Promise<Array<{ topic: string; partition: number }>> {
    if (entries.length === 0) return [];
    try {
      const pipe = this.redis.pipeline();
      for (const e of entries) {
        const state = e.state === null ? '' : typeof e.state === 'string' ? e.state : JSON.stringify(e.state);
        pipe.eval(SAVE_LUA, 1, this.key(e.topic, e.partition), owner, String(e.offset), state, String(nowMs), String(e.watermarkMs ?? ''));
      }
      const res = (await pipe.exec()) ?? [];
      const lost: Array<{ topic: string; partition: number }> = [];
      res.forEach(([err, ok], i) => {
        if (err) throw err;
        if (ok !== 1) lost.push({ topic: entries[i]!.topic, partition: entries[i]!.partition });
      });
      return lost;
    } catch (err) {
      throw new StateError(`cannot save checkpoints: ${(err as Error).message}`, true, { cause: err });
    }
  }

  /**
   * Event-time progress of this processor over every partition of `topics`: the smallest
   * checkpointed watermark, or null while any partition (0..partitions-1, and any further one
   * that has a checkpoint) has none yet. Rows up to it are durable in ClickHouse for all
   * partitions, whichever instance owns them.
   */
  async progress(topics: ReadonlyArray<{ topic: string; partitions: number }>): Promise<number | null> {
    const keys = new Set<string>();
    for (const t of topics) {
      for (let p = 0; p < t.partitions; p++) keys.add(this.key(t.topic, p));
      // Partitions added to the topic since it was created have checkpoints too.
      let cursor = '0';
      do {
        const [next, found] = await this.redis.scan(cursor, 'MATCH', `${this.key(t.topic, 0).slice(0, -1)}[0-9]*`, 'COUNT', 500);
        cursor = next;
        for (const k of found) keys.add(k);
      } while (cursor !== '0');
    }
    const pipe = this.redis.pipeline();
    for (const k of keys) pipe.hget(k, 'wm');
    let min = Number.POSITIVE_INFINITY;
    for (const [err, v] of (await pipe.exec()) ?? []) {
      if (err) throw new StateError(`cannot read checkpoint progress: ${err.message}`, true, { cause: err });
      if (v === null || v === '' || !Number.isFinite(Number(v))) return null;
      min = Math.min(min, Number(v));
    }
    return Number.isFinite(min) ? min : null;
  }

  /** Removes every checkpoint of this processor (replay from the beginning). */
  async clear(): Promise<number> {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}ckpt:${this.processor}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) n += await this.redis.del(...keys);
    } while (cursor !== '0');
    return n;
  }
}
