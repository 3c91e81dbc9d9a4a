-- Production issues from Jira (DOMAIN §7), written by processors/production. See docs/production.md.

-- One row per issue. The replacing version is state_version (= updated ms; deletes DELETE_BASE +
-- updated ms), not the runner's offset `version`, so the latest `updated` wins even when webhooks
-- arrive out of order, and a deletion wins over any update. Read with FINAL.
CREATE TABLE IF NOT EXISTS {db}.production_issues (
  issue_key String,
  project_key LowCardinality(String),
  summary String,
  issue_type LowCardinality(String),
  status LowCardinality(String),
  status_category LowCardinality(String),
  priority LowCardinality(String),
  severity LowCardinality(String),
  show_name String,
  cost_impact_usd Float64,
  delay_days Float64,
  labels Array(String),
  created DateTime64(3, 'UTC'),
  updated DateTime64(3, 'UTC'),
  resolved Nullable(DateTime64(3, 'UTC')),
  resolve_ms Nullable(Int64),
  is_open UInt8,
  is_critical UInt8,
  deleted UInt8,
  deleted_time Nullable(DateTime64(3, 'UTC')),
  last_event_id String,
  state_version UInt64,
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(state_version)
ORDER BY issue_key;

-- Current issues: deleted ones disappear here (their deletion stays in production_issues).
CREATE VIEW IF NOT EXISTS {db}.production_issues_current AS
SELECT * FROM {db}.production_issues FINAL WHERE deleted = 0;

CREATE VIEW IF NOT EXISTS {db}.production_deleted_issues AS
SELECT issue_key, project_key, summary, show_name, deleted_time, updated
FROM {db}.production_issues FINAL WHERE deleted = 1;

CREATE VIEW IF NOT EXISTS {db}.production_open_by_severity_show AS
SELECT show_name, severity, count() AS open_issues, countIf(is_critical = 1) AS open_critical
FROM {db}.production_issues_current WHERE is_open = 1
GROUP BY show_name, severity;

CREATE VIEW IF NOT EXISTS {db}.production_open_critical AS
SELECT countIf(is_open = 1 AND is_critical = 1) AS open_critical, countIf(is_open = 1) AS open_issues
FROM {db}.production_issues_current;

-- Cost impact and delay days by show: every current (not deleted) issue, and the open ones.
CREATE VIEW IF NOT EXISTS {db}.production_show_impact AS
SELECT show_name, count() AS issues, countIf(is_open = 1) AS open_issues, countIf(is_open = 1 AND is_critical = 1) AS open_critical,
  sum(cost_impact_usd) AS cost_impact_usd_total, sum(delay_days) AS delay_days_total,
  sumIf(cost_impact_usd, is_open = 1) AS open_cost_impact_usd, sumIf(delay_days, is_open = 1) AS open_delay_days,
  avgIf(resolve_ms, resolve_ms IS NOT NULL) / 3600000 AS mean_time_to_resolve_hours
FROM {db}.production_issues_current
GROUP BY show_name;

-- Mean time to resolve (resolved − created) over resolved current issues.
CREATE VIEW IF NOT EXISTS {db}.production_mttr AS
SELECT count() AS resolved_issues, avg(resolve_ms) AS mean_time_to_resolve_ms, avg(resolve_ms) / 3600000 AS mean_time_to_resolve_hours
FROM {db}.production_issues_current WHERE resolve_ms IS NOT NULL;

-- For each show: its production issues beside engagement and QoE from raw_playback.
-- content -> show from raw_catalog (latest event per content_id). Per view: max of the cumulative
-- counters (playing, rebuffer) and whether it had a fatal, non-business error.
CREATE VIEW IF NOT EXISTS {db}.production_show_overview AS
WITH
  catalog AS (
    SELECT content_id, argMax(show_name, (event_time, version)) AS show_name
    FROM {db}.raw_catalog FINAL GROUP BY content_id),
  per_view AS (
    SELECT view_id, any(content_id) AS content_id, max(ifNull(cum_playing_ms, 0)) AS playing_ms, max(ifNull(cum_rebuffer_ms, 0)) AS rebuffer_ms,
      max(event_type = 'error' AND error_severity = 'fatal' AND NOT ifNull(error_business, false)) AS failed
    FROM {db}.raw_playback FINAL GROUP BY view_id),
  engagement AS (
    SELECT c.show_name AS show_name, count() AS views, sum(v.playing_ms) / 3600000 AS playing_hours,
      if(sum(v.playing_ms) + sum(v.rebuffer_ms) = 0, 0, sum(v.rebuffer_ms) / (sum(v.playing_ms) + sum(v.rebuffer_ms))) AS rebuffer_ratio,
      sum(v.failed) AS playback_failures, if(count() = 0, 0, sum(v.failed) / count()) AS playback_failure_rate
    FROM per_view v INNER JOIN catalog c ON c.content_id = v.content_id
    GROUP BY c.show_name),
  issues AS (SELECT * FROM {db}.production_show_impact WHERE show_name != '')
SELECT if(issues.show_name != '', issues.show_name, engagement.show_name) AS show_name,
  issues.issues AS issues, issues.open_issues AS open_issues, issues.open_critical AS open_critical,
  issues.cost_impact_usd_total AS cost_impact_usd_total, issues.delay_days_total AS delay_days_total,
  engagement.views AS views, engagement.playing_hours AS playing_hours, engagement.rebuffer_ratio AS rebuffer_ratio,
  engagement.playback_failures AS playback_failures, engagement.playback_failure_rate AS playback_failure_rate
FROM issues FULL OUTER JOIN engagement ON engagement.show_name = issues.show_name;
