-- Churn daily facts (DOMAIN §5), written by processors/churn. One row per (UTC day, account,
-- source partition): additive facts; sum over source partitions. Features and the risk score are
-- computed from these rows by processors/churn/churn-model.ts (docs/churn.md).
CREATE TABLE IF NOT EXISTS {db}.churn_account_daily (
  day Date,
  account_id String,
  views UInt32,
  playing_ms Int64,
  rebuffer_ms Int64,
  vsf UInt32,
  playback_failures UInt32,
  startup_ms Array(Int64),
  titles Array(String),
  revenue_usd_micros Int64,
  gift_usd_micros Int64,
  payment_failures UInt32,
  downgrades UInt32,
  last_view_time Nullable(DateTime64(3, 'UTC')),
  last_view_bad UInt8,
  pay_state_time Nullable(DateTime64(3, 'UTC')),
  plan LowCardinality(String),
  auto_renew UInt8,
  period_end Nullable(DateTime64(3, 'UTC')),
  first_payment_time Nullable(DateTime64(3, 'UTC')),
  is_final UInt8,
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (day, account_id, src_topic, src_partition);
