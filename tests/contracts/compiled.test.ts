/**
 * The compiled check and writer (contracts/compiled.ts) against the generic path they shortcut:
 * on simulated events of every kind and on mutations of them (fields removed, nulled, of the
 * wrong type, out of bounds, unknown), `acceptsEvent` never accepts what `validateEvent` refuses,
 * it accepts every simulated event (so the fast path is the one taken), and the bytes written are
 * the bytes avsc writes for the validated copy.
 */
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { AvroWriter, compiledKind } from '../../contracts/compiled.js';
import { avroType, schemaJson } from '../../contracts/schemas.js';
import { EVENT_KINDS, type EventKind } from '../../contracts/topics.js';
import { acceptsEvent, isUuid, validateEvent } from '../../contracts/validate.js';
import { encodeWire } from '../../contracts/wire.js';
import { TrafficGenerator } from '../../producers/simulator/generator.js';

const START = Date.UTC(2026, 10, 20);
const NOW = START + 3_600_000;
const TIME = { referenceMs: NOW, maxFutureSkewMs: 300_000 };
const SCHEMA_ID = 7;
const LONG = avro.Type.forSchema('long');

function simulated(count: number): Array<{ kind: EventKind; event: Record<string, unknown> }> {
  const gen = new TrafficGenerator({ seed: 5, startMs: START, ratePerSec: 2_000, moderationCasesPerHour: 20_000 });
  const out: Array<{ kind: EventKind; event: unknown }> = [];
  for (let t = START; out.length < count; ) gen.advanceInto((t += 1000), out as never);
  return out.slice(0, count) as Array<{ kind: EventKind; event: Record<string, unknown> }>;
}

function fastBytes(kind: EventKind, event: unknown, receivedTime: number): Buffer {
  const w = new AvroWriter(16);
  compiledKind(kind).write(w, SCHEMA_ID, event, receivedTime);
  return Buffer.from(w.buf.subarray(0, w.pos));
}

/** What the generic path stores: validateEvent's copy, received_time stamped, avsc-encoded. */
function genericBytes(kind: EventKind, event: unknown, receivedTime: number): Buffer | null {
  const v = validateEvent(kind, event, TIME);
  if (!v.ok) return null;
  const e = v.event as unknown as Record<string, unknown>;
  if (!e.received_time) e.received_time = receivedTime;
  return encodeWire(SCHEMA_ID, avroType(kind), e);
}

const WRONG: unknown[] = [
  null,
  undefined,
  'x',
  '',
  1.5,
  -1,
  0,
  2 ** 31,
  2 ** 40,
  2 ** 60,
  -(2 ** 45),
  Number.NaN,
  Infinity,
  true,
  [],
  ['vod'],
  {},
  'toString',
  '__proto__',
  'ünïcødé ✓ '.repeat(9),
  'vod',
  'USD',
  'NP',
  'heartbeat',
];

function mutations(kind: EventKind, event: Record<string, unknown>): unknown[] {
  const out: unknown[] = [{ ...event, not_a_field: 1 }, [event], 'event', null, 42];
  for (const f of schemaJson(kind).fields) {
    const { [f.name]: _, ...without } = event;
    out.push(without);
    for (const v of WRONG) out.push({ ...event, [f.name]: v });
  }
  return out;
}

describe('compiled validation and Avro writer', () => {
  const events = simulated(20_000);

  it('covers every kind and accepts every simulated event, writing the bytes avsc writes', () => {
    const kinds = new Set(events.map((e) => e.kind));
    for (const k of EVENT_KINDS) expect(kinds, k).toContain(k);
    for (const { kind, event } of events) {
      expect(acceptsEvent(kind, event, TIME), `${kind} ${JSON.stringify(event)}`).toBe(true);
      expect(fastBytes(kind, event, NOW).equals(genericBytes(kind, event, NOW)!)).toBe(true);
    }
  });

  it('never accepts what validateEvent refuses, and encodes what both accept identically', () => {
    let fastYes = 0;
    let slowYes = 0;
    const perKind = new Map<EventKind, Record<string, unknown>>();
    for (const e of events) if (!perKind.has(e.kind)) perKind.set(e.kind, e.event);
    perKind.set('jira', jiraEvent());
    for (const [kind, event] of perKind) {
      for (const input of mutations(kind, event)) {
        const fast = acceptsEvent(kind, input, TIME);
        const slow = validateEvent(kind, input, TIME);
        if (slow.ok) slowYes++;
        if (!fast) continue;
        fastYes++;
        expect(slow.ok, `${kind}: fast accepted ${JSON.stringify(input)}`).toBe(true);
        expect(fastBytes(kind, input, NOW).equals(genericBytes(kind, input, NOW)!), `${kind} bytes of ${JSON.stringify(input)}`).toBe(true);
      }
    }
    // Mutations within the schema (nulls of optional fields, other enum symbols) keep both paths busy.
    expect(fastYes).toBeGreaterThan(50);
    expect(slowYes).toBeGreaterThanOrEqual(fastYes);
  });

  it('isUuid answers as the regular expression it replaced, on UUIDs with every character changed', () => {
    const re = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
    const uuid = '9a1f0c2e-3b4d-5e6f-8a9b-0c1d2e3f4a5b';
    // Every position replaced by characters around the hex ranges, their other case, non-ASCII ones that fold to ASCII.
    const swaps = ['0', '9', 'a', 'f', 'A', 'F', 'g', 'G', '/', ':', '`', '@', '-', ' ', '\u212a', '\uff21', 'é', '\n'];
    const inputs = [uuid, uuid.toUpperCase(), '', uuid.slice(1), `${uuid}0`, `${uuid}\n`, `\n${uuid}`, uuid.replaceAll('-', '')];
    for (let i = 0; i < uuid.length; i++) for (const c of swaps) inputs.push(uuid.slice(0, i) + c + uuid.slice(i + 1));
    let yes = 0;
    for (const s of inputs) {
      expect(isUuid(s), JSON.stringify(s)).toBe(re.test(s));
      if (re.test(s)) yes++;
    }
    expect(yes).toBeGreaterThan(100);
    expect(inputs.length - yes).toBeGreaterThan(300);
  });

  it('country and currency codes are refused exactly where the regular expressions they replaced refuse them', () => {
    const playback = events.find((e) => e.kind === 'playback')!.event;
    const payment = events.find((e) => e.kind === 'payments')!.event;
    const codes = ['NP', 'US', 'np', 'Np', 'N', 'NPL', '', 'N1', '@A', 'A[', 'Z', 'ZZ', 'É', 'NP\n', '\nNP', 'USD', 'EUR', 'usd', 'US', 'USDX', 'U$D', 'ÜSD'];
    for (const code of codes) {
      const country = validateEvent('playback', { ...playback, country: code }, TIME);
      expect(country.ok, `country ${JSON.stringify(code)}`).toBe(/^[A-Z]{2}$/.test(code));
      const currency = validateEvent('payments', { ...payment, currency: code }, TIME);
      const currencyRefused = !currency.ok && currency.reason.includes('currency: must be an ISO 4217 code');
      expect(currencyRefused, `currency ${JSON.stringify(code)}`).toBe(!/^[A-Z]{3}$/.test(code));
    }
  });

  it('writes longs beyond 2^30, negative numbers, doubles, non-ASCII and long strings like avsc', () => {
    const event = {
      ...jiraEvent(),
      summary: 'é'.repeat(40) + 'x'.repeat(300),
      cost_impact_usd: 1234.5678,
      delay_days: null,
      labels: ['a', 'ñ', 'x'.repeat(100)],
      created: 2 ** 41 + 3,
      updated: 4_102_444_799_999,
    };
    expect(acceptsEvent('jira', event, {})).toBe(true);
    expect(fastBytes('jira', event, 1).equals(genericBytes('jira', event, 1)!)).toBe(true);
    const w = new AvroWriter(1);
    for (const n of [0, -1, 1, 63, 64, -65, 2 ** 30 - 1, 2 ** 30, -(2 ** 30), -(2 ** 30) - 1, 2 ** 52 + 1, -(2 ** 52) - 3, 9007199254740990]) {
      w.pos = 0;
      w.reserve(10);
      w.long(n);
      expect(w.buf.subarray(0, w.pos).equals(LONG.toBuffer(n)), String(n)).toBe(true);
    }
  });
});

function jiraEvent(): Record<string, unknown> {
  return {
    event_id: '9a1f0c2e-3b4d-5e6f-8a9b-0c1d2e3f4a5b',
    event_time: NOW - 60_000,
    received_time: 0,
    webhook_event: 'issue_updated',
    issue_key: 'PRD-12',
    project_key: 'PRD',
    summary: 'Encoder drops frames',
    issue_type: 'Bug',
    status: 'Open',
    status_category: 'To Do',
    priority: 'High',
    severity: 'high',
    show_name: null,
    cost_impact_usd: 10.5,
    delay_days: 2,
    labels: ['live'],
    created: NOW - 86_400_000,
    updated: NOW - 60_000,
    resolved: null,
    raw_payload: '{"a":1}',
  };
}
