/**
 * Raw event store: every event of every kind, as received, in raw_<kind>.
 * No windows and no state: each record becomes one row keyed by event_id in a
 * ReplacingMergeTree, so a redelivery or a replay of the same offsets adds no duplicate row.
 * Undecodable or invalid records are dead-lettered by the runner (this processor owns the DLQ).
 */
import { EVENT_KINDS, type EventKind } from '../../contracts/topics.js';
import type { Processor } from '../core/processor.js';
import { rawTableName } from '../../sinks/clickhouse/raw-ddl.js';

type RawState = Record<string, never>;

export function rawStoreProcessor(): Processor<RawState> {
  return {
    name: 'raw-store',
    kinds: EVENT_KINDS,
    tables: EVENT_KINDS.map(rawTableName),
    allowedLatenessMs: 0,
    dedupHorizonMs: 0,
    needsDedup: () => false,
    // The decoded record becomes the row (no copy): fused with other processors, it runs last.
    consumesEvent: true,
    init: () => ({}),
    process(_state, event, rec, ctx) {
      // The decoded record is ours: it becomes the row as it is.
      event.src_offset = rec.offset;
      ctx.emit(rawTableName(rec.kind as EventKind), event);
    },
    onWatermark: () => undefined,
    onFlush: () => undefined,
    serialize: () => ({}),
    deserialize: () => ({}),
  };
}
