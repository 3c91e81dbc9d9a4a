/**
 * The JSON line reader (contracts/json-line.ts) against the reference path it shortcuts: the
 * line decoded as the NDJSON cursor decodes it, `JSON.parse`, `validateEvent` and avsc. On
 * simulated lines of every kind and on many random edits of them (bytes deleted, inserted,
 * replaced; keys repeated, reordered, unknown; values of other types, nested, escaped, non-ASCII,
 * exotic numbers; white space; truncation), whenever the reader accepts a line the reference
 * accepts it too, with the same Avro bytes and the same record key. It also accepts every plain
 * simulated line (so the gateway takes the fast path), and reads nothing outside [start, stop).
 */
import { isAscii } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { AvroWriter } from '../../contracts/compiled.js';
import { jsonLineReader } from '../../contracts/json-line.js';
import { avroType, schemaJson } from '../../contracts/schemas.js';
import { EVENT_KINDS, topicSpec, type EventKind } from '../../contracts/topics.js';
import { validateEvent } from '../../contracts/validate.js';
import { encodeWire } from '../../contracts/wire.js';
import { TrafficGenerator } from '../../producers/simulator/generator.js';
import { Prng } from '../../producers/simulator/prng.js';

const START = Date.UTC(2026, 10, 20);
const NOW = START + 3_600_000;
const TIME = { referenceMs: NOW, maxFutureSkewMs: 300_000 };
const SCHEMA_ID = 7;

function simulated(count: number): Array<{ kind: EventKind; event: Record<string, unknown> }> {
  const gen = new TrafficGenerator({ seed: 9, startMs: START, ratePerSec: 2_000, moderationCasesPerHour: 20_000 });
  const out: Array<{ kind: EventKind; event: unknown }> = [];
  for (let t = START; out.length < count; ) gen.advanceInto((t += 1000), out as never);
  return out.slice(0, count) as Array<{ kind: EventKind; event: Record<string, unknown> }>;
}

type Outcome = { bytes: Buffer; key: string } | null;

/** The reference: the line as NdjsonCursor decodes it, JSON.parse, validateEvent, avsc (received_time stamped). */
function reference(kind: EventKind, line: Buffer): Outcome {
  let input: unknown;
  try {
    input = JSON.parse(line.toString(isAscii(line) ? 'latin1' : 'utf8'));
  } catch {
    return null;
  }
  const v = validateEvent(kind, input, TIME);
  if (!v.ok) return null;
  const e = v.event as unknown as Record<string, unknown>;
  if (!e.received_time) e.received_time = NOW;
  const key = (input as Record<string, unknown>)[topicSpec('', kind).keyField];
  return { bytes: encodeWire(SCHEMA_ID, avroType(kind), e), key: String(key) };
}

const w = new AvroWriter(16);

/** The reader on `line`, placed inside other bytes (a line before, and `after` right after it). */
function fast(kind: EventKind, line: Buffer, after = '\n{"x":1}'): Outcome {
  const raw = Buffer.concat([Buffer.from('{"before":true}\n'), line, Buffer.from(after)]);
  const start = 16;
  const reader = jsonLineReader(kind);
  w.pos = 0;
  if (!reader.encode(raw, start, start + line.length, TIME, w, SCHEMA_ID, NOW)) return null;
  return { bytes: Buffer.from(w.buf.subarray(0, w.pos)), key: reader.key };
}

/** Asserts the reader's answer is the reference's whenever the reader says yes; returns whether it did. */
function agrees(kind: EventKind, line: Buffer, after?: string): boolean {
  const f = fast(kind, line, after);
  if (f === null) return false;
  const r = reference(kind, line);
  const what = `${kind}: ${line.toString('latin1').slice(0, 400)}`;
  expect(r, `reader accepted what the reference refuses: ${what}`).not.toBeNull();
  expect(f.bytes.equals(r!.bytes), `bytes differ: ${what}`).toBe(true);
  expect(f.key, what).toBe(r!.key);
  return true;
}

const WRONG: unknown[] = [
  null,
  'x',
  '',
  1.5,
  -1,
  0,
  -0,
  2 ** 31,
  2 ** 53,
  1e21,
  -(2 ** 45),
  true,
  false,
  [],
  ['a', 'b'],
  [1],
  {},
  { a: 1 },
  'ünïcødé',
  'tab\there',
  'quote"inside',
  'back\\slash',
  '\u2028',
  'vod',
  'live',
  'USD',
  'NP',
  'np',
  'heartbeat',
  'error',
  'action_taken',
  '9a1f0c2e-3b4d-5e6f-8a9b-0c1d2e3f4a5b',
  '9A1F0C2E-3B4D-5E6F-8A9B-0C1D2E3F4A5B',
];

/** Object-level mutations: fields removed, given other values, unknown fields added. */
function mutations(kind: EventKind, event: Record<string, unknown>): unknown[] {
  const out: unknown[] = [{ ...event, not_a_field: 1 }, [event], 'event', null, 42, {}];
  for (const f of schemaJson(kind).fields) {
    const { [f.name]: _, ...without } = event;
    out.push(without);
    for (const v of WRONG) out.push({ ...event, [f.name]: v });
  }
  return out;
}

/** Spellings of a number that JSON.parse reads as the same or a near value, and some it refuses. */
function respell(n: number, rng: Prng): string {
  const s = String(n);
  return rng.pick([`${s}.0`, `${s}e0`, `${s}E+0`, `${n / 10}e1`, `0${s}`, `${s}.`, `-${s}`, `${s}e`, `+${s}`, `${s}.5`, `${s}0000000000000000`, `-0`, `1e400`]);
}

const INSERTS = [
  '"',
  '\\',
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  ' ',
  '\t',
  '\r',
  '\x0b',
  '0',
  '9',
  '-',
  '+',
  '.',
  'e',
  'n',
  't',
  'f',
  '\x00',
  '\x01',
  '\x1f',
  '\x7f',
  '\u00e9',
  '\u2028',
];

/** Text-level edits of a JSON line (the property: whatever they give, the reader agrees or says no). */
function edits(json: string, event: Record<string, unknown>, rng: Prng): string[] {
  const out: string[] = [];
  const keys = Object.keys(event);
  for (let k = 0; k < 6; k++) {
    const i = rng.int(json.length + 1);
    out.push(json.slice(0, i) + json.slice(i + 1)); // a character deleted
    out.push(json.slice(0, i) + rng.pick(INSERTS) + json.slice(i)); // one inserted
    out.push(json.slice(0, i) + rng.pick(INSERTS) + json.slice(i + 1)); // one replaced
    out.push(json.slice(0, i)); // cut
  }
  const shuffled = [...keys];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  out.push(JSON.stringify(Object.fromEntries(shuffled.map((k) => [k, event[k]])))); // keys in another order
  out.push(JSON.stringify(event, null, rng.pick([1, 2, '\t']))); // white space (a line of it: no line ends inside)
  out.push(` \t${json.replaceAll(',', ' , ').replaceAll(':', ' :\t')}\r `);
  const key = rng.pick(keys);
  out.push(`${json.slice(0, -1)},${JSON.stringify(key)}:${JSON.stringify(event[key])}}`); // a key repeated, same value
  out.push(`${json.slice(0, -1)},${JSON.stringify(key)}:${JSON.stringify(rng.pick(WRONG))}}`); // repeated, other value
  out.push(
    json.replace(
      `"${key}"`,
      `"${key.slice(0, -1)}\\u${key
        .charCodeAt(key.length - 1)
        .toString(16)
        .padStart(4, '0')}"`,
    ),
  ); // escaped key
  const v = event[key];
  if (typeof v === 'string' && v.length > 0) {
    out.push(json.replace(JSON.stringify(v), `"\\u${v.charCodeAt(0).toString(16).padStart(4, '0')}${v.slice(1)}"`)); // escaped value
    out.push(json.replace(JSON.stringify(v), JSON.stringify(`${v}é`)));
  }
  if (typeof v === 'number') out.push(json.replace(`"${key}":${JSON.stringify(v)}`, `"${key}":${respell(v, rng)}`));
  out.push(`${json}x`, `${json}}`, `[${json}]`, `{"e":${json}}`, json.replace('{', '{ '), `${json.slice(0, -1)},}`, json.replace(/,/, ',,'));
  return out;
}

describe('JSON line reader', () => {
  const events = simulated(6_000);

  it('accepts every plain simulated line of every kind, with the reference bytes and key', () => {
    const kinds = new Set(events.map((e) => e.kind));
    for (const k of EVENT_KINDS.filter((k) => k !== 'jira')) expect(kinds, k).toContain(k);
    let yes = 0;
    for (const { kind, event } of events) {
      const line = Buffer.from(JSON.stringify(event));
      const plain = isAscii(line) && !line.includes('\\');
      const took = agrees(kind, line);
      if (plain) expect(took, `${kind} ${line.toString()}`).toBe(true);
      if (took) yes++;
    }
    expect(yes).toBeGreaterThan(events.length * 0.95);
  });

  it('never accepts what the reference refuses, on mutated events of every kind', () => {
    const perKind = new Map<EventKind, Record<string, unknown>>();
    for (const e of events) if (!perKind.has(e.kind)) perKind.set(e.kind, e.event);
    perKind.set('jira', jiraEvent());
    let yes = 0;
    let total = 0;
    for (const [kind, event] of perKind) {
      for (const input of mutations(kind, event)) {
        total++;
        if (agrees(kind, Buffer.from(JSON.stringify(input) ?? 'undefined', 'utf8'))) yes++;
      }
    }
    // Mutations within the schema (nulls of optional fields, other symbols, absent defaults) are taken.
    expect(yes).toBeGreaterThan(50);
    expect(total - yes).toBeGreaterThan(500);
  });

  it('agrees with the reference on random edits of simulated lines (property)', () => {
    const rng = new Prng(20);
    const perKind = new Map<EventKind, Array<Record<string, unknown>>>();
    for (const e of events) {
      const l = perKind.get(e.kind) ?? [];
      if (l.length < 60) l.push(e.event);
      perKind.set(e.kind, l);
    }
    perKind.set('jira', [jiraEvent()]);
    let yes = 0;
    let total = 0;
    for (const [kind, list] of perKind) {
      for (const event of list) {
        const json = JSON.stringify(event);
        for (const text of edits(json, event, rng)) {
          total++;
          if (agrees(kind, Buffer.from(text, 'utf8'))) yes++;
        }
      }
    }
    expect(total).toBeGreaterThan(5_000);
    expect(yes).toBeGreaterThan(200); // reordered keys, white space, respelled numbers, edits that keep the meaning
    expect(total - yes).toBeGreaterThan(2_000);
  });

  it('reads nothing past the end of its line', () => {
    const { kind, event } = events.find((e) => e.kind === 'playback')!;
    const json = JSON.stringify(event);
    // Cut inside a string, a key, a number and a literal: the bytes after `stop` would complete the line.
    for (let cut = 1; cut < json.length; cut += 7) {
      const line = Buffer.from(json.slice(0, cut));
      expect(fast(kind, line, json.slice(cut)), `cut at ${cut}`).toBeNull();
    }
    expect(fast(kind, Buffer.from(json), '')).not.toBeNull(); // the line at the very end of the buffer
  });

  it('writes nulls, absent defaults, doubles, arrays and long strings like avsc', () => {
    const base = jiraEvent();
    const variants: Array<Record<string, unknown>> = [
      base,
      { ...base, cost_impact_usd: 1234.5678, delay_days: 0.25, labels: ['a', 'b', 'x'.repeat(200)] },
      { ...base, cost_impact_usd: 1e3, delay_days: null, labels: [] },
      { ...base, summary: 'x'.repeat(70_000), created: 2 ** 41 + 3, resolved: null },
    ];
    const { received_time: _, labels: __, severity: ___, ...absent } = base;
    variants.push(absent);
    for (const v of variants) expect(agrees('jira', Buffer.from(JSON.stringify(v))), JSON.stringify(v).slice(0, 200)).toBe(true);
    // Numbers as JSON allows them but JSON.stringify does not write them.
    const json = JSON.stringify(variants[1]);
    for (const n of ['1.2345678e3', '12345.678E-1', '0.25e0', '1e400']) {
      agrees('jira', Buffer.from(json.replace('1234.5678', n)));
    }
    expect(agrees('jira', Buffer.from(json.replace('1234.5678', '1.2345678e3')))).toBe(true);
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
    summary: 'Subtitles out of sync',
    issue_type: 'Bug',
    status: 'In Progress',
    status_category: 'indeterminate',
    priority: 'High',
    severity: 'high',
    show_name: null,
    cost_impact_usd: 0,
    delay_days: 1.5,
    labels: ['subs'],
    created: NOW - 86_400_000,
    updated: NOW - 60_000,
    resolved: null,
    raw_payload: '{}',
  };
}
