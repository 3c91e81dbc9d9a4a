/**
 * Avro in the Confluent wire format against any Confluent-compatible schema registry.
 * At start, `AvroCodec.connect` registers (or looks up) the schema of every topic subject and
 * keeps the ids; encoding is then synchronous. Decoding resolves the writer's schema (by the id
 * in the record) to our reader schema; unknown ids are fetched once per batch and cached.
 */
import avro from 'avsc';
import { AvroWriter, compiledKind } from '../contracts/compiled.js';
import type { TimeOptions } from '../contracts/bounds.js';
import type { JsonLineReader } from '../contracts/json-line.js';
import { avroType, schemaText } from '../contracts/schemas.js';
import { allTopicSpecs, type EventKind, type RejectClass } from '../contracts/topics.js';
import { HEADER_BYTES, MAGIC_BYTE, decodeWire, encodeWire, readWireHeader } from '../contracts/wire.js';
import { RegistryError } from './errors.js';

const CT = 'application/vnd.schemaregistry.v1+json';

async function registryCall<T>(baseUrl: string, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${baseUrl.replace(/\/$/, '')}${path}`, {
      method,
      headers: { 'content-type': CT, accept: CT },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new RegistryError(`schema registry at ${baseUrl} unreachable: ${(err as Error).message}`, undefined, true, { cause: err });
  }
  const text = await res.text();
  if (!res.ok) {
    throw new RegistryError(`schema registry ${method} ${path} answered ${res.status}: ${text}`, res.status, res.status >= 500);
  }
  return JSON.parse(text) as T;
}

export function registerSchema(baseUrl: string, subject: string, schema: string): Promise<{ id: number }> {
  return registryCall(baseUrl, 'POST', `/subjects/${encodeURIComponent(subject)}/versions`, { schema, schemaType: 'AVRO' });
}

export function fetchSchemaById(baseUrl: string, id: number): Promise<{ schema: string }> {
  return registryCall(baseUrl, 'GET', `/schemas/ids/${id}`);
}

export type Decoded =
  /** `body`: the Avro body when the writer's schema is our own (reader) schema, so it can be stored as it is. */
  { ok: true; value: Record<string, unknown>; body?: Buffer } | { ok: false; errorClass: RejectClass; reason: string };

export class AvroCodec {
  private readonly writerIds = new Map<EventKind, number>();
  private readonly readers = new Map<number, { kind: EventKind; type: avro.Type; resolver?: avro.Resolver }>();
  private readonly writerTypes = new Map<number, avro.Type>();
  /** Scratch of encodeView: one per codec, overwritten by each call. */
  private readonly scratch = new AvroWriter();

  private constructor(
    private readonly registryUrl: string,
    private readonly topicKind: Map<string, EventKind>,
  ) {}

  /** Registers every kind's schema under `<prefix><kind>-value` and remembers the ids. */
  static async connect(registryUrl: string, topicPrefix: string): Promise<AvroCodec> {
    const specs = allTopicSpecs(topicPrefix);
    const codec = new AvroCodec(registryUrl, new Map(specs.map((s) => [s.topic, s.kind])));
    for (const spec of specs) {
      const { id } = await registerSchema(registryUrl, spec.subject, schemaText(spec.kind));
      codec.writerIds.set(spec.kind, id);
      codec.writerTypes.set(id, avroType(spec.kind));
    }
    return codec;
  }

  schemaId(kind: EventKind): number {
    const id = this.writerIds.get(kind);
    if (id === undefined) throw new RegistryError(`no schema id for ${kind}`, undefined, false);
    return id;
  }

  kindOfTopic(topic: string): EventKind | undefined {
    return this.topicKind.get(topic);
  }

  /** Encodes a validated event of `kind` with our current schema. */
  encode(kind: EventKind, event: unknown): Buffer {
    return encodeWire(this.schemaId(kind), avroType(kind), event);
  }

  /**
   * Encodes like `encode` with the compiled writer (contracts/compiled.ts), received_time 0 or
   * absent written as `receivedTime`, into a scratch buffer: the answer is a view that the next
   * call overwrites, so it must be copied or handed to something that copies it (node-rdkafka's
   * produce does, RK_MSG_COPY) before then. Null when the event does not conform to the schema
   * (then `encode` throws avsc's error).
   */
  encodeView(kind: EventKind, event: unknown, receivedTime: number): Buffer | null {
    const c = compiledKind(kind);
    if (!c.conforms(event)) return null;
    const w = this.scratch;
    w.pos = 0;
    c.write(w, this.schemaId(kind), event, receivedTime);
    return w.buf.subarray(0, w.pos);
  }

  /**
   * `encodeView` of an event `acceptsEvent` (contracts/validate.ts) said yes to: that check
   * includes the schema conformance `encodeView` tests, so it is not run a second time.
   */
  encodeAccepted(kind: EventKind, event: unknown, receivedTime: number): Buffer {
    const w = this.scratch;
    w.pos = 0;
    compiledKind(kind).write(w, this.schemaId(kind), event, receivedTime);
    return w.buf.subarray(0, w.pos);
  }

  /**
   * The JSON line `raw[start, stop)` checked and encoded straight from its bytes by `reader`
   * (contracts/json-line.ts; its `key` is then the record key), into the scratch of encodeView
   * (a view the next call overwrites); null when the reader does not take the line.
   */
  encodeLine(reader: JsonLineReader, raw: Buffer, start: number, stop: number, time: TimeOptions, receivedTime: number): Buffer | null {
    const w = this.scratch;
    w.pos = 0;
    return reader.encode(raw, start, stop, time, w, this.schemaId(reader.kind), receivedTime) ? w.buf.subarray(0, w.pos) : null;
  }

  /** Fetches writer schemas for ids not seen yet (call once per batch before decode). */
  async prepare(buffers: Iterable<Buffer | null | undefined>): Promise<void> {
    const missing = new Set<number>();
    for (const b of buffers) {
      // A well-formed header (readWireHeader's test, without its answer object per record).
      if (!b || b.length < HEADER_BYTES || b[0] !== MAGIC_BYTE) continue;
      const id = b.readUInt32BE(1);
      if (!this.writerTypes.has(id)) missing.add(id);
    }
    for (const id of missing) {
      try {
        const { schema } = await fetchSchemaById(this.registryUrl, id);
        this.writerTypes.set(id, avro.Type.forSchema(JSON.parse(schema) as avro.Schema, { logicalTypes: {} }));
      } catch (err) {
        if (err instanceof RegistryError && err.status === 404) continue; // decode() reports unknown_schema
        throw err;
      }
    }
  }

  /** Decodes a record of a topic of `kind`; bad bytes are a value, not an exception. */
  decode(kind: EventKind, buf: Buffer | null | undefined): Decoded {
    if (!buf || buf.length < HEADER_BYTES || buf[0] !== MAGIC_BYTE) {
      const h = readWireHeader(buf);
      return { ok: false, errorClass: 'undecodable', reason: h.ok ? 'malformed header' : h.reason };
    }
    const schemaId = buf.readUInt32BE(1);
    const writer = this.writerTypes.get(schemaId);
    if (!writer) return { ok: false, errorClass: 'unknown_schema', reason: `schema id ${schemaId} is not in the registry` };
    let entry = this.readers.get(schemaId);
    if (!entry || entry.kind !== kind) {
      const reader = avroType(kind);
      try {
        entry = { kind, type: reader, resolver: writer === reader ? undefined : reader.createResolver(writer) };
      } catch (err) {
        return { ok: false, errorClass: 'schema_violation', reason: `writer schema ${schemaId} cannot be read as ${kind}: ${(err as Error).message}` };
      }
      this.readers.set(schemaId, entry);
    }
    try {
      const value = decodeWire(buf, entry.type, entry.resolver) as Record<string, unknown>;
      return entry.resolver ? { ok: true, value } : { ok: true, value, body: buf.subarray(HEADER_BYTES) };
    } catch (err) {
      return { ok: false, errorClass: 'undecodable', reason: `Avro body does not match schema ${schemaId}: ${(err as Error).message}` };
    }
  }
}
