-- Alerting history (docs/alerting.md). Live state is in Redis; these tables keep every alert
-- transition and every notification attempt. Rows carry deterministic ids (copied from a Redis
-- list, at least once), so ReplacingMergeTree makes a repeated copy harmless: read with FINAL.
CREATE TABLE IF NOT EXISTS {db}.alert_events (
  id String,
  at DateTime64(3, 'UTC'),
  event_time DateTime64(3, 'UTC'),
  rule LowCardinality(String),
  alert_key String,
  labels Map(String, String),
  from_state LowCardinality(String),
  to_state LowCardinality(String),
  value Nullable(Float64),
  baseline Nullable(Float64),
  volume Float64,
  severity LowCardinality(String)
) ENGINE = ReplacingMergeTree
ORDER BY (rule, alert_key, event_time, id);

CREATE TABLE IF NOT EXISTS {db}.notification_log (
  id String,
  at DateTime64(3, 'UTC'),
  notification_id String,
  alert_key String,
  rule LowCardinality(String),
  receiver LowCardinality(String),
  status LowCardinality(String),
  result LowCardinality(String),
  attempt UInt32,
  http_status Nullable(UInt16),
  error String,
  repeat UInt8
) ENGINE = ReplacingMergeTree
ORDER BY (notification_id, id);
