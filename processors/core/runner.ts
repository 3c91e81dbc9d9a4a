/**
 * Runs one Processor, or several fused, as a member of a Kafka consumer group (node-rdkafka,
 * manual commits). Fused processors share one consumer: each record is fetched and decoded once
 * and handed to the partition task of every processor that reads its kind (as Kafka Streams runs
 * several processors of a sub-topology in one task). Each processor keeps its own per-partition
 * task, dedup, watermark and checkpoint key, so its rows and checkpoints are exactly those of a
 * runner of its own; the consumer starts each partition at the lowest checkpoint among them and
 * every task skips what its state already holds.
 *
 * Loop: consume a batch → decode → dedup → observe event time → process → (per batch) close
 * windows at the watermark. Every checkpoint interval (or when the pending rows reach the batch
 * limit) a commit cycle runs, strictly in this order:
 *   1. onFlush: rows of open windows that changed;
 *   2. write all pending rows to ClickHouse and wait for the acks; deliver dead letters;
 *   3. save state + next offset + watermark per partition to Redis (fenced by ownership; a
 *      partition with no new record whose watermark moved saves the watermark alone);
 *   4. commit next offsets to Kafka.
 * The loop does not fetch while a cycle runs, so a slow sink pauses consumption instead of
 * buffering without bound. On assignment, a partition's checkpoint is restored before the
 * partition is assigned at the checkpoint's offset; without a checkpoint it starts from the
 * beginning of the log. On revocation, in-memory state is dropped: the new owner resumes from
 * the last checkpoint and recomputes identical rows. A batch fetched across a rebalance is
 * dropped and the fetcher sent back to the tasks' positions; a batch whose preparation failed
 * retriably is handled again (never skipped).
 *
 * Outages of Redis, ClickHouse or Kafka are waited out, not fatal: each step of a commit cycle
 * (rows, dead letters, checkpoint) and each claim on assignment is retried with capped, jittered
 * backoff for as long as its dependency fails retriably (`untilAvailable`); the loop does not fetch
 * meanwhile (the cycle behind is frozen, so memory stays bounded) and the partitions stay held.
 * Retrying a step repeats it whole: rows are rewritten identically (ReplacingMergeTree), the state
 * is staged again. The outage is counted per dependency (DependencyHealth). A checkpoint store
 * that lost its contents (CheckpointStoreLostError: its epoch vanished) is healed here: the new
 * epoch is adopted, the partitions held are re-claimed and their in-memory state saved again.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import Kafka from 'node-rdkafka';
import type { Logger } from 'pino';
import type { AvroCodec } from '../../lib/avro-codec.js';
import { KafkaError, StateError, StreamPulseError } from '../../lib/errors.js';
import { backoffDelayMs, DependencyHealth, type Dependency } from '../../lib/dependency-health.js';
import type { Metrics } from '../../lib/metrics.js';
import { recordProblem } from '../../contracts/validate.js';
import { topicSpec, type DeadLetter, type EventKind } from '../../contracts/topics.js';
import type { ClickHouse } from '../../sinks/clickhouse/client.js';
import { writeTables } from '../../sinks/clickhouse/table-writer.js';
import { CheckpointStore, CheckpointStoreLostError, type Checkpoint, type StoreEpoch } from './checkpoint-store.js';
import { PartitionTask, type PartitionDelta, type PartitionSnapshot, type RestoredCheckpoint } from './partition-task.js';
import type { Processor } from './processor.js';
import { advanceIdle, NO_TIME } from './watermark.js';
import { checkpointSpacingMs, dueCheckpoints, idleCycleDue, isCaughtUp, takeIdleCheckpoints } from './cycle-policy.js';
import { ACK_TTL_MS, ackKey, LIVE_TTL_MS, liveKey, pauseRequests } from './handover.js';

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
  /**
   * The processor whose progress governs dead-lettering in a fused runner (a record is
   * dead-lettered once, when this processor passes it); default: the first processor.
   */
  deadLetterStage?: string;
  /** MAX_FUTURE_SKEW_MS: how far a record's event time may be ahead of its Kafka timestamp (contracts/bounds.ts). */
  maxFutureSkewMs?: number;
  /** Outage bookkeeping of the process (shared by its runners); default: one of its own. */
  health?: DependencyHealth;
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
   * ratio × duration of the last saves, capped at maxCheckpointIntervalMs) has passed. The
   * duration is that of every processor of the runner together (their saves share one thread),
   * so fused processors stay within one budget, not one each. With small state that is every
   * cycle; with large state (hundreds of thousands of views) it keeps the cost of whole-state
   * snapshots from growing with state size × cycle rate.
   */
  checkpointCostRatio?: number;
  /**
   * Caught up (open-window rows all written at every cycle, never held back): little is left in
   * the log, or the newest record consumed since the last cycle has a Kafka timestamp at most this
   * old (default 10 s; 0: by the offsets alone). See cycle-policy.ts, isCaughtUp.
   */
  caughtUpRecordAgeMs?: number;
  /** Upper bound of the adaptive spacing of state checkpoints (default 30 s). */
  maxCheckpointIntervalMs?: number;
  /**
   * An idle cycle (caught up, nothing fetched) checkpoints the partitions with unsaved work, the
   * oldest first, while serializing them has taken at most about this long (default 50 ms; at
   * least one partition per cycle, expected costs from each one's last save), and idle cycles run
   * back to back, one per empty fetch, until every partition unsaved when the round began is
   * saved (cycle-policy.ts, takeIdleCheckpoints). The main thread then never stops for the whole
   * state at once when a fetch comes back empty under live traffic.
   */
  idleCheckpointBudgetMs?: number;
  /**
   * Incremental checkpoints (checkpoint-store.ts): a partition's checkpoint is a delta on the last
   * one until its chain has `maxDeltaChain` links (default 64) or its deltas' bytes reach
   * `deltaChainRatio` × the base's (default 1), then a full base again; restoring reads at most
   * about (1 + ratio) full states. 0 links: every checkpoint is full.
   */
  maxDeltaChain?: number;
  deltaChainRatio?: number;
  idlePartitionMs?: number;
  instanceId?: string;
  /**
   * Emit rows of open windows at every commit cycle (is_final = 0), so results are queryable
   * while a window is open (default true). When false, rows appear only when windows close.
   */
  emitUpdates?: boolean;
  /** ClickHouse inserts of one commit cycle running at once (default 2). */
  sinkConcurrency?: number;
  /** First and largest wait between attempts while a dependency is out (default 200 ms, 5 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** After stop() is asked for, how long a step still waits for a dependency that is out (default 10 s). */
  stopRetryMs?: number;
  /**
   * Appended to every table the processors write (`qoe_minute` → `qoe_minute__rebuild`): an online
   * rebuild writes shadow tables while the live ones keep serving (processors/replay-online.ts).
   */
  tableSuffix?: string;
  /** Appended to the processors' names in the checkpoint keys: a rebuild's checkpoints of their own. */
  checkpointSuffix?: string;
  /**
   * Live runners: announce themselves in Redis and obey the handover requests of an online
   * rebuild (processors/core/handover.ts): pause with everything durable, then reload the state
   * from the checkpoints the rebuild handed over (default false).
   */
  handover?: boolean;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** A claimed checkpoint as a task restores it: the base, its deltas in order and the chain's sizes. */
const restoredOf = (ckpt: Checkpoint | null): RestoredCheckpoint | undefined =>
  ckpt ? { offset: ckpt.offset, snapshot: ckpt.state as PartitionSnapshot, deltas: ckpt.deltas as PartitionDelta[] | undefined, chain: ckpt.chain } : undefined;

/** Where a commit cycle's time went (LOG_LEVEL=debug: the `commit_cycle` log line). */
interface CycleTrace {
  rows: number;
  caughtUp: boolean;
  kind: CycleKind;
  /** Idle cycles: partitions of the round left for the next idle cycle. */
  left: number;
  /** Processors' onFlush (rows of open windows), then serializing the due checkpoints. */
  flushMs: number;
  freezeMs: number;
  /** performance.now() when the cycle was frozen; from then the loop waits for the cycle before it. */
  frozenAt: number;
  loopWaitMs?: number;
  /** Since the cycle before: records fetched, time waiting for fetches and handling batches. */
  records: number;
  fetchMs: number;
  processMs: number;
  /** Rows (and dead letters) written and acknowledged. */
  insertMs?: number;
}

/**
 * What a commit cycle checkpoints: `busy` the due partitions, at most its share (dueCheckpoints);
 * `idle` (caught up, nothing fetched: spare time) the partitions with unsaved work, oldest first,
 * within RunnerOptions.idleCheckpointBudgetMs; `force` (stop, handover) every partition with
 * unsaved work, whatever it costs, and the caller waits until the cycle is durable.
 */
type CycleKind = 'busy' | 'idle' | 'force';

/**
 * The runner's librdkafka consumer settings beyond group, brokers and client id (also what
 * bench/consumer-client.ts reads with, to measure node-rdkafka as the runner consumes).
 */
export const CONSUMER_SETTINGS = {
  'enable.auto.commit': false,
  'enable.auto.offset.store': false,
  'partition.assignment.strategy': 'range',
  'session.timeout.ms': 10_000,
  'heartbeat.interval.ms': 1_000,
  'max.poll.interval.ms': 300_000,
  'queued.max.messages.kbytes': 32_768,
  'fetch.wait.max.ms': 50,
  'socket.keepalive.enable': true,
  // librdkafka backs off reconnects up to 10 s by default: a broker back from a restart was
  // seen only ~10 s later (npm run chaos). 1 s, as the Java client's default.
  'reconnect.backoff.max.ms': 1_000,
} as const;

interface Fetch {
  generation: number;
  msgs: Promise<Kafka.Message[]>;
}

/** One assigned topic-partition: the tasks of the processors that read its kind. */
interface TopicPartitionGroup {
  topic: string;
  partition: number;
  kind: EventKind;
  tasks: PartitionTask<unknown>[];
}

interface Snap {
  run: PartitionTask<unknown>;
  topic: string;
  partition: number;
  offset: number;
  /** Serialized state; null: only the watermark moved since the last checkpoint (progress only). */
  state: string | null;
  /** Set when `state` is a delta: the offset of the checkpoint it builds on. */
  deltaFrom?: number;
  watermarkMs: number;
}

export class ProcessorRunner<S = unknown> {
  private consumer: Kafka.KafkaConsumer | null = null;
  private readonly groups = new Map<string, TopicPartitionGroup>();
  private pending = new Map<string, Record<string, unknown>[]>();
  private pendingRows = 0;
  private pendingBytes = 0;
  private deadLetterQueue: DeadLetter[] = [];
  private readonly stores = new Map<string, CheckpointStore>();
  private readonly owner: string;
  private readonly clock: () => number;
  private running = false;
  private loopDone: Promise<void> | null = null;
  private rebalanceChain: Promise<void> = Promise.resolve();
  /** Rebalances so far: a batch fetched across one is dropped (see loop()). */
  private generation = 0;
  /** A batch was dropped: the fetcher must go back to the tasks' positions before the next fetch. */
  private rewindPending = false;
  private lastCheckpointAt = 0;
  /** When the last commit cycle that checkpointed state (of any processor) was taken. */
  private lastSnapshotAt = 0;
  /** The current idle round (cycle-policy.ts, takeIdleCheckpoints), and whether its last cycle left partitions of it. */
  private idleRound = 0;
  private idleCutShort = false;
  /** The previous cycle's write + checkpoint, still running while the loop consumes on. */
  private inflight: Promise<void> = Promise.resolve();
  private fatal: Error | null = null;
  private readonly kindByTopic: Map<string, EventKind>;
  private readonly readers = new Map<EventKind, Processor<unknown>[]>();
  readonly processors: readonly Processor<unknown>[];
  /** `business`, or `business+qoe+…` for fused processors (logs, metrics of the runner). */
  readonly name: string;
  readonly topics: string[];
  private readonly deadLetterStage: string;
  readonly health: DependencyHealth;
  /** The checkpoint store's epoch, shared by this runner's stores (a loss is healed once for all). */
  private readonly epoch: StoreEpoch = { value: null };
  /** When stop() was asked for (0: not yet): outages are waited out for stopRetryMs more at most. */
  private stopRequestedAt = 0;
  /** Handover: the timer announcing this runner as live, and when the loop last looked for a request. */
  private liveTimer: NodeJS.Timeout | null = null;
  private lastHandoverCheck = 0;
  private readonly tableSuffix: string;
  /** Since the last commit cycle (the `commit_cycle` debug line): records fetched, ms fetching and handling them. */
  private loopTimes = { records: 0, fetchMs: 0, processMs: 0 };

  constructor(
    processor: Processor<S> | readonly Processor<unknown>[],
    private readonly deps: RunnerDeps,
    private readonly opts: RunnerOptions = {},
  ) {
    const list = (Array.isArray(processor) ? processor : [processor]) as Processor<unknown>[];
    if (list.length === 0) throw new Error('a runner needs at least one processor');
    const names = list.map((p) => p.name);
    if (new Set(names).size !== names.length) throw new Error(`processor names must be unique in a runner: ${names.join(', ')}`);
    this.processors = list;
    this.name = names.join('+');
    this.clock = deps.clock ?? Date.now;
    this.owner = opts.instanceId ?? `${this.name}-${randomUUID()}`;
    this.health = deps.health ?? new DependencyHealth(deps.metrics, this.clock);
    for (const p of list) {
      this.stores.set(p.name, new CheckpointStore(deps.redis, deps.redisPrefix, `${p.name}${opts.checkpointSuffix ?? ''}`, this.epoch));
      for (const k of p.kinds) {
        const r = this.readers.get(k) ?? [];
        r.push(p);
        this.readers.set(k, r);
      }
    }
    this.deadLetterStage = deps.deadLetterStage ?? list[0]!.name;
    this.tableSuffix = opts.tableSuffix ?? '';
    this.kindByTopic = new Map([...this.readers.keys()].map((k) => [topicSpec(deps.topicPrefix, k).topic, k]));
    this.topics = [...this.kindByTopic.keys()];
  }

  /** The single processor of an unfused runner (the first of a fused one). */
  get processor(): Processor<unknown> {
    return this.processors[0]!;
  }

  get log(): Logger {
    return this.deps.logger;
  }

  /** Connects, joins the group and starts the processing loop. */
  async start(): Promise<void> {
    for (const p of this.processors) await p.start?.();
    // The rebalance callback keeps its own reference: it also fires while stop() disconnects.
    let self: Kafka.KafkaConsumer | null = null;
    const consumer = new Kafka.KafkaConsumer(
      {
        'group.id': this.deps.groupId,
        'metadata.broker.list': this.deps.brokers,
        'client.id': this.owner,
        ...CONSUMER_SETTINGS,
        rebalance_cb: (err: Kafka.LibrdKafkaError, assignment: Kafka.TopicPartition[]) => this.onRebalance(self!, err, assignment),
      },
      { 'auto.offset.reset': 'earliest' },
    );
    self = consumer;
    this.consumer = consumer;
    consumer.on('event.error', (err) => this.log.warn({ event: 'kafka_consumer_error', processor: this.name, err: err.message }, 'consumer error'));
    await new Promise<void>((resolve, reject) =>
      consumer.connect({ timeout: 30_000 }, (err) =>
        err ? reject(new KafkaError(`consumer cannot connect to ${this.deps.brokers}: ${err.message}`, true, { cause: err })) : resolve(),
      ),
    );
    consumer.setDefaultConsumeTimeout(100);
    consumer.subscribe(this.topics);
    this.running = true;
    this.lastCheckpointAt = this.clock();
    this.log.info(
      {
        event: 'processor_started',
        processor: this.name,
        processors: this.processors.map((p) => p.name),
        group: this.deps.groupId,
        topics: this.topics,
        owner: this.owner,
      },
      'processor started',
    );
    if (this.opts.handover) {
      const beat = () => {
        const pipe = this.deps.redis.pipeline();
        for (const p of this.processors) pipe.set(liveKey(this.deps.redisPrefix, p.name, this.owner), String(this.clock()), 'PX', LIVE_TTL_MS);
        pipe.exec().catch(() => undefined); // Redis out: the runner waits it out elsewhere
      };
      beat();
      this.liveTimer = setInterval(beat, 2_000);
    }
    this.loopDone = this.loop();
  }

  /** Finishes the current batch, runs a last commit cycle and leaves the group. */
  async stop(): Promise<void> {
    if (!this.consumer) return;
    this.running = false;
    this.stopRequestedAt = this.clock();
    await this.loopDone?.catch(() => undefined);
    if (this.liveTimer) {
      clearInterval(this.liveTimer);
      this.liveTimer = null;
      await this.deps.redis.del(...this.processors.map((p) => liveKey(this.deps.redisPrefix, p.name, this.owner))).catch(() => undefined);
    }
    await this.inflight.catch(() => undefined);
    if (!this.fatal)
      await this.commitCycle('force').catch((err) => this.log.error({ event: 'final_commit_failed', err: (err as Error).message }, 'final commit failed'));
    await this.rebalanceChain.catch(() => undefined);
    const c = this.consumer;
    await new Promise<void>((resolve) => c.disconnect(() => resolve()));
    this.consumer = null;
    this.groups.clear();
    this.log.info({ event: 'processor_stopped', processor: this.name, owner: this.owner }, 'processor stopped');
  }

  /** The error that stopped this runner for good, or null while it runs (or stopped cleanly). */
  get failure(): Error | null {
    return this.fatal;
  }

  /** Resolves when the loop ends (stop() or a fatal error, which it rethrows). */
  async done(): Promise<void> {
    await this.loopDone;
    if (this.fatal) throw this.fatal;
  }

  /** Next offsets per assigned partition and processor (for replay/catch-up checks and tests). */
  positions(): Array<{ processor: string; topic: string; partition: number; next: number; checkpointed: number }> {
    return [...this.groups.values()].flatMap((g) =>
      g.tasks.map((t) => ({ processor: t.processor.name, topic: g.topic, partition: g.partition, next: t.next, checkpointed: t.checkpointed })),
    );
  }

  /** Clears the checkpoints of this runner's processors (replay from the beginning). */
  async clearCheckpoints(): Promise<number> {
    let n = 0;
    for (const store of this.stores.values()) n += await store.clear();
    return n;
  }

  private tasksOf(): PartitionTask<unknown>[] {
    return [...this.groups.values()].flatMap((g) => g.tasks);
  }

  private onRebalance(consumer: Kafka.KafkaConsumer, err: Kafka.LibrdKafkaError, assignment: Kafka.TopicPartition[]): void {
    this.generation++;
    if (err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) {
      for (const p of this.processors) this.deps.metrics.rebalances.inc({ processor: p.name, kind: 'assign' });
      this.rebalanceChain = this.rebalanceChain
        .then(async () => {
          const withOffsets: Kafka.TopicPartitionOffset[] = [];
          for (const tp of assignment) {
            const kind = this.kindByTopic.get(tp.topic)!;
            const group: TopicPartitionGroup = { topic: tp.topic, partition: tp.partition, kind, tasks: [] };
            // Start at the lowest checkpoint among the processors (the beginning if one has none).
            let from = Number.POSITIVE_INFINITY;
            for (const p of this.readers.get(kind)!) {
              const ckpt = await this.untilAvailable('redis', `claim ${tp.topic}/${tp.partition}`, () =>
                this.stores.get(p.name)!.claim(tp.topic, tp.partition, this.owner),
              );
              if (ckpt)
                await this.untilAvailable('kafka', `end of ${tp.topic}/${tp.partition}`, () =>
                  this.assertCheckpointInLog(consumer, p.name, tp.topic, tp.partition, ckpt.offset),
                );
              group.tasks.push(new PartitionTask(p, tp.topic, kind, tp.partition, this.clock(), restoredOf(ckpt), this.deps.metrics));
              // Without a checkpoint, rebuild from the beginning of the log (OFFSET_BEGINNING = -2).
              from = Math.min(from, ckpt ? ckpt.offset : -2);
              this.log.info(
                { event: 'partition_assigned', processor: p.name, topic: tp.topic, partition: tp.partition, offset: ckpt?.offset ?? 'beginning' },
                'partition assigned',
              );
            }
            this.groups.set(tpKey(tp.topic, tp.partition), group);
            withOffsets.push({ topic: tp.topic, partition: tp.partition, offset: from });
          }
          consumer.assign(withOffsets);
        })
        .catch((e) => this.fail(e as Error));
    } else if (err.code === Kafka.CODES.ERRORS.ERR__REVOKE_PARTITIONS) {
      for (const p of this.processors) this.deps.metrics.rebalances.inc({ processor: p.name, kind: 'revoke' });
      this.rebalanceChain = this.rebalanceChain
        .then(async () => {
          for (const tp of assignment) {
            this.groups.delete(tpKey(tp.topic, tp.partition));
            this.log.info({ event: 'partition_revoked', processor: this.name, topic: tp.topic, partition: tp.partition }, 'partition revoked');
          }
          consumer.unassign();
        })
        .catch((e) => this.fail(e as Error));
    } else {
      this.log.error({ event: 'rebalance_error', processor: this.name, err: err.message }, 'rebalance error');
    }
  }

  /**
   * A checkpoint beyond the end of its partition means the log it was taken on is gone (the
   * topic was recreated, or the broker's data lost): resuming would silently skip every record
   * below it. Stop with a message that says how to rebuild instead.
   */
  private async assertCheckpointInLog(consumer: Kafka.KafkaConsumer, processor: string, topic: string, partition: number, offset: number): Promise<void> {
    const high = await new Promise<number>(
      (resolve, reject) =>
        void consumer.queryWatermarkOffsets(topic, partition, 10_000, (err, o) =>
          err ? reject(new KafkaError(`cannot read the end of ${topic}/${partition}: ${err.message}`, true, { cause: err })) : resolve(o.highOffset),
        ),
    );
    if (offset > high) {
      throw new StateError(
        `checkpoint of ${processor} for ${topic}/${partition} is at offset ${offset}, beyond the end of the log (${high}): ` +
          `the topic was recreated or its data lost. Rebuild from the log with: npm run replay -- --processor ${processor} --from-beginning`,
        false,
      );
    }
  }

  /**
   * Runs `fn` until it succeeds, waiting out retriable failures of `dep` with capped, jittered
   * backoff for as long as they last (a non-retriable error is thrown at once). The outage is
   * logged once when it starts and once when it ends, and counted in DependencyHealth. A
   * CheckpointStoreLostError heals the store (see recoverLostStore) and tries again. After stop()
   * was asked for, it gives up once stopRetryMs have passed (the work repeats after a restart).
   */
  private async untilAvailable<T>(dep: Dependency, what: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await fn(attempt);
        const downMs = this.health.available(dep);
        if (downMs !== null)
          this.log.info(
            { event: 'dependency_available', processor: this.name, dependency: dep, what, downtime_ms: downMs, attempts: attempt },
            `${dep} is available again after ${downMs} ms; resuming`,
          );
        return r;
      } catch (caught) {
        let err = caught;
        if (err instanceof CheckpointStoreLostError) {
          try {
            await this.recoverLostStore(err);
            continue;
          } catch (e) {
            err = e; // Redis went away again while healing: an outage like any other
          }
        }
        const retriable = err instanceof StreamPulseError ? err.retriable : false;
        if (!retriable) throw err;
        if (this.stopRequestedAt > 0 && this.clock() - this.stopRequestedAt > (this.opts.stopRetryMs ?? 10_000)) {
          throw new StateError(
            `stopping while ${dep} is unavailable (${what}): ${(err as Error).message}; the work since the last checkpoint repeats on restart`,
            false,
            { cause: err },
          );
        }
        const msg = (err as Error).message;
        if (this.health.unavailable(dep, err)) {
          this.log.warn(
            { event: 'dependency_unavailable', processor: this.name, dependency: dep, what, err: msg },
            `${dep} unavailable; commit cycles pause and retry with backoff until it is back`,
          );
        } else if (attempt % 20 === 0) {
          this.log.warn(
            { event: 'dependency_still_unavailable', processor: this.name, dependency: dep, what, attempts: attempt, err: msg },
            `${dep} still unavailable`,
          );
        }
        await new Promise((r) => setTimeout(r, backoffDelayMs(attempt, { baseMs: this.opts.retryBaseMs ?? 200, maxMs: this.opts.retryMaxMs ?? 5_000 })));
      }
    }
  }

  /**
   * The checkpoint store lost its contents (Redis restarted empty, flushed, or failed over to a
   * replica without them): every checkpoint and ownership claim is gone, and without this each
   * save would look fenced. The state this runner holds in memory is still exact (it covers
   * every record below each task's next offset, and the rows of every acknowledged cycle are in
   * ClickHouse), so it is the last provably valid checkpoint: adopt the store's new epoch,
   * re-claim every partition held here (unless another instance claimed it since the loss), and
   * mark every task for a full save at the next cycle. Partitions that no instance held (a process
   * that was not running) have no checkpoint any more and rebuild from the beginning of the log
   * when they are assigned; the tables' ReplacingMergeTree versions make those rewrites exact.
   */
  private async recoverLostStore(err: CheckpointStoreLostError): Promise<void> {
    const store = this.stores.values().next().value as CheckpointStore;
    const epoch = await store.adoptEpoch();
    let reclaimed = 0;
    const fenced: string[] = [];
    for (const [key, g] of [...this.groups]) {
      for (const t of g.tasks) {
        if (await this.stores.get(t.processor.name)!.reclaim(g.topic, g.partition, this.owner)) {
          reclaimed++;
          // Saved again in full at the next cycle, even if no record arrives (frozen ≠ next): a new
          // base (the delta chain went with the store).
          t.frozen = -2;
          t.ckpt.savedAtMs = Number.MIN_SAFE_INTEGER; // first in line
          t.chain.needsBase = true;
        } else {
          fenced.push(`${t.processor.name}:${g.topic}/${g.partition}`);
          this.groups.delete(key);
        }
      }
    }
    for (const p of this.processors) this.deps.metrics.checkpointStoreLosses.inc({ processor: p.name });
    this.log.error(
      { event: 'checkpoint_store_lost', processor: this.name, err: err.message, previous_epoch: err.expected, epoch, reclaimed, fenced },
      'the checkpoint store (Redis) lost its contents: re-claimed the partitions held here; their in-memory state is saved again at the next commit (no rebuild); partitions no instance held rebuild from the log',
    );
  }

  private fail(err: Error): void {
    if (!this.fatal) {
      this.fatal = err;
      for (const p of this.processors) this.deps.metrics.processorFailures.inc({ processor: p.name });
      this.log.error({ event: 'processor_failed', processor: this.name, err: err.message, code: (err as { code?: string }).code }, 'processor failed');
    }
    this.running = false;
  }

  private consumeBatch(): Promise<Kafka.Message[]> {
    return new Promise((resolve, reject) => {
      this.consumer!.consume(this.opts.consumeBatch ?? 2_000, (err, msgs) =>
        err ? reject(new KafkaError(`consume failed: ${err.message}`, true, { cause: err })) : resolve(msgs),
      );
    });
  }

  /** Seeks every assigned partition to the lowest next offset of its tasks (no batch is in flight). */
  private async rewind(): Promise<void> {
    const consumer = this.consumer!;
    await Promise.all(
      [...this.groups.values()].map((g) => {
        let offset = Number.POSITIVE_INFINITY;
        for (const t of g.tasks) offset = Math.min(offset, t.next);
        // Nothing in the state yet: the beginning of the log (offset 0 may be gone to retention).
        const to = offset === 0 ? -2 : offset;
        return new Promise<void>((resolve, reject) =>
          consumer.seek({ topic: g.topic, partition: g.partition, offset: to }, 5_000, (err) =>
            err ? reject(new KafkaError(`cannot seek ${g.topic}/${g.partition} to ${to}: ${err.message}`, true, { cause: err })) : resolve(),
          ),
        );
      }),
    );
  }

  /** A batch being fetched, with the rebalance generation it was asked for in. */
  private fetch(): Fetch {
    const msgs = this.consumeBatch();
    msgs.catch(() => undefined); // awaited in loop()
    return { generation: this.generation, msgs };
  }

  private async loop(): Promise<void> {
    const interval = this.opts.checkpointIntervalMs ?? 2_000;
    const maxPending = this.opts.maxPendingRows ?? 50_000;
    const maxBytes = this.opts.maxPendingBytes ?? 16 * 1024 * 1024;
    const batch = this.opts.consumeBatch ?? 2_000;
    /** Records consumed since the last commit cycle, and the newest Kafka timestamp among them (0: none). */
    let consumed = 0;
    let newestRecordMs = 0;
    /** The batch in hand; kept when handling it failed with a retriable error, to be handled again. */
    let current: Fetch | null = null;
    try {
      while (this.running) {
        try {
          await this.rebalanceChain;
          if (this.opts.handover && current === null && this.clock() - this.lastHandoverCheck >= 250) {
            this.lastHandoverCheck = this.clock();
            const requests = await pauseRequests(
              this.deps.redis,
              this.deps.redisPrefix,
              this.processors.map((p) => p.name),
            ).catch(() => new Map<string, string>());
            if (requests.size > 0) {
              await this.holdForHandover();
              continue;
            }
          }
          if (this.rewindPending) {
            await this.rewind();
            this.rewindPending = false;
          }
          current ??= this.fetch();
          const tFetch = performance.now();
          const msgs = await current.msgs.catch((err) => {
            current = null; // a failed fetch is asked again
            throw err;
          });
          const tProcess = performance.now();
          if (current.generation !== this.generation) {
            // Fetched across a rebalance: the batch may hold records taken before the revocation
            // (ahead of where the new assignment starts, its checkpoints) as well as records of
            // the new assignment. Drop it, and once the assignment is done send the fetcher back to
            // where the tasks stand, so every record comes again, in order.
            current = null;
            this.rewindPending = true;
            continue;
          }
          // Only preparing the batch (fetching unknown writer schemas) can fail, retriably, and it
          // fails before any record is handled: then the same batch is handled again. Moving on
          // to the next batch would skip its records.
          if (msgs.length > 0) await this.processBatch(msgs);
          current = null;
          consumed += msgs.length;
          for (const m of msgs) if (m.timestamp !== undefined && m.timestamp > newestRecordMs) newestRecordMs = m.timestamp;
          this.loopTimes.records += msgs.length;
          this.loopTimes.fetchMs += tProcess - tFetch;
          this.loopTimes.processMs += performance.now() - tProcess;
          const now = this.clock();
          this.applyIdleRule(now);
          // Nothing fetched while results are still unsaved (the end of the log was just reached,
          // or a gap in live traffic): spare time, so commit and checkpoint now rather than an
          // interval after the last cycle, but start checkpointing state at most once per interval
          // (a trickle of records means a short idle spell after each one); an idle round its
          // budget cut short goes on at once (cycle-policy.ts, idleCycleDue).
          const idleUnsaved =
            msgs.length === 0 &&
            idleCycleDue({
              fetched: msgs.length,
              unsaved: this.hasUnsaved(),
              nowMs: now,
              lastSnapshotMs: this.lastSnapshotAt,
              intervalMs: interval,
              cutShort: this.idleCutShort,
            });
          if (idleUnsaved || now - this.lastCheckpointAt >= interval || this.pendingRows >= maxPending || this.pendingBytes >= maxBytes) {
            // Caught up: what is left in the log is no more than one cycle consumed (or one batch),
            // by the high watermarks librdkafka caches; while they are not known yet, a short
            // fetch. Then every row of open windows is written at this cycle; while behind,
            // processors may hold back rows they would rewrite at every cycle (Processor.onFlush).
            // An empty fetch while the log still holds a backlog (a slow fetch) is not caught up.
            // Or the newest record consumed since the last cycle is at most caughtUpRecordAgeMs old:
            // a live consumer stays caught up through a stall of a few seconds (cycle-policy.ts).
            const caughtUp = isCaughtUp({
              lag: this.lag(),
              fetched: msgs.length,
              batch,
              consumed,
              newestRecordMs: newestRecordMs > 0 ? newestRecordMs : null,
              nowMs: now,
              maxRecordAgeMs: this.opts.caughtUpRecordAgeMs ?? 10_000,
            });
            consumed = 0;
            newestRecordMs = 0;
            // Caught up with nothing fetched: spare time, so the cycle checkpoints whatever is
            // unsaved, a budget's worth per cycle (idle cycles follow one another until done).
            await this.commitCycle(caughtUp && msgs.length === 0 ? 'idle' : 'busy', caughtUp);
          }
        } catch (err) {
          const e = err as Error & { retriable?: boolean };
          if (e.retriable) {
            this.log.warn({ event: 'processor_retry', processor: this.name, err: e.message }, 'retriable error; retrying');
            await new Promise((r) => setTimeout(r, 500));
            continue;
          }
          this.fail(e);
        }
      }
    } finally {
      // A fetch still in flight ends before the consumer disconnects; its records are not handled.
      await current?.msgs.catch(() => undefined);
    }
  }

  /** Rows, dead letters or records not covered by the last checkpoint taken. */
  private hasUnsaved(): boolean {
    if (this.pendingRows > 0 || this.deadLetterQueue.length > 0) return true;
    for (const g of this.groups.values()) for (const t of g.tasks) if (t.next !== t.frozen) return true;
    return false;
  }

  /**
   * A rebuild asked this runner's processors to pause (processors/core/handover.ts): a forced
   * commit cycle makes every row and checkpoint durable, then the runner acknowledges and writes
   * nothing while a request stands. Afterwards every task is reloaded from its checkpoint (the
   * rebuild's, handed over) and the fetcher sent to its offset.
   */
  private async holdForHandover(): Promise<void> {
    const prefix = this.deps.redisPrefix;
    const names = this.processors.map((p) => p.name);
    this.log.info({ event: 'handover_pause', processor: this.name }, 'a rebuild asked to pause: committing, then waiting for the handover');
    await this.commitCycle('force');
    if (this.fatal) return;
    let acked = 0;
    while (this.running) {
      let requests: Map<string, string>;
      try {
        requests = await pauseRequests(this.deps.redis, prefix, names);
        if (requests.size === 0) break;
        const pipe = this.deps.redis.pipeline();
        for (const [p, token] of requests) pipe.set(ackKey(prefix, p, this.owner), token, 'PX', ACK_TTL_MS);
        await pipe.exec();
        if (acked++ === 0) this.log.info({ event: 'handover_paused', processor: this.name, owner: this.owner }, 'paused for a handover');
      } catch (err) {
        this.log.warn({ event: 'handover_redis_error', processor: this.name, err: (err as Error).message }, 'cannot read the handover request; staying paused');
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await this.deps.redis.del(...names.map((p) => ackKey(prefix, p, this.owner))).catch(() => undefined); // expire anyway
    if (!this.running) return;
    await this.rebalanceChain;
    for (const [key, g] of this.groups) {
      const tasks: PartitionTask<unknown>[] = [];
      for (const p of this.readers.get(g.kind)!) {
        const ckpt = await this.untilAvailable('redis', `reload ${g.topic}/${g.partition}`, () =>
          this.stores.get(p.name)!.claim(g.topic, g.partition, this.owner),
        );
        tasks.push(new PartitionTask(p, g.topic, g.kind, g.partition, this.clock(), restoredOf(ckpt), this.deps.metrics));
      }
      this.groups.set(key, { ...g, tasks });
    }
    this.generation++;
    this.rewindPending = true;
    this.log.info(
      { event: 'handover_resumed', processor: this.name, positions: this.positions().map((p) => `${p.processor}:${p.topic}/${p.partition}@${p.next}`) },
      'handover done: state reloaded from the checkpoints',
    );
  }

  private push(table: string, row: Record<string, unknown>): void {
    if (this.tableSuffix) table += this.tableSuffix;
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
    const m = this.deps.metrics;
    await this.deps.codec.prepare(msgs.map((x) => x.value));
    const touched = new Set<TopicPartitionGroup>();
    const now = this.clock();
    // A batch holds runs of records of one partition: its group is looked up once per run.
    let g: TopicPartitionGroup | undefined;
    let gTopic = '';
    let gPartition = -1;
    for (const msg of msgs) {
      if (msg.partition !== gPartition || msg.topic !== gTopic) {
        g = this.groups.get(tpKey(msg.topic, msg.partition));
        gTopic = msg.topic;
        gPartition = msg.partition;
      }
      if (!g) continue; // revoked
      const tasks = g.tasks;
      let due = false;
      for (let i = 0; i < tasks.length; i++) if (msg.offset >= tasks[i]!.next) due = true;
      if (!due) continue; // already in every restored state
      this.pendingBytes += msg.size;
      touched.add(g);
      const decoded = this.deps.codec.decode(g.kind, msg.value);
      // A record the edge would refuse (a semantic rule, time or value bounds; reference: its
      // Kafka timestamp) is handled like an undecodable one: consumed, in no state, dead-lettered once.
      const bad = decoded.ok ? recordProblem(g.kind, decoded.value, { referenceMs: msg.timestamp ?? 0, maxFutureSkewMs: this.deps.maxFutureSkewMs }) : decoded;
      if (!decoded.ok || bad) {
        const why = decoded.ok ? bad! : decoded;
        for (const t of tasks) {
          if (msg.offset < t.next) continue;
          t.skip(msg.offset);
          t.batchRecords++;
          this.reject(t, g, msg, why.errorClass, why.reason, t.processor.name === this.deadLetterStage);
        }
        continue;
      }
      const rec = { topic: msg.topic, kind: g.kind, partition: msg.partition, offset: msg.offset, timestampMs: msg.timestamp ?? 0, body: decoded.body };
      for (let i = 0; i < tasks.length; i++) {
        const t = tasks[i]!;
        if (msg.offset < t.next) continue;
        t.batchRecords++;
        // A processor's own refusal (ProcessContext.reject) is its dead letter: stage = its name.
        if (t.handle(decoded.value, rec, now, this.pushFn, null) === 'rejected') this.reject(t, g, msg, t.rejection!.errorClass, t.rejection!.reason, true);
      }
    }
    // Metrics are counted once per batch, per task handed records.
    for (const tg of touched)
      for (const t of tg.tasks) {
        if (t.batchRecords > 0) m.consumedEvents.inc({ processor: t.processor.name, topic: t.topic }, t.batchRecords);
        t.batchRecords = 0;
      }
    for (const tg of touched) for (const t of tg.tasks) this.closeWindows(t);
  }

  /**
   * A record `t` does not take: dead-lettered when `write` (the dead-letter stage for records
   * every processor refuses alike; the processor itself for its own refusals) and a sink is set,
   * otherwise only counted.
   */
  private reject(t: PartitionTask<unknown>, g: TopicPartitionGroup, msg: Kafka.Message, errorClass: string, reason: string, write: boolean): void {
    // The dead-letter sink counts what it delivers; without one the record is skipped and counted here.
    if (this.deps.deadLetters && write) {
      this.deadLetterQueue.push({
        originalTopic: msg.topic,
        partition: msg.partition,
        offset: msg.offset,
        key: msg.key ?? null,
        value: msg.value,
        errorClass,
        message: reason,
        stage: t.processor.name,
        kind: g.kind,
      });
    } else this.deps.metrics.deadLetters.inc({ processor: t.processor.name, error_class: errorClass });
  }

  /**
   * A row ClickHouse's columns cannot hold: logged, and queued as a dead letter of the processor
   * that wrote it (value: the row as JSON; partition and offset: the last record it covers).
   */
  private unencodable(letters: DeadLetter[], table: string, row: Record<string, unknown>, reason: string): void {
    const stage =
      typeof row.processor === 'string'
        ? row.processor
        : (this.processors.find((p) => p.tables.some((t) => t + this.tableSuffix === table))?.name ?? this.name);
    const topic = String(row.src_topic ?? '');
    const offset = typeof row.version === 'number' ? row.version - 1 : -1;
    this.log.error(
      { event: 'row_unencodable', processor: stage, table, topic, partition: row.src_partition, offset, err: reason },
      'row cannot be encoded for its table; dead-lettered',
    );
    const value = Buffer.from(JSON.stringify(row, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
    const letter: DeadLetter = {
      originalTopic: topic,
      partition: Number(row.src_partition ?? -1),
      offset,
      key: table,
      value,
      errorClass: 'unencodable_row',
      message: reason,
      stage,
      kind: this.kindByTopic.get(topic),
    };
    if (this.deps.deadLetters) letters.push(letter);
    else this.deps.metrics.deadLetters.inc({ processor: stage, error_class: 'unencodable_row' });
  }

  private closeWindows(run: PartitionTask<unknown>): void {
    const before = this.pendingRows;
    run.closeWindows(this.pushFn);
    const name = run.processor.name;
    if (this.pendingRows > before) this.deps.metrics.windowEmissions.inc({ processor: name, kind: 'final' }, this.pendingRows - before);
    // No event yet: no watermark to show (NO_TIME would read as a date 285,000 years ago).
    if (run.time.watermarkMs > NO_TIME)
      this.deps.metrics.watermark.set({ processor: name, topic: run.topic, partition: String(run.partition) }, run.time.watermarkMs / 1000);
  }

  /** The idle rule, per processor: among that processor's partitions only. */
  private applyIdleRule(now: number): void {
    const idleMs = this.opts.idlePartitionMs ?? 30_000;
    for (const p of this.processors) {
      const tasks = new Map<PartitionTask<unknown>, PartitionTask<unknown>['time']>();
      for (const g of this.groups.values()) for (const t of g.tasks) if (t.processor === p) tasks.set(t, t.time);
      for (const t of advanceIdle(tasks, now, idleMs)) this.closeWindows(t);
    }
  }

  /**
   * The spacing of state checkpoints (see RunnerOptions.checkpointCostRatio): from what saving
   * every partition of every processor once costs, by each partition's last save.
   */
  private checkpointSpacing(runs: readonly PartitionTask<unknown>[]): number {
    let roundCostMs = 0;
    for (const r of runs) roundCostMs += r.ckpt.costMs;
    return checkpointSpacingMs(
      roundCostMs,
      this.opts.checkpointIntervalMs ?? 2_000,
      this.opts.checkpointCostRatio ?? 10,
      this.opts.maxCheckpointIntervalMs ?? 30_000,
    );
  }

  /**
   * One commit cycle: flush → sink (acked) → dead letters (acked) → checkpoint commit (fenced) →
   * Kafka commit; the checkpoint's state is staged in Redis while the sink writes. The rows, dead
   * letters and (when a checkpoint is due) the state are taken now, frozen (state serialized), and
   * made durable in that order by `completeCycle`, which runs while the loop goes on consuming: at
   * most one cycle is in flight and one frozen behind it; the loop waits for the one in flight
   * (bounded memory, backpressure). A checkpoint is only saved after the rows it covers are
   * acknowledged; rows written by a cycle whose checkpoint never lands are rewritten identically
   * when a crash makes the work repeat. A cycle that fails after its retries stops the processor
   * (nothing after its last checkpoint is committed). `kind` (CycleKind) says which checkpoints it
   * takes: `busy` a partition's once its last one is as old as the spacing (by the cost of the
   * saves), at most the cycle's share of the due partitions (cycle-policy.ts, dueCheckpoints), so
   * large states are serialized a few partitions per cycle, not all at once; `idle` (after an empty
   * fetch while caught up) the unsaved partitions of its idle round within the idle budget
   * (takeIdleCheckpoints); `force` (stop, handover) every unsaved partition, and it returns once
   * the cycle is durable. `caughtUp` (little left in the log, see loop()), or `force`: write every
   * held-back row of open windows.
   */
  async commitCycle(kind: CycleKind, caughtUp = kind === 'force'): Promise<void> {
    const force = kind === 'force';
    const tCycle = performance.now();
    const runs = this.tasksOf();
    // Caught up and going on with records (not stopping, and records came since the last cycle:
    // the traffic has not stopped): processors may hold per-entity rows back for an interval of
    // their own. Not "an idle cycle writes everything": under steady traffic a fetch comes back
    // empty now and then (at 10,000 events/s, twice in two minutes), and writing every row held
    // back at such a cycle (120,000 rows, a 0.5 s flush and a 1.7 s insert) delayed every result
    // by seconds. A cycle with no record since the one before writes them.
    const live = caughtUp && !force && this.loopTimes.records > 0 ? { nowMs: this.clock() } : undefined;
    for (const run of runs) {
      if (this.opts.emitUpdates === false) break;
      const before = this.pendingRows;
      // Caught up or stopping: every pending row (but what a live cycle may hold back); while
      // behind, processors may hold some back.
      run.flush(this.pushFn, force || caughtUp, live);
      if (this.pendingRows > before) this.deps.metrics.windowEmissions.inc({ processor: run.processor.name, kind: 'update' }, this.pendingRows - before);
    }
    const flushMs = performance.now() - tCycle;
    const loopTimes = this.loopTimes;
    this.loopTimes = { records: 0, fetchMs: 0, processMs: 0 };
    const rows = this.pending;
    const rowCount = this.pendingRows;
    this.pending = new Map();
    this.pendingRows = 0;
    this.pendingBytes = 0;
    const letters = this.deadLetterQueue;
    this.deadLetterQueue = [];
    const snaps = new Map<string, Snap[]>();
    const maxLinks = this.opts.maxDeltaChain ?? 64;
    const ratio = this.opts.deltaChainRatio ?? 1;
    const now = this.clock();
    const spacing = this.checkpointSpacing(runs);
    /** Serializes `r`'s checkpoint (its state, or its watermark alone) into this cycle. */
    const take = (r: PartitionTask<unknown>) => {
      const t0 = performance.now();
      const wm = r.time.watermarkMs;
      const snap: Snap =
        // Compared with the last checkpoint taken (r.frozen), which may still be in flight.
        // A delta on the chain behind the last checkpoint taken, or a full base (PartitionTask.freeze).
        r.next !== r.frozen
          ? { run: r, topic: r.topic, partition: r.partition, offset: r.next, ...r.freeze(maxLinks, ratio), watermarkMs: wm }
          : // No new record, but the idle rule moved the watermark: record the progress alone.
            { run: r, topic: r.topic, partition: r.partition, offset: r.next, state: null, watermarkMs: wm };
      const list = snaps.get(r.processor.name) ?? snaps.set(r.processor.name, []).get(r.processor.name)!;
      list.push(snap);
      r.frozen = r.next;
      r.frozenWm = wm;
      // The staging and commit of the save are added to the cost when they are done (durableCycle).
      r.ckpt.freezeMs = performance.now() - t0;
      r.ckpt.costMs = r.ckpt.freezeMs;
      r.ckpt.savedAtMs = now;
    };
    // Partitions with nothing to save are up to date: they take no share of the cycle.
    const unsaved: PartitionTask<unknown>[] = [];
    for (const r of runs) {
      if (r.next !== r.frozen || r.time.watermarkMs !== r.frozenWm) unsaved.push(r);
      else if (force || now - r.ckpt.savedAtMs >= spacing) r.ckpt.savedAtMs = now;
    }
    let left = 0;
    if (kind === 'idle') {
      // A new round unless the last idle cycle's budget cut one short; then it goes on with the
      // partitions that round has not taken yet.
      if (!this.idleCutShort) this.idleRound++;
      const round = this.idleRound;
      const slots = unsaved.map((r) => ({ savedAtMs: r.ckpt.savedAtMs, freezeMs: r.ckpt.freezeMs, idleRound: r.ckpt.idleRound, r }));
      const taken = takeIdleCheckpoints(
        slots,
        round,
        this.opts.idleCheckpointBudgetMs ?? 50,
        () => performance.now(),
        ({ r }) => {
          take(r);
          r.ckpt.idleRound = round;
        },
      );
      left = taken.left.length;
      this.idleCutShort = left > 0;
    } else {
      // Every partition is taken, or the consumer is behind (no spare time): the round ends.
      if (force || !caughtUp) this.idleCutShort = false;
      for (const p of this.processors) {
        const slots = unsaved.filter((r) => r.processor === p).map((r) => ({ savedAtMs: r.ckpt.savedAtMs, r }));
        for (const { r } of force ? slots : dueCheckpoints(slots, now, spacing, now - this.lastCheckpointAt)) take(r);
      }
    }
    this.lastCheckpointAt = this.clock();
    if (snaps.size > 0) this.lastSnapshotAt = this.lastCheckpointAt;
    // The previous cycle completes first: its checkpoint must land before this one's. Everything
    // above is frozen already, so the state was serialized while ClickHouse was still writing the
    // previous cycle's rows. When the previous cycle failed, this one is not applied: its
    // checkpoint would cover the failed cycle's rows, which were never written.
    const previous = this.inflight;
    // LOG_LEVEL=debug: one `commit_cycle` line per cycle with where its time went (docs/operations.md).
    const trace: CycleTrace | null = this.log.isLevelEnabled('debug')
      ? { rows: rowCount, caughtUp, kind, left, flushMs, freezeMs: performance.now() - tCycle - flushMs, frozenAt: performance.now(), ...loopTimes }
      : null;
    const cycle = previous.then(() => {
      if (this.fatal) throw new StateError(`commit cycle of ${this.name} not applied: an earlier cycle failed (${this.fatal.message})`, false);
      return this.completeCycle(rows, letters, snaps, trace);
    });
    // A failure stops the processor: its pending work is redone from the last checkpoint.
    this.inflight = cycle.catch((err) => this.fail(err as Error));
    // At most one cycle in flight and one frozen behind it: the loop waits here (backpressure).
    // An idle cycle is not waited for either: the loop fetches again (records may be there by
    // now), and the next idle cycle of its round waits for it here.
    await previous;
    if (trace) trace.loopWaitMs = performance.now() - trace.frozenAt;
    if (force) await cycle;
  }

  private async completeCycle(
    rows: Map<string, Record<string, unknown>[]>,
    letters: DeadLetter[],
    snaps: Map<string, Snap[]>,
    trace: CycleTrace | null,
  ): Promise<void> {
    // Timed whole, outages waited out included: a cycle that takes long is what an operator sees
    // as a processor falling behind (docs/operations.md).
    const endCycle = this.deps.metrics.commitCycleSeconds.startTimer({ processor: this.name });
    let n = 0;
    for (const list of rows.values()) n += list.length;
    this.deps.metrics.commitCycleRows.observe({ processor: this.name }, n);
    const t0 = performance.now();
    await this.durableCycle(rows, letters, snaps, trace);
    endCycle();
    if (trace) {
      const now = performance.now();
      let bases = 0;
      let deltas = 0;
      let bytes = 0;
      for (const list of snaps.values())
        for (const x of list) {
          if (x.state === null) continue;
          if (x.deltaFrom === undefined) bases++;
          else deltas++;
          bytes += x.state.length;
        }
      this.log.debug(
        {
          event: 'commit_cycle',
          processor: this.name,
          records: trace.records,
          fetch_ms: Math.round(trace.fetchMs),
          process_ms: Math.round(trace.processMs),
          rows: trace.rows,
          caught_up: trace.caughtUp,
          kind: trace.kind,
          left: trace.left,
          flush_ms: Math.round(trace.flushMs),
          freeze_ms: Math.round(trace.freezeMs),
          queued_ms: Math.round(t0 - trace.frozenAt),
          insert_ms: Math.round(trace.insertMs ?? 0),
          checkpoint_ms: Math.round(now - t0 - (trace.insertMs ?? 0)),
          loop_wait_ms: Math.round(trace.loopWaitMs ?? 0),
          bases,
          deltas,
          state_bytes: bytes,
        },
        'commit cycle',
      );
    }
  }

  private async durableCycle(
    rows: Map<string, Record<string, unknown>[]>,
    letters: DeadLetter[],
    snaps: Map<string, Snap[]>,
    trace: CycleTrace | null = null,
  ): Promise<void> {
    const tStart = performance.now();
    // The states travel to Redis (staged, not yet a checkpoint) while ClickHouse writes the rows
    // they cover; they are committed below, once the rows and dead letters are acknowledged.
    const stageMs = new Map<string, number>();
    const staging = Promise.all(
      [...snaps].map(async ([name, list]) => {
        const t0 = performance.now();
        await this.stores.get(name)!.stage(this.owner, list);
        stageMs.set(name, performance.now() - t0);
      }),
    ).then(
      () => true,
      () => false,
    ); // staged again below when it failed
    // Every step waits out an outage of its dependency; a step repeated is repeated whole (the
    // rows are rewritten identically, the state staged again).
    const sinkDeps = {
      metrics: this.deps.metrics,
      logger: this.log,
      concurrency: this.opts.sinkConcurrency ?? 2,
      // A few quick retries for a blip; a longer outage is waited out below, with jitter and a lower cap.
      attempts: 4,
      onRetry: (err: unknown) => {
        if (this.health.unavailable('clickhouse', err))
          this.log.warn(
            { event: 'dependency_unavailable', processor: this.name, dependency: 'clickhouse', what: 'insert', err: (err as Error).message },
            'clickhouse unavailable; commit cycles pause and retry with backoff until it is back',
          );
      },
    };
    // A row its columns cannot hold (the bounds and the processors' checks should make this
    // impossible) is dead-lettered and left out, so one bad row does not stop the commit cycle.
    // An insert repeated after an outage encodes again: its dead letters are collected afresh.
    const lettersBefore = letters.length;
    const onUnencodable = (table: string, row: object, reason: string) => this.unencodable(letters, table, row as Record<string, unknown>, reason);
    await this.untilAvailable('clickhouse', 'insert', () => {
      letters.length = lettersBefore;
      return writeTables(this.deps.ch, rows, { ...sinkDeps, onUnencodable });
    });
    if (letters.length && this.deps.deadLetters) {
      const sink = this.deps.deadLetters;
      let left = letters;
      await this.untilAvailable('kafka', 'dead letters', async () => {
        const results = await Promise.allSettled(left.map((d) => sink.sendDeadLetter(d)));
        const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ d: left[i]!, err: r.reason as unknown }] : []));
        left = failed.map((f) => f.d);
        if (failed.length) throw failed[0]!.err;
      });
    }
    if (trace) trace.insertMs = performance.now() - tStart;
    const stagedOk = await staging;
    if (snaps.size === 0) return;
    const saved: Snap[] = [];
    await this.untilAvailable('redis', 'checkpoint', async (attempt) => {
      saved.length = 0;
      // Staged already, unless staging or an earlier attempt failed (then stage again first).
      const staged = stagedOk && attempt === 1;
      await Promise.all(
        [...snaps].map(async ([name, list]) => {
          // After a heal, partitions fenced by another owner were dropped: not saved.
          const held = list.filter((x) => this.groups.has(tpKey(x.topic, x.partition)));
          if (held.length === 0) return;
          const t0 = performance.now();
          const lost = await this.stores.get(name)!.save(this.owner, held, this.clock(), staged);
          // A checkpoint's cost: staging its state and committing it (not the rows' write between).
          const ms = (stageMs.get(name) ?? 0) + performance.now() - t0;
          this.deps.metrics.checkpointSeconds.observe({ processor: name }, ms / 1000);
          // Shared by the partitions saved (their serialization was counted each for itself).
          for (const x of held) x.run.ckpt.costMs += ms / held.length;
          const lostKeys = new Set(lost.map((l) => tpKey(l.topic, l.partition)));
          for (const l of lost) {
            if (l.chainBroken) {
              // The delta did not fit the chain (it was lost with the store, or a link before it was
              // not written): nothing saved; the next checkpoint of the partition is a full base.
              const x = held.find((h) => h.topic === l.topic && h.partition === l.partition);
              if (x) {
                x.run.chain.needsBase = true;
                x.run.frozen = -2; // saved at the next cycle even if no record arrives
                x.run.ckpt.savedAtMs = Number.MIN_SAFE_INTEGER;
              }
              this.log.warn(
                { event: 'checkpoint_chain_broken', processor: name, ...l },
                'a checkpoint delta did not fit its chain; the next checkpoint is a full one',
              );
              continue;
            }
            // Another instance owns the partition now (a rebalance this instance has not seen yet).
            this.groups.delete(tpKey(l.topic, l.partition));
            this.log.warn({ event: 'partition_fenced', processor: name, ...l }, 'another instance owns this partition now');
          }
          for (const x of held) if (!lostKeys.has(tpKey(x.topic, x.partition))) saved.push(x);
        }),
      );
    });
    for (const x of saved) {
      if (x.state !== null)
        this.deps.metrics.checkpointBytes.set({ processor: x.run.processor.name, topic: x.topic, partition: String(x.partition) }, Buffer.byteLength(x.state));
      if (x.run.checkpointed < x.offset) x.run.checkpointed = x.offset;
      if (x.run.checkpointedWm < x.watermarkMs) x.run.checkpointedWm = x.watermarkMs;
    }
    if (saved.length && this.consumer) {
      // Kafka offsets (lag metrics only: the checkpoints in Redis are authoritative): the lowest
      // checkpoint among the partition's processors.
      const commits: Kafka.TopicPartitionOffset[] = [];
      for (const key of new Set(saved.map((x) => tpKey(x.topic, x.partition)))) {
        const g = this.groups.get(key);
        if (!g) continue;
        const low = Math.min(...g.tasks.map((t) => t.checkpointed));
        if (low >= 0) commits.push({ topic: g.topic, partition: g.partition, offset: low });
      }
      try {
        if (commits.length) this.consumer.commitSync(commits);
      } catch (err) {
        this.log.warn({ event: 'kafka_commit_failed', processor: this.name, err: (err as Error).message }, 'offset commit failed');
      }
      this.updateLag(saved.map((x) => x.run));
    }
  }

  /**
   * Records in the assigned partitions beyond the consumer's position, from the high watermarks
   * librdkafka caches from its fetch responses (no broker call); null when not known yet.
   */
  private lag(): number | null {
    if (!this.consumer) return null;
    let lag = 0;
    for (const g of this.groups.values()) {
      let pos = 0;
      for (const t of g.tasks) if (t.next > pos) pos = t.next;
      try {
        const wm = this.consumer.getWatermarkOffsets(g.topic, g.partition);
        if (!wm || typeof wm.highOffset !== 'number' || wm.highOffset < 0) return null;
        lag += Math.max(0, wm.highOffset - pos);
      } catch {
        return null;
      }
    }
    return lag;
  }

  private updateLag(runs: PartitionTask<unknown>[]): void {
    for (const r of runs) {
      try {
        const wm = this.consumer!.getWatermarkOffsets(r.topic, r.partition);
        if (wm && typeof wm.highOffset === 'number' && wm.highOffset >= 0)
          this.deps.metrics.fetchLag.set({ processor: r.processor.name, topic: r.topic, partition: String(r.partition) }, Math.max(0, wm.highOffset - r.next));
      } catch {
        /* watermarks not known yet */
      }
    }
  }
}
