-- The overall safety score's views (docs/safety.md), additive (issue 20): views that started
-- playing, each counted once in the minute of its first frame (the catalog's `views_started`
-- measure of the real-time QoE rows), over all time. 010 divided by the exact count of distinct
-- view ids in raw_playback, `uniqExactMerge` over every view id ever seen on each call: 188-349 ms
-- in ClickHouse alone for 2.5 M views (100 M events, bench/RESULTS.md), growing with the data. A
-- sum adds up across buckets, so closed hours come from qoe_series_rollup (022: one row per hour
-- for dimension 'all', up to its sealed point) and only the minutes after that point from
-- qoe_minute FINAL: the same number as Σ views_started over qoe_minute FINAL alone (closed rows do
-- not change), read from about one row per hour. Grafana's stat and /v1/safety/summary read this
-- view. The per-creator score (safety_creator_score) keeps distinct live views per creator:
-- qoe_minute has no creator, and it merges only the creators' own states.
CREATE OR REPLACE VIEW {db}.safety_score_overall AS
WITH (SELECT max(sealed_until) FROM {db}.rollup_sealed_qoe WHERE name = 'qoe_series_3600') AS sealed
SELECT
  (SELECT sumIf(multiIf(severity = 'critical', 30, severity = 'high', 10, severity = 'medium', 3, 1), violation = 1 AND appeal_outcome != 'reversed') FROM {db}.safety_cases FINAL) AS weighted_violations,
  (SELECT sum(p_views_started) FROM {db}.qoe_series_rollup FINAL WHERE step = 3600 AND dim = 'all' AND bucket < sealed)
    + (SELECT sum(views_started) FROM {db}.qoe_minute FINAL WHERE window_start >= sealed) AS views,
  1000 * weighted_violations / greatest(views, 1000) AS weighted_per_1000_views,
  100 * exp(-weighted_per_1000_views / 10) AS safety_score;
