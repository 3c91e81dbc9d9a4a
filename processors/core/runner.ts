/**
 * Runs one Processor as a member of a Kafka consumer group (node-rdkafka, manual commits).
 *
 * Loop: consume a batch → decode → dedup → observe event time → process → (per batch) close
 * windows at the watermark. Every checkpoint interval (or when the pending rows reach the batch
 * limit) a commit cycle runs, strictly in this order:
 *   1. onFlush: rows of open windows that changed;
 *   2. write all pending rows to ClickHouse and wait for the acks; deliver dead letters;
 *   3. save state + next offset per partition to Redis (fenced by ownership);
 *   4. commit next offsets to Kafka.
 * The loop does not fetch while a cycle runs, so a slow sink pauses consumption instead of
 * buffering without bound. On assignment, a partition's checkpoint is restored before the
 * partition is assigned at the checkpoint's offset; without a checkpoint it starts from the
 * beginning of the log. On revocation, in-memory state is dropped: the new owner resumes from
 * the last checkpoint and recomputes identical rows.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import Kafka from 'node-rdkafka';
import type { Logger } from 'pino';
import type { AvroCodec } from '../../lib/avro-codec.js';
import { KafkaError, StateError } from '../../lib/errors.js';
import type { Metrics } from '../../lib/metrics.js';
import { topicSpec, type DeadLetter, type EventKind } from '../../contracts/topics.js';
import type { ClickHouse } from '../../sinks/clickhouse/client.js';
import { writeTables } from '../../sinks/clickhouse/table-writer.js';
import { CheckpointStore } from './checkpoint-store.js';
import { PartitionTask, type PartitionSnapshot } from './partition-task.js';
import type { Processor } from './processor.js';
import { advanceIdle } from './watermark.js';

export type { DeadLetter };

export interface DeadLetterSink {
  sendDeadLetter(d: DeadLetter): Promise<void>;
}

export interface RunnerDeps {
  brokers: string;
  groupId: string;
  topicPrefix: string;
  codec: AvroCodec;
  ch: ClickHouse;
  redis: Redis;
  redisPrefix: string;
  logger: Logger;
  metrics: Metrics;
  /** Processing-time clock (idle rule, checkpoint timing). */
  clock?: () => number;
  /** Where undecodable records go; only the raw store dead-letters (others skip and count). */
  deadLetters?: DeadLetterSink;
}

export interface RunnerOptions {
  consumeBatch?: number;
  maxPendingRows?: number;
  /** A commit cycle also runs once this many bytes of records were consumed since the last. */
  maxPendingBytes?: number;
  checkpointIntervalMs?: number;
  /**
   * State checkpoints are spaced so that serializing and saving them takes at most about
   * 1/checkpointCostRatio of the time (default 10, i.e. ≤ ~10 %): a commit cycle always writes
   * its rows (freshness), but saves state + offsets only once max(checkpointIntervalMs,
   * ratio × duration of the last save, capped at maxCheckpointIntervalMs) has passed. With small
   * state that is every cycle; with large state (hundreds of thousands of views) it keeps the
   * cost of whole-state snapshots from growing with state size × cycle rate.
   */
  checkpointCostRatio?: number;
  /** Upper bound of the adaptive spacing of state checkpoints (default 30 s). */
  maxCheckpointIntervalMs?: number;
  idlePartitionMs?: number;
  instanceId?: string;
  /**
   * Emit rows of open windows at every commit cycle (is_final = 0), so results are queryable
   * while a window is open (default true). When false, rows appear only when windows close.
   */
  emitUpdates?: boolean;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export class ProcessorRunner<S> {
  private consumer: Kafka.KafkaConsumer | null = null;
  private readonly parts = new Map<string, PartitionTask<S>>();
  private pending = new Map<string, Record<string, unknown>[]>();
  private pendingRows = 0;
  private pendingBytes = 0;
  private deadLetterQueue: DeadLetter[] = [];
  private readonly checkpoints: CheckpointStore;
  private readonly owner: string;
  private readonly clock: () => number;
  private running = false;
  private loopDone: Promise<void> | null = null;
  private rebalanceChain: Promise<void> = Promise.resolve();
  private lastCheckpointAt = 0;
  /** When state + offsets were last saved, and how long that save took (ms). */
  private lastSnapshotAt = 0;
  private lastSnapshotCostMs = 0;
  /** The previous cycle's write + checkpoint, still running while the loop consumes on. */
  private inflight: Promise<void> = Promise.resolve();
  private fatal: Error | null = null;
  private readonly kindByTopic: Map<string, EventKind>;
  readonly topics: string[];

  constructor(
    readonly processor: Processor<S>,
    private readonly deps: RunnerDeps,
    private readonly opts: RunnerOptions = {},
  ) {
    this.clock = deps.clock ?? Date.now;
    this.owner = opts.instanceId ?? `${processor.name}-${randomUUID()}`;
    this.checkpoints = new CheckpointStore(deps.redis, deps.redisPrefix, processor.name);
    this.kindByTopic = new Map(processor.kinds.map((k) => [topicSpec(deps.topicPrefix, k).topic, k]));
    this.topics = [...this.kindByTopic.keys()];
  }

  get log(): Logger {
    return this.deps.logger;
  }

  /** Connects, joins the group and starts the processing loop. */
  async start(): Promise<void> {
    await this.processor.start?.();
    // The rebalance callback keeps its own reference: it also fires while stop() disconnects.
    let self: Kafka.KafkaConsumer | null = null;
    const consumer = new Kafka.KafkaConsumer(
      {
        'group.id': this.deps.groupId,
        'metadata.broker.list': this.deps.brokers,
        'client.id': this.owner,
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        'partition.assignment.strategy': 'range',
        'session.timeout.ms': 10_000,
        'heartbeat.interval.ms': 1_000,
        'max.poll.interval.ms': 300_000,
        'queued.max.messages.kbytes': 32_768,
        'fetch.wait.max.ms': 50,
        'socket.keepalive.enable': true,
        rebalance_cb: (err: Kafka.LibrdKafkaError, assignment: Kafka.TopicPartition[]) => this.onRebalance(self!, err, assignment),
      } as Kafka.ConsumerGlobalConfig,
      { 'auto.offset.reset': 'earliest' },
    );
    self = consumer;
    this.consumer = consumer;
    consumer.on('event.error', (err) => this.log.warn({ event: 'kafka_consumer_error', processor: this.processor.name, err: err.message }, 'consumer error'));
    await new Promise<void>((resolve, reject) =>
      consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(new KafkaError(`consumer cannot connect to ${this.deps.brokers}: ${err.message}`, true, { cause: err })) : resolve())),
    );
    consumer.setDefaultConsumeTimeout(100);
    consumer.subscribe(this.topics);
    this.running = true;
    this.lastCheckpointAt = this.clock();
    this.lastSnapshotAt = this.lastCheckpointAt;
    this.log.info({ event: 'processor_started', processor: this.processor.name, group: this.deps.groupId, topics: this.topics, owner: this.owner }, 'processor started');
    this.loopDone = this.loop();
  }

  /** Finishes the current batch, runs a last commit cycle and leaves the group. */
  async stop(): Promise<void> {
    if (!this.consumer) return;
    this.running = false;
    await this.loopDone?.catch(() => undefined);
    await this.inflight.catch(() => undefined);
    if (!this.fatal) await this.commitCycle(true).catch((err) => this.log.error({ event: 'final_commit_failed', err: (err as Error).message }, 'final commit failed'));
    await this.rebalanceChain.catch(() => undefined);
    const c = this.consumer;
    await new Promise<void>((resolve) => c.disconnect(() => resolve()));
    this.consumer = null;
    this.parts.clear();
    this.log.info({ event: 'processor_stopped', processor: this.processor.name, owner: this.owner }, 'processor stopped');
  }

  /** Resolves when the loop ends (stop() or a fatal error, which it rethrows). */
  async done(): Promise<void> {
    await this.loopDone;
    if (this.fatal) throw this.fatal;
  }

  /** Next offsets per assigned partition (for replay/catch-up checks and tests). */
  positions(): Array<{ topic: string; partition: number; next: number; checkpointed: number }> {
    return [...this.parts.values()].map((p) => ({ topic: p.topic, partition: p.partition, next: p.next, checkpointed: p.checkpointed }));
  }

  /** Clears this processor's checkpoints (replay from the beginning). */
  clearCheckpoints(): Promise<number> {
    return this.checkpoints.clear();
  }

  private onRebalance(consumer: Kafka.KafkaConsumer, err: Kafka.LibrdKafkaError, assignment: Kafka.TopicPartition[]): void {
    if (err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) {
      this.deps.metrics.rebalances.inc({ processor: this.processor.name, kind: 'assign' });
      this.rebalanceChain = this.rebalanceChain.then(async () => {
        const withOffsets: Kafka.TopicPartitionOffset[] = [];
        for (const tp of assignment) {
          const kind = this.kindByTopic.get(tp.topic)!;
          const ckpt = await this.checkpoints.claim(tp.topic, tp.partition, this.owner);
          if (ckpt) await this.assertCheckpointInLog(consumer, tp.topic, tp.partition, ckpt.offset);
          const run = new PartitionTask(this.processor, tp.topic, kind, tp.partition, this.clock(),
            ckpt ? { offset: ckpt.offset, snapshot: ckpt.state as PartitionSnapshot } : undefined, this.deps.metrics);
          this.parts.set(tpKey(tp.topic, tp.partition), run);
          // Without a checkpoint, rebuild from the beginning of the log (OFFSET_BEGINNING = -2).
          withOffsets.push({ topic: tp.topic, partition: tp.partition, offset: ckpt ? ckpt.offset : -2 });
          this.log.info({ event: 'partition_assigned', processor: this.processor.name, topic: tp.topic, partition: tp.partition, offset: ckpt?.offset ?? 'beginning' }, 'partition assigned');
        }
        consumer.assign(withOffsets);
      }).catch((e) => this.fail(e as Error));
    } else if (err.code === Kafka.CODES.ERRORS.ERR__REVOKE_PARTITIONS) {
      this.deps.metrics.rebalances.inc({ processor: this.processor.name, kind: 'revoke' });
      this.rebalanceChain = this.rebalanceChain.then(async () => {
        for (const tp of assignment) {
          this.parts.delete(tpKey(tp.topic, tp.partition));
          this.log.info({ event: 'partition_revoked', processor: this.processor.name, topic: tp.topic, partition: tp.partition }, 'partition revoked');
        }
        consumer.unassign();
      }).catch((e) => this.fail(e as Error));
    } else {
      this.log.error({ event: 'rebalance_error', processor: this.processor.name, err: err.message }, 'rebalance error');
    }
  }

  /**
   * A checkpoint beyond the end of its partition means the log it was taken on is gone (the
   * topic was recreated, or the broker's data lost): resuming would silently skip every record
   * below it. Stop with a message that says how to rebuild instead.
   */
  private async assertCheckpointInLog(consumer: Kafka.KafkaConsumer, topic: string, partition: number, offset: number): Promise<void> {
    const high = await new Promise<number>((resolve, reject) =>
      consumer.queryWatermarkOffsets(topic, partition, 10_000, (err, o) => (err ? reject(new KafkaError(`cannot read the end of ${topic}/${partition}: ${err.message}`, true, { cause: err })) : resolve(o.highOffset))),
    );
    if (offset > high) {
      throw new StateError(
        `checkpoint of ${this.processor.name} for ${topic}/${partition} is at offset ${offset}, beyond the end of the log (${high}): ` +
          `the topic was recreated or its data lost. Rebuild from the log with: npm run replay -- --processor ${this.processor.name} --from-beginning`,
        false,
      );
    }
  }

  private fail(err: Error): void {
    if (!this.fatal) {
      this.fatal = err;
      this.log.error({ event: 'processor_failed', processor: this.processor.name, err: err.message, code: (err as { code?: string }).code }, 'processor failed');
    }
    this.running = false;
  }

  private consumeBatch(): Promise<Kafka.Message[]> {
    return new Promise((resolve, reject) => {
      this.consumer!.consume(this.opts.consumeBatch ?? 2_000, (err, msgs) => (err ? reject(new KafkaError(`consume failed: ${err.message}`, true, { cause: err })) : resolve(msgs)));
    });
  }

  private async loop(): Promise<void> {
    const interval = this.opts.checkpointIntervalMs ?? 2_000;
    const maxPending = this.opts.maxPendingRows ?? 50_000;
    const maxBytes = this.opts.maxPendingBytes ?? 16 * 1024 * 1024;
    while (this.running) {
      try {
        await this.rebalanceChain;
        const msgs = await this.consumeBatch();
        if (msgs.length > 0) await this.processBatch(msgs);
        const now = this.clock();
        this.applyIdleRule(now);
        // Caught up (nothing fetched): spare time, so the cycle also checkpoints whatever it costs.
        if (now - this.lastCheckpointAt >= interval || this.pendingRows >= maxPending || this.pendingBytes >= maxBytes) await this.commitCycle(msgs.length === 0);
      } catch (err) {
        const e = err as Error & { retriable?: boolean };
        if (e.retriable) {
          this.log.warn({ event: 'processor_retry', processor: this.processor.name, err: e.message }, 'retriable error; retrying');
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        this.fail(e);
      }
    }
  }

  private push(table: string, row: Record<string, unknown>): void {
    let rows = this.pending.get(table);
    if (!rows) {
      rows = [];
      this.pending.set(table, rows);
    }
    rows.push(row);
    this.pendingRows++;
  }

  private readonly pushFn = (table: string, row: Record<string, unknown>) => this.push(table, row);

  private async processBatch(msgs: Kafka.Message[]): Promise<void> {
    const p = this.processor;
    const m = this.deps.metrics;
    await this.deps.codec.prepare(msgs.map((x) => x.value));
    const touched = new Set<PartitionTask<S>>();
    const now = this.clock();
    for (const msg of msgs) {
      const run = this.parts.get(tpKey(msg.topic, msg.partition));
      if (!run || msg.offset < run.next) continue; // revoked, or already in the restored state
      this.pendingBytes += msg.size;
      touched.add(run);
      m.consumedEvents.inc({ processor: p.name, topic: msg.topic });
      const decoded = this.deps.codec.decode(run.kind, msg.value);
      if (!decoded.ok) {
        run.skip(msg.offset);
        // The dead-letter sink counts what it delivers; without one the record is skipped and counted here.
        if (!this.deps.deadLetters) m.deadLetters.inc({ processor: p.name, error_class: decoded.errorClass });
        else {
          this.deadLetterQueue.push({ originalTopic: msg.topic, partition: msg.partition, offset: msg.offset, key: msg.key ?? null, value: msg.value, errorClass: decoded.errorClass, message: decoded.reason, stage: p.name, kind: run.kind });
        }
        continue;
      }
      run.handle(decoded.value, { topic: msg.topic, kind: run.kind, partition: msg.partition, offset: msg.offset, timestampMs: msg.timestamp ?? 0 }, now, this.pushFn);
    }
    for (const run of touched) this.closeWindows(run);
  }

  private closeWindows(run: PartitionTask<S>): void {
    const before = this.pendingRows;
    run.closeWindows(this.pushFn);
    if (this.pendingRows > before) this.deps.metrics.windowEmissions.inc({ processor: this.processor.name, kind: 'final' }, this.pendingRows - before);
    this.deps.metrics.watermarkMs.set({ processor: this.processor.name, topic: run.topic, partition: String(run.partition) }, run.time.watermarkMs);
  }

  private applyIdleRule(now: number): void {
    const idleMs = this.opts.idlePartitionMs ?? 30_000;
    const times = new Map([...this.parts].map(([k, r]) => [k, r.time] as const));
    for (const k of advanceIdle(times, now, idleMs)) {
      const run = this.parts.get(k);
      if (run) this.closeWindows(run);
    }
  }

  /** Whether this cycle also saves state + offsets (see RunnerOptions.checkpointCostRatio). */
  private snapshotDue(now: number): boolean {
    const interval = this.opts.checkpointIntervalMs ?? 2_000;
    const spacing = Math.max(interval, Math.min(this.opts.maxCheckpointIntervalMs ?? 30_000, (this.opts.checkpointCostRatio ?? 10) * this.lastSnapshotCostMs));
    return now - this.lastSnapshotAt >= spacing;
  }

  /**
   * One commit cycle: flush → sink (acked) → dead letters (acked) → checkpoint (fenced) → Kafka
   * commit. The rows, dead letters and (when a checkpoint is due) the state are taken now,
   * frozen (state serialized), and made durable in that order by `completeCycle`, which runs
   * while the loop goes on consuming: at most one cycle is in flight, the next one waits for it
   * (bounded memory, backpressure). A checkpoint is only saved after the rows it covers are
   * acknowledged; rows written by a cycle whose checkpoint never lands are rewritten identically
   * when a crash makes the work repeat. A cycle that fails after its retries stops the processor
   * (nothing after its last checkpoint is committed). `force`: on stop, or when caught up.
   */
  async commitCycle(force = false): Promise<void> {
    const p = this.processor;
    const runs = [...this.parts.values()];
    for (const run of runs) {
      if (this.opts.emitUpdates === false) break;
      const before = this.pendingRows;
      run.flush(this.pushFn);
      if (this.pendingRows > before) this.deps.metrics.windowEmissions.inc({ processor: p.name, kind: 'update' }, this.pendingRows - before);
    }
    // Wait for the previous cycle: its checkpoint must land before this one's.
    await this.inflight;
    const rows = this.pending;
    this.pending = new Map();
    this.pendingRows = 0;
    this.pendingBytes = 0;
    const letters = this.deadLetterQueue;
    this.deadLetterQueue = [];
    let snaps: Array<{ run: PartitionTask<S>; topic: string; partition: number; offset: number; state: string }> | null = null;
    if (force || this.snapshotDue(this.clock())) {
      const t0 = performance.now();
      snaps = runs.filter((r) => r.next !== r.checkpointed).map((r) => ({ run: r, topic: r.topic, partition: r.partition, offset: r.next, state: JSON.stringify(r.snapshot()) }));
      this.lastSnapshotCostMs = performance.now() - t0;
      this.lastSnapshotAt = this.clock();
    }
    this.lastCheckpointAt = this.clock();
    const cycle = this.completeCycle(rows, letters, snaps);
    // A failure stops the processor: its pending work is redone from the last checkpoint.
    this.inflight = cycle.catch((err) => this.fail(err as Error));
    if (force) await cycle;
  }

  private async completeCycle(
    rows: Map<string, Record<string, unknown>[]>,
    letters: DeadLetter[],
    snaps: Array<{ run: PartitionTask<S>; topic: string; partition: number; offset: number; state: string }> | null,
  ): Promise<void> {
    const p = this.processor;
    await writeTables(this.deps.ch, rows, { metrics: this.deps.metrics, logger: this.log });
    if (letters.length && this.deps.deadLetters) await Promise.all(letters.map((d) => this.deps.deadLetters!.sendDeadLetter(d)));
    if (!snaps) return;
    const end = this.deps.metrics.checkpointSeconds.startTimer({ processor: p.name });
    const t0 = performance.now();
    const lost = await this.checkpoints.save(this.owner, snaps, this.clock());
    end();
    this.lastSnapshotCostMs += performance.now() - t0;
    for (const l of lost) {
      this.parts.delete(tpKey(l.topic, l.partition));
      this.log.warn({ event: 'partition_fenced', processor: p.name, ...l }, 'another instance owns this partition now');
    }
    const lostKeys = new Set(lost.map((l) => tpKey(l.topic, l.partition)));
    const saved = snaps.filter((x) => !lostKeys.has(tpKey(x.topic, x.partition)));
    for (const x of saved) if (x.run.checkpointed < x.offset) x.run.checkpointed = x.offset;
    if (saved.length && this.consumer) {
      try {
        this.consumer.commitSync(saved.map((x) => ({ topic: x.topic, partition: x.partition, offset: x.offset })));
      } catch (err) {
        // The checkpoint in Redis is authoritative; a failed Kafka commit only delays lag metrics.
        this.log.warn({ event: 'kafka_commit_failed', processor: p.name, err: (err as Error).message }, 'offset commit failed');
      }
      this.updateLag(saved.map((x) => x.run));
    }
  }

  private updateLag(runs: PartitionTask<S>[]): void {
    for (const r of runs) {
      try {
        const wm = this.consumer!.getWatermarkOffsets(r.topic, r.partition);
        if (wm && typeof wm.highOffset === 'number' && wm.highOffset >= 0) this.deps.metrics.consumerLag.set({ processor: this.processor.name, topic: r.topic, partition: String(r.partition) }, Math.max(0, wm.highOffset - r.next));
      } catch {
        /* watermarks not known yet */
      }
    }
  }
}
