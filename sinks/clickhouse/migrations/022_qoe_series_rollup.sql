-- qoe_minute_rollup per single dimension (issue 20): the rows a QoE series without filters reads.
-- qoe_minute_rollup keeps cdn × device_category × country, so a series grouped by one of them (or
-- none) combined ~40 rows per point (the 24 h series by cdn at 5 min: 46,000 rows with their
-- startup samples for 1,152 points at 10 M events). Here each bucket has one row per value of each
-- dimension and one for 'all': `dim` is 'all', 'cdn', 'device_category' or 'country', `value` the
-- dimension's value ('all' for dim 'all'). Written by sinks/clickhouse/rollups.ts (sealQoe) from
-- the sealed qoe_minute_rollup rows of the same step, under its own sealed names
-- ('qoe_series_<step>' in rollup_sealed_qoe): the same measures combined at the catalog's
-- 'partials' level (sums; startup samples concatenated, sorted; distinct minutes), so the API's
-- numbers are the same. Emptied with the qoe tables by a replay (jobTables), rebuilt as its
-- watermark advances.
CREATE TABLE IF NOT EXISTS {db}.qoe_series_rollup (
  step UInt32,
  dim LowCardinality(String),
  bucket DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
  value LowCardinality(String),
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
ORDER BY (step, dim, bucket, value);
