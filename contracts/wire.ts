/**
 * Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body.
 * Pure functions; schema ids come from the registry (lib/avro-codec.ts).
 */
import type avro from 'avsc';

export const MAGIC_BYTE = 0;
export const HEADER_BYTES = 5;

export function encodeWire(schemaId: number, type: avro.Type, value: unknown): Buffer {
  const body = type.toBuffer(value);
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  out[0] = MAGIC_BYTE;
  out.writeUInt32BE(schemaId, 1);
  body.copy(out, HEADER_BYTES);
  return out;
}

export type WireHeader = { ok: true; schemaId: number } | { ok: false; reason: string };

export function readWireHeader(buf: Buffer | null | undefined): WireHeader {
  if (!buf || buf.length < HEADER_BYTES) return { ok: false, reason: `record of ${buf?.length ?? 0} bytes is shorter than the 5-byte Confluent header` };
  if (buf[0] !== MAGIC_BYTE) return { ok: false, reason: `unknown magic byte ${buf[0]} (expected 0, Confluent wire format)` };
  return { ok: true, schemaId: buf.readUInt32BE(1) };
}

/** Decodes the body with the writer's type, resolved to the reader's type when they differ. */
export function decodeWire(buf: Buffer, reader: avro.Type, resolver?: avro.Resolver): unknown {
  return reader.fromBuffer(buf.subarray(HEADER_BYTES), resolver, true);
}
