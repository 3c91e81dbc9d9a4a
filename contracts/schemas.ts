/**
 * The Avro schemas (contracts/avro/*.avsc) are the source of truth for every event.
 * This module loads them (synchronously, from files shipped with the code) and builds avsc types.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import { EVENT_KINDS, type EventKind } from './topics.js';

export const AVRO_DIR = join(dirname(fileURLToPath(import.meta.url)), 'avro');

export type AvroSchema = {
  type: 'record';
  name: string;
  namespace?: string;
  fields: Array<{ name: string; type: unknown; default?: unknown; doc?: string }>;
  doc?: string;
};

export function schemaJson(kind: EventKind): AvroSchema {
  return JSON.parse(readFileSync(join(AVRO_DIR, `${kind}.avsc`), 'utf8')) as AvroSchema;
}

export function schemaText(kind: EventKind): string {
  return JSON.stringify(schemaJson(kind));
}

const typeCache = new Map<EventKind, avro.Type>();
export function avroType(kind: EventKind): avro.Type {
  let t = typeCache.get(kind);
  if (!t) {
    t = avro.Type.forSchema(schemaJson(kind) as avro.Schema, { logicalTypes: {} });
    typeCache.set(kind, t);
  }
  return t;
}

export function allSchemas(): Record<EventKind, AvroSchema> {
  return Object.fromEntries(EVENT_KINDS.map((k) => [k, schemaJson(k)])) as Record<EventKind, AvroSchema>;
}
