/**
 * Validation at the edge: an event is checked against its Avro schema, a few semantic rules
 * the schema cannot express, and the time and value bounds of contracts/bounds.ts (event time
 * at most MAX_FUTURE_SKEW_MS ahead of the producer's clock, given as `referenceMs`). The result
 * is a value, never an exception: `{ ok: true, event }` or `{ ok: false, errorClass, reason }`
 * with a reason the sender can act on (`schema_violation`, or `out_of_bounds` for the bounds).
 */
import type avro from 'avsc';
import { checkBounds, type BoundViolation, type TimeOptions } from './bounds.js';
import { compiledKind } from './compiled.js';
import { avroType, schemaJson } from './schemas.js';
import type { EventByKind } from './types.generated.js';
import type { EventKind, RejectClass } from './topics.js';

export type Validated<K extends EventKind> = { ok: true; event: EventByKind[K] } | { ok: false; errorClass: RejectClass; reason: string };

/**
 * Whether `s` is a UUID in its text form: 36 characters, hex digits (either case) with `-` at
 * 8, 13, 18 and 23. The same answer as /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
 * (tests/contracts/compiled.test.ts), without the regular expression engine: every event at the
 * edge and in every processor is checked (the regex was 1.5 % of the gateway's profile).
 */
export function isUuid(s: string): boolean {
  if (s.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 0x2d) return false;
    } else if (!((c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66))) return false;
  }
  return true;
}

/**
 * The fields of a kind's schema, read once: schemaJson reads and parses the schema file at every
 * call, which cost more than all the rest of the validation of an event.
 */
const fieldsByKind = new Map<EventKind, { fields: ReturnType<typeof schemaJson>['fields']; known: Set<string> }>();
function fieldsOf(kind: EventKind): { fields: ReturnType<typeof schemaJson>['fields']; known: Set<string> } {
  let f = fieldsByKind.get(kind);
  if (!f) {
    const fields = schemaJson(kind).fields;
    fieldsByKind.set(kind, (f = { fields, known: new Set(fields.map((x) => x.name)) }));
  }
  return f;
}

/** Fills absent optional fields with their Avro default so that JSON senders may omit them. */
function withDefaults(kind: EventKind, input: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...input };
  for (const f of fieldsOf(kind).fields) {
    if (out[f.name] === undefined && f.default !== undefined) out[f.name] = Array.isArray(f.default) ? [...(f.default as unknown[])] : f.default;
  }
  return out;
}

function describe(t: avro.Type, v: unknown): string {
  const name = (t as { typeName?: string }).typeName ?? 'value';
  const sym = (t as { symbols?: string[] }).symbols;
  if (sym) return `expected one of ${sym.join('|')}, got ${JSON.stringify(v)}`;
  const types = (t as { types?: avro.Type[] }).types;
  if (types) return `expected ${types.map((x) => (x as { typeName?: string }).typeName ?? '?').join(' or ')}, got ${JSON.stringify(v)}`;
  return `expected ${name}, got ${v === undefined ? 'nothing (field is required)' : JSON.stringify(v)}`;
}

/** Whether `s` is `length` characters A-Z: /^[A-Z]{length}$/ without the regular expression engine. */
function isUpperCode(s: string, length: number): boolean {
  if (s.length !== length) return false;
  for (let i = 0; i < length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x41 || c > 0x5a) return false;
  }
  return true;
}

const CUMULATIVE_FIELDS = ['cum_playing_ms', 'cum_rebuffer_ms', 'cum_rebuffer_count', 'cum_seek_ms', 'cum_bitrate_ms'] as const;

function semanticProblems(kind: EventKind, e: Record<string, unknown>): string[] {
  const p: string[] = [];
  if (typeof e.event_id === 'string' && !isUuid(e.event_id)) p.push('event_id: must be a UUID');
  switch (kind) {
    case 'playback':
      if ((e.seq as number) < 0) p.push('seq: must be >= 0');
      if ((e.playhead_ms as number) < 0) p.push('playhead_ms: must be >= 0');
      for (const f of CUMULATIVE_FIELDS) if (typeof e[f] === 'number' && e[f] < 0) p.push(`${f}: must be >= 0`);
      if (e.event_type === 'error' && e.error_severity == null) p.push('error_severity: required on error events');
      break;
    case 'payments':
      if (!isUpperCode(String(e.currency), 3)) p.push('currency: must be an ISO 4217 code such as USD');
      if ((e.amount_minor as number) < 0) p.push('amount_minor: must be >= 0 (refunds and chargebacks are positive amounts of their kind)');
      if ((e.og_tier as number) < 0 || (e.og_tier as number) > 5) p.push('og_tier: must be 0..5');
      break;
    case 'gifts':
      if ((e.quantity as number) <= 0) p.push('quantity: must be > 0');
      if ((e.unit_coins as number) < 0) p.push('unit_coins: must be >= 0');
      if ((e.coin_value_usd_micros as number) < 0) p.push('coin_value_usd_micros: must be >= 0');
      break;
    case 'moderation':
      if (e.event_type === 'action_taken' && e.action_type == null) p.push('action_type: required on action_taken');
      if (e.event_type === 'appeal_decided' && e.outcome == null) p.push('outcome: required on appeal_decided');
      break;
    default:
      break;
  }
  if ('country' in e && typeof e.country === 'string' && !isUpperCode(e.country, 2)) p.push('country: must be an ISO 3166-1 alpha-2 code such as NP');
  return p;
}

/**
 * Validates one event of `kind`. `time.referenceMs` is the producer's clock (the SDK passes its
 * `now()`); without it only the absolute time range applies (tests of fixed data).
 */
export function validateEvent<K extends EventKind>(kind: K, input: unknown, time: TimeOptions = {}): Validated<K> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, errorClass: 'schema_violation', reason: 'event must be a JSON object' };
  }
  const candidate = withDefaults(kind, input as Record<string, unknown>);
  const type = avroType(kind);
  const problems: string[] = [];
  const known = fieldsOf(kind).known;
  for (const k of Object.keys(candidate)) if (!known.has(k)) problems.push(`${k}: unknown field`);
  type.isValid(candidate, {
    errorHook: (path: string[], v: unknown, t: avro.Type) => {
      if (problems.length < 10) problems.push(`${path.join('.') || '(event)'}: ${describe(t, v)}`);
    },
  });
  if (problems.length === 0) problems.push(...semanticProblems(kind, candidate));
  if (problems.length > 0) return { ok: false, errorClass: 'schema_violation', reason: problems.join('; ') };
  const bounds = checkBounds(kind, candidate, time);
  if (bounds) return { ok: false, errorClass: bounds.errorClass, reason: bounds.reason };
  return { ok: true, event: candidate as unknown as EventByKind[K] };
}

/**
 * The fast yes of validateEvent: true when validateEvent would accept `input` as it is (its
 * copy with defaults differs only by absent fields, which the compiled writer fills with the
 * same defaults). False means "ask validateEvent", which gives the reason. The compiled check
 * (contracts/compiled.ts) replaces avsc's isValid with its error hook and the copy; the
 * semantic rules and bounds are the same functions.
 */
export function acceptsEvent(kind: EventKind, input: unknown, time: TimeOptions = {}): boolean {
  return compiledKind(kind).accepts(input) && passesRules(kind, input as Record<string, unknown>, time);
}

/**
 * The semantic rules and the time and value bounds of validateEvent, on an event whose fields
 * already hold values of their schema types (acceptsEvent; the JSON line reader,
 * contracts/json-line.ts, passes a view of the bytes it read): true when none refuses it.
 */
export function passesRules(kind: EventKind, e: Record<string, unknown>, time: TimeOptions = {}): boolean {
  return semanticProblems(kind, e).length === 0 && checkBounds(kind, e, time) === null;
}

/**
 * What the processors check of a decoded record before it reaches event time or state: the
 * semantic rules and the time and value bounds of validateEvent, with the record's Kafka
 * timestamp as `time.referenceMs` (the Avro contract holds by decoding). Null when the edge
 * would have accepted it; otherwise the class and reason it would have given.
 */
export function recordProblem(kind: EventKind, e: Record<string, unknown>, time: TimeOptions): { errorClass: RejectClass; reason: string } | null {
  const problems = semanticProblems(kind, e);
  if (problems.length > 0) return { errorClass: 'schema_violation', reason: problems.join('; ') };
  const bounds: BoundViolation | null = checkBounds(kind, e, time);
  return bounds;
}
