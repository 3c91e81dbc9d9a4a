/**
 * Online rebuild (`npm run replay`): rebuilds processors' derived tables from the Kafka log into
 * shadow tables while the live tables keep serving and the live processors keep running, then
 * swaps them in and hands the live processors the rebuild's state and offsets.
 *
 *   1. build    `<table>__rebuild` for every table of each processor and of its job (CREATE TABLE
 *               … AS: same columns, engine, keys, TTL), and `late_events__rebuild`; one fused
 *               runner writes them (RunnerOptions.tableSuffix) with checkpoints of its own
 *               (`<processor>__rebuild`) in its own consumer group, from offset 0 to the end offsets
 *               taken at start, then again to the new ends until fewer than `catchUpRecords` remain.
 *   2. pause    a handover request per processor (processors/core/handover.ts); every live runner
 *               of it makes its rows and checkpoints durable and acknowledges; its jobs stop.
 *   3. finish   the rebuild reads on to the end offsets taken once all paused, and stops (a last
 *               checkpoint). Nothing writes the live tables from here to step 6.
 *   4. hand     the rebuild's checkpoints (state, next offset, watermark) are copied over the live
 *               ones; its late events replace the live ones of the processor.
 *   5. swap     `EXCHANGE TABLES t AND t__rebuild` for each table (atomic per table: a reader sees
 *               the old table or the new one, never none); the rollups and churn scores are derived
 *               again from the new tables, up to the handed-over watermarks.
 *   6. resume   the shadow names (now the old tables) are dropped, the rebuild's checkpoints
 *               removed, the request deleted: the live runners reload the state from the
 *               checkpoints and go on from the rebuild's offsets, into the rebuilt tables.
 * Resumable: the shadow tables and the rebuild's checkpoints persist, so a rebuild killed in step
 * 1 or 3 goes on from its last checkpoint when run again. From step 4 on, the phase is recorded
 * (`<prefix>rebuild:<processor>`) and the request has no expiry: the live processor stays paused
 * until the replay is run again and finishes the handover (every step is idempotent; a table
 * already swapped is known by its comment, which names the rebuild). Before step 4, a rebuild that
 * dies leaves a request that expires within a minute, and the live runners resume unchanged.
 */
import { randomUUID } from 'node:crypto';
import type { Processor } from './core/processor.js';
import { ProcessorRunner, type RunnerDeps, type RunnerOptions } from './core/runner.js';
import { CheckpointStore } from './core/checkpoint-store.js';
import { ackKey, liveKey, pauseKey, scanKeys } from './core/handover.js';
import { topicHighWatermarks } from '../lib/kafka-admin.js';
import { topicSpec } from '../contracts/topics.js';
import { command, queryRows } from '../sinks/clickhouse/client.js';
import { sealBusiness, sealQoe } from '../sinks/clickhouse/rollups.js';
import { scoreClosedChurnDays } from './churn/churn-scores.js';

export const SHADOW_SUFFIX = '__rebuild';
const LATE = 'late_events';
/** TTL of a pause request before the handover's point of no return (a rebuild that died releases the live runners). */
const PAUSE_TTL_MS = 60_000;

export interface RebuildProgress {
  phase: 'rebuild' | 'catch-up' | 'pause' | 'finish' | 'swap' | 'done';
  /** Records read (per processor and partition, summed) and the total to read in this phase. */
  done: number;
  total: number;
  /** Records per second (smoothed) and the seconds left at that rate, when known. */
  ratePerS: number;
  etaS: number | null;
}

export interface RebuildOptions extends RunnerOptions {
  /** WINDOW_GRACE_MS: the rollups and churn days closed at the handed-over watermarks. */
  graceMs: number;
  /** Discard a rebuild in progress (shadow tables, checkpoints) and start again from offset 0. */
  restart?: boolean;
  /** Hand over once fewer records than this are left to read (default 5,000). */
  catchUpRecords?: number;
  /** How long live runners may take to pause (default 120 s); then the request is withdrawn and the rebuild stops (run it again). */
  pauseTimeoutMs?: number;
  onProgress?: (p: RebuildProgress) => void;
  /** Tests: called after each step ('paused', 'finished'; per processor 'handed', 'swapped'). */
  onStep?: (step: string, processor?: string) => Promise<void> | void;
}

export interface RebuildResult {
  processors: string[];
  resumed: boolean;
  /** Records the rebuild read (summed over processors). */
  records: number;
  swapped: string[];
  /** From the pause request to the live runners' release (null when this run did not pause them). */
  pauseMs: number | null;
  ms: number;
}

/** `[######------------]  33.3 %  1,000 / 3,000 records  250 rec/s  ETA 8s  rebuild` */
export function progressLine(p: RebuildProgress, width = 30): string {
  const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
  const fill = Math.round(frac * width);
  const e = p.etaS === null ? null : Math.round(p.etaS);
  const eta = e === null ? '--' : e >= 60 ? `${Math.floor(e / 60)}m${String(e % 60).padStart(2, '0')}s` : `${e}s`;
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  return `[${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${(frac * 100).toFixed(1).padStart(5)} %  ${n(p.done)} / ${n(p.total)} records  ${n(p.ratePerS)} rec/s  ETA ${eta}  ${p.phase}`;
}

const stateKey = (prefix: string, p: string) => `${prefix}rebuild:${p}`;
const shadow = (t: string) => `${t}${SHADOW_SUFFIX}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The tables a rebuild of `p` swaps: the processor's own and those its scheduled job derives. */
export function rebuiltTables(p: Processor<unknown>): string[] {
  return [...new Set([...p.tables, ...(p.jobTables ?? [])])];
}

export async function rebuildOnline(processors: readonly Processor<unknown>[], deps: RunnerDeps, opts: RebuildOptions): Promise<RebuildResult> {
  const t0 = Date.now();
  const { redis, redisPrefix: prefix, ch, logger } = deps;
  // On a cluster the live name is a Distributed table over `<table>_local` (cluster-ddl.ts):
  // `CREATE TABLE … AS` would copy the Distributed engine, so the rebuild would write the live
  // local tables, and EXCHANGE would swap one server's front only. Refused before any statement.
  if (ch.cluster)
    throw new Error(
      `an online rebuild into shadow tables is not supported on a ClickHouse cluster (CLICKHOUSE_CLUSTER=${ch.cluster}): ` +
        'run `npm run replay -- --in-place …`, which truncates the local tables ON CLUSTER and rebuilds them (the tables are empty or partial until it ends)',
    );
  const db = ch.database;
  const names = processors.map((p) => p.name);
  const marker = async (table: string) =>
    (await queryRows<{ comment: string }>(ch, `SELECT comment FROM system.tables WHERE database = {db:String} AND name = {t:String}`, { db, t: table }))[0]
      ?.comment ?? null;
  const store = (p: string) => new CheckpointStore(redis, prefix, `${p}${SHADOW_SUFFIX}`);

  // Where each processor stands: no state (start), building, or handing over.
  const state = new Map<string, { run: string; phase: string }>();
  for (const p of names) {
    const h = await redis.hgetall(stateKey(prefix, p));
    if (opts.restart && h.phase === 'handover') throw new Error(`the handover of ${p} was under way: run the replay again without --restart to finish it`);
    if (h.run && !opts.restart) state.set(p, { run: h.run, phase: h.phase ?? 'building' });
  }
  const resumed = state.size > 0;
  await command(ch, `CREATE TABLE IF NOT EXISTS ${db}.${shadow(LATE)} AS ${db}.${LATE}`);
  for (const p of processors) {
    if (state.has(p.name)) {
      logger.info({ event: 'rebuild_resumed', processor: p.name, ...state.get(p.name) }, 'resuming the rebuild in progress');
      continue;
    }
    const run = randomUUID();
    for (const t of rebuiltTables(p)) {
      await command(ch, `DROP TABLE IF EXISTS ${db}.${shadow(t)} SYNC`);
      await command(ch, `CREATE TABLE ${db}.${shadow(t)} AS ${db}.${t}`);
      // The comment names this rebuild: after EXCHANGE it is on the live name (the swap is done).
      // A literal (the statement takes no parameter there); the id is a UUID.
      await command(ch, `ALTER TABLE ${db}.${shadow(t)} MODIFY COMMENT 'streampulse rebuild ${run}'`);
    }
    await command(ch, `DELETE FROM ${db}.${shadow(LATE)} WHERE processor = {p:String}`, { p: p.name });
    await store(p.name).clear();
    await redis.hset(stateKey(prefix, p.name), { run, phase: 'building', started_at: String(Date.now()) });
    state.set(p.name, { run, phase: 'building' });
  }

  let records = 0;
  let pausedAt: number | null = null;
  const building = processors.filter((p) => state.get(p.name)!.phase === 'building');
  if (building.length > 0) records = await buildAndPause(building);
  const swapped: string[] = [];
  for (const p of processors) swapped.push(...(await handOver(p)));
  // Every processor handed over: no rebuild left to write late_events__rebuild.
  const left = await scanKeys(redis, `${prefix}rebuild:*`);
  if (left.length === 0) await command(ch, `DROP TABLE IF EXISTS ${db}.${shadow(LATE)} SYNC`);
  const pauseMs = pausedAt === null ? null : Date.now() - pausedAt;
  opts.onProgress?.({ phase: 'done', done: records, total: records, ratePerS: 0, etaS: 0 });
  logger.info({ event: 'rebuild_done', processors: names, records, pause_ms: pauseMs, ms: Date.now() - t0 }, 'online rebuild done');
  return { processors: names, resumed, records, swapped, pauseMs, ms: Date.now() - t0 };

  /** Steps 1 to 3: returns the records read. */
  async function buildAndPause(list: readonly Processor<unknown>[]): Promise<number> {
    const runner = new ProcessorRunner(list, deps, { ...opts, tableSuffix: SHADOW_SUFFIX, checkpointSuffix: SHADOW_SUFFIX, handover: false });
    const ends = async () => {
      const m = new Map<string, number>();
      for (const topic of runner.topics) for (const w of await topicHighWatermarks(deps.brokers, topic)) m.set(`${topic}/${w.partition}`, w.high);
      return m;
    };
    /** Per processor and partition read so far, and what is left to `target`. */
    const standing = (target: Map<string, number>) => {
      const pos = runner.positions();
      let done = 0;
      let left = 0;
      let assigned = true;
      for (const p of list) {
        for (const [k, end] of target) {
          if (!p.kinds.some((kind) => k.startsWith(`${topicSpec(deps.topicPrefix, kind).topic}/`))) continue;
          const at = pos.find((x) => x.processor === p.name && `${x.topic}/${x.partition}` === k);
          if (!at && end > 0) assigned = false;
          const next = at?.next ?? 0;
          done += Math.min(next, end);
          left += Math.max(0, end - next);
        }
      }
      return { done, left, reached: assigned && left === 0 };
    };
    let rate = 0;
    let last: { at: number; done: number } | null = null;
    const report = (phase: RebuildProgress['phase'], s: { done: number; left: number }) => {
      const now = Date.now();
      if (last && now > last.at) {
        const r = ((s.done - last.done) * 1000) / (now - last.at);
        rate = rate === 0 ? r : 0.8 * rate + 0.2 * r;
      }
      last = { at: now, done: s.done };
      opts.onProgress?.({ phase, done: s.done, total: s.done + s.left, ratePerS: Math.max(0, rate), etaS: rate > 0 ? s.left / rate : null });
    };
    const until = async (phase: RebuildProgress['phase'], target: Map<string, number>, whileWaiting?: () => Promise<void>) => {
      for (;;) {
        if (runner.failure) throw runner.failure;
        const s = standing(target);
        report(phase, s);
        if (s.reached) return s;
        await whileWaiting?.();
        await sleep(250);
      }
    };
    await runner.start();
    let paused = false;
    let read: number;
    try {
      // 1. From the beginning (or the last checkpoint) to the end offsets, then near the live position.
      let target = await ends();
      let phase: RebuildProgress['phase'] = 'rebuild';
      for (;;) {
        await until(phase, target);
        target = await ends();
        if (standing(target).left <= (opts.catchUpRecords ?? 5_000)) break;
        phase = 'catch-up';
      }
      // 2. Pause the live runners and their jobs.
      const token = randomUUID();
      const requestPause = async () => {
        const pipe = redis.pipeline();
        for (const p of list) pipe.set(pauseKey(prefix, p.name), token, 'PX', PAUSE_TTL_MS);
        await pipe.exec();
      };
      await requestPause();
      paused = true;
      pausedAt = Date.now();
      const deadline = Date.now() + (opts.pauseTimeoutMs ?? 120_000);
      for (;;) {
        const waiting: string[] = [];
        for (const p of list) {
          for (const k of await scanKeys(redis, liveKey(prefix, p.name, '*'))) {
            const owner = k.slice(liveKey(prefix, p.name, '').length);
            if ((await redis.get(ackKey(prefix, p.name, owner))) !== token) waiting.push(`${p.name}@${owner}`);
          }
          for (const k of await scanKeys(redis, `${prefix}handover:job:${p.name}:*`)) waiting.push(`job ${k.slice(prefix.length)}`);
        }
        report('pause', standing(target));
        if (waiting.length === 0) break;
        if (Date.now() > deadline)
          throw new Error(
            `live runners or jobs did not pause within ${(opts.pauseTimeoutMs ?? 120_000) / 1000} s (${waiting.join(', ')}); they resume unchanged. Run the replay again to retry the handover`,
          );
        await requestPause();
        await sleep(200);
      }
      await opts.onStep?.('paused');
      // 3. Read on to the end offsets as they are now (nothing live consumes any more), and stop.
      read = (await until('finish', await ends(), requestPause)).done;
      await requestPause();
    } catch (err) {
      await runner.stop();
      if (paused) await redis.del(...list.map((p) => pauseKey(prefix, p.name))).catch(() => undefined);
      throw err;
    }
    await runner.stop();
    if (runner.failure) throw runner.failure;
    // The point of no return: the request stays until the handover is done, whatever happens.
    for (const p of list) {
      await redis.persist(pauseKey(prefix, p.name));
      await redis.hset(stateKey(prefix, p.name), { phase: 'handover' });
      state.get(p.name)!.phase = 'handover';
    }
    await opts.onStep?.('finished');
    return read;
  }

  /** Steps 4 to 6 for one processor (idempotent: a handover cut short is finished by the next run). */
  async function handOver(p: Processor<unknown>): Promise<string[]> {
    const { run } = state.get(p.name)!;
    const rebuildStore = store(p.name);
    // 4. Checkpoints: the rebuild's over the live ones (every partition the rebuild has one for;
    // a live checkpoint the rebuild has no counterpart of is removed: that partition starts over).
    const live = new CheckpointStore(redis, prefix, p.name);
    const fromKeys = await scanKeys(redis, `${prefix}ckpt:${p.name}${SHADOW_SUFFIX}:*`);
    const copied = new Set<string>();
    for (const from of fromKeys) {
      const tp = from.slice(`${prefix}ckpt:${p.name}${SHADOW_SUFFIX}:`.length);
      const sep = tp.lastIndexOf(':');
      const topic = tp.slice(0, sep);
      const partition = Number(tp.slice(sep + 1));
      const h = await redis.hgetall(from);
      const st = await redis.get(rebuildStore.stateKey(topic, partition));
      if (h.offset === undefined || st === null) continue;
      // The checkpoint is the base with its delta chain (incremental checkpoints): both go over.
      const deltas = await redis.lrange(rebuildStore.deltaKey(topic, partition), 0, -1);
      const to = live.key(topic, partition);
      const tx = redis
        .multi()
        .hdel(to, 'state')
        .hset(to, { offset: h.offset, saved_at: h.saved_at ?? String(Date.now()), wm: h.wm ?? '', owner: h.owner ?? 'rebuild' })
        .set(live.stateKey(topic, partition), st)
        .del(live.deltaKey(topic, partition));
      if (deltas.length > 0) tx.rpush(live.deltaKey(topic, partition), ...deltas);
      await tx.exec();
      copied.add(to);
    }
    for (const k of await scanKeys(redis, `${prefix}ckpt:${p.name}:*`)) {
      if (copied.has(k)) continue;
      const tp = k.slice(`${prefix}ckpt:${p.name}:`.length);
      const sep = tp.lastIndexOf(':');
      await redis.del(k, live.stateKey(tp.slice(0, sep), Number(tp.slice(sep + 1))), live.deltaKey(tp.slice(0, sep), Number(tp.slice(sep + 1))));
    }
    await command(ch, `DELETE FROM ${db}.${LATE} WHERE processor = {p:String}`, { p: p.name });
    await command(ch, `INSERT INTO ${db}.${LATE} SELECT * FROM ${db}.${shadow(LATE)} WHERE processor = {p:String}`, { p: p.name });
    await opts.onStep?.('handed', p.name);
    // 5. Swap, table by table (a table whose live name carries this rebuild's comment is swapped already).
    const swapped: string[] = [];
    const want = `streampulse rebuild ${run}`;
    for (const t of rebuiltTables(p)) {
      if ((await marker(t)) === want) continue;
      if ((await marker(shadow(t))) !== want)
        throw new Error(`${db}.${shadow(t)} is not the shadow table of this rebuild (${run}): run the replay with --restart`);
      await command(ch, `EXCHANGE TABLES ${db}.${t} AND ${db}.${shadow(t)}`);
      swapped.push(t);
    }
    await opts.onStep?.('swapped', p.name);
    await deriveJobTables(p);
    // 6. Resume the live runners (they reload from the checkpoints) and clean up.
    for (const t of rebuiltTables(p)) await command(ch, `DROP TABLE IF EXISTS ${db}.${shadow(t)} SYNC`);
    await command(ch, `DELETE FROM ${db}.${shadow(LATE)} WHERE processor = {p:String}`, { p: p.name });
    await rebuildStore.clear();
    await redis.del(stateKey(prefix, p.name));
    await redis.del(pauseKey(prefix, p.name));
    logger.info(
      { event: 'rebuild_swapped', processor: p.name, tables: rebuiltTables(p) },
      'rebuilt tables swapped in; live processor resumes from the rebuild',
    );
    return swapped;
  }

  /**
   * The tables the scheduled jobs derive (bin/pipeline.ts: rollups, churn scores), derived again
   * from the swapped tables up to the handed-over watermarks, as those jobs would (they are
   * paused meanwhile); the swapped-in job tables start empty.
   */
  async function deriveJobTables(p: Processor<unknown>): Promise<void> {
    if (!p.jobTables?.length) return;
    const wm = await new CheckpointStore(redis, prefix, p.name).progress(p.kinds.map((k) => topicSpec(deps.topicPrefix, k)));
    if (wm === null || wm < 0) return;
    if (p.name === 'qoe') await sealQoe(ch, wm - opts.graceMs);
    else if (p.name === 'business') await sealBusiness(ch, wm - opts.graceMs);
    else if (p.name === 'churn') {
      const [first] = await queryRows<{ d: number | null }>(
        ch,
        `SELECT if(count() = 0, NULL, toInt32(dateDiff('day', toDate('1970-01-01'), min(day)))) AS d FROM ${db}.churn_account_daily`,
      );
      if (first?.d !== null && first?.d !== undefined)
        await scoreClosedChurnDays(ch, { nowMs: wm, closeDelayMs: opts.graceMs, rescoreDays: 0, fromDay: Number(first.d) });
    }
  }
}
