/**
 * Micro-benchmark of the gateway's per-event work without Kafka or HTTP: NDJSON bodies of 2,000
 * simulated events per kind are parsed (producers/ingest/parse-body.ts), then each event is
 * validated and Avro-encoded two ways, alternating in the same process:
 *   generic   validateEvent (avsc isValid with an error hook, defaults copied) + avsc toBuffer + wire copy
 *   compiled  acceptsEvent + the compiled writer into a reused buffer (contracts/compiled.ts)
 * and the whole line (bounds, parse or read, check, encode, key) two ways, as the gateway does:
 *   parsed    NdjsonCursor (JSON.parse per line) + acceptsEvent + compiled writer + key
 *   read      NdjsonCursor without parsing + the JSON line reader (contracts/json-line.ts) + key
 * Prints CPU seconds (user + system) per million events of each, per round: on a shared machine
 * the ratio within a round is the figure to read.
 *
 *   MICRO_EVENTS=200000 MICRO_ROUNDS=3 node --import tsx bench/ingest.micro.ts
 */
import { AvroWriter, compiledKind } from '../contracts/compiled.js';
import { avroType } from '../contracts/schemas.js';
import { topicSpec, type EventKind } from '../contracts/topics.js';
import { acceptsEvent, validateEvent } from '../contracts/validate.js';
import { encodeWire } from '../contracts/wire.js';
import { jsonLineReader } from '../contracts/json-line.js';
import { NdjsonCursor, parseNdjsonBody } from '../producers/ingest/parse-body.js';
import { byKind, generateEvents } from './common.js';

const N = Number(process.env.MICRO_EVENTS ?? 200_000);
const ROUNDS = Number(process.env.MICRO_ROUNDS ?? 3);
const SCHEMA_ID = 1;
const BOUNDS = { maxDepth: 32, maxStringBytes: 64 * 1024 };

const bodies: Array<{ kind: EventKind; raw: Buffer }> = [];
const events = generateEvents(N, 11);
const now = Math.max(...events.map((e) => (e.event as { event_time: number }).event_time)) + 1000;
const time = { referenceMs: now, maxFutureSkewMs: 300_000 };
for (const [kind, list] of byKind(events)) {
  for (let i = 0; i < list.length; i += 2000)
    bodies.push({
      kind,
      raw: Buffer.from(
        list
          .slice(i, i + 2000)
          .map((e) => JSON.stringify(e))
          .join('\n'),
      ),
    });
}

function cpu<T>(f: () => T): { seconds: number; result: T } {
  (globalThis as { gc?: () => void }).gc?.(); // with --expose-gc: no phase pays for the garbage of another
  const c0 = process.cpuUsage();
  const result = f();
  const c = process.cpuUsage(c0);
  return { seconds: (c.user + c.system) / 1e6, result };
}

function parseAll(): unknown[][] {
  return bodies.map((b) => {
    const p = parseNdjsonBody(b.raw, BOUNDS);
    if (!p.ok) throw new Error(p.reason);
    return p.entries.map((e) => (e.ok ? e.event : null));
  });
}

function generic(parsed: unknown[][]): number {
  let bytes = 0;
  parsed.forEach((list, i) => {
    const kind = bodies[i]!.kind;
    for (const input of list) {
      const v = validateEvent(kind, input, time);
      if (!v.ok) throw new Error(v.reason);
      const e = v.event as { received_time?: number };
      if (!e.received_time) e.received_time = now;
      bytes += encodeWire(SCHEMA_ID, avroType(kind), e).length;
    }
  });
  return bytes;
}

const w = new AvroWriter();
function compiled(parsed: unknown[][]): number {
  let bytes = 0;
  parsed.forEach((list, i) => {
    const kind = bodies[i]!.kind;
    const c = compiledKind(kind);
    for (const input of list) {
      if (!acceptsEvent(kind, input, time)) throw new Error('not accepted');
      w.pos = 0;
      c.write(w, SCHEMA_ID, input, now);
      bytes += w.buf.subarray(0, w.pos).length;
    }
  });
  return bytes;
}

/** The gateway's line loop before the JSON line reader: parse each line, compiled check, encode, key. */
function linesParsed(): number {
  let bytes = 0;
  for (const { kind, raw } of bodies) {
    const c = compiledKind(kind);
    const keyField = topicSpec('', kind).keyField;
    const lines = new NdjsonCursor(raw, BOUNDS);
    while (lines.next()) {
      const input = lines.event as Record<string, unknown>;
      if (!lines.ok || !acceptsEvent(kind, input, time)) throw new Error('not accepted');
      w.pos = 0;
      c.write(w, SCHEMA_ID, input, now);
      bytes += w.pos + String(input[keyField]).length;
    }
  }
  return bytes;
}

/** The gateway's line loop with the JSON line reader (lines it does not take would be parsed; none here but jira's escapes). */
function linesRead(): number {
  let bytes = 0;
  for (const { kind, raw } of bodies) {
    const reader = jsonLineReader(kind);
    const c = compiledKind(kind);
    const keyField = topicSpec('', kind).keyField;
    const lines = new NdjsonCursor(raw, BOUNDS, true);
    while (lines.next()) {
      w.pos = 0;
      if (lines.ok && reader.encode(raw, lines.lineStart, lines.lineStop, time, w, SCHEMA_ID, now)) {
        bytes += w.pos + reader.key.length;
        continue;
      }
      w.pos = 0;
      lines.parse();
      const input = lines.event as Record<string, unknown>;
      if (!lines.ok || !acceptsEvent(kind, input, time)) throw new Error('not accepted');
      c.write(w, SCHEMA_ID, input, now);
      bytes += w.pos + String(input[keyField]).length;
    }
  }
  return bytes;
}

const perM = (s: number) => ((s / N) * 1e6).toFixed(2);
for (let r = 1; r <= ROUNDS; r++) {
  const p = cpu(parseAll);
  const g = cpu(() => generic(p.result));
  const c = cpu(() => compiled(p.result));
  if (g.result !== c.result) throw new Error(`bytes differ: ${g.result} vs ${c.result}`);
  const lp = cpu(linesParsed);
  const lr = cpu(linesRead);
  if (lp.result !== lr.result) throw new Error(`line bytes differ: ${lp.result} vs ${lr.result}`);
  console.log(
    `round ${r}: parse ${perM(p.seconds)}, generic validate+encode ${perM(g.seconds)}, compiled ${perM(c.seconds)} CPU-s per million events (${(g.seconds / c.seconds).toFixed(1)}x); ` +
      `whole line: parsed ${perM(lp.seconds)}, read ${perM(lr.seconds)} (${(lp.seconds / lr.seconds).toFixed(2)}x)`,
  );
}
