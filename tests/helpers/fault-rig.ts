/**
 * A pipeline on services of its own, for fault injection (tests/integration/faults.test.ts and
 * `npm run chaos`): its own redis-server on its own port (never the shared one), optionally its
 * own Kafka broker (stack/kafka.ts, its own port and data directory), the `clickhouse` role in a
 * child process (embedded ClickHouse served over HTTP), the processors in another child process
 * (CLICKHOUSE_URL pointing at it), and a seeded simulator feeding the topics from this process.
 * Each of those can be stopped, killed and started again while the others run.
 *
 * After a fault, `compareWithCleanReplay` rebuilds every derived table from the same log into a
 * database of its own (one in-process replay per processor) and compares the tables row for row.
 *
 * The environment of every child is built in one place (`childEnv`): credentials for the
 * ClickHouse HTTP facade, when it needs them, go there.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { AvroCodec } from '../../lib/avro-codec.js';
import { ensureTopics, streamPulseTopics, topicHighWatermarks } from '../../lib/kafka-admin.js';
import { silentLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { topicSpec, type EventKind } from '../../contracts/topics.js';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { runToEndOffsets } from '../../processors/replay.js';
import { ROLLUP_TABLES, sealBusiness, sealedState, sealQoe, type RollupFamily } from '../../sinks/clickhouse/rollups.js';
import { EventProducer } from '../../producers/sdk/event-producer.js';
import { runSimulation } from '../../producers/simulator/run.js';
import { ProcessorRunner } from '../../processors/core/runner.js';
import { scoreClosedChurnDays } from '../../processors/churn/churn-scores.js';
import { latenessPolicy, PROCESSOR_FACTORIES, processorFor, type ProcessorRole } from '../../bin/processors.js';
import { loadConfig } from '../../lib/config.js';
import { startRegistryServer, type RegistryServer } from '../../stack/registry/server.js';
import { ensureRedis, pingRedis, stopRedis, type RedisStackOptions } from '../../stack/redis.js';
import { startKafka, stopKafka, type KafkaStackOptions } from '../../stack/kafka.js';
import { livePid } from '../../stack/proc.js';
import { freePort, pollUntil, TEST_CH_WRITER, testWriterEnv, type TestEnv } from './env.js';

export { freePort };
import { spawnRoles, type RoleProcess } from './pipeline-harness.js';
import { ClickHouseProxy } from './clickhouse-proxy.js';

export const ALL_PROCESSORS = Object.keys(PROCESSOR_FACTORIES) as ProcessorRole[];
const IDLE_OFF = '86400000';
/**
 * Columns not compared with the clean replay: the replacing `version` (the offset a row was
 * written at, which depends on batch boundaries; FINAL picks by it) and the raw tables'
 * `ingested_at` (wall-clock time of the insert, DEFAULT now64(3): not derived from the log).
 */
const SKIPPED_COLUMNS = new Set(['version', 'ingested_at']);
const DAY_MS = 86_400_000;
const GRACE_MS = 60_000;
const LATENESS_MS = 5_000;

/** A free TCP port on loopback (the OS picks it; closed again before use). */
/** A redis-server of the rig's own (stack/redis.ts), which can be stopped and started again. */
export class OwnRedis {
  readonly opts: RedisStackOptions;
  constructor(
    readonly port: number,
    dataDir: string,
    persistence: 'aof' | 'none',
  ) {
    this.opts = { url: `redis://127.0.0.1:${port}`, dataDir, logger: silentLogger(), persistence };
  }
  get url(): string {
    return this.opts.url;
  }
  async start(): Promise<void> {
    await ensureRedis(this.opts);
  }
  /** SIGTERM (with AOF the data is on disk; without, it is gone). */
  async stop(): Promise<void> {
    await stopRedis(this.opts);
    await pollUntil(async () => !(await pingRedis(this.url, 300)), { timeoutMs: 10_000, description: 'own redis down' });
  }
  /** Stopped, its append-only files deleted, started again: a Redis that lost everything. */
  async restartEmpty(downMs = 0): Promise<void> {
    await this.stop();
    rmSync(join(this.opts.dataDir, 'appendonlydir'), { recursive: true, force: true });
    rmSync(join(this.opts.dataDir, 'appendonly.aof'), { force: true });
    rmSync(join(this.opts.dataDir, 'dump.rdb'), { force: true });
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.start();
  }

  pid(): number | null {
    return livePid(join(this.opts.dataDir, 'redis.pid'), 'redis-server');
  }
}

/** A Kafka broker of the rig's own, on its own port and data directory. */
export class OwnKafka {
  readonly opts: KafkaStackOptions;
  /** `controllerPort`: the KRaft controller listener's, free too (port + 1 may be some other process's). */
  constructor(port: number, dataDir: string, controllerPort: number) {
    this.opts = { brokers: `127.0.0.1:${port}`, controllerPort, dataDir, heapMb: 512, logger: silentLogger() };
  }
  get brokers(): string {
    return this.opts.brokers;
  }
  async start(): Promise<void> {
    await startKafka(this.opts);
  }
  /** SIGKILL: the broker dies without a clean shutdown; resolves once the process is gone. */
  async kill(): Promise<void> {
    const pidFile = join(this.opts.dataDir, 'kafka.pid');
    const pid = livePid(pidFile, 'kafka.Kafka');
    if (pid === null) return;
    process.kill(pid, 'SIGKILL');
    await pollUntil(() => livePid(pidFile, 'kafka.Kafka') === null, { timeoutMs: 10_000, intervalMs: 50, description: 'killed broker gone' });
  }
  async stop(): Promise<void> {
    await stopKafka(this.opts);
  }
}

export interface RigOptions {
  name: string;
  /** Redis persistence of the rig's redis-server (default 'aof'). */
  redisPersistence?: 'aof' | 'none';
  /** A Kafka broker of the caller's own to use (default: the shared test Kafka, which is never touched). */
  kafka?: OwnKafka;
  /** Processor roles of the processors' process (default: all six, fused). */
  roles?: readonly ProcessorRole[];
  /** Simulator rate, events per second of event time (default 400). */
  ratePerSec?: number;
  seed?: number;
  /**
   * The clean replay keeps its checkpoints in a Redis of its own that no fault touches, and its
   * tables, so that `compareWithCleanReplay` can be called after each of several faults of one run
   * and replays only the log added since the previous call (`npm run chaos`). Without it the
   * replay's checkpoints are in the rig's Redis (one comparison at the end of a run).
   */
  resumableReplay?: boolean;
  /**
   * The processors reach ClickHouse through a ClickHouseProxy (`proxy`) that can hold the answers
   * of applied inserts past their request timeout of `requestTimeoutMs`.
   */
  clickhouseProxy?: { requestTimeoutMs: number };
}

export interface Feed {
  /** Stops producing; resolves with the number of events sent. */
  stop(): Promise<number>;
  sent(): number;
}

export class FaultRig {
  redis!: OwnRedis;
  kafka: OwnKafka | null = null;
  brokers!: string;
  registry!: RegistryServer;
  client!: Redis;
  ch!: ClickHouse;
  chPort!: number;
  metricsPort!: number;
  chOwner!: RoleProcess;
  processors!: RoleProcess;
  producer!: EventProducer;
  codec!: AvroCodec;
  readonly roles: readonly ProcessorRole[];
  readonly topicPrefix: string;
  readonly groupPrefix: string;
  readonly redisPrefix: string;
  readonly database: string;
  /** In front of the ClickHouse owner for the processors, with `clickhouseProxy`. */
  proxy: ClickHouseProxy | null = null;
  /** The clean replay's own Redis (never faulted), with `resumableReplay`. */
  private replayRedis: OwnRedis | null = null;
  private replayClient: Redis | null = null;
  private replayMigrated = false;
  /** Every process the rig started, and those it (or a fault) killed on purpose. */
  private readonly spawned: RoleProcess[] = [];
  private readonly killedOnPurpose = new Set<RoleProcess>();
  /** Next second of event time the feed produces: a feed started again goes on where the last stopped. */
  private feedSecond = 0;
  private starts = 0;
  private readonly dir: string;

  constructor(
    readonly t: TestEnv,
    readonly opts: RigOptions,
  ) {
    const safe = opts.name.replace(/[^a-z0-9]/gi, '_').toLowerCase();
    this.roles = opts.roles ?? ALL_PROCESSORS;
    this.topicPrefix = `${t.topicPrefix}${safe}.`;
    this.groupPrefix = `${t.groupPrefix}${safe}.`;
    this.redisPrefix = `${t.redisPrefix}${safe}:`;
    this.database = `${t.id.replace(/[^a-z0-9]/gi, '_')}_${safe}`;
    this.dir = join(t.dataDir, safe);
  }

  /** Environment of a child `bin/streampulse.ts` of this rig (the one place to add credentials). */
  childEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
    return {
      ...this.t.env,
      KAFKA_BROKERS: this.brokers,
      TOPIC_PREFIX: this.topicPrefix,
      GROUP_PREFIX: this.groupPrefix,
      REDIS_URL: this.redis.url,
      REDIS_PREFIX: this.redisPrefix,
      SCHEMA_REGISTRY_URL: this.registry.url,
      CLICKHOUSE_DATABASE: this.database,
      CLICKHOUSE_URL: `http://127.0.0.1:${this.chPort}`,
      // The owner's writer user (http-facade.ts) and the credentials the processors send to it.
      ...testWriterEnv(),
      WINDOW_GRACE_MS: String(GRACE_MS),
      ALLOWED_LATENESS_MS: String(LATENESS_MS),
      // Processing time must not influence results (the idle rule would, across an outage).
      IDLE_PARTITION_MS: IDLE_OFF,
      CHECKPOINT_INTERVAL_MS: '500',
      BATCH_MAX_MS: '500',
      CHURN_SCORING_INTERVAL_MS: '5000',
      LOG_LEVEL: 'info',
      ...extra,
    };
  }

  async start(): Promise<void> {
    this.redis = new OwnRedis(await freePort(), join(this.dir, 'redis'), this.opts.redisPersistence ?? 'aof');
    await this.redis.start();
    this.kafka = this.opts.kafka ?? null;
    this.brokers = this.kafka ? this.kafka.brokers : this.t.kafkaBrokers;
    this.client = new Redis(this.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    this.client.on('error', () => undefined);
    await this.client.connect();
    if (this.opts.resumableReplay) {
      this.replayRedis = new OwnRedis(await freePort(), join(this.dir, 'replay-redis'), 'aof');
      await this.replayRedis.start();
      this.replayClient = new Redis(this.replayRedis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      this.replayClient.on('error', () => undefined);
      await this.replayClient.connect();
    }
    await ensureTopics(this.brokers, streamPulseTopics(this.topicPrefix));
    this.registry = await startRegistryServer({
      config: { ...this.t.config, kafkaBrokers: this.brokers, env: { ...this.t.config.env, REGISTRY_TOPIC: `${this.topicPrefix}_schemas`, REGISTRY_PORT: 0 } },
      logger: silentLogger(),
    });
    this.codec = await AvroCodec.connect(this.registry.url, this.topicPrefix);
    this.producer = await EventProducer.connect({
      brokers: this.brokers,
      clientId: `rig-${this.opts.name}`,
      topicPrefix: this.topicPrefix,
      codec: this.codec,
      logger: silentLogger(),
      metrics: createMetrics(),
    });
    this.chPort = await freePort();
    this.metricsPort = await freePort();
    if (this.opts.clickhouseProxy) {
      // Held a second longer than the processors wait: their request has timed out by then.
      this.proxy = new ClickHouseProxy(() => this.chPort, this.opts.clickhouseProxy.requestTimeoutMs + 1000);
      await this.proxy.start();
    }
    await this.startClickHouseOwner();
    this.ch = await openClickHouse({
      url: `http://127.0.0.1:${this.chPort}`,
      user: TEST_CH_WRITER.name,
      password: TEST_CH_WRITER.password,
      database: this.database,
      chdbPath: '',
    });
    await migrate(this.ch);
    this.startProcessors();
  }

  /** The `clickhouse` role in a child process, owning the rig's chdb directory; resolves once it answers. */
  async startClickHouseOwner(): Promise<void> {
    this.chOwner = this.track(
      spawnRoles(
        this.t,
        this.childEnv({ CHDB_PATH: join(this.dir, 'chdb'), CLICKHOUSE_URL: '', CLICKHOUSE_HTTP_PORT: String(this.chPort), HTTP_HOST: '127.0.0.1' }),
        'clickhouse',
        `${this.opts.name}-clickhouse-${++this.starts}`,
      ),
    );
    await pollUntil(async () => (await fetch(`http://127.0.0.1:${this.chPort}/ping`, { signal: AbortSignal.timeout(1000) })).ok, {
      timeoutMs: 90_000,
      intervalMs: 200,
      description: 'clickhouse owner answers',
    });
  }

  startProcessors(): void {
    const viaProxy: Record<string, string> =
      this.proxy && this.opts.clickhouseProxy
        ? { CLICKHOUSE_URL: this.proxy.url, CLICKHOUSE_REQUEST_TIMEOUT_MS: String(this.opts.clickhouseProxy.requestTimeoutMs) }
        : {};
    this.processors = this.track(
      spawnRoles(
        this.t,
        this.childEnv({ METRICS_PORT: String(this.metricsPort), ...viaProxy }),
        this.roles.join(','),
        `${this.opts.name}-processors-${++this.starts}`,
      ),
    );
  }

  /** Notes a process the rig started; a `kill` through it counts as on purpose (a fault, or close). */
  private track(p: RoleProcess): RoleProcess {
    const tracked: RoleProcess = {
      ...p,
      kill: (signal) => {
        this.killedOnPurpose.add(tracked);
        return p.kill(signal);
      },
    };
    this.spawned.push(tracked);
    return tracked;
  }

  /** Processes of the rig that exited without being killed (a failure: a fault must be ridden through). */
  exitedOnTheirOwn(): number {
    return this.spawned.filter((p) => !this.killedOnPurpose.has(p) && (p.child.exitCode !== null || p.child.signalCode !== null)).length;
  }

  /**
   * A seeded simulator producing one second of event time every `paceMs` (so the log keeps
   * growing through a fault), event time from a fixed start; moderation and Jira raised so that
   * every processor has input.
   */
  private activeFeed: Feed | null = null;
  /** Seconds of simulated traffic the feed could not deliver (while a broker was down). */
  feedFailures = 0;

  feed(opts: { fromMs?: number; paceMs?: number } = {}): Feed {
    const from = opts.fromMs ?? Date.UTC(2026, 10, 20, 10);
    const pace = opts.paceMs ?? 1000;
    let stopped = false;
    let total = 0;
    let second = this.feedSecond;
    const done = (async () => {
      while (!stopped) {
        const t0 = Date.now();
        try {
          const r = await runSimulation(
            {
              seed: (this.opts.seed ?? 11) + second,
              ratePerSec: this.opts.ratePerSec ?? 400,
              fromMs: from + second * 1000,
              toMs: from + (second + 1) * 1000,
              moderationCasesPerHour: 3600,
              jiraIssuesPerHour: 1800,
              jiraFieldMap: this.t.config.jiraFieldMap,
            },
            { sink: this.producer },
          );
          total += r.total;
        } catch {
          // The broker is down (a Kafka fault): what was delivered is in the log, which is all the
          // comparison reads; the feed goes on with the next second.
          this.feedFailures++;
        }
        this.feedSecond = ++second;
        await new Promise((res) => setTimeout(res, Math.max(0, pace - (Date.now() - t0))));
      }
    })();
    this.activeFeed = {
      sent: () => total,
      stop: async () => {
        stopped = true;
        await done;
        await this.producer.flush(30_000);
        this.activeFeed = null;
        return total;
      },
    };
    return this.activeFeed;
  }

  /** Prometheus text of the processors' process (its metrics app). */
  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
  }

  async metricValue(name: string, labels: string): Promise<number> {
    const line = (await this.metrics()).split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line ? Number(line.split(' ').pop()) : 0;
  }

  async readyz(): Promise<{ status: number; body: { status: string; checks: Record<string, string> } }> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/readyz`, { signal: AbortSignal.timeout(3000) });
    return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, string> } };
  }

  private kindsOf(role: ProcessorRole): EventKind[] {
    return [...processorFor(role, { ch: this.ch, graceMs: GRACE_MS, allowedLatenessMs: LATENESS_MS }).kinds];
  }

  /**
   * Every processor's checkpoint of every partition it reads, beside the partition's end. Polled
   * while timing recoveries: one watermark query per topic (each opens a Kafka client) and one
   * Redis round trip per call, not one per processor and partition (that took seconds a poll on
   * a loaded machine and blurred the recovery times).
   */
  private async checkpoints(): Promise<Array<{ high: number; offset: number | null; savedAtMs: number }>> {
    const byRole = this.roles.map((role) => ({ role, topics: this.kindsOf(role).map((k) => topicSpec(this.topicPrefix, k).topic) }));
    const topics = [...new Set(byRole.flatMap((r) => r.topics))];
    const ends = new Map(await Promise.all(topics.map(async (t) => [t, await topicHighWatermarks(this.brokers, t)] as const)));
    const highs: number[] = [];
    const pipe = this.client.pipeline();
    for (const { role, topics: mine } of byRole) {
      for (const topic of mine) {
        for (const w of ends.get(topic)!) {
          highs.push(w.high);
          pipe.hmget(`${this.redisPrefix}ckpt:${role}:${topic}:${w.partition}`, 'offset', 'saved_at');
        }
      }
    }
    const res = (await pipe.exec()) ?? [];
    return highs.map((high, i) => {
      const [err, v] = res[i] ?? [new Error('no answer'), null];
      if (err) throw err;
      const [offset, savedAt] = v as [string | null, string | null];
      return { high, offset: offset === null ? null : Number(offset), savedAtMs: Number(savedAt ?? 0) };
    });
  }

  /** Some processor saved a checkpoint at or after `sinceMs`: processing runs again. */
  async resumedAnySince(sinceMs: number): Promise<boolean> {
    return (await this.firstSavedSince(sinceMs)) !== null;
  }

  /** The earliest `saved_at` at or after `sinceMs` among the checkpoints as they are now (null: none). */
  private async firstSavedSince(sinceMs: number): Promise<number | null> {
    const after = (await this.checkpoints()).map((c) => c.savedAtMs).filter((t) => t >= sinceMs);
    return after.length ? Math.min(...after) : null;
  }

  /**
   * Times a recovery from `backAtMs` (the service answers again): `resumedS` until processing
   * runs again (a checkpoint saved), `allS` until every processor has checkpointed every partition
   * that has records (or is at its end): no partition left unclaimed. Throws past the timeouts.
   * `resumedS` is read from the checkpoints' own `saved_at` (the processors' clock at the commit),
   * not from when a poll saw it: a poll opens Kafka clients and takes seconds on a loaded machine.
   * The earliest `saved_at` seen at the first poll that finds one is an upper bound (a partition
   * saved again since shows its later time).
   */
  async recovery(backAtMs: number, timeouts: { resumedMs?: number; allMs?: number } = {}): Promise<{ resumedS: number; allS: number }> {
    const firstSaved = await pollUntil(() => this.firstSavedSince(backAtMs), {
      timeoutMs: timeouts.resumedMs ?? 30_000,
      intervalMs: 250,
      description: `${this.opts.name}: processing resumed`,
    });
    const resumedS = (firstSaved - backAtMs) / 1000;
    await pollUntil(() => this.resumedSince(backAtMs), {
      timeoutMs: timeouts.allMs ?? 120_000,
      intervalMs: 250,
      description: `${this.opts.name}: every partition checkpointed again`,
    });
    return { resumedS, allS: (Date.now() - backAtMs) / 1000 };
  }

  /**
   * Every processor has a checkpoint on every partition that has records, saved at or after
   * `sinceMs` or already at the end of the log: processing runs (used to time a recovery).
   */
  async resumedSince(sinceMs: number): Promise<boolean> {
    return (await this.checkpoints()).every((c) => c.high === 0 || (c.offset !== null && (c.savedAtMs >= sinceMs || c.offset >= c.high)));
  }

  /** Records in every topic the rig's processors read (the log a rebuild reads). */
  async logEvents(): Promise<number> {
    const kinds = new Set(this.roles.flatMap((r) => this.kindsOf(r)));
    let n = 0;
    for (const kind of kinds) for (const w of await topicHighWatermarks(this.brokers, topicSpec(this.topicPrefix, kind).topic)) n += w.high;
    return n;
  }

  /** Every processor's checkpoint is at the end of every partition. */
  async caughtUp(): Promise<boolean> {
    return (await this.checkpoints()).every((c) => c.high === 0 || (c.offset !== null && c.offset >= c.high));
  }

  async waitCaughtUp(timeoutMs = 180_000): Promise<void> {
    try {
      await pollUntil(() => this.caughtUp(), { timeoutMs, intervalMs: 500, description: `${this.opts.name}: processors caught up` });
    } catch (err) {
      // Slow or stuck? Say how far behind the checkpoints are and when they last moved.
      const behind = await this.checkpoints().then(
        (cs) => cs.filter((c) => c.high > 0 && (c.offset ?? 0) < c.high),
        () => [],
      );
      const lag = behind.reduce((n, c) => n + c.high - (c.offset ?? 0), 0);
      const last = behind.length ? new Date(Math.max(...behind.map((c) => c.savedAtMs))).toISOString() : '-';
      throw new Error(`${(err as Error).message}; ${behind.length} checkpoints behind by ${lag} records in all, the latest of them saved at ${last}`, {
        cause: err,
      });
    }
  }

  /** Tables compared after a fault: every processor's tables and the tables its job derives. */
  tables(): string[] {
    const out: string[] = [];
    for (const role of this.roles) {
      const p = processorFor(role, { ch: this.ch, graceMs: GRACE_MS, allowedLatenessMs: LATENESS_MS });
      out.push(...p.tables, ...(p.jobTables ?? []));
    }
    return [...new Set(out)];
  }

  /**
   * Rebuilds every table from the same log into `<database>_replay` (one fused replay of every
   * processor, in this process, its own checkpoints), scores the churn days of the log on both
   * sides, and compares every table row for row (every column but `version` and `ingested_at`).
   * With `resumableReplay` a later call goes on from where the previous replay stopped (a clean
   * stop, in a Redis no fault touches), so it reads only the log added since.
   */
  async compareWithCleanReplay(
    phase: (what: string) => void = () => undefined,
  ): Promise<{ tables: number; rows: number; differences: Array<{ table: string; missing: number; extra: number }> }> {
    const replayDb = `${this.database}_replay`;
    const rch: ClickHouse = { ...this.ch, database: replayDb };
    if (!this.replayMigrated) {
      await this.ch.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${replayDb}` });
      await migrate(rch);
      this.replayMigrated = true;
    }
    // One fused runner (each record read and decoded once), as the processors' process runs them;
    // each processor's rows equal those it gives alone (tests/integration/processors-golden.test.ts).
    // The allowed lateness per kind the children take from their settings (late firings).
    const lateness = latenessPolicy(loadConfig(this.childEnv()).env);
    const runner = new ProcessorRunner(
      this.roles.map((role) => processorFor(role, { ch: rch, graceMs: GRACE_MS, allowedLatenessMs: LATENESS_MS, lateness })),
      {
        brokers: this.brokers,
        groupId: `${this.groupPrefix}replay`,
        topicPrefix: this.topicPrefix,
        codec: this.codec,
        ch: rch,
        redis: this.replayClient ?? this.client,
        redisPrefix: `${this.redisPrefix}replay:`,
        logger: silentLogger(),
        metrics: createMetrics(),
      },
      { checkpointIntervalMs: 1000, idlePartitionMs: Number(IDLE_OFF) },
    );
    await runToEndOffsets(runner, this.brokers, 600_000, 'clean replay');
    phase('clean replay');
    if (this.roles.includes('churn')) {
      for (const ch of [this.ch, rch]) {
        const [span] = await queryRows<{ first: number | null; last: number | null }>(
          ch,
          `SELECT if(count() = 0, NULL, toInt32(dateDiff('day', toDate('1970-01-01'), min(day)))) AS first, if(count() = 0, NULL, toInt32(dateDiff('day', toDate('1970-01-01'), max(day)))) AS last FROM ${ch.database}.churn_account_daily`,
        );
        // Every day of the log is scored, up to its last (closed or not): both sides the same
        // days, from the same facts. Not up to a far-off date: each day scored is two queries
        // and an insert, and a 2030 horizon scored ~1,100 empty days per side.
        if (span?.first !== null && span?.first !== undefined && span.last !== null)
          await scoreClosedChurnDays(ch, { nowMs: (Number(span.last) + 1) * DAY_MS, closeDelayMs: 0, rescoreDays: 0, fromDay: Number(span.first) });
      }
    }
    let rows = 0;
    const differences: Array<{ table: string; missing: number; extra: number }> = [];
    // The rollups (migration 017) are sealed by the qoe and business roles' job as buckets close;
    // the replay seals its own up to the same points, and then both must hold the same rows. The
    // sealed points themselves are compared as such (their rows carry the time of each sealing).
    const sealedTables = new Set<string>();
    for (const family of ['qoe', 'business'] as RollupFamily[]) {
      const [rollup, sealed] = ROLLUP_TABLES[family];
      if (!this.tables().includes(rollup!)) continue;
      sealedTables.add(sealed!);
      const live = await sealedState(this.ch, family);
      const until = Math.max(0, ...live.values());
      if (until > 0) await (family === 'qoe' ? sealQoe(rch, until) : sealBusiness(rch, until));
      const replayed = await sealedState(rch, family);
      const same = live.size === replayed.size && [...live].every(([k, v]) => replayed.get(k) === v);
      if (!same)
        differences.push({
          table: sealed!,
          missing: [...live].filter(([k, v]) => replayed.get(k) !== v).length,
          extra: [...replayed].filter(([k, v]) => live.get(k) !== v).length,
        });
    }
    const tables = [...this.tables(), 'late_events'].filter((t) => !sealedTables.has(t));
    for (const table of tables) {
      const cols = (
        await queryRows<{ name: string; type: string }>(
          this.ch,
          `SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position`,
          { db: this.database, t: table },
        )
      ).filter((r) => !SKIPPED_COLUMNS.has(r.name));
      // Arrays built by groupUniqArray (the rollups' minutes) have no defined order: compared sorted.
      const list = cols.map((c) => (c.type.startsWith('Array(') ? `arraySort(\`${c.name}\`) AS \`${c.name}\`` : `\`${c.name}\``)).join(', ');
      const q = (db: string) => `SELECT ${list} FROM ${db}.${table} FINAL`;
      // Rows of the fault run missing from the replay and the other way round (multisets).
      const [d] = await queryRows<{ missing: string; extra: string; n: string }>(
        this.ch,
        `SELECT (SELECT count() FROM (${q(replayDb)} EXCEPT ALL ${q(this.database)})) AS missing, (SELECT count() FROM (${q(this.database)} EXCEPT ALL ${q(replayDb)})) AS extra, (SELECT count() FROM (${q(replayDb)})) AS n`,
      );
      rows += Number(d!.n);
      if (Number(d!.missing) || Number(d!.extra)) differences.push({ table, missing: Number(d!.missing), extra: Number(d!.extra) });
    }
    phase('compare');
    return { tables: tables.length, rows, differences };
  }

  /** Stops everything the rig started (processes, its Redis); a Kafka passed in is the caller's to stop. */
  async close(): Promise<void> {
    // A process that does not stop within 20 s of SIGTERM (e.g. waiting for a service that is
    // gone) is SIGKILLed: nothing of the rig outlives it.
    const stop = async (p: RoleProcess | undefined) => {
      if (!p) return;
      const timer = setTimeout(() => void p.kill('SIGKILL'), 20_000);
      await p.kill('SIGTERM').catch(() => undefined);
      clearTimeout(timer);
    };
    await this.activeFeed?.stop().catch(() => undefined);
    await stop(this.processors);
    await this.producer?.close().catch(() => undefined);
    await stop(this.chOwner);
    await this.ch?.close().catch(() => undefined);
    await this.registry?.close().catch(() => undefined);
    await this.proxy?.close().catch(() => undefined);
    this.client?.disconnect();
    this.replayClient?.disconnect();
    await this.redis?.stop().catch(() => undefined);
    await this.replayRedis?.stop().catch(() => undefined);
  }
}
