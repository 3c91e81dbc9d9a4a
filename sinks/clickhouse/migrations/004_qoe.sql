-- QoE (DOMAIN §3), written by the qoe processor (processors/qoe, definitions in docs/qoe.md).
-- Read with FINAL: ReplacingMergeTree(version) keeps the newest row per key and source partition.

-- One row per view. Open views are written with is_final = 0 at every flush; the final row
-- (is_final = 1) replaces them, and a later correction replaces the final row.
CREATE TABLE IF NOT EXISTS {db}.qoe_views (
  view_id String,
  viewer_id String,
  account_id String,
  content_id String,
  stream_type LowCardinality(String),
  creator_id String,
  device_category LowCardinality(String),
  os LowCardinality(String),
  app_version LowCardinality(String),
  cdn LowCardinality(String),
  country LowCardinality(String),
  asn UInt32,
  view_start DateTime64(3, 'UTC'),
  view_end DateTime64(3, 'UTC'),
  ended UInt8,
  dropped UInt8,
  end_reason LowCardinality(String),
  error_code String,
  outcome LowCardinality(String),
  startup_ms Nullable(UInt64),
  watch_ms UInt64,
  playing_ms UInt64,
  seek_ms UInt64,
  rebuffer_ms UInt64,
  rebuffer_count UInt32,
  rebuffer_pct Nullable(Float64),
  rebuffer_per_min Nullable(Float64),
  weighted_avg_bitrate_kbps Nullable(Float64),
  startup_score Nullable(Float64),
  smoothness_score Nullable(Float64),
  playback_success_score Nullable(Float64),
  is_final UInt8,
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (view_id, src_topic, src_partition);

-- Real-time one-minute aggregates from heartbeat deltas. Rows are partial per source partition:
-- sum the counts, concatenate startup_ms_samples (groupArrayArray) and take quantiles of the result.
CREATE TABLE IF NOT EXISTS {db}.qoe_minute (
  window_start DateTime('UTC'),
  cdn LowCardinality(String),
  device_category LowCardinality(String),
  country LowCardinality(String),
  asn UInt32,
  content_id String,
  concurrent_viewers UInt64,
  views_started UInt64,
  startup_ms_samples Array(UInt64),
  playing_ms UInt64,
  rebuffer_ms UInt64,
  rebuffer_count UInt64,
  seek_ms UInt64,
  bitrate_kbps_ms UInt64,
  views_ended UInt64,
  plays UInt64,
  vsf_views UInt64,
  ebvs_views UInt64,
  business_exception_views UInt64,
  playback_failure_views UInt64,
  fatal_errors UInt64,
  is_final UInt8,
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (window_start, cdn, device_category, country, asn, content_id, src_topic, src_partition);

-- Minute metrics combined across source partitions, with the ratios (Grafana / API read this).
-- Percentiles are nearest-rank: sorted[ceil(q * n)], the same rule as qoe-metrics.ts nearestRank.
CREATE VIEW IF NOT EXISTS {db}.qoe_minute_all AS
SELECT window_start, cdn, device_category, country, asn, content_id,
  s_concurrent AS concurrent_viewers, s_started AS views_started,
  if(length(samples) = 0, NULL, samples[toUInt64(greatest(1, ceil(0.5 * length(samples))))]) AS startup_p50_ms,
  if(length(samples) = 0, NULL, samples[toUInt64(greatest(1, ceil(0.95 * length(samples))))]) AS startup_p95_ms,
  s_playing AS playing_ms, s_rebuffer AS rebuffer_ms, s_rebuffer_count AS rebuffer_count, s_seek AS seek_ms,
  s_playing + s_rebuffer + s_seek AS watch_ms,
  if(s_playing + s_rebuffer + s_seek = 0, NULL, 100 * s_rebuffer / (s_playing + s_rebuffer + s_seek)) AS rebuffer_pct,
  if(s_playing + s_rebuffer + s_seek = 0, NULL, s_rebuffer_count / ((s_playing + s_rebuffer + s_seek) / 60000)) AS rebuffer_per_min,
  if(s_playing = 0, NULL, s_bitrate / s_playing) AS avg_bitrate_kbps,
  s_ended AS views_ended, s_plays AS plays, s_vsf AS vsf_views, s_ebvs AS ebvs_views,
  s_business AS business_exception_views, s_failures AS playback_failure_views,
  if(s_ended = 0, NULL, 100 * s_vsf / s_ended) AS vsf_pct,
  if(s_ended = 0, NULL, 100 * s_ebvs / s_ended) AS ebvs_pct,
  s_fatal AS fatal_errors
FROM (
  SELECT window_start, cdn, device_category, country, asn, content_id,
    sum(concurrent_viewers) AS s_concurrent, sum(views_started) AS s_started,
    arraySort(groupArrayArray(startup_ms_samples)) AS samples,
    sum(playing_ms) AS s_playing, sum(rebuffer_ms) AS s_rebuffer, sum(rebuffer_count) AS s_rebuffer_count, sum(seek_ms) AS s_seek,
    sum(bitrate_kbps_ms) AS s_bitrate, sum(views_ended) AS s_ended, sum(plays) AS s_plays, sum(vsf_views) AS s_vsf,
    sum(ebvs_views) AS s_ebvs, sum(business_exception_views) AS s_business, sum(playback_failure_views) AS s_failures,
    sum(fatal_errors) AS s_fatal
  FROM {db}.qoe_minute FINAL
  GROUP BY window_start, cdn, device_category, country, asn, content_id);

-- QoE for reporting: views bucketed by their end (Mux), one hour, with the show from the catalog.
-- Ratios are ratios of sums; startup percentiles over plays.
CREATE VIEW IF NOT EXISTS {db}.qoe_by_view_end_1h AS
SELECT toStartOfHour(v.view_end) AS hour, v.cdn AS cdn, v.device_category AS device_category, v.country AS country, v.asn AS asn,
  v.content_id AS content_id, any(c.show_name) AS show_name,
  count() AS views, countIf(v.outcome IN ('play', 'playback_failure')) AS plays,
  countIf(v.outcome = 'vsf') AS vsf_views, countIf(v.outcome = 'ebvs') AS ebvs_views,
  countIf(v.outcome = 'business_exception') AS business_exception_views,
  countIf(v.outcome = 'playback_failure') AS playback_failure_views, sum(v.dropped) AS dropped_views,
  100 * vsf_views / views AS vsf_pct, 100 * ebvs_views / views AS ebvs_pct,
  100 * (vsf_views + playback_failure_views) / views AS playback_failure_pct,
  quantileExactIf(0.5)(v.startup_ms, v.startup_ms IS NOT NULL) AS startup_p50_ms,
  quantileExactIf(0.95)(v.startup_ms, v.startup_ms IS NOT NULL) AS startup_p95_ms,
  sum(v.watch_ms) AS watch_ms, sum(v.rebuffer_ms) AS rebuffer_ms, sum(v.rebuffer_count) AS rebuffer_count,
  if(watch_ms = 0, NULL, 100 * rebuffer_ms / watch_ms) AS rebuffer_pct,
  if(watch_ms = 0, NULL, rebuffer_count / (watch_ms / 60000)) AS rebuffer_per_min,
  if(sum(v.playing_ms) = 0, NULL, sum(v.weighted_avg_bitrate_kbps * v.playing_ms) / sum(v.playing_ms)) AS avg_bitrate_kbps,
  avg(v.startup_score) AS startup_score, avg(v.smoothness_score) AS smoothness_score, avg(v.playback_success_score) AS playback_success_score
FROM (SELECT * FROM {db}.qoe_views FINAL WHERE is_final = 1) AS v
LEFT JOIN (SELECT content_id, argMax(show_name, event_time) AS show_name FROM {db}.raw_catalog GROUP BY content_id) AS c ON c.content_id = v.content_id
GROUP BY hour, cdn, device_category, country, asn, content_id;
