/**
 * Raw event store: every event of every kind, as received, in raw_<kind>.
 * No windows and no state: each record becomes one row keyed by event_id in a
 * ReplacingMergeTree, so a redelivery or a replay of the same offsets adds no duplicate row.
 * Undecodable or invalid records are dead-lettered by the runner (this processor owns the DLQ).
 *
 * A row is the record's Avro body as Kafka holds it (the raw tables' columns are generated from
 * the same schemas, sinks/clickhouse/raw-ddl.ts), so nothing is encoded again; only a record
 * written with another schema version is encoded again in ours, from its resolved event.
 */
import { avroType, schemaJson } from '../../contracts/schemas.js';
import { EVENT_KINDS } from '../../contracts/topics.js';
import type { Processor } from '../core/processor.js';
import { AvroBodyRow } from '../../sinks/clickhouse/avro-rows.js';
import { rawTableName } from '../../sinks/clickhouse/raw-ddl.js';

type RawState = Record<string, never>;

export function rawStoreProcessor(): Processor<RawState> {
  const schemas = new Map(EVENT_KINDS.map((k) => [k, schemaJson(k)]));
  const tables = new Map(EVENT_KINDS.map((k) => [k, rawTableName(k)]));
  return {
    name: 'raw-store',
    kinds: EVENT_KINDS,
    tables: EVENT_KINDS.map(rawTableName),
    allowedLatenessMs: 0,
    dedupHorizonMs: 0,
    needsDedup: () => false,
    init: () => ({}),
    process(_state, event, rec, ctx) {
      const kind = rec.kind;
      const body = rec.body ?? avroType(kind).toBuffer(event);
      ctx.emit(tables.get(kind)!, new AvroBodyRow(body, schemas.get(kind)!, rec.offset));
    },
    onWatermark: () => undefined,
    onFlush: () => undefined,
    serialize: () => ({}),
    deserialize: () => ({}),
  };
}
