/**
 * Rollups of closed buckets (migration 017, issue 20), written by ClickHouse with INSERT … SELECT
 * from the FINAL source rows, and the plan the API uses to read them.
 *
 * A bucket is closed once the processor's checkpointed watermark on every partition of its topics
 * (CheckpointStore.progress: every row up to it is durable in ClickHouse) has passed the bucket's
 * end + grace + allowed lateness: its windows are closed on every partition and their final rows
 * are in, and later events go to late_events instead of changing them (docs/processing.md). So a
 * closed bucket is aggregated once and never changes; open buckets are read from the source.
 * The measures are the catalog's (contracts/metrics-catalog.ts, grain "minute"): the rollup stores
 * each measure's value over the bucket's rows and the API combines them at the 'partials' level,
 * so every metric stays the catalog's formula over the same rows.
 */
import { SOURCES, measureSql, P } from '../../contracts/metrics-catalog.js';
import { command, queryRows, type ClickHouse } from './client.js';

/** Bucket sizes of qoe_minute_rollup, largest first (the planner takes the largest that divides the step). */
export const QOE_ROLLUP_STEPS = [3600, 300, 60] as const;
/**
 * Steps of qoe_series_rollup (migration 022). Not 60: a 1-minute series (the live snapshot, the
 * last hour) answered more slowly from it than from qoe_minute_rollup (same-process A/B on the
 * bench:api data, bench/RESULTS.md), so it keeps reading qoe_minute_rollup.
 */
export const QOE_SERIES_STEPS = [3600, 300] as const;
/**
 * Nearest-rank metrics stored per qoe_series_rollup row (migration 024, `m_<metric>`): the
 * catalog's percentile of the row's own startup samples. A series at the rollup's own step reads
 * them instead of sorting the samples (one row per point); other steps combine the samples.
 */
export const SERIES_STORED_RANKS = ['startup_p50_ms', 'startup_p95_ms'] as const;
export const M = (metric: string) => `m_${metric}`;
/** Dimensions kept by the QoE rollups; group-bys or filters on others (asn, content_id) read qoe_minute. */
export const QOE_ROLLUP_DIMS = ['cdn', 'device_category', 'country'] as const;
export const QOE_MEASURES = Object.keys(SOURCES.minute.measures);

export type RollupFamily = 'qoe' | 'business';
const sealedTable = (db: string, f: RollupFamily) => `${db}.rollup_sealed_${f}`;

/** Sealed-until (epoch ms) of every rollup of a family, by name ('qoe_60', …, 'business_1h'); 0 when none. */
export async function sealedState(ch: ClickHouse, family: RollupFamily): Promise<Map<string, number>> {
  const rows = await queryRows<{ name: string; s: number | string }>(
    ch,
    `SELECT name, toUnixTimestamp(max(sealed_until)) AS s FROM ${sealedTable(ch.database, family)} GROUP BY name`,
  );
  return new Map(rows.map((r) => [r.name, Number(r.s) * 1000]));
}

/** SQL of the sealed-until time (DateTime) of one rollup, as a scalar subquery; epoch 0 when none. */
export const sealedSql = (db: string, family: RollupFamily, name: string) =>
  `(SELECT max(sealed_until) FROM ${sealedTable(db, family)} WHERE name = '${name}')`;

const sec = (ms: number) => Math.floor(ms / 1000);

async function markSealed(ch: ClickHouse, family: RollupFamily, name: string, untilMs: number, version: number): Promise<void> {
  await command(
    ch,
    `INSERT INTO ${sealedTable(ch.database, family)} (name, sealed_until, version) VALUES ({n:String}, toDateTime({s:UInt32}, 'UTC'), {v:UInt64})`,
    { n: name, s: sec(untilMs), v: version },
  );
}

export interface SealedRange {
  name: string;
  fromMs: number;
  toMs: number;
}

/**
 * Rolls up every QoE bucket that closed since the last call: buckets ending at or before
 * `closedUntilMs` (the watermark minus grace and lateness). Rows are written before the sealed
 * mark, so a crash in between rebuilds the same buckets (ReplacingMergeTree: same key, same rows).
 */
export async function sealQoe(ch: ClickHouse, closedUntilMs: number, version = Date.now()): Promise<SealedRange[]> {
  const db = ch.database;
  const state = await sealedState(ch, 'qoe');
  const done: SealedRange[] = [];
  const dims = QOE_ROLLUP_DIMS.join(', ');
  for (const step of QOE_ROLLUP_STEPS) {
    const name = `qoe_${step}`;
    const from = state.get(name) ?? 0;
    const to = Math.floor(closedUntilMs / (step * 1000)) * step * 1000;
    if (to <= from) continue;
    await command(
      ch,
      `
      INSERT INTO ${db}.qoe_minute_rollup (step, bucket, ${dims}, minutes, ${QOE_MEASURES.map(P).join(', ')}, version)
      SELECT ${step}, toStartOfInterval(window_start, INTERVAL ${step} SECOND) AS bucket, ${dims}, groupUniqArray(window_start),
        ${QOE_MEASURES.map((m) => measureSql('minute', m)).join(', ')}, {v:UInt64}
      FROM ${SOURCES.minute.from(db, 'window_start >= toDateTime({from:UInt32}) AND window_start < toDateTime({to:UInt32})')}
      GROUP BY bucket, ${dims}`,
      { from: sec(from), to: sec(to), v: version },
    );
    await markSealed(ch, 'qoe', name, to, version);
    done.push({ name, fromMs: from, toMs: to });
  }
  // Per single dimension (migration 022), from the sealed rows of qoe_minute_rollup above: up to
  // each step's sealed point, from its own (a database that had qoe_minute_rollup already starts
  // from the beginning).
  const sealedNow = await sealedState(ch, 'qoe');
  for (const step of QOE_SERIES_STEPS) {
    const name = `qoe_series_${step}`;
    const from = sealedNow.get(name) ?? 0;
    const to = sealedNow.get(`qoe_${step}`) ?? 0;
    if (to <= from) continue;
    // The stored percentiles (m_<metric>, migration 024) are left out: their DEFAULT computes them from the row written.
    const m = (x: string) => (x === 'startup_samples' ? `arraySort(groupArrayArray(${P(x)}))` : `sum(${P(x)})`);
    await command(
      ch,
      `
      INSERT INTO ${db}.qoe_series_rollup (step, dim, bucket, value, minutes, ${QOE_MEASURES.map(P).join(', ')}, version)
      SELECT step, d.1 AS dim, bucket, d.2 AS value, arraySort(groupUniqArrayArray(minutes)), ${QOE_MEASURES.map(m).join(', ')}, {v:UInt64}
      FROM ${db}.qoe_minute_rollup FINAL
      ARRAY JOIN [('all', 'all'), ${QOE_ROLLUP_DIMS.map((d) => `('${d}', ${d})`).join(', ')}] AS d
      WHERE step = ${step} AND bucket >= toDateTime({from:UInt32}) AND bucket < toDateTime({to:UInt32})
      GROUP BY step, dim, bucket, value`,
      { from: sec(from), to: sec(to), v: version },
    );
    await markSealed(ch, 'qoe', name, to, version);
    done.push({ name, fromMs: from, toMs: to });
  }
  return done;
}

/**
 * Closed hours of kpi_business_1h (the generated view) into kpi_business_1h_closed, and of
 * kpi_gifts_1m into the creators' gift rollups (migration 021: per hour and creator, per hour,
 * creator and sender). Each has its own sealed point, so a rollup added later starts from the
 * beginning of the data while the others go on from theirs.
 */
export async function sealBusiness(ch: ClickHouse, closedUntilMs: number, version = Date.now()): Promise<SealedRange[]> {
  const db = ch.database;
  const state = await sealedState(ch, 'business');
  const to = Math.floor(closedUntilMs / 3_600_000) * 3_600_000;
  const hours = (col: string) => `${col} >= toDateTime({from:UInt32}) AND ${col} < toDateTime({to:UInt32})`;
  const gifts = (by: string) => `
    SELECT toStartOfHour(window_start) AS hour, ${by}, sum(gifts), sum(coins), sum(value_usd_micros), {v:UInt64}
    FROM ${db}.kpi_gifts_1m FINAL WHERE ${hours('window_start')} GROUP BY hour, ${by}`;
  const rollups: Array<[name: string, statements: string[]]> = [
    ['business_1h', [`INSERT INTO ${db}.kpi_business_1h_closed SELECT *, {v:UInt64} AS version FROM ${db}.kpi_business_1h WHERE ${hours('hour')}`]],
    [
      'gifts_1h',
      [
        `INSERT INTO ${db}.kpi_gifts_creator_1h (hour, creator_id, gifts, coins, value_usd_micros, version) ${gifts('creator_id')}`,
        `INSERT INTO ${db}.kpi_gifts_sender_1h (hour, creator_id, sender_account_id, gifts, coins, value_usd_micros, version) ${gifts('creator_id, sender_account_id')}`,
      ],
    ],
  ];
  const done: SealedRange[] = [];
  for (const [name, statements] of rollups) {
    const from = state.get(name) ?? 0;
    if (to <= from) continue;
    for (const st of statements) await command(ch, st, { from: sec(from), to: sec(to), v: version });
    await markSealed(ch, 'business', name, to, version);
    done.push({ name, fromMs: from, toMs: to });
  }
  return done;
}

export const ROLLUP_TABLES: Record<RollupFamily, readonly string[]> = {
  qoe: ['qoe_minute_rollup', 'rollup_sealed_qoe', 'qoe_series_rollup'],
  business: ['kpi_business_1h_closed', 'rollup_sealed_business', 'kpi_gifts_creator_1h', 'kpi_gifts_sender_1h'],
};

/** Where a QoE series is read from for closed buckets: the rollup table, its step, and for qoe_series_rollup the dimension. */
export interface QoeRollupPlan {
  step: number;
  /** The `dim` of qoe_series_rollup (no filters, group-by none or one rollup dimension); null: qoe_minute_rollup. */
  dim: string | null;
  /** Its name in rollup_sealed_qoe. */
  sealed: string;
}

/**
 * The rollup a QoE series request reads: qoe_series_rollup when it has no filters and a step of
 * 5 min or more (one row per bucket and value of the group-by), else qoe_minute_rollup, at the step qoeRollupStep picks; null
 * when the request needs other dimensions (everything then comes from qoe_minute).
 */
export function qoeRollupPlan(step: number, groupBy: string, filters: readonly string[]): QoeRollupPlan | null {
  const g = qoeRollupStep(step, groupBy, filters);
  if (g === null) return null;
  if (filters.length > 0 || !(QOE_SERIES_STEPS as readonly number[]).includes(g)) return { step: g, dim: null, sealed: `qoe_${g}` };
  const dim = groupBy === 'none' ? 'all' : groupBy;
  return { step: g, dim, sealed: `qoe_series_${g}` };
}

/**
 * The rollup bucket a QoE series request can read: the largest rollup step that divides the
 * requested step, when the grouping and filters use only the rollup's dimensions; null otherwise
 * (then everything comes from qoe_minute).
 */
export function qoeRollupStep(step: number, groupBy: string, filters: readonly string[]): number | null {
  const dims: readonly string[] = QOE_ROLLUP_DIMS;
  if (groupBy !== 'none' && !dims.includes(groupBy)) return null;
  if (filters.some((f) => !dims.includes(f))) return null;
  return QOE_ROLLUP_STEPS.find((g) => step % g === 0) ?? null;
}
