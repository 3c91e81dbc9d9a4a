-- Tables shared by every processor.

-- Events that arrived after their window closed (watermark >= window end + grace).
-- Kept apart, never silently lost; keyed by source position so a replay writes the same rows.
CREATE TABLE IF NOT EXISTS {db}.late_events (
  processor LowCardinality(String),
  src_topic LowCardinality(String),
  src_partition UInt16,
  src_offset UInt64,
  event_id String,
  event_time DateTime64(3, 'UTC'),
  watermark DateTime64(3, 'UTC'),
  window_end DateTime64(3, 'UTC'),
  reason LowCardinality(String),
  payload String,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (processor, src_topic, src_partition, src_offset);

-- Currency rates used to report revenue in USD. Documented in docs/metrics.md; written at start
-- by the business processor from processors/business/fx-rates.ts (one source of truth).
CREATE TABLE IF NOT EXISTS {db}.fx_rates (
  currency LowCardinality(String),
  usd_per_unit Float64,
  minor_digits UInt8,
  valid_from Date,
  source String
) ENGINE = ReplacingMergeTree
ORDER BY (currency, valid_from);
