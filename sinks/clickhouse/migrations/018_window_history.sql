-- Revisions of re-fired window rows (issue 18: alerts read every window AS OF the evaluated
-- time). A late firing (docs/processing.md) rewrites a closed window's row with a higher version,
-- and the ReplacingMergeTree above keeps the newest content only. Once a row is re-fired, each of
-- its revisions is kept here with `known_at`, a time taken from the log: the window end for the
-- content the window closed with (the on-time pane), and for a late firing the partition's stream
-- time at the late event (watermark + out-of-orderness bound). Rows never re-fired have no history
-- (their only revision is the table's row). The API and Grafana read the tables above (the final
-- rows); alerts/metrics.ts reads, for evaluation time t, each re-fired row's latest revision known
-- before t's cut (docs/alerting.md, "As of t"). Written by processors/business and
-- processors/safety (processors/core/late-firing.ts); one row per (row key, known_at), so a replay
-- rewrites the same rows.

CREATE TABLE IF NOT EXISTS {db}.kpi_payments_1m_history (
  window_start DateTime('UTC'),
  method LowCardinality(String),
  plan LowCardinality(String),
  og_tier UInt8,
  country LowCardinality(String),
  attempts UInt64,
  succeeded UInt64,
  failed UInt64,
  gross_usd_micros Int64,
  refunds_usd_micros Int64,
  chargebacks_usd_micros Int64,
  net_usd_micros Int64,
  topups UInt64,
  topup_usd_micros Int64,
  known_at DateTime64(3, 'UTC'),
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (window_start, method, plan, og_tier, country, src_topic, src_partition, known_at);

CREATE TABLE IF NOT EXISTS {db}.kpi_gifts_1m_history (
  window_start DateTime('UTC'),
  creator_id String,
  sender_account_id String,
  gifts UInt64,
  quantity UInt64,
  coins UInt64,
  value_usd_micros Int64,
  known_at DateTime64(3, 'UTC'),
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (window_start, creator_id, sender_account_id, src_topic, src_partition, known_at);

CREATE TABLE IF NOT EXISTS {db}.account_activity_1h_history (
  hour DateTime('UTC'),
  account_id String,
  played UInt8,
  paid UInt8,
  gifted UInt8,
  net_usd_micros Int64,
  gift_usd_micros Int64,
  known_at DateTime64(3, 'UTC'),
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (hour, account_id, src_topic, src_partition, known_at);

CREATE TABLE IF NOT EXISTS {db}.safety_events_1m_history (
  window_start DateTime('UTC'),
  event_type LowCardinality(String),
  policy LowCardinality(String),
  severity LowCardinality(String),
  detection_source LowCardinality(String),
  action_type LowCardinality(String),
  outcome LowCardinality(String),
  target_type LowCardinality(String),
  events UInt64,
  known_at DateTime64(3, 'UTC'),
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (window_start, event_type, policy, severity, detection_source, action_type, outcome, target_type, src_topic, src_partition, known_at);
