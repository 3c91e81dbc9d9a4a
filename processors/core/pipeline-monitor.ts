/**
 * The pipeline monitor: consumer lag, watermark delay and stalls of every processor, seen from
 * outside the processors. A processor's own process cannot report that it stopped (a hung loop,
 * a failed runner, a dead process exports nothing, or stale gauges), so the monitor reads what
 * every processor leaves behind:
 *   - its checkpoints in Redis, `<prefix>ckpt:<processor>:<topic>:<partition>` (checkpoint-store.ts):
 *     the next offset, the watermark and when it was saved;
 *   - the high watermarks of those partitions in Kafka.
 * It runs in every process with the `api` role or a processor role (bin/pipeline.ts), so a
 * processor that stops is still measured by the others; series from several processes carry
 * their own `instance` label in Prometheus, and the alert rules take the max over them.
 *
 * `LagTracker` is the pure part (clock injected): it remembers when each partition's high
 * watermark moved, so the age of the oldest record beyond a checkpoint is known without reading
 * that record (kafka-lag-exporter's interpolation, rounded up to the sample after the record
 * arrived). A record already there when the monitor started is dated to the first sample: the
 * lag in seconds is then a lower bound, exact again once the processor has caught up once.
 */
import type { Redis } from 'ioredis';
import type { Metrics } from '../../lib/metrics.js';
import type { Logger } from '../../lib/logger.js';
import { openOffsetReader, type OffsetReader } from '../../lib/kafka-admin.js';
import { NO_TIME } from './watermark.js';

/** One checkpoint as found in Redis (null fields: not written yet, e.g. a claim without a save). */
export interface CheckpointSeen {
  processor: string;
  topic: string;
  partition: number;
  offset: number | null;
  watermarkMs: number | null;
  savedAtMs: number | null;
}

export interface PartitionHealth {
  processor: string;
  topic: string;
  partition: number;
  lagRecords: number;
  lagSeconds: number;
  /** Null when the checkpoint has no watermark yet (no event seen). */
  watermarkDelaySeconds: number | null;
  /** Null when the partition was claimed but never saved. */
  checkpointAgeSeconds: number | null;
  stalledSeconds: number;
}

/** Samples kept per partition: at the default 15 s interval, a little over 8 hours of history. */
const MAX_SAMPLES = 2_000;

interface Sample {
  atMs: number;
  high: number;
}

export const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export class LagTracker {
  /** Per topic-partition: the times the high watermark was seen to move, oldest first. */
  private readonly samples = new Map<string, Sample[]>();

  /**
   * Records the high watermarks seen at `nowMs` (`offsets`, by tpKey) and returns the health of
   * each checkpoint. A claim without a saved offset starts at the partition's low watermark.
   */
  observe(nowMs: number, checkpoints: readonly CheckpointSeen[], offsets: ReadonlyMap<string, { low: number; high: number }>): PartitionHealth[] {
    for (const [key, o] of offsets) {
      const list = this.samples.get(key) ?? [];
      const last = list[list.length - 1];
      if (!last || o.high !== last.high) list.push({ atMs: nowMs, high: o.high });
      if (list.length > MAX_SAMPLES) list.splice(0, list.length - MAX_SAMPLES);
      this.samples.set(key, list);
    }
    const out: PartitionHealth[] = [];
    for (const c of checkpoints) {
      const key = tpKey(c.topic, c.partition);
      const o = offsets.get(key);
      if (!o) continue; // the partition is gone from Kafka (topic deleted): nothing to measure
      const from = c.offset ?? o.low;
      const lagRecords = Math.max(0, o.high - from);
      let lagSeconds = 0;
      if (lagRecords > 0) {
        // The first sample whose high watermark is beyond the checkpoint: the oldest waiting
        // record was in the log by then (and not at the sample before).
        const list = this.samples.get(key)!;
        const first = list.find((s) => s.high > from) ?? list[0]!;
        lagSeconds = Math.max(0, (nowMs - first.atMs) / 1000);
      }
      const checkpointAgeSeconds = c.savedAtMs === null ? null : Math.max(0, (nowMs - c.savedAtMs) / 1000);
      // Stalled: records wait and the checkpoint has not moved since they arrived. A processor that
      // keeps up saves every few seconds, so its stall stays at the checkpoint spacing.
      const stalledSeconds = lagRecords === 0 ? 0 : Math.min(lagSeconds, checkpointAgeSeconds ?? lagSeconds);
      const watermarkDelaySeconds = c.watermarkMs === null || c.watermarkMs <= NO_TIME ? null : (nowMs - c.watermarkMs) / 1000;
      out.push({
        processor: c.processor,
        topic: c.topic,
        partition: c.partition,
        lagRecords,
        lagSeconds,
        watermarkDelaySeconds,
        checkpointAgeSeconds,
        stalledSeconds,
      });
    }
    return out;
  }
}

const num = (v: string | undefined | null): number | null => (v === undefined || v === null || v === '' || !Number.isFinite(Number(v)) ? null : Number(v));

/** Every checkpoint under `redisPrefix` whose topic starts with `topicPrefix`. */
export async function readCheckpoints(redis: Redis, redisPrefix: string, topicPrefix: string): Promise<CheckpointSeen[]> {
  const head = `${redisPrefix}ckpt:`;
  const keys: string[] = [];
  let cursor = '0';
  do {
    // `ckpt:` with its colon: the state, delta, staging and epoch keys (ckptstate:, ckptdelta:, ckptstage:, ckptepoch) do not match.
    const [next, found] = await redis.scan(cursor, 'MATCH', `${head}*`, 'COUNT', 500);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  const parsed = keys.flatMap((k) => {
    const rest = k.slice(head.length);
    const a = rest.indexOf(':');
    const b = rest.lastIndexOf(':');
    if (a < 0 || b <= a) return [];
    const topic = rest.slice(a + 1, b);
    const partition = Number(rest.slice(b + 1));
    return topic.startsWith(topicPrefix) && Number.isInteger(partition) ? [{ key: k, processor: rest.slice(0, a), topic, partition }] : [];
  });
  if (parsed.length === 0) return [];
  const pipe = redis.pipeline();
  for (const p of parsed) pipe.hmget(p.key, 'offset', 'wm', 'saved_at');
  const res = (await pipe.exec()) ?? [];
  return parsed.map((p, i) => {
    const [err, v] = res[i]!;
    if (err) throw err;
    const [offset, wm, savedAt] = v as Array<string | null>;
    return { processor: p.processor, topic: p.topic, partition: p.partition, offset: num(offset), watermarkMs: num(wm), savedAtMs: num(savedAt) };
  });
}

export interface PipelineMonitorDeps {
  redis: Redis;
  redisPrefix: string;
  topicPrefix: string;
  brokers: string;
  metrics: Metrics;
  logger: Logger;
  clock?: () => number;
}

/** Runs the monitor every `intervalMs` (and once at start) until `stop()`. */
export function startPipelineMonitor(d: PipelineMonitorDeps, intervalMs: number): { stop(): Promise<void>; runOnce(): Promise<PartitionHealth[]> } {
  const tracker = new LagTracker();
  const clock = d.clock ?? Date.now;
  let reader: OffsetReader | null = null;
  let current: Promise<unknown> = Promise.resolve();
  let failing = false;
  let stopped = false;
  const runOnce = async (): Promise<PartitionHealth[]> => {
    const ckpts = await readCheckpoints(d.redis, d.redisPrefix, d.topicPrefix);
    reader ??= await openOffsetReader(d.brokers, { clientId: 'streampulse-monitor', timeoutMs: 5_000 });
    const offsets = new Map<string, { low: number; high: number }>();
    for (const c of ckpts) {
      const key = tpKey(c.topic, c.partition);
      if (offsets.has(key)) continue;
      const o = await reader.watermarks(c.topic, c.partition).catch(() => null);
      if (o) offsets.set(key, o);
    }
    const health = tracker.observe(clock(), ckpts, offsets);
    // Reset first: a checkpoint cleared by a replay, or a topic deleted, leaves no stale series.
    const m = d.metrics;
    for (const g of [m.lagRecords, m.lagSeconds, m.watermarkDelay, m.checkpointAge, m.stalledSeconds]) g.reset();
    for (const h of health) {
      const l = { processor: h.processor, topic: h.topic, partition: String(h.partition) };
      m.lagRecords.set(l, h.lagRecords);
      m.lagSeconds.set(l, h.lagSeconds);
      m.stalledSeconds.set(l, h.stalledSeconds);
      if (h.watermarkDelaySeconds !== null) m.watermarkDelay.set(l, h.watermarkDelaySeconds);
      if (h.checkpointAgeSeconds !== null) m.checkpointAge.set(l, h.checkpointAgeSeconds);
    }
    return health;
  };
  let timer: NodeJS.Timeout | null = null;
  // The next run is scheduled when one ends: a slow Redis or Kafka never piles runs up.
  const tick = () => {
    current = runOnce()
      .then(
        () => {
          d.metrics.monitorScrapes.inc({ result: 'ok' });
          if (failing) d.logger.info({ event: 'pipeline_monitor_recovered' }, 'pipeline monitor reads checkpoints and offsets again');
          failing = false;
        },
        async (err: unknown) => {
          d.metrics.monitorScrapes.inc({ result: 'error' });
          if (!failing)
            d.logger.warn(
              { event: 'pipeline_monitor_failed', err: (err as Error).message },
              'pipeline monitor cannot read checkpoints or offsets; lag metrics are stale until it can',
            );
          failing = true;
          // A broken connection is opened afresh next time.
          const r = reader;
          reader = null;
          await r?.close().catch(() => undefined);
        },
      )
      .finally(() => {
        if (stopped) return;
        timer = setTimeout(tick, intervalMs);
        timer.unref();
      });
  };
  tick();
  return {
    runOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await current.catch(() => undefined);
      await reader?.close();
      reader = null;
    },
  };
}
