-- Physical design (issue 21 item 3) and a QoE rollup per single dimension (issue 20).

-- qoe_minute_rollup (017) per one dimension: the rows of each bucket combined over the other two
-- dimensions, with `dims` naming the one kept ('cdn', 'device_category', 'country'; 'none': all
-- combined; the dimensions not kept are ''). A series grouped by cdn (or filtered on one
-- dimension, or neither) reads ~1/40 of the rows it reads in qoe_minute_rollup (4 cdn x 4 devices
-- x 10 countries per bucket in the bench). Written by the sealing job from qoe_minute_rollup FINAL
-- (sinks/clickhouse/rollups.ts, sealed point 'qoe_dims_<step>', never past 'qoe_<step>'): sums
-- of the partials, minutes united, startup samples concatenated, so every metric is the same
-- formula over the same values (docs/api.md). Partitioned by step and month, ordered so that
-- one step, one `dims` and a time range are one contiguous read.
CREATE TABLE IF NOT EXISTS {db}.qoe_minute_rollup_dims (
  step UInt32,
  dims LowCardinality(String),
  bucket DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
  cdn LowCardinality(String),
  device_category LowCardinality(String),
  country LowCardinality(String),
  minutes Array(DateTime('UTC')) CODEC(ZSTD(1)),
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
ORDER BY (step, dims, bucket, cdn, device_category, country);
