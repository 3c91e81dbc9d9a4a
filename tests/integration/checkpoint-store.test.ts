/**
 * The checkpoint store on the real Redis: a state is staged (sent) first and committed with its
 * offset later, atomically and only by the partition's owner (processors/core/checkpoint-store.ts).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointStore, CheckpointStoreLostError } from '../../processors/core/checkpoint-store.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('checkpoint-store');
let redis: Redis;
beforeAll(async () => {
  redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
});
afterAll(async () => {
  redis?.disconnect();
  await cleanupTestEnv(t);
});

let n = 0;
/** A store of its own processor name per test. */
const store = () => new CheckpointStore(redis, t.redisPrefix, `p${n++}`);
/** A checkpoint entry with its state serialized, as the runner gives it. */
const entry = (offset: number, state: unknown, partition = 0, watermarkMs = offset * 10) => ({
  topic: 'sp.playback',
  partition,
  offset,
  state: JSON.stringify(state),
  watermarkMs,
});

describe('checkpoint store', () => {
  it('restores what a save committed; the state has its own key and nothing staged is left', async () => {
    const s = store();
    expect(await s.claim('sp.playback', 0, 'a')).toBeNull();
    expect(await s.save('a', [entry(42, { views: [1, 2] })], 1_000)).toEqual([]);
    expect(await s.claim('sp.playback', 0, 'b')).toEqual({ offset: 42, state: { views: [1, 2] } });
    expect(await redis.hgetall(s.key('sp.playback', 0))).toEqual({ owner: 'b', offset: '42', saved_at: '1000', wm: '420' });
    expect(await redis.get(s.stateKey('sp.playback', 0))).toBe('{"views":[1,2]}');
    expect(await redis.pttl(s.stateKey('sp.playback', 0))).toBe(-1);
    expect(await redis.exists(s.stageKey('sp.playback', 0, 'a'))).toBe(0);
  });

  it('a staged state is not a checkpoint until it is committed', async () => {
    const s = store();
    await s.claim('sp.playback', 0, 'a');
    await s.save('a', [entry(10, 'first')], 1_000);
    await s.stage('a', [entry(20, 'second')]);
    expect(await redis.pttl(s.stageKey('sp.playback', 0, 'a'))).toBeGreaterThan(0);
    expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 10, state: 'first' });
    expect(await s.save('a', [entry(20, 'second')], 2_000, true)).toEqual([]);
    expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 20, state: 'second' });
  });

  it('a former owner cannot commit what it staged: its successor keeps its state, the stale one expires', async () => {
    const s = store();
    await s.claim('sp.playback', 0, 'old');
    await s.save('old', [entry(10, 'old-10')], 1_000);
    await s.stage('old', [entry(30, 'old-30')]);
    // A rebalance: the partition has a new owner, which restores and checkpoints on its own.
    expect(await s.claim('sp.playback', 0, 'new')).toEqual({ offset: 10, state: 'old-10' });
    await s.save('new', [entry(15, 'new-15')], 2_000);
    expect(await s.save('old', [entry(30, 'old-30')], 3_000, true)).toEqual([{ topic: 'sp.playback', partition: 0 }]);
    expect(await s.claim('sp.playback', 0, 'new')).toEqual({ offset: 15, state: 'new-15' });
    expect(await redis.pttl(s.stageKey('sp.playback', 0, 'old'))).toBeGreaterThan(0);
  });

  it('a commit whose staged state is missing fails and changes nothing', async () => {
    const s = store();
    await s.claim('sp.playback', 0, 'a');
    await s.save('a', [entry(5, 'five')], 1_000);
    await expect(s.save('a', [entry(9, 'nine')], 2_000, true)).rejects.toThrow(/staged state of sp.playback\/0 is gone/);
    expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 5, state: 'five' });
  });

  it('a watermark-only save keeps state and offset', async () => {
    const s = store();
    await s.claim('sp.playback', 0, 'a');
    await s.save('a', [entry(7, 'seven')], 1_000);
    await s.save('a', [{ topic: 'sp.playback', partition: 0, offset: 7, state: null, watermarkMs: 99 }], 2_000);
    expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 7, state: 'seven' });
    expect(await redis.hget(s.key('sp.playback', 0), 'wm')).toBe('99');
  });

  it('restores a checkpoint written with the state in its hash, and the next commit moves it to the state key', async () => {
    const s = store();
    await redis.hset(s.key('sp.playback', 0), 'owner', 'x', 'offset', '3', 'state', '"in-hash"', 'wm', '30');
    expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 3, state: 'in-hash' });
    await s.save('a', [entry(4, 'moved')], 1_000);
    expect(await redis.hexists(s.key('sp.playback', 0), 'state')).toBe(0);
    expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 4, state: 'moved' });
  });

  it('progress reads the hashes only, and clear removes checkpoints, states and staged states', async () => {
    const s = new CheckpointStore(redis, t.redisPrefix, 'cleared');
    for (const p of [0, 1]) await s.claim('sp.playback', p, 'a');
    await s.save('a', [entry(10, 's0', 0, 500), entry(10, 's1', 1, 300)], 1_000);
    await s.stage('a', [entry(11, 's0b', 0)]);
    expect(await s.progress([{ topic: 'sp.playback', partitions: 2 }])).toBe(300);
    expect(await s.clear()).toBe(2);
    expect(await redis.keys(`${t.redisPrefix}ckpt*:cleared:*`)).toEqual([]);
    expect(await s.claim('sp.playback', 0, 'a')).toBeNull();
  });

  describe('delta chains (incremental checkpoints)', () => {
    /** A delta entry: the changes from the checkpoint at `from` to `offset`. */
    const delta = (from: number, offset: number, state: unknown, partition = 0) => ({ ...entry(offset, state, partition), deltaFrom: from });

    it('restores the base with its deltas in order; a new base deletes the chain in the same commit', async () => {
      const s = store();
      await s.claim('sp.playback', 0, 'a');
      await s.save('a', [entry(10, 'base')], 1_000);
      expect(await s.save('a', [delta(10, 20, 'd1')], 2_000)).toEqual([]);
      // Staged first, committed later (as the runner does while the rows are written).
      await s.stage('a', [delta(20, 30, 'd2')]);
      expect(await s.save('a', [delta(20, 30, 'd2')], 3_000, true)).toEqual([]);
      const c = await s.claim('sp.playback', 0, 'a');
      expect(c).toEqual({ offset: 30, state: 'base', deltas: ['d1', 'd2'], chain: { baseBytes: 6, deltaBytes: 8 } });
      expect(await redis.hget(s.key('sp.playback', 0), 'wm')).toBe('300');
      // Compaction: a base at 40 replaces base and chain (nothing superseded is left in Redis).
      await s.save('a', [entry(40, 'base2')], 4_000);
      expect(await redis.exists(s.deltaKey('sp.playback', 0))).toBe(0);
      expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 40, state: 'base2' });
      expect(await s.save('a', [delta(40, 50, 'd3')], 5_000)).toEqual([]);
      expect((await s.claim('sp.playback', 0, 'a'))!.deltas).toEqual(['d3']);
      expect(await redis.keys(`${t.redisPrefix}ckptstage:${s['processor']}:*`)).toEqual([]);
    });

    it('a delta that does not build on the saved offset is refused and changes nothing; a retried commit is applied once', async () => {
      const s = store();
      await s.claim('sp.playback', 0, 'a');
      // No base yet: a delta has nothing to build on.
      expect(await s.save('a', [delta(0, 5, 'orphan')], 1_000)).toEqual([{ topic: 'sp.playback', partition: 0, chainBroken: true }]);
      expect(await s.claim('sp.playback', 0, 'a')).toBeNull();
      await s.save('a', [entry(10, 'base')], 1_000);
      await s.save('a', [delta(10, 20, 'd1')], 2_000);
      // A link skipped (20 → 30 never saved): 30 → 40 does not fit.
      expect(await s.save('a', [delta(30, 40, 'd3')], 3_000)).toEqual([{ topic: 'sp.playback', partition: 0, chainBroken: true }]);
      // The commit of 10 → 20 retried after it was applied (an answer lost on the way back): once.
      expect(await s.save('a', [delta(10, 20, 'd1')], 3_000)).toEqual([]);
      expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 20, state: 'base', deltas: ['d1'], chain: { baseBytes: 6, deltaBytes: 4 } });
    });

    it('a crash between stage and commit leaves the chain as it was (the staged delta expires unread)', async () => {
      const s = store();
      await s.claim('sp.playback', 0, 'a');
      await s.save('a', [entry(10, 'base')], 1_000);
      await s.save('a', [delta(10, 20, 'd1')], 2_000);
      await s.stage('a', [delta(20, 30, 'd2')]);
      // The process dies here; its successor claims the partition.
      expect(await s.claim('sp.playback', 0, 'b')).toEqual({ offset: 20, state: 'base', deltas: ['d1'], chain: { baseBytes: 6, deltaBytes: 4 } });
      expect(await redis.pttl(s.stageKey('sp.playback', 0, 'a'))).toBeGreaterThan(0);
      // The successor continues the chain from 20.
      expect(await s.save('b', [delta(20, 25, 'b1')], 3_000)).toEqual([]);
      expect((await s.claim('sp.playback', 0, 'b'))!.deltas).toEqual(['d1', 'b1']);
    });

    it("a fenced owner cannot append to its successor's chain, nor replace its base", async () => {
      const s = store();
      await s.claim('sp.playback', 0, 'old');
      await s.save('old', [entry(10, 'base')], 1_000);
      await s.claim('sp.playback', 0, 'new');
      expect(await s.save('new', [delta(10, 15, 'n1')], 2_000)).toEqual([]);
      // The old owner (a rebalance it has not seen yet) tries a delta that would fit, and a base.
      expect(await s.save('old', [delta(15, 30, 'o1')], 3_000)).toEqual([{ topic: 'sp.playback', partition: 0 }]);
      expect(await s.save('old', [entry(40, 'old-base')], 3_000)).toEqual([{ topic: 'sp.playback', partition: 0 }]);
      expect(await s.claim('sp.playback', 0, 'new')).toEqual({ offset: 15, state: 'base', deltas: ['n1'], chain: { baseBytes: 6, deltaBytes: 4 } });
    });

    it('a single-blob checkpoint from before deltas restores, and a chain can start on it', async () => {
      const s = store();
      await redis.hset(s.key('sp.playback', 0), 'owner', 'x', 'offset', '3', 'state', '"in-hash"', 'wm', '30');
      await redis.set(s.stateKey('sp.playback', 1), '"blob"');
      await redis.hset(s.key('sp.playback', 1), 'owner', 'x', 'offset', '8', 'wm', '80');
      expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 3, state: 'in-hash' });
      expect(await s.claim('sp.playback', 1, 'a')).toEqual({ offset: 8, state: 'blob' });
      expect(await s.save('a', [delta(3, 4, 'd0', 0), delta(8, 9, 'd1', 1)], 1_000)).toEqual([]);
      expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 4, state: 'in-hash', deltas: ['d0'], chain: { baseBytes: 9, deltaBytes: 4 } });
      expect(await s.claim('sp.playback', 1, 'a')).toEqual({ offset: 9, state: 'blob', deltas: ['d1'], chain: { baseBytes: 6, deltaBytes: 4 } });
    });

    it('after the store lost its contents a delta is refused (the chain went with it) until a base is written', async () => {
      const prefix = `${t.redisPrefix}lost3:`;
      const s = new CheckpointStore(redis, prefix, 'p');
      await s.claim('sp.playback', 0, 'a');
      await s.save('a', [entry(10, 'base')], 1_000);
      const keys = await redis.keys(`${prefix}*`);
      await redis.del(...keys);
      await expect(s.save('a', [delta(10, 20, 'd1')], 2_000)).rejects.toBeInstanceOf(CheckpointStoreLostError);
      await s.adoptEpoch();
      expect(await s.reclaim('sp.playback', 0, 'a')).toBe(true);
      expect(await s.save('a', [delta(10, 20, 'd1')], 2_000)).toEqual([{ topic: 'sp.playback', partition: 0, chainBroken: true }]);
      expect(await s.save('a', [entry(20, 'base20')], 2_000)).toEqual([]);
      expect(await s.claim('sp.playback', 0, 'a')).toEqual({ offset: 20, state: 'base20' });
    });

    it('clear removes the chains too', async () => {
      const s = new CheckpointStore(redis, t.redisPrefix, 'cleared-chain');
      await s.claim('sp.playback', 0, 'a');
      await s.save('a', [entry(10, 'base')], 1_000);
      await s.save('a', [delta(10, 20, 'd1')], 2_000);
      expect(await s.clear()).toBe(1);
      expect(await redis.keys(`${t.redisPrefix}ckpt*:cleared-chain:*`)).toEqual([]);
    });
  });

  describe('a store that lost its contents', () => {
    /** Every key under a prefix deleted: what a Redis restarted without persistence looks like to it. */
    const lose = async (prefix: string) => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
    };

    it('is detected by save and claim (not read as fenced, nor as no checkpoint), which change nothing', async () => {
      const prefix = `${t.redisPrefix}lost1:`;
      const s = new CheckpointStore(redis, prefix, 'p');
      await s.claim('sp.playback', 0, 'a');
      await s.save('a', [entry(10, 'ten')], 1_000);
      const epoch = await redis.get(s.epochKey());
      expect(epoch).toMatch(/^[0-9a-f-]{36}$/);
      await lose(prefix);
      await expect(s.save('a', [entry(20, 'twenty')], 2_000)).rejects.toBeInstanceOf(CheckpointStoreLostError);
      await expect(s.claim('sp.playback', 1, 'a')).rejects.toThrow(/lost its contents: its epoch is gone/);
      // Neither left a checkpoint, an owner or an epoch behind.
      expect((await redis.keys(`${prefix}*`)).filter((k) => !k.includes('ckptstage'))).toEqual([]);
      // Another store (a new process) created a new epoch meanwhile: still detected, naming it.
      const other = new CheckpointStore(redis, prefix, 'p');
      expect(await other.claim('sp.playback', 0, 'b')).toBeNull();
      const e2 = await redis.get(s.epochKey());
      expect(e2).not.toBe(epoch);
      await expect(s.save('a', [entry(20, 'twenty')], 2_000)).rejects.toThrow(`its epoch is now ${e2}`);
    });

    it('is healed by adopting the new epoch and re-claiming what no one else claimed since; the saves then land', async () => {
      const prefix = `${t.redisPrefix}lost2:`;
      const epoch = { value: null as string | null };
      const s = new CheckpointStore(redis, prefix, 'p', epoch);
      const sibling = new CheckpointStore(redis, prefix, 'q', epoch); // another processor of the same runner
      for (const p of [0, 1]) await s.claim('sp.playback', p, 'a');
      await sibling.claim('sp.gifts', 0, 'a');
      await s.save('a', [entry(10, 'p0', 0), entry(10, 'p1', 1)], 1_000);
      await lose(prefix);
      // After the loss another instance was assigned partition 1 and claimed it (it starts from the log).
      const b = new CheckpointStore(redis, prefix, 'p');
      expect(await b.claim('sp.playback', 1, 'b')).toBeNull();
      const e2 = await s.adoptEpoch();
      expect(e2).toBe(await redis.get(s.epochKey()));
      expect(epoch.value).toBe(e2); // shared: the sibling works in the new epoch too
      expect(await s.reclaim('sp.playback', 0, 'a')).toBe(true);
      expect(await s.reclaim('sp.playback', 1, 'a')).toBe(false);
      expect(await sibling.reclaim('sp.gifts', 0, 'a')).toBe(true);
      expect(await s.save('a', [entry(30, 'p0-30', 0), entry(30, 'p1-30', 1)], 3_000)).toEqual([{ topic: 'sp.playback', partition: 1 }]);
      expect(await sibling.save('a', [{ ...entry(5, 'g5'), topic: 'sp.gifts' }], 3_000)).toEqual([]);
      const fresh = new CheckpointStore(redis, prefix, 'p');
      expect(await fresh.claim('sp.playback', 0, 'c')).toEqual({ offset: 30, state: 'p0-30' });
      expect(await new CheckpointStore(redis, prefix, 'q').claim('sp.gifts', 0, 'c')).toEqual({ offset: 5, state: 'g5' });
    });
  });
});
