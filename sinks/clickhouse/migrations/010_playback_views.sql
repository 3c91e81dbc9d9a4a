-- Distinct playback views per creator, pre-aggregated for the safety scores (005): the views
-- safety_score_overall and safety_creator_score counted uniqExact(view_id) over raw_playback FINAL,
-- a scan of every raw event on each call (≈ 220 ms per /v1/safety/summary at 10 M events, see
-- bench/RESULTS.md). Here a materialized view keeps one uniqExact state per creator ('' = no creator,
-- i.e. VOD) from every insert into raw_playback. uniqExact states are idempotent, so replays,
-- duplicate events and re-running the backfill below never change a count: same numbers as before.
CREATE TABLE IF NOT EXISTS {db}.playback_views_by_creator (
  creator_id String,
  views AggregateFunction(uniqExact, String)
) ENGINE = AggregatingMergeTree
ORDER BY creator_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.playback_views_by_creator_mv TO {db}.playback_views_by_creator AS
SELECT ifNull(creator_id, '') AS creator_id, uniqExactState(view_id) AS views
FROM {db}.raw_playback
GROUP BY creator_id;

-- Backfill from the events already stored (rows inserted meanwhile are counted once anyway).
INSERT INTO {db}.playback_views_by_creator
SELECT ifNull(creator_id, '') AS creator_id, uniqExactState(view_id) AS views
FROM {db}.raw_playback
GROUP BY creator_id;

CREATE OR REPLACE VIEW {db}.safety_creator_score AS
WITH
  v AS (
    SELECT creator_id, count() AS confirmed_violations, countIf(appeal_outcome = 'reversed') AS overturned,
      sumIf(multiIf(severity = 'critical', 30, severity = 'high', 10, severity = 'medium', 3, 1), appeal_outcome != 'reversed') AS weighted_violations
    FROM {db}.safety_cases FINAL
    WHERE violation = 1 AND creator_id != ''
    GROUP BY creator_id),
  e AS (
    SELECT creator_id, uniqExactMerge(views) AS views
    FROM {db}.playback_views_by_creator
    WHERE creator_id != ''
    GROUP BY creator_id)
SELECT v.creator_id AS creator_id, v.confirmed_violations - v.overturned AS confirmed_violations, v.overturned AS overturned,
  v.weighted_violations AS weighted_violations, ifNull(e.views, 0) AS views,
  1000 * v.weighted_violations / greatest(ifNull(e.views, 0), 1000) AS weighted_per_1000_views,
  100 * exp(-weighted_per_1000_views / 10) AS safety_score
FROM v LEFT JOIN e ON e.creator_id = v.creator_id;

CREATE OR REPLACE VIEW {db}.safety_score_overall AS
SELECT
  (SELECT sumIf(multiIf(severity = 'critical', 30, severity = 'high', 10, severity = 'medium', 3, 1), violation = 1 AND appeal_outcome != 'reversed') FROM {db}.safety_cases FINAL) AS weighted_violations,
  (SELECT uniqExactMerge(views) FROM {db}.playback_views_by_creator) AS views,
  1000 * weighted_violations / greatest(views, 1000) AS weighted_per_1000_views,
  100 * exp(-weighted_per_1000_views / 10) AS safety_score;
