/**
 * State and offsets checkpointed together, per topic-partition:
 *   <prefix>ckpt:<processor>:<topic>:<partition>       hash { owner, offset, saved_at, wm }
 *   <prefix>ckptstate:<processor>:<topic>:<partition>  the base: a full state (JSON)
 *   <prefix>ckptdelta:<processor>:<topic>:<partition>  the delta chain: a list of JSON deltas,
 *                                                      oldest first, each the changes since the
 *                                                      checkpoint before it
 * The state the hash's offset goes with is the base with every delta of the list applied in
 * order (incremental checkpoints, issue 19): a checkpoint writes either a new base (which deletes
 * the list in the same script: superseded deltas never outlive their base) or one delta appended
 * to the list. A delta names the offset it builds on (`from`) and is appended only while the
 * hash's offset is that one, so a chain never skips or repeats a link (a commit retried after it
 * was applied finds its own offset and changes nothing); a delta that does not fit (the chain was
 * lost with the store, or a link was not written) is refused (`chainBroken`) and the runner
 * writes a base next. The runner (runner.ts) writes a base when the chain reaches
 * RunnerOptions.maxDeltaChain links or its bytes the base's (deltaChainRatio): restoring costs at
 * most about two full states. Checkpoints written before deltas existed are a base without a list
 * and restore as they are.
 * `wm` is the partition's watermark when the checkpoint was taken: every row up to it is durable
 * in ClickHouse. It is also refreshed alone (without state) when only the watermark moved (an
 * idle partition advanced by the idle rule), so jobs that need a processor's event-time progress
 * across all its partitions (the daily churn scoring) can read it here (`progress`).
 *
 * A save is two steps, so that the bulk of it (megabytes of state) travels to Redis while the
 * rows the checkpoint covers are still being written to ClickHouse (runner.ts):
 *   stage   the state to <prefix>ckptstage:<processor>:<topic>:<partition>:<owner>, with a TTL:
 *           not a checkpoint yet, a restore never reads it;
 *   commit  once the rows are acknowledged, a Lua script that, only while the caller is still
 *           the owner, renames the staged state over the state key and sets offset, saved_at and
 *           wm: state and offset change together, atomically.
 * A new owner claims the partition on assignment, so a consumer that lost a partition in a
 * rebalance can never overwrite the state of its successor (its staged state, under its own
 * name, expires). Checkpoints written before the state key existed (the state in the hash's
 * `state` field) are still restored; the first commit moves the state to its key.
 *
 * Store epoch: `<prefix>ckptepoch` holds a random id, created once (SET NX) by the first store
 * that finds it absent. Every store remembers the epoch it started in (shared by the stores of one
 * runner), and claim, commit and re-claim check it inside their Lua script: a Redis that lost its
 * contents (restarted without persistence, flushed, failed over to an empty replica) has no epoch
 * or another one, and those calls change nothing and throw CheckpointStoreLostError instead of
 * reading a missing checkpoint as "start from the beginning" or a missing owner as "fenced". The
 * runner then adopts the new epoch (`adoptEpoch`), re-claims the partitions it holds
 * (`reclaim`: only where no one else claimed them since) and saves its in-memory state again.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { StateError } from '../../lib/errors.js';

/** The checkpoint store no longer holds the epoch this store started in: its contents were lost. */
export class CheckpointStoreLostError extends StateError {
  constructor(
    readonly expected: string,
    readonly found: string | null,
  ) {
    super(`the checkpoint store lost its contents: its epoch is ${found === null ? 'gone' : `now ${found}`} (was ${expected})`, true);
  }
}

/** The epoch a runner's stores share: null until the first call reads (or creates) it. */
export interface StoreEpoch {
  value: string | null;
}

/** How long a staged state waits for its commit (the rows' write, retries included). */
const STAGE_TTL_MS = 15 * 60_000;

/**
 * KEYS: hash, state key, staged key, epoch key, delta list. ARGV: owner, offset, what ('base',
 * 'delta' or '' for the watermark alone), saved_at, wm, epoch, the offset a delta builds on.
 * -2: another epoch; 0: not the owner; -1: nothing staged; -3: the delta does not fit the chain.
 */
const COMMIT_LUA = `
if redis.call('GET', KEYS[4]) ~= ARGV[6] then return -2 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if ARGV[3] == 'base' then
  if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
  redis.call('RENAME', KEYS[3], KEYS[2])
  redis.call('PERSIST', KEYS[2])
  redis.call('DEL', KEYS[5])
  redis.call('HDEL', KEYS[1], 'state')
  redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'saved_at', ARGV[4], 'wm', ARGV[5])
elseif ARGV[3] == 'delta' then
  local cur = redis.call('HGET', KEYS[1], 'offset')
  if cur == ARGV[2] then
    redis.call('DEL', KEYS[3])
    return 1
  end
  if cur ~= ARGV[7] then return -3 end
  if redis.call('EXISTS', KEYS[2]) == 0 and not redis.call('HGET', KEYS[1], 'state') then return -3 end
  local d = redis.call('GET', KEYS[3])
  if not d then return -1 end
  redis.call('RPUSH', KEYS[5], d)
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'saved_at', ARGV[4], 'wm', ARGV[5])
else
  redis.call('HSET', KEYS[1], 'saved_at', ARGV[4], 'wm', ARGV[5])
end
return 1`;

/** KEYS: hash, state key, epoch key, delta list. ARGV: owner, epoch. {-2} on another epoch, else {1, offset, state in hash, state, deltas}. */
const CLAIM_LUA = `
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return {-2} end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
return {1, redis.call('HGET', KEYS[1], 'offset'), redis.call('HGET', KEYS[1], 'state'), redis.call('GET', KEYS[2]), redis.call('LRANGE', KEYS[4], 0, -1)}`;

/** KEYS: hash, epoch key. ARGV: owner, epoch. Takes the partition back unless someone else claimed it. */
const RECLAIM_LUA = `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -2 end
local o = redis.call('HGET', KEYS[1], 'owner')
if o and o ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
return 1`;

export interface CheckpointEntry {
  topic: string;
  partition: number;
  offset: number;
  /** State to save; `null`: only the watermark moved (the saved state and offset stay). */
  state: unknown;
  /**
   * Set when `state` is a delta: the offset of the checkpoint it builds on (appended to the chain
   * only while that is the saved offset). Absent: `state` is a full state, a new base.
   */
  deltaFrom?: number;
  /** The partition's watermark at this checkpoint (every row up to it is durable). */
  watermarkMs?: number;
}

export interface Checkpoint {
  /** Next offset to process. */
  offset: number;
  /** The base (a full state). */
  state: unknown;
  /** The deltas to apply to it in order (absent: none), and the bytes of base and chain. */
  deltas?: unknown[];
  chain?: { baseBytes: number; deltaBytes: number };
}

/** A partition whose checkpoint was not saved: another owner has it, or (`chainBroken`) a delta did not fit the chain. */
export interface Unsaved {
  topic: string;
  partition: number;
  chainBroken?: true;
}

export class CheckpointStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly processor: string,
    /** Shared by the stores of one runner, so that a loss is detected and healed once for all. */
    private readonly epoch: StoreEpoch = { value: null },
  ) {}

  epochKey(): string {
    return `${this.prefix}ckptepoch`;
  }

  /** The epoch of the store now, created if absent (the first caller's id wins). */
  private async currentEpoch(): Promise<string> {
    const key = this.epochKey();
    await this.redis.set(key, randomUUID(), 'NX');
    const v = await this.redis.get(key);
    if (v === null) throw new StateError(`the checkpoint store epoch ${key} vanished right after it was set`, true);
    return v;
  }

  /** The epoch this store works in: read (or created) on first use. */
  async knownEpoch(): Promise<string> {
    if (this.epoch.value === null) {
      try {
        this.epoch.value = await this.currentEpoch();
      } catch (err) {
        throw err instanceof StateError ? err : new StateError(`cannot read the checkpoint store epoch: ${(err as Error).message}`, true, { cause: err });
      }
    }
    return this.epoch.value;
  }

  /**
   * After a CheckpointStoreLostError: takes the store's current epoch (creating it if absent) as
   * this store's (and every store sharing its epoch object); returns it.
   */
  async adoptEpoch(): Promise<string> {
    try {
      this.epoch.value = await this.currentEpoch();
      return this.epoch.value;
    } catch (err) {
      throw err instanceof StateError ? err : new StateError(`cannot read the checkpoint store epoch: ${(err as Error).message}`, true, { cause: err });
    }
  }

  /** Throws CheckpointStoreLostError naming the epoch found now (after a script answered -2). */
  private async lost(expected: string): Promise<never> {
    const found = await this.redis.get(this.epochKey()).catch(() => null);
    throw new CheckpointStoreLostError(expected, found);
  }

  /**
   * After a loss: takes ownership of a partition this runner holds again, unless another owner
   * claimed it since (true when it is ours). The in-memory state is then saved by the next commit.
   */
  async reclaim(topic: string, partition: number, owner: string): Promise<boolean> {
    const epoch = await this.knownEpoch();
    let res: number;
    try {
      res = (await this.redis.eval(RECLAIM_LUA, 2, this.key(topic, partition), this.epochKey(), owner, epoch)) as number;
    } catch (err) {
      throw new StateError(`cannot re-claim ${topic}/${partition}: ${(err as Error).message}`, true, { cause: err });
    }
    if (res === -2) return this.lost(epoch);
    return res === 1;
  }

  key(topic: string, partition: number): string {
    return `${this.prefix}ckpt:${this.processor}:${topic}:${partition}`;
  }

  stateKey(topic: string, partition: number): string {
    return `${this.prefix}ckptstate:${this.processor}:${topic}:${partition}`;
  }

  deltaKey(topic: string, partition: number): string {
    return `${this.prefix}ckptdelta:${this.processor}:${topic}:${partition}`;
  }

  stageKey(topic: string, partition: number, owner: string): string {
    return `${this.prefix}ckptstage:${this.processor}:${topic}:${partition}:${owner}`;
  }

  /** Takes ownership of a partition and returns its last checkpoint, if any. */
  async claim(topic: string, partition: number, owner: string): Promise<Checkpoint | null> {
    const epoch = await this.knownEpoch();
    let res: [number, string | null, string | null, string | null, string[]];
    try {
      res = (await this.redis.eval(
        CLAIM_LUA,
        4,
        this.key(topic, partition),
        this.stateKey(topic, partition),
        this.epochKey(),
        this.deltaKey(topic, partition),
        owner,
        epoch,
      )) as typeof res;
    } catch (err) {
      throw new StateError(`cannot claim checkpoint of ${topic}/${partition}: ${(err as Error).message}`, true, { cause: err });
    }
    if (res[0] === -2) return this.lost(epoch);
    const [, offset, inHash, stateKey, deltas] = res;
    // The state key; a checkpoint written before it existed has the state in the hash.
    const state = stateKey ?? inHash ?? null;
    if (offset === null || offset === undefined || state === null) return null;
    if (!deltas || deltas.length === 0) return { offset: Number(offset), state: JSON.parse(state) };
    let deltaBytes = 0;
    for (const d of deltas) deltaBytes += d.length;
    return {
      offset: Number(offset),
      state: JSON.parse(state),
      deltas: deltas.map((d) => JSON.parse(d) as unknown),
      chain: { baseBytes: state.length, deltaBytes },
    };
  }

  private static serialized(e: CheckpointEntry): string | null {
    return e.state === null ? null : typeof e.state === 'string' ? e.state : JSON.stringify(e.state);
  }

  /**
   * Sends the states of `entries` to Redis, staged under this owner's name (not a checkpoint until
   * `save` commits them). `state` may be given already serialized (a string), as the runner does to
   * freeze it in time.
   */
  async stage(owner: string, entries: readonly CheckpointEntry[]): Promise<void> {
    const pipe = this.redis.pipeline();
    let n = 0;
    for (const e of entries) {
      const state = CheckpointStore.serialized(e);
      if (state === null) continue;
      pipe.set(this.stageKey(e.topic, e.partition, owner), state, 'PX', STAGE_TTL_MS);
      n++;
    }
    if (n === 0) return;
    try {
      for (const [err] of (await pipe.exec()) ?? []) if (err) throw err;
    } catch (err) {
      throw new StateError(`cannot stage checkpoints: ${(err as Error).message}`, true, { cause: err });
    }
  }

  /**
   * Commits state + next offset of each partition (staging the states first unless `staged`: they
   * were staged by `stage` with the same entries); returns the partitions this owner no longer
   * owns, and those whose delta did not fit the chain (`chainBroken`: nothing saved; a base is due).
   */
  async save(owner: string, entries: readonly CheckpointEntry[], nowMs: number, staged = false): Promise<Unsaved[]> {
    if (entries.length === 0) return [];
    const epoch = await this.knownEpoch();
    if (!staged) await this.stage(owner, entries);
    let storeLost = false;
    const lost: Unsaved[] = [];
    try {
      const pipe = this.redis.pipeline();
      for (const e of entries) {
        const what = e.state === null ? '' : e.deltaFrom === undefined ? 'base' : 'delta';
        pipe.eval(
          COMMIT_LUA,
          5,
          this.key(e.topic, e.partition),
          this.stateKey(e.topic, e.partition),
          this.stageKey(e.topic, e.partition, owner),
          this.epochKey(),
          this.deltaKey(e.topic, e.partition),
          owner,
          String(e.offset),
          what,
          String(nowMs),
          String(e.watermarkMs ?? ''),
          epoch,
          String(e.deltaFrom ?? ''),
        );
      }
      const res = (await pipe.exec()) ?? [];
      res.forEach(([err, ok], i) => {
        if (err) throw err;
        const e = entries[i]!;
        if (ok === -2) storeLost = true;
        else if (ok === -1) throw new Error(`the staged state of ${e.topic}/${e.partition} is gone (not staged, or expired before its commit)`);
        else if (ok === -3) lost.push({ topic: e.topic, partition: e.partition, chainBroken: true });
        else if (ok !== 1) lost.push({ topic: e.topic, partition: e.partition });
      });
    } catch (err) {
      throw new StateError(`cannot save checkpoints: ${(err as Error).message}`, true, { cause: err });
    }
    // Nothing was committed where the epoch differed; the caller re-claims and saves again.
    if (storeLost) return this.lost(epoch);
    return lost;
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

  /** Removes every checkpoint of this processor, states and staged states included (replay from the beginning); returns the partitions' count. */
  async clear(): Promise<number> {
    let n = 0;
    for (const kind of ['ckpt', 'ckptstate', 'ckptdelta', 'ckptstage']) {
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}${kind}:${this.processor}:*`, 'COUNT', 500);
        cursor = next;
        if (keys.length) {
          const removed = await this.redis.del(...keys);
          if (kind === 'ckpt') n += removed;
        }
      } while (cursor !== '0');
    }
    return n;
  }
}
