-- Churn features, risk and cohorts (DOMAIN §5, docs/churn.md). churn_scores is written by the
-- day-close job processors/churn/churn-scores.ts (scoreChurnDay): one row per (UTC day, account)
-- with the features as of the end of that day, the risk in [0, 1], its level, top reasons and
-- the contribution of every factor (log-odds). Rescoring a day replaces its rows (newest version).
CREATE TABLE IF NOT EXISTS {db}.churn_scores (
  day Date,
  account_id String,
  plan LowCardinality(String),
  tenure_band LowCardinality(String),
  top_genre LowCardinality(String),
  days_since_last_view Nullable(Int32),
  views_7d UInt32,
  views_28d UInt32,
  active_days_7d UInt8,
  active_days_28d UInt8,
  playing_hours_7d Float64,
  playing_hours_28d Float64,
  trend Float64,
  distinct_titles_28d UInt32,
  revenue_usd_28d Float64,
  gift_value_usd_28d Float64,
  tenure_days Nullable(Int32),
  auto_renew_off UInt8,
  days_to_period_end Nullable(Int32),
  payment_failures_28d UInt32,
  downgrades_28d UInt32,
  rebuffer_pct_7d Float64,
  vsf_7d UInt32,
  playback_failures_7d UInt32,
  startup_p95_ms_7d Nullable(Int64),
  last_session_bad UInt8,
  risk Float64,
  level LowCardinality(String),
  reasons Array(String),
  contributions Map(String, Float64),
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (day, account_id);

-- Days the job has scored (with how many accounts): the job resumes after the last one.
CREATE TABLE IF NOT EXISTS {db}.churn_score_days (
  day Date,
  accounts UInt32,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY day;

-- Cohorts: plan × tenure band × top genre per day. revenue_at_risk_usd = Σ risk × the account's
-- net revenue of the last 28 days (expected revenue lost if the risk comes true).
CREATE VIEW IF NOT EXISTS {db}.churn_cohorts AS
SELECT
  day, plan, tenure_band, top_genre,
  count() AS accounts,
  countIf(level = 'high') AS high_risk_accounts,
  countIf(level = 'medium') AS medium_risk_accounts,
  avg(risk) AS avg_risk,
  sum(revenue_usd_28d) AS revenue_28d_usd,
  sum(risk * revenue_usd_28d) AS revenue_at_risk_usd
FROM {db}.churn_scores FINAL
GROUP BY day, plan, tenure_band, top_genre;
