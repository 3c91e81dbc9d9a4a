/**
 * Topic names, keys, partition counts and retention of every StreamPulse topic.
 * Pure data: no I/O. Topic names are `<TOPIC_PREFIX><kind>` so tests can run on unique topics.
 */
export const EVENT_KINDS = ['playback', 'payments', 'gifts', 'moderation', 'jira', 'catalog'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export interface TopicSpec {
  kind: EventKind;
  /** Full topic name, including the prefix. */
  topic: string;
  /** Field of the event used as the Kafka message key (partitioning and compaction). */
  keyField: string;
  partitions: number;
  /** Compacted topics keep the latest record per key forever (catalog). */
  compacted: boolean;
  /** Schema registry subject (TopicNameStrategy: `<topic>-value`). */
  subject: string;
  /** Avro record full name. */
  recordName: string;
}

const BASE: Record<EventKind, { keyField: string; partitions: number; compacted: boolean; recordName: string }> = {
  playback: { keyField: 'view_id', partitions: 6, compacted: false, recordName: 'streampulse.PlaybackEvent' },
  payments: { keyField: 'account_id', partitions: 3, compacted: false, recordName: 'streampulse.PaymentEvent' },
  gifts: { keyField: 'stream_id', partitions: 3, compacted: false, recordName: 'streampulse.GiftEvent' },
  moderation: { keyField: 'target_id', partitions: 3, compacted: false, recordName: 'streampulse.ModerationEvent' },
  jira: { keyField: 'issue_key', partitions: 1, compacted: false, recordName: 'streampulse.JiraIssueEvent' },
  catalog: { keyField: 'content_id', partitions: 1, compacted: true, recordName: 'streampulse.CatalogEntry' },
};

export function topicSpec(prefix: string, kind: EventKind): TopicSpec {
  const b = BASE[kind];
  const topic = `${prefix}${kind}`;
  return { kind, topic, subject: `${topic}-value`, ...b };
}

export function allTopicSpecs(prefix: string): TopicSpec[] {
  return EVENT_KINDS.map((k) => topicSpec(prefix, k));
}

/** Dead-letter topic: original bytes and headers naming topic, partition, offset, error class and message. */
export function dlqTopic(prefix: string): string {
  return `${prefix}dlq`;
}

export const DLQ_PARTITIONS = 3;

/** Headers every dead-letter record carries. */
export const DLQ_HEADERS = {
  topic: 'sp-dlq-topic',
  partition: 'sp-dlq-partition',
  offset: 'sp-dlq-offset',
  errorClass: 'sp-dlq-error-class',
  errorMessage: 'sp-dlq-error-message',
  stage: 'sp-dlq-stage',
  kind: 'sp-dlq-kind',
  timestamp: 'sp-dlq-timestamp',
} as const;

/** A rejected record on its way to the dead-letter topic (any stage: ingest or a processor). */
export interface DeadLetter {
  originalTopic: string;
  /** -1 when the record never reached Kafka (rejected at ingest). */
  partition: number;
  offset: number;
  key: Buffer | string | null;
  value: Buffer | null;
  errorClass: string;
  message: string;
  stage: string;
  kind?: string;
}

/** Stable error classes of rejected input (documented in docs/errors.md). */
export const REJECT_CLASSES = [
  'unknown_kind',
  'schema_violation',
  'undecodable',
  'oversize',
  'unknown_schema',
  'invalid_json',
  'out_of_bounds',
  'value_overflow',
  'unencodable_row',
] as const;
export type RejectClass = (typeof REJECT_CLASSES)[number];

export function isEventKind(s: string): s is EventKind {
  return (EVENT_KINDS as readonly string[]).includes(s);
}
