/**
 * Every Prometheus metric StreamPulse exports, in one registry with help text and small label
 * sets. Dashboards and alert rules depend on these names: treat them as a contract.
 * A registry is built per process (or per test) by `createMetrics()`; nothing is global.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  // prom-client's default names already start with process_ / nodejs_: the prefix is only ours.
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'streampulse_' });
  const secondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
  const ppt = ['processor', 'topic', 'partition'];
  return {
    registry,
    // ingest
    ingestEvents: new Counter({
      name: 'streampulse_ingest_events_total',
      help: 'Events received at ingest, by kind and result (accepted|rejected).',
      labelNames: ['kind', 'result'],
      registers: [registry],
    }),
    ingestRequests: new Counter({
      name: 'streampulse_ingest_requests_total',
      help: 'Ingest HTTP requests by route and status code.',
      labelNames: ['route', 'status'],
      registers: [registry],
    }),
    ingestRejectedRequests: new Counter({
      name: 'streampulse_ingest_rejected_requests_total',
      help: 'Ingest and webhook requests refused (4xx, or 503 when Kafka/Redis is unreachable), by route and reason (the error code of the answer).',
      labelNames: ['route', 'reason'],
      registers: [registry],
    }),
    jiraUnmappedFields: new Counter({
      name: 'streampulse_jira_unmapped_fields_total',
      help: 'Jira webhooks in which none of the custom field ids of JIRA_FIELD_MAP was present (severity, show, cost and delay stored empty).',
      registers: [registry],
    }),
    apiKeyRestores: new Counter({
      name: 'streampulse_api_key_restores_total',
      help: 'Times the API key cache in Redis was found empty and rebuilt from API_KEYS and the durable key log, by trigger (start|watchdog|miss).',
      labelNames: ['trigger'],
      registers: [registry],
    }),
    producedMessages: new Counter({
      name: 'streampulse_produced_messages_total',
      help: 'Messages acknowledged by Kafka, by topic.',
      labelNames: ['topic'],
      registers: [registry],
    }),
    produceErrors: new Counter({
      name: 'streampulse_produce_errors_total',
      help: 'Delivery reports with an error, by topic.',
      labelNames: ['topic'],
      registers: [registry],
    }),
    // processing core
    consumedEvents: new Counter({
      name: 'streampulse_consumed_events_total',
      help: 'Records consumed, by processor and topic.',
      labelNames: ['processor', 'topic'],
      registers: [registry],
    }),
    deadLetters: new Counter({
      name: 'streampulse_dead_letters_total',
      help: 'Records sent to the dead-letter topic, by processor and error class.',
      labelNames: ['processor', 'error_class'],
      registers: [registry],
    }),
    // Seen by the consuming process: how far its fetch position is behind (0 once it stops: see the pipeline monitor's lag below).
    fetchLag: new Gauge({
      name: 'streampulse_consumer_fetch_lag_records',
      help: 'In the consuming process: high watermark minus the next offset to process, per processor, topic and partition (not updated once the process stops; streampulse_consumer_lag_records is).',
      labelNames: ppt,
      registers: [registry],
    }),
    windowEmissions: new Counter({
      name: 'streampulse_window_emissions_total',
      help: 'Window rows emitted, by processor and kind (update|final).',
      labelNames: ['processor', 'kind'],
      registers: [registry],
    }),
    lateEvents: new Counter({
      name: 'streampulse_late_events_total',
      help: 'Events that arrived after their window closed (kept in late_events).',
      labelNames: ['processor'],
      registers: [registry],
    }),
    lateFirings: new Counter({
      name: 'streampulse_late_firings_total',
      help: "Events past their window's grace but within the allowed lateness of their kind, counted in the closed window (its row rewritten, a late firing), by processor and event kind.",
      labelNames: ['processor', 'kind'],
      registers: [registry],
    }),
    dedupHits: new Counter({
      name: 'streampulse_dedup_hits_total',
      help: 'Events dropped because their event_id was already counted.',
      labelNames: ['processor'],
      registers: [registry],
    }),
    commitCycleSeconds: new Histogram({
      name: 'streampulse_commit_cycle_duration_seconds',
      help: 'Time to make one commit cycle durable (rows written, dead letters delivered, checkpoint saved, offsets committed), by runner (fused processors: their names joined by +).',
      labelNames: ['processor'],
      buckets: secondsBuckets,
      registers: [registry],
    }),
    commitCycleRows: new Histogram({
      name: 'streampulse_commit_cycle_rows',
      help: 'Rows written to ClickHouse by one commit cycle, by runner.',
      labelNames: ['processor'],
      buckets: [0, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000],
      registers: [registry],
    }),
    checkpointBytes: new Gauge({
      name: 'streampulse_checkpoint_size_bytes',
      help: "Serialized state in the last checkpoint of a processor's partition: a full state or a delta (bytes of JSON sent to Redis).",
      labelNames: ppt,
      registers: [registry],
    }),
    checkpointSeconds: new Histogram({
      name: 'streampulse_checkpoint_duration_seconds',
      help: 'Time to write a state checkpoint to Redis.',
      labelNames: ['processor'],
      buckets: secondsBuckets,
      registers: [registry],
    }),
    sinkSeconds: new Histogram({
      name: 'streampulse_sink_duration_seconds',
      help: 'Time to write a batch to ClickHouse, by table.',
      labelNames: ['table'],
      buckets: secondsBuckets,
      registers: [registry],
    }),
    sinkErrors: new Counter({
      name: 'streampulse_sink_errors_total',
      help: 'Failed ClickHouse inserts (each attempt that failed, retried or not), by table.',
      labelNames: ['table'],
      registers: [registry],
    }),
    sinkRows: new Counter({ name: 'streampulse_sink_rows_total', help: 'Rows written to ClickHouse, by table.', labelNames: ['table'], registers: [registry] }),
    watermark: new Gauge({
      name: 'streampulse_watermark_timestamp_seconds',
      help: 'In the consuming process: the event-time watermark per processor and partition (seconds since the epoch).',
      labelNames: ppt,
      registers: [registry],
    }),
    // The pipeline monitor (processors/core/pipeline-monitor.ts): read from Redis checkpoints and
    // Kafka, so a processor that stopped (or whose process died) still shows its lag.
    lagRecords: new Gauge({
      name: 'streampulse_consumer_lag_records',
      help: 'Records in the log beyond the last checkpoint, per processor, topic and partition (Kafka high watermark minus checkpointed offset).',
      labelNames: ppt,
      registers: [registry],
    }),
    lagSeconds: new Gauge({
      name: 'streampulse_consumer_lag_seconds',
      help: 'Age of the oldest record beyond the last checkpoint (0 when caught up), per processor, topic and partition; measured from when the monitor first saw it in the log.',
      labelNames: ppt,
      registers: [registry],
    }),
    watermarkDelay: new Gauge({
      name: 'streampulse_watermark_delay_seconds',
      help: 'Now minus the checkpointed event-time watermark, per processor, topic and partition.',
      labelNames: ppt,
      registers: [registry],
    }),
    checkpointAge: new Gauge({
      name: 'streampulse_checkpoint_age_seconds',
      help: "Time since the last checkpoint of a processor's partition was saved.",
      labelNames: ppt,
      registers: [registry],
    }),
    stalledSeconds: new Gauge({
      name: 'streampulse_processor_stalled_seconds',
      help: "How long records have waited beyond a partition's checkpoint without the checkpoint moving (0 while it keeps up or has nothing to do), per processor, topic and partition.",
      labelNames: ppt,
      registers: [registry],
    }),
    monitorScrapes: new Counter({
      name: 'streampulse_pipeline_monitor_runs_total',
      help: 'Runs of the pipeline monitor (lag from checkpoints and Kafka), by result (ok|error).',
      labelNames: ['result'],
      registers: [registry],
    }),
    dependencyUnavailableSeconds: new Counter({
      name: 'streampulse_dependency_unavailable_seconds_total',
      help: 'Time a dependency (redis, clickhouse, kafka) was unavailable to this process: from the first failed attempt to the first successful one, while work waited for it.',
      labelNames: ['dependency'],
      registers: [registry],
    }),
    dependencyUp: new Gauge({
      name: 'streampulse_dependency_up',
      help: '1 while the dependency answers the work that needs it, 0 during an outage this process is waiting out.',
      labelNames: ['dependency'],
      registers: [registry],
    }),
    checkpointStoreLosses: new Counter({
      name: 'streampulse_checkpoint_store_losses_total',
      help: 'Times the checkpoint store (Redis) was found to have lost its contents (its epoch marker vanished or changed); the runner re-claimed its partitions and saved its in-memory state again.',
      labelNames: ['processor'],
      registers: [registry],
    }),
    processorFailures: new Counter({
      name: 'streampulse_processor_failures_total',
      help: 'Processor runners that stopped for good (a non-retriable error); the process reports unhealthy and exits.',
      labelNames: ['processor'],
      registers: [registry],
    }),
    rebalances: new Counter({
      name: 'streampulse_rebalances_total',
      help: 'Partition assignments and revocations, by processor and kind.',
      labelNames: ['processor', 'kind'],
      registers: [registry],
    }),
    // alerting
    alertTransitions: new Counter({
      name: 'streampulse_alert_transitions_total',
      help: 'Alert state transitions, by rule and new state.',
      labelNames: ['rule', 'state'],
      registers: [registry],
    }),
    notifications: new Counter({
      name: 'streampulse_notifications_total',
      help: 'Notification delivery attempts, by receiver type and result.',
      labelNames: ['receiver', 'result'],
      registers: [registry],
    }),
    alertExplainSeconds: new Histogram({
      name: 'streampulse_alert_explain_duration_seconds',
      help: 'Time to compute the explanation (contribution analysis and context) of an alert that starts firing.',
      buckets: secondsBuckets,
      registers: [registry],
    }),
    outboxPending: new Gauge({ name: 'streampulse_outbox_pending', help: 'Notifications waiting in the durable outbox.', registers: [registry] }),
    // api
    httpSeconds: new Histogram({
      name: 'streampulse_http_request_duration_seconds',
      help: 'API request duration by route and status.',
      labelNames: ['route', 'status'],
      buckets: secondsBuckets,
      registers: [registry],
    }),
    liveStreams: new Gauge({ name: 'streampulse_live_streams', help: 'Open live dashboard streams (/v1/live/stream).', registers: [registry] }),
    liveSnapshots: new Counter({
      name: 'streampulse_live_snapshots_total',
      help: 'Live snapshots computed for the streams, by result (ok|error): one per period and history length, however many streams show it.',
      labelNames: ['result'],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
