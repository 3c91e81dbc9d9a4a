/**
 * Time and value bounds of every event (docs/security.md, "Time and value bounds"). Pure: no
 * I/O, no clock of its own; the reference time is passed in.
 *
 * Two places apply them, with the same function:
 *  - the edge (contracts/validate.ts, through the SDK's `send`: the ingest gateway, the Jira
 *    webhook), with the producer's clock as reference: an event refused here never reaches Kafka;
 *  - every processor, before a record is deduplicated, observed for event time or processed
 *    (processors/core/partition-task.ts), with the record's Kafka timestamp as reference, so a
 *    record written by another producer (or before these rules) can neither move a watermark nor
 *    put a value into a derived table that its column cannot hold. The decision depends only on
 *    the record and its Kafka timestamp: a replay decides the same.
 *
 * The bounds are chosen so that every accepted event encodes in every derived table: each value
 * fits its Avro/ClickHouse column, and sums over windows (JavaScript numbers, written as Avro
 * `long`, i.e. safe integers) have ample headroom: the largest money value of one event is one
 * million USD (1e12 micro-dollars), so about 9,000 of the largest possible events in one window
 * of one key of one partition are needed to reach 2^53; the business processor refuses the one
 * record that would cross it (processors/business).
 */
import { FX_RATES, type FxRate } from './fx-rates.js';
import type { EventKind } from './topics.js';

/** Earliest event time accepted: 2000-01-01T00:00:00Z (backfills of older history are refused). */
export const MIN_EVENT_TIME_MS = Date.UTC(2000, 0, 1);
/** Latest time any timestamp field may hold, whatever the reference clock says: 2100-01-01. */
export const MAX_TIME_MS = Date.UTC(2100, 0, 1);
/** Default of MAX_FUTURE_SKEW_MS: how far ahead of the reference clock an event time may be. */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 5 * 60_000;

/** The largest money value of one event, in USD micro-dollars: one million USD. */
export const MAX_EVENT_USD_MICROS = 1_000_000_000_000;
/** Bound of amount_minor in a currency without a reference rate (it never reaches a money column; see docs). */
export const MAX_AMOUNT_MINOR_UNRATED = 1_000_000_000_000;
/** Longest view the cumulative counters may describe: 31 days of milliseconds. */
export const MAX_VIEW_MS = 31 * 86_400_000;
/** Highest bitrate of a rendition: 200 Mbit/s (8K HDR streams stay well under 100). */
export const MAX_BITRATE_KBPS = 200_000;

export interface TimeOptions {
  /**
   * Reference time (ms): the producer's clock at the edge, the record's Kafka timestamp in a
   * processor. Absent, zero or negative: unknown (only the absolute range applies).
   */
  referenceMs?: number;
  /** How far event_time may be ahead of the reference (MAX_FUTURE_SKEW_MS). */
  maxFutureSkewMs?: number;
}

export interface BoundViolation {
  /** `out_of_bounds` (reject class, contracts/topics.ts). */
  errorClass: 'out_of_bounds';
  reason: string;
}

const fmt = (ms: number) => (Number.isFinite(ms) && Math.abs(ms) < 8.64e15 ? new Date(ms).toISOString() : String(ms));

/**
 * Why `eventMs` is not an acceptable event time, or null. The lower bound is absolute (backfills
 * of any history since 2000 pass); the upper one is the reference + skew when a reference is
 * known, and 2100 always.
 */
export function eventTimeProblem(eventMs: number, opts: TimeOptions = {}): string | null {
  if (!Number.isSafeInteger(eventMs)) return `event_time: must be an integer of ms since epoch (got ${eventMs})`;
  if (eventMs < MIN_EVENT_TIME_MS) return `event_time: ${fmt(eventMs)} is before ${fmt(MIN_EVENT_TIME_MS)}, the earliest accepted`;
  const ref = opts.referenceMs ?? 0;
  const skew = opts.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
  if (ref > 0 && eventMs > ref + skew) {
    return `event_time: ${fmt(eventMs)} is ${eventMs - ref} ms ahead of the reference clock (${fmt(ref)}); at most ${skew} ms (MAX_FUTURE_SKEW_MS) is accepted`;
  }
  if (eventMs >= MAX_TIME_MS) return `event_time: ${fmt(eventMs)} is not before ${fmt(MAX_TIME_MS)}`;
  return null;
}

/** A bound on one numeric field: an integer (or, with `real`, a finite number) in [min, max]. */
interface FieldBound {
  min: number;
  max: number;
  real?: boolean;
  /** Why this bound (docs). */
  why: string;
}

const INT32_MAX = 2_147_483_647;
const TIME: FieldBound = { min: MIN_EVENT_TIME_MS, max: MAX_TIME_MS - 1, why: 'ms since epoch, 2000-01-01 to 2099-12-31' };

/**
 * Per kind, the numeric fields and their bounds (amount_minor: per currency, below). Nullable
 * fields are checked when present. Every field that flows into a derived table is here.
 */
export const FIELD_BOUNDS: Readonly<Record<EventKind, Readonly<Record<string, FieldBound>>>> = {
  playback: {
    seq: { min: 0, max: INT32_MAX, why: 'event number within a view' },
    playhead_ms: { min: 0, max: 2 ** 53 - 2, why: 'raw table only (Int64); the largest long avsc writes' },
    asn: { min: 0, max: INT32_MAX, why: 'qoe tables: UInt32 (Avro int)' },
    bitrate_kbps: { min: 0, max: MAX_BITRATE_KBPS, why: '200 Mbit/s' },
    width: { min: 0, max: 16_384, why: 'pixels' },
    height: { min: 0, max: 16_384, why: 'pixels' },
    cum_playing_ms: { min: 0, max: MAX_VIEW_MS, why: '31 days per view; qoe/churn sums (UInt64/Int64)' },
    cum_rebuffer_ms: { min: 0, max: MAX_VIEW_MS, why: '31 days per view' },
    cum_seek_ms: { min: 0, max: MAX_VIEW_MS, why: '31 days per view' },
    cum_rebuffer_count: { min: 0, max: 1_000_000, why: 'qoe_views.rebuffer_count: UInt32' },
    cum_bitrate_ms: { min: 0, max: MAX_VIEW_MS * MAX_BITRATE_KBPS, why: 'Σ kbps × ms: 31 days at 200 Mbit/s' },
  },
  payments: {
    og_tier: { min: 0, max: 5, why: 'supporter tier 0-5 (UInt8)' },
    period_end: TIME,
  },
  gifts: {
    quantity: { min: 1, max: 10_000, why: 'items of one gift' },
    unit_coins: { min: 0, max: 1_000_000, why: 'coins per item' },
    coin_value_usd_micros: { min: 0, max: 1_000_000, why: 'at most 1 USD per coin' },
  },
  moderation: {},
  jira: {
    cost_impact_usd: { min: 0, max: 1e12, real: true, why: 'Float64, finite' },
    delay_days: { min: 0, max: 36_500, real: true, why: 'Float64, finite; at most 100 years' },
    created: TIME,
    updated: TIME,
    resolved: TIME,
  },
  catalog: {
    duration_ms: { min: 0, max: 100 * 365 * 86_400_000, why: 'raw table only (Int64)' },
  },
};

const RATES = new Map<string, FxRate>(FX_RATES.map((r) => [r.currency, r]));

/**
 * The largest amount_minor accepted in `currency`: one million USD converted at the reference
 * rate (contracts/fx-rates.ts), in the currency's minor units, rounded down; for a currency
 * without a rate, MAX_AMOUNT_MINOR_UNRATED (such amounts are not converted: the processors keep
 * them in late_events as `unknown_currency`).
 */
export function maxAmountMinor(currency: string): number {
  const r = RATES.get(currency);
  if (!r) return MAX_AMOUNT_MINOR_UNRATED;
  const microsPerMinor = r.usdPerUnit * 10 ** (6 - r.minorDigits);
  return Math.floor(MAX_EVENT_USD_MICROS / microsPerMinor + 1e-9);
}

/** The per-currency bounds of amount_minor, for docs and tests. */
export function amountBounds(): Array<{ currency: string; minorDigits: number; maxAmountMinor: number }> {
  return FX_RATES.map((r) => ({ currency: r.currency, minorDigits: r.minorDigits, maxAmountMinor: maxAmountMinor(r.currency) }));
}

/** FIELD_BOUNDS[kind] as a list, made once per kind (every event of every processor reads it). */
const BOUND_ENTRIES = new Map<EventKind, ReadonlyArray<readonly [string, FieldBound]>>();
function boundEntries(kind: EventKind): ReadonlyArray<readonly [string, FieldBound]> {
  let entries = BOUND_ENTRIES.get(kind);
  if (!entries) BOUND_ENTRIES.set(kind, (entries = Object.entries(FIELD_BOUNDS[kind])));
  return entries;
}

function fieldProblem(name: string, v: unknown, b: FieldBound): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) return `${name}: must be a finite number (got ${JSON.stringify(v)})`;
  if (!b.real && !Number.isSafeInteger(v)) return `${name}: must be an integer (got ${v})`;
  if (v < b.min || v > b.max) return `${name}: ${v} is out of bounds [${b.min}, ${b.max}] (${b.why})`;
  return null;
}

/**
 * Why the numeric values of an event of `kind` are out of bounds (empty when they are not):
 * every field of FIELD_BOUNDS, amount_minor per currency, the value of one gift (quantity ×
 * unit_coins × coin_value_usd_micros ≤ one million USD) and received_time (0 or a time).
 */
export function valueProblems(kind: EventKind, e: Record<string, unknown>): string[] {
  const p: string[] = [];
  for (const [name, bound] of boundEntries(kind)) {
    const problem = fieldProblem(name, e[name], bound);
    if (problem) p.push(problem);
  }
  const received = e.received_time;
  if (received !== undefined && received !== 0) {
    const problem = fieldProblem('received_time', received, TIME);
    if (problem) p.push(problem);
  }
  if (kind === 'payments') {
    const currency = String(e.currency);
    const max = maxAmountMinor(currency);
    const problem = fieldProblem('amount_minor', e.amount_minor, {
      min: 0,
      max,
      why: RATES.has(currency) ? `one million USD in ${currency}` : `currency ${currency} has no reference rate`,
    });
    if (problem) p.push(problem);
  } else if (kind === 'gifts' && p.length === 0) {
    const value = (e.quantity as number) * (e.unit_coins as number) * (e.coin_value_usd_micros as number);
    if (value > MAX_EVENT_USD_MICROS)
      p.push(`gift value: quantity × unit_coins × coin_value_usd_micros = ${value} USD micros is over ${MAX_EVENT_USD_MICROS} (one million USD)`);
  }
  return p;
}

/**
 * The processors' guard (and the edge's, with the producer clock): the event time and value
 * bounds of a decoded record, or null when it is within them.
 */
export function checkBounds(kind: EventKind, e: Record<string, unknown>, opts: TimeOptions = {}): BoundViolation | null {
  const t = eventTimeProblem(e.event_time as number, opts);
  const values = valueProblems(kind, e);
  if (t === null && values.length === 0) return null;
  return { errorClass: 'out_of_bounds', reason: (t === null ? values : [t, ...values]).join('; ') };
}

/**
 * Largest absolute value a window sum of money (USD micros) may reach: a quarter of 2^53, so
 * that sums, and differences of sums such as net = gross − refunds − chargebacks, stay safe
 * integers (Avro `long`, ClickHouse Int64). About 2.25 billion USD per key, window and source
 * partition; with at most one million USD per event, at least 2,251 of the largest events.
 */
export const MAX_WINDOW_SUM = Math.floor(Number.MAX_SAFE_INTEGER / 4);

/**
 * Why adding `add` to a sum of `current` would leave [−MAX_WINDOW_SUM, MAX_WINDOW_SUM], or null.
 * Processors check before they change any state, and refuse the record (`value_overflow`).
 */
export function sumOverflow(name: string, current: number, add: number): string | null {
  const next = current + add;
  if (Math.abs(next) <= MAX_WINDOW_SUM) return null;
  return `${name}: adding ${add} to ${current} would pass ${MAX_WINDOW_SUM}, the largest window sum the tables hold exactly`;
}
