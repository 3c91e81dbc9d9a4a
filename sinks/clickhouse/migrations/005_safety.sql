-- Trust and safety (DOMAIN §6), written by processors/safety. Definitions in docs/safety.md.

-- Moderation events per one-minute window (partial aggregates per source partition: sum them).
CREATE TABLE IF NOT EXISTS {db}.safety_events_1m (
  window_start DateTime('UTC'),
  event_type LowCardinality(String),
  policy LowCardinality(String),
  severity LowCardinality(String),
  detection_source LowCardinality(String),
  action_type LowCardinality(String),
  outcome LowCardinality(String),
  target_type LowCardinality(String),
  events UInt64,
  is_final UInt8,
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (window_start, event_type, policy, severity, detection_source, action_type, outcome, target_type, src_topic, src_partition);

-- One row per case: its latest state (all events of a case share a target_id, so one partition).
CREATE TABLE IF NOT EXISTS {db}.safety_cases (
  case_id String,
  target_type LowCardinality(String),
  target_id String,
  creator_id String,
  policy LowCardinality(String),
  severity LowCardinality(String),
  user_reports UInt32,
  first_report_time Nullable(DateTime64(3, 'UTC')),
  first_detection_time Nullable(DateTime64(3, 'UTC')),
  action_time Nullable(DateTime64(3, 'UTC')),
  action_type LowCardinality(String),
  time_to_action_ms Nullable(Int64),
  proactive UInt8,
  violation UInt8,
  appealed UInt8,
  appeal_time Nullable(DateTime64(3, 'UTC')),
  appeal_outcome LowCardinality(String),
  appeal_decision_time Nullable(DateTime64(3, 'UTC')),
  time_to_appeal_decision_ms Nullable(Int64),
  closed UInt8,
  last_event_time DateTime64(3, 'UTC'),
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (case_id, src_topic, src_partition);

CREATE VIEW IF NOT EXISTS {db}.safety_events_1h AS
SELECT toStartOfHour(window_start) AS hour, event_type, policy, severity, detection_source, action_type, outcome, target_type, sum(events) AS events
FROM {db}.safety_events_1m FINAL
GROUP BY hour, event_type, policy, severity, detection_source, action_type, outcome, target_type;

CREATE VIEW IF NOT EXISTS {db}.safety_events_1d AS
SELECT toDate(window_start) AS day, event_type, policy, severity, detection_source, action_type, outcome, target_type, sum(events) AS events
FROM {db}.safety_events_1m FINAL
GROUP BY day, event_type, policy, severity, detection_source, action_type, outcome, target_type;

-- Reports and actions by policy, action type and severity per day.
CREATE VIEW IF NOT EXISTS {db}.safety_reports_actions_1d AS
SELECT day, policy, severity, action_type,
  sumIf(events, event_type = 'report_created' AND detection_source = 'user_report') AS user_reports,
  sumIf(events, event_type = 'report_created' AND detection_source != 'user_report') AS detections,
  sumIf(events, event_type = 'action_taken') AS actions,
  sumIf(events, event_type = 'action_taken' AND action_type != 'none') AS enforcement_actions
FROM {db}.safety_events_1d
GROUP BY day, policy, severity, action_type;

-- Case KPIs per day of action. Quantiles interpolate linearly (quantileExactInclusive).
-- Denominators: enforcement actions = cases whose action is not 'none' (violation = 1).
CREATE VIEW IF NOT EXISTS {db}.safety_kpi_1d AS
SELECT toDate(action_time) AS day,
  countIf(violation = 1) AS enforcement_actions,
  quantileExactInclusiveIf(0.5)(toFloat64(time_to_action_ms), violation = 1) AS median_time_to_action_ms,
  quantileExactInclusiveIf(0.9)(toFloat64(time_to_action_ms), violation = 1) AS p90_time_to_action_ms,
  if(countIf(violation = 1) = 0, NULL, countIf(violation = 1 AND proactive = 1) / countIf(violation = 1)) AS proactive_rate,
  if(countIf(violation = 1) = 0, NULL, countIf(violation = 1 AND appealed = 1) / countIf(violation = 1)) AS appeal_rate,
  countIf(appeal_outcome != '') AS appeals_decided,
  countIf(appeal_outcome = 'reversed') AS appeals_reversed,
  if(countIf(appeal_outcome != '') = 0, NULL, countIf(appeal_outcome = 'reversed') / countIf(appeal_outcome != '')) AS appeal_overturn_rate,
  quantileExactInclusiveIf(0.5)(toFloat64(time_to_appeal_decision_ms), time_to_appeal_decision_ms IS NOT NULL) AS median_time_to_appeal_decision_ms
FROM {db}.safety_cases FINAL
WHERE action_time IS NOT NULL
GROUP BY day;

-- The same KPIs over every case in the table.
CREATE VIEW IF NOT EXISTS {db}.safety_kpi_total AS
SELECT
  countIf(violation = 1) AS enforcement_actions,
  quantileExactInclusiveIf(0.5)(toFloat64(time_to_action_ms), violation = 1) AS median_time_to_action_ms,
  quantileExactInclusiveIf(0.9)(toFloat64(time_to_action_ms), violation = 1) AS p90_time_to_action_ms,
  if(countIf(violation = 1) = 0, NULL, countIf(violation = 1 AND proactive = 1) / countIf(violation = 1)) AS proactive_rate,
  if(countIf(violation = 1) = 0, NULL, countIf(violation = 1 AND appealed = 1) / countIf(violation = 1)) AS appeal_rate,
  countIf(appeal_outcome != '') AS appeals_decided,
  countIf(appeal_outcome = 'reversed') AS appeals_reversed,
  if(countIf(appeal_outcome != '') = 0, NULL, countIf(appeal_outcome = 'reversed') / countIf(appeal_outcome != '')) AS appeal_overturn_rate,
  quantileExactInclusiveIf(0.5)(toFloat64(time_to_appeal_decision_ms), time_to_appeal_decision_ms IS NOT NULL) AS median_time_to_appeal_decision_ms
FROM {db}.safety_cases FINAL
WHERE action_time IS NOT NULL;

-- Safety score 0-100 per creator (docs/safety.md): 100 * exp(-rate / 10), rate = weighted
-- confirmed violations per 1000 views, views floored at 1000. Confirmed violation: an action other
-- than 'none' not reversed on appeal; weights low 1, medium 3, high 10, critical 30.
-- Views: distinct live views of the creator in raw_playback.
CREATE VIEW IF NOT EXISTS {db}.safety_creator_score AS
WITH
  v AS (
    SELECT creator_id, count() AS confirmed_violations, countIf(appeal_outcome = 'reversed') AS overturned,
      sumIf(multiIf(severity = 'critical', 30, severity = 'high', 10, severity = 'medium', 3, 1), appeal_outcome != 'reversed') AS weighted_violations
    FROM {db}.safety_cases FINAL
    WHERE violation = 1 AND creator_id != ''
    GROUP BY creator_id),
  e AS (
    SELECT assumeNotNull(creator_id) AS creator_id, uniqExact(view_id) AS views
    FROM {db}.raw_playback FINAL
    WHERE creator_id IS NOT NULL AND creator_id != ''
    GROUP BY creator_id)
SELECT v.creator_id AS creator_id, v.confirmed_violations - v.overturned AS confirmed_violations, v.overturned AS overturned,
  v.weighted_violations AS weighted_violations, ifNull(e.views, 0) AS views,
  1000 * v.weighted_violations / greatest(ifNull(e.views, 0), 1000) AS weighted_per_1000_views,
  100 * exp(-weighted_per_1000_views / 10) AS safety_score
FROM v LEFT JOIN e ON e.creator_id = v.creator_id;

-- The overall score: the same formula over all violations and all views.
CREATE VIEW IF NOT EXISTS {db}.safety_score_overall AS
SELECT
  (SELECT sumIf(multiIf(severity = 'critical', 30, severity = 'high', 10, severity = 'medium', 3, 1), violation = 1 AND appeal_outcome != 'reversed') FROM {db}.safety_cases FINAL) AS weighted_violations,
  (SELECT uniqExact(view_id) FROM {db}.raw_playback FINAL) AS views,
  1000 * weighted_violations / greatest(views, 1000) AS weighted_per_1000_views,
  100 * exp(-weighted_per_1000_views / 10) AS safety_score;
