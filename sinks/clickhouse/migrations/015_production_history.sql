-- Every Jira event's issue state, kept (issue 18: alerts read production state AS OF the evaluated
-- time, not the latest row). production_issues keeps only the latest `updated`; this table keeps
-- each version the log holds, also stale (older `updated`, arriving later) ones, so the state of an
-- issue as of t is the row with the greatest (updated, version) among rows with updated < t, and
-- the issue is deleted as of t once a deletion row has deleted_time < t. Written by
-- processors/production; one row per event (event_id), so a replay rewrites the same rows.
CREATE TABLE IF NOT EXISTS {db}.production_issue_history (
  issue_key String,
  project_key LowCardinality(String),
  status LowCardinality(String),
  status_category LowCardinality(String),
  priority LowCardinality(String),
  severity LowCardinality(String),
  show_name String,
  cost_impact_usd Float64,
  delay_days Float64,
  created DateTime64(3, 'UTC'),
  updated DateTime64(3, 'UTC'),
  resolved Nullable(DateTime64(3, 'UTC')),
  is_open UInt8,
  is_critical UInt8,
  deleted UInt8,
  deleted_time Nullable(DateTime64(3, 'UTC')),
  last_event_id String,
  state_version UInt64,
  src_topic LowCardinality(String),
  src_partition UInt16,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (issue_key, updated, last_event_id);
