/**
 * Simulator traffic through the real processors into ClickHouse, streamed: a long backfill
 * (days of event time) without a broker. It is the in-memory test driver (processors/core/
 * test-driver.ts) made streaming: the same PartitionTask — dedup → event time → process, window
 * closing, flushing — that the Kafka runner uses, but records are handed over chunk by chunk and
 * forgotten, and the rows each chunk emits are written to ClickHouse and dropped, so memory stays
 * flat over millions of events.
 *
 * Like the runner: records go to partitions by a hash of their Kafka key; after every chunk (a
 * batch) each partition closes the windows its watermark has passed, and a partition idle for
 * IDLE_PARTITION_MS stops holding windows open; at the end of each `advanceTo` (a commit cycle)
 * open windows are flushed too (EMIT_WINDOW_UPDATES), and the daily churn scoring job scores each
 * closed day once its facts are written.
 * Processing time is the event time of the chunk end (a live pipeline).
 *
 * Processors: qoe, business, churn, safety, production (every table the alert metrics read), and
 * raw-store for the catalog only (churn scoring reads genres from raw_catalog; the other raw
 * tables are not read by alerts and would triple the cost). `roles` picks a subset, e.g.
 * ['churn', 'raw-store'] for a long churn-only backfill (events of other kinds are generated and
 * dropped).
 */
import { topicSpec, type EventKind } from '../../../contracts/topics.js';
import { latenessPolicy, PROCESSOR_FACTORIES, type ProcessorRole } from '../../../bin/processors.js';
import { loadConfig } from '../../../lib/config.js';
import type { LatenessPolicy } from '../../../processors/core/late-firing.js';
import { PartitionTask } from '../../../processors/core/partition-task.js';
import type { Processor } from '../../../processors/core/processor.js';
import { advanceIdle, type PartitionTime } from '../../../processors/core/watermark.js';
import { scoreClosedChurnDays } from '../../../processors/churn/churn-scores.js';
import { TrafficGenerator, type GeneratorOptions, type SimEvent } from '../../../producers/simulator/index.js';
import { queryRows, type ClickHouse } from '../../../sinks/clickhouse/client.js';
import { writeTables } from '../../../sinks/clickhouse/table-writer.js';

export const ALL_ROLES: readonly ProcessorRole[] = ['qoe', 'business', 'churn', 'safety', 'production', 'raw-store'];
const RAW_KINDS: ReadonlySet<EventKind> = new Set(['catalog']);

export interface SimPipelineOptions {
  generator: GeneratorOptions;
  /** Processors to run (default ALL_ROLES); raw-store always stores the catalog only. */
  roles?: readonly ProcessorRole[];
  /** Partitions per topic (records are assigned by a hash of their key). Default 3. */
  partitions?: number;
  graceMs?: number;
  allowedLatenessMs?: number;
  /** Allowed lateness per kind (late firings); default the pipeline's (the settings' defaults). */
  lateness?: LatenessPolicy;
  idlePartitionMs?: number;
  /** Event time per chunk (one commit cycle). Default 10 min. */
  chunkMs?: number;
  /** Rows buffered before an INSERT. Default 200,000. */
  maxPendingRows?: number;
}

export interface SimStats {
  events: number;
  rows: number;
  churnDaysScored: number;
  byKind: Record<string, number>;
}

function partitionOf(key: unknown, partitions: number): number {
  let h = 0;
  for (const c of String(key ?? '')) h = (h * 31 + c.charCodeAt(0)) | 0;
  return Math.abs(h) % partitions;
}

export class SimPipeline {
  readonly generator: TrafficGenerator;
  readonly stats: SimStats = { events: 0, rows: 0, churnDaysScored: 0, byKind: {} };
  private readonly processors: Processor<unknown>[];
  private readonly byKind = new Map<EventKind, Processor<unknown>[]>();
  private readonly tasks = new Map<string, Map<string, PartitionTask<unknown>>>();
  private readonly offsets = new Map<string, number>();
  private pending = new Map<string, Record<string, unknown>[]>();
  private pendingRows = 0;
  private firstChurnDay: number | null = null;
  private lastScored = Number.NEGATIVE_INFINITY;
  private readonly o: Required<Omit<SimPipelineOptions, 'generator' | 'roles' | 'lateness'>>;
  private readonly buf: SimEvent[] = [];
  /** Events of the test's own with the event time of the chunk that delivers them (late ones later). */
  private injected: Array<{ e: SimEvent; dueMs: number }> = [];

  private constructor(
    private readonly ch: ClickHouse,
    opts: SimPipelineOptions,
    processors: Processor<unknown>[],
  ) {
    const { generator: _g, roles: _r, lateness: _l, ...rest } = opts;
    this.o = { partitions: 3, graceMs: 60_000, allowedLatenessMs: 5_000, idlePartitionMs: 30_000, chunkMs: 10 * 60_000, maxPendingRows: 200_000, ...rest };
    this.generator = new TrafficGenerator(opts.generator);
    this.processors = processors;
    for (const p of processors) {
      this.tasks.set(p.name, new Map());
      for (const k of p.kinds) {
        if (p.name === 'raw-store' && !RAW_KINDS.has(k)) continue;
        const l = this.byKind.get(k) ?? [];
        l.push(p);
        this.byKind.set(k, l);
      }
    }
  }

  static async create(ch: ClickHouse, opts: SimPipelineOptions): Promise<SimPipeline> {
    const settings = {
      ch,
      graceMs: opts.graceMs ?? 60_000,
      allowedLatenessMs: opts.allowedLatenessMs ?? 5_000,
      lateness: opts.lateness ?? latenessPolicy(loadConfig({}).env),
    };
    const processors = (opts.roles ?? ALL_ROLES).map((r) => PROCESSOR_FACTORIES[r]!(settings) as Processor<unknown>);
    for (const p of processors) await p.start?.();
    return new SimPipeline(ch, opts, processors);
  }

  get nowMs(): number {
    return this.generator.nowMs;
  }

  private readonly push = (table: string, row: Record<string, unknown>) => {
    let rows = this.pending.get(table);
    if (!rows) this.pending.set(table, (rows = []));
    rows.push(row);
    this.pendingRows++;
  };

  private task(p: Processor<unknown>, kind: EventKind, partition: number, nowMs: number): PartitionTask<unknown> {
    const tasks = this.tasks.get(p.name)!;
    const k = `${kind}/${partition}`;
    let t = tasks.get(k);
    if (!t) tasks.set(k, (t = new PartitionTask(p, `sim.${kind}`, kind, partition, nowMs)));
    return t;
  }

  /**
   * Generates and processes every event before `untilMs`, writing rows and scoring closed churn
   * days. Windows close at every chunk; open windows are flushed (update rows) at `untilMs`, the
   * end of this commit cycle, so the tables are complete up to the watermark when it returns.
   */
  async advanceTo(untilMs: number): Promise<void> {
    while (this.generator.nowMs < untilMs) {
      const end = Math.min(untilMs, this.generator.nowMs + this.o.chunkMs);
      this.buf.length = 0;
      this.generator.advanceInto(end, this.buf);
      // Hand-made events due in this chunk go after the generator's (one batch, like a webhook burst).
      const due = this.injected.filter((x) => x.dueMs < end);
      this.injected = this.injected.filter((x) => x.dueMs >= end);
      for (const x of due) this.buf.push(x.e);
      for (const e of this.buf) this.route(e, end);
      this.stats.events += this.buf.length;
      this.closeWindows(end, end >= untilMs);
      if (this.pendingRows >= this.o.maxPendingRows) await this.writePending();
      await this.scoreChurn(end);
      // Let the test worker's event loop breathe between chunks (vitest's worker RPC times out
      // after 60 s without it).
      await new Promise((r) => setImmediate(r));
    }
    await this.writePending();
  }

  /**
   * Events of the test's own (e.g. Jira webhooks), processed in the chunk that holds their event
   * time, or with `deliverAtMs` in the chunk that holds that time: late events, after the newer
   * ones the generator made before it.
   */
  inject(events: readonly SimEvent[], deliverAtMs?: number): void {
    for (const e of events) this.injected.push({ e, dueMs: deliverAtMs ?? (e.event as { event_time: number }).event_time });
  }

  private route(e: SimEvent, nowMs: number): void {
    const kind = e.kind;
    const procs = this.byKind.get(kind);
    this.stats.byKind[kind] = (this.stats.byKind[kind] ?? 0) + 1;
    if (!procs) return;
    const ev = e.event as unknown as Record<string, unknown>;
    const partition = partitionOf(ev[topicSpec('sim.', kind).keyField], this.o.partitions);
    const ok = `${kind}/${partition}`;
    const offset = this.offsets.get(ok) ?? 0;
    this.offsets.set(ok, offset + 1);
    for (const p of procs) {
      const t = this.task(p, kind, partition, nowMs);
      t.handle(ev, { topic: t.topic, kind, partition, offset, timestampMs: nowMs }, nowMs, this.push);
    }
  }

  /** After a batch: idle rule and window closing; at the end of a commit cycle also open-window updates. */
  private closeWindows(nowMs: number, flush: boolean): void {
    for (const tasks of this.tasks.values()) {
      const times = new Map<string, PartitionTime>([...tasks].map(([k, t]) => [k, t.time]));
      advanceIdle(times, nowMs, this.o.idlePartitionMs);
      for (const t of tasks.values()) {
        t.closeWindows(this.push);
        if (flush) t.flush(this.push);
      }
    }
  }

  private async writePending(): Promise<void> {
    if (this.pendingRows === 0) return;
    const rows = this.pending;
    this.stats.rows += this.pendingRows;
    this.pending = new Map();
    this.pendingRows = 0;
    await writeTables(this.ch, rows, {});
  }

  /**
   * The churn job of bin/pipeline.ts: each closed day (end + grace + lateness + a checkpoint) is
   * scored once its facts are written, starting at the earliest day with facts.
   */
  private async scoreChurn(nowMs: number): Promise<void> {
    const closeDelayMs = this.o.graceMs + this.o.allowedLatenessMs + 2_000;
    const lastClosed = Math.floor((nowMs - closeDelayMs) / 86_400_000) - 1;
    if (lastClosed <= this.lastScored) return;
    await this.writePending();
    if (this.firstChurnDay === null) {
      const [first] = await queryRows<{ d: number | null }>(
        this.ch,
        `SELECT if(count() = 0, NULL, toInt32(dateDiff('day', toDate('1970-01-01'), min(day)))) AS d FROM ${this.ch.database}.churn_account_daily`,
      );
      if (first?.d === null || first?.d === undefined) return;
      this.firstChurnDay = Number(first.d);
    }
    const days = await scoreClosedChurnDays(this.ch, { nowMs, closeDelayMs, fromDay: this.firstChurnDay });
    this.stats.churnDaysScored += days.length;
    this.lastScored = lastClosed;
  }

  /** Flushes every partition's open windows and writes all rows (end of a run). */
  async drain(): Promise<void> {
    for (const tasks of this.tasks.values()) for (const t of tasks.values()) t.flush(this.push);
    await this.writePending();
  }

  get processorNames(): string[] {
    return this.processors.map((p) => p.name);
  }
}
