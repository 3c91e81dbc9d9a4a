-- Rollups for the API (issue 20): closed buckets pre-aggregated so that a long range reads a few
-- rows per bucket instead of every minute row with FINAL (the 24 h QoE series read 1.6 M qoe_minute
-- rows per call at 10 M events). Written by ClickHouse (INSERT … SELECT, sinks/clickhouse/rollups.ts)
-- from the FINAL source rows of buckets that are CLOSED in event time: the processor's checkpointed
-- watermark on every partition has passed the bucket's end + grace + lateness, so no row of the
-- bucket changes any more (later events go to late_events). Not a materialized view on inserts:
-- processors rewrite open-window rows (emit on update, new versions) and rewrite the same rows
-- after a crash, which an insert trigger would count twice. docs/api.md says which table answers
-- which range. Both are emptied with their processor's tables by a replay (jobTables).

-- qoe_minute measures (contracts/metrics-catalog.ts, grain "minute") per bucket of `step` seconds
-- (60, 300, 3600) and cdn × device_category × country, combined across source partitions. Column
-- p_<measure> holds the measure's value over the bucket's rows (sums; startup samples
-- concatenated), so the API combines them with the catalog's 'partials' level. `minutes`: the
-- distinct minutes with rows (the denominator of mean concurrent viewers).
CREATE TABLE IF NOT EXISTS {db}.qoe_minute_rollup (
  step UInt32,
  bucket DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
  cdn LowCardinality(String),
  device_category LowCardinality(String),
  country LowCardinality(String),
  minutes Array(DateTime('UTC')),
  p_watch_ms UInt64,
  p_startup_wait_ms UInt64,
  p_playing_ms UInt64,
  p_rebuffer_ms UInt64,
  p_rebuffer_count UInt64,
  p_bitrate_kbps_ms UInt64,
  p_views_ended UInt64,
  p_views_started UInt64,
  p_plays UInt64,
  p_vsf_views UInt64,
  p_ebvs_views UInt64,
  p_playback_failure_views UInt64,
  p_failed_views UInt64,
  p_fatal_errors UInt64,
  p_concurrent_viewer_minutes UInt64,
  p_startup_samples Array(UInt64) CODEC(ZSTD(1)),
  version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY (step, toYYYYMM(bucket))
ORDER BY (step, bucket, cdn, device_category, country);

-- How far each rollup is closed: buckets before sealed_until are in the rollup (whole), later
-- ones are read from the source. `name`: 'qoe_<step>' or 'business_1h'. Only grows, except that
-- a replay empties it (the rollups are rebuilt as the replay's watermark advances).
CREATE TABLE IF NOT EXISTS {db}.rollup_sealed_qoe (
  name LowCardinality(String),
  sealed_until DateTime('UTC'),
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY name;

CREATE TABLE IF NOT EXISTS {db}.rollup_sealed_business (
  name LowCardinality(String),
  sealed_until DateTime('UTC'),
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY name;

-- kpi_business_1h (migration 016, generated from the catalog) for closed hours, as the view
-- computes them: the view re-aggregates every account-hour of history with FINAL on each call.
CREATE TABLE IF NOT EXISTS {db}.kpi_business_1h_closed
ENGINE = ReplacingMergeTree(version)
ORDER BY hour
EMPTY AS SELECT *, toUInt64(0) AS version FROM {db}.kpi_business_1h;
