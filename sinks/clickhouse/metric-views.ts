/**
 * The ClickHouse views that show catalogued metrics, generated from contracts/metrics-catalog.ts
 * (issue 18): `npx tsx scripts/metric-views.ts` writes them into migration
 * 016_metric_views.sql, and tests/metrics-catalog.test.ts checks the committed file is current.
 * Every formula in them comes from metricSql; nothing here restates one.
 */
import { SOURCES, metricSql, measureSql, P, type Grain } from '../../contracts/metrics-catalog.js';

const cols = (grain: Grain, names: readonly string[]) => names.map((n) => `${metricSql(n, grain, 'columns')} AS ${n}`).join(',\n  ');
const partials = (grain: Grain, measures: readonly string[]) => measures.map((m) => `${measureSql(grain, m)} AS ${P(m)}`).join(',\n    ');

const QOE_METRICS = ['startup_p50_ms', 'startup_p95_ms', 'rebuffer_pct', 'rebuffer_per_min', 'avg_bitrate_kbps', 'vsf_pct', 'ebvs_pct', 'playback_failure_pct'];

function qoeMinuteAll(): string {
  const g: Grain = 'minute';
  const dims = SOURCES.minute.dimensions.join(', ');
  const measures = [
    'concurrent_viewer_minutes',
    'views_started',
    'startup_samples',
    'startup_wait_ms',
    'playing_ms',
    'rebuffer_ms',
    'rebuffer_count',
    'watch_ms',
    'bitrate_kbps_ms',
    'views_ended',
    'plays',
    'vsf_views',
    'ebvs_views',
    'playback_failure_views',
    'failed_views',
    'fatal_errors',
  ];
  return `-- Minute metrics combined across source partitions (Grafana / API read this). Generated from the catalog.
CREATE OR REPLACE VIEW {db}.qoe_minute_all AS
SELECT window_start, ${dims},
  ${P('concurrent_viewer_minutes')} AS concurrent_viewers, ${P('views_started')} AS views_started,
  ${P('startup_wait_ms')} AS startup_wait_ms, ${P('playing_ms')} AS playing_ms, ${P('rebuffer_ms')} AS rebuffer_ms, ${P('rebuffer_count')} AS rebuffer_count, s_seek AS seek_ms,
  ${P('watch_ms')} AS watch_ms,
  ${P('views_ended')} AS views_ended, ${P('plays')} AS plays, ${P('vsf_views')} AS vsf_views, ${P('ebvs_views')} AS ebvs_views,
  s_business AS business_exception_views, ${P('playback_failure_views')} AS playback_failure_views, ${P('fatal_errors')} AS fatal_errors,
  ${cols(g, QOE_METRICS)}
FROM (
  SELECT window_start, ${dims},
    ${partials(g, measures)},
    sum(seek_ms) AS s_seek, sum(business_exception_views) AS s_business
  FROM {db}.qoe_minute FINAL
  GROUP BY window_start, ${dims})`;
}

function qoeByViewEnd(): string {
  const g: Grain = 'view_end';
  const measures = [
    'views_ended',
    'plays',
    'vsf_views',
    'ebvs_views',
    'playback_failure_views',
    'failed_views',
    'startup_samples',
    'watch_ms',
    'playing_ms',
    'rebuffer_ms',
    'rebuffer_count',
    'bitrate_kbps_ms',
  ];
  return `-- QoE for reporting: final views bucketed by the hour of their end (Mux), with the show from the catalog. Generated from the catalog.
CREATE OR REPLACE VIEW {db}.qoe_by_view_end_1h AS
SELECT hour, cdn, device_category, country, asn, content_id, show_name,
  ${P('views_ended')} AS views, ${P('plays')} AS plays, ${P('vsf_views')} AS vsf_views, ${P('ebvs_views')} AS ebvs_views,
  s_business AS business_exception_views, ${P('playback_failure_views')} AS playback_failure_views, s_dropped AS dropped_views,
  ${P('watch_ms')} AS watch_ms, ${P('playing_ms')} AS playing_ms, ${P('rebuffer_ms')} AS rebuffer_ms, ${P('rebuffer_count')} AS rebuffer_count,
  ${cols(g, QOE_METRICS)},
  startup_score, smoothness_score, playback_success_score
FROM (
  SELECT toStartOfHour(v.view_end) AS hour, v.cdn AS cdn, v.device_category AS device_category, v.country AS country, v.asn AS asn, v.content_id AS content_id,
    any(c.show_name) AS show_name,
    ${partials(g, measures)},
    countIf(outcome = 'business_exception') AS s_business, sum(dropped) AS s_dropped,
    avg(v.startup_score) AS startup_score, avg(v.smoothness_score) AS smoothness_score, avg(v.playback_success_score) AS playback_success_score
  FROM ${SOURCES.view_end.from('{db}')} AS v
  LEFT JOIN (SELECT content_id, argMax(show_name, event_time) AS show_name FROM {db}.raw_catalog GROUP BY content_id) AS c ON c.content_id = v.content_id
  GROUP BY hour, cdn, device_category, country, asn, content_id)`;
}

function businessHourly(): string {
  const g: Grain = 'account_period';
  return `-- One row per hour with every headline business KPI. payers (a succeeded charge) and net_payers
-- (net revenue > 0) are two metrics with one meaning each (issue 18). Generated from the catalog.
CREATE OR REPLACE VIEW {db}.kpi_business_1h AS
WITH
  pay AS (
    SELECT toStartOfHour(window_start) AS hour, sum(attempts) AS attempts, sum(failed) AS failed,
      sum(gross_usd_micros) AS gross, sum(refunds_usd_micros) AS refunds, sum(chargebacks_usd_micros) AS chargebacks,
      sum(net_usd_micros) AS net, sum(topups) AS topups, sum(topup_usd_micros) AS topup
    FROM {db}.kpi_payments_1m FINAL GROUP BY hour),
  gift AS (
    SELECT toStartOfHour(window_start) AS hour, sum(gifts) AS gifts, sum(coins) AS coins, sum(value_usd_micros) AS gift_value
    FROM {db}.kpi_gifts_1m FINAL GROUP BY hour),
  act AS (
    SELECT hour, ${partials(g, ['active_accounts', 'payers', 'net_payers', 'net_usd_micros'])}
    FROM ${SOURCES.account_period.from('{db}', '1', ['hour'])}
    GROUP BY hour)
SELECT
  act.hour AS hour,
  pay.gross / 1e6 AS gross_usd, pay.refunds / 1e6 AS refunds_usd, pay.chargebacks / 1e6 AS chargebacks_usd,
  pay.net / 1e6 AS revenue_usd, pay.topups AS topups, pay.topup / 1e6 AS topup_usd,
  ifNull(${metricSql('payment_failure_pct', 'payment_minute', 'columns', (m) => `pay.${m}`)} / 100, 0) AS payment_failure_rate,
  gift.gifts AS gifts, gift.coins AS gift_coins, gift.gift_value / 1e6 AS gift_value_usd,
  act.${P('active_accounts')} AS active_accounts, act.${P('payers')} AS payers, act.${P('net_payers')} AS net_payers,
  ifNull(${metricSql('arpu_usd', g, 'columns', (m) => `act.${P(m)}`)}, 0) AS arpu_usd,
  ifNull(${metricSql('arppu_usd', g, 'columns', (m) => `act.${P(m)}`)}, 0) AS arppu_usd,
  ifNull(${metricSql('payer_rate_pct', g, 'columns', (m) => `act.${P(m)}`)} / 100, 0) AS payer_rate
FROM act
LEFT JOIN pay ON pay.hour = act.hour
LEFT JOIN gift ON gift.hour = act.hour`;
}

function activeDaily(): string {
  const g: Grain = 'account_period';
  return `-- Daily active accounts (DAU), payers and net payers. Generated from the catalog.
CREATE OR REPLACE VIEW {db}.kpi_active_1d AS
SELECT day, ${P('active_accounts')} AS dau, ${P('payers')} AS payers, ${P('net_payers')} AS net_payers FROM (
  SELECT day, ${partials(g, ['active_accounts', 'payers', 'net_payers'])}
  FROM ${SOURCES.account_period.from('{db}', '1', ['toDate(hour) AS day'])}
  GROUP BY day)`;
}

function safetyKpis(name: string, byDay: boolean): string {
  const g: Grain = 'case';
  return `-- Case KPIs${byDay ? ' per day of action' : ' over every case in the table'}. Percentiles are nearest rank (the catalog's one method). Generated from the catalog.
CREATE OR REPLACE VIEW {db}.${name} AS
SELECT ${byDay ? 'day, ' : ''}enforcement_actions,
  ${cols(g, ['median_time_to_action_ms', 'p90_time_to_action_ms'])},
  proactive_rate, appeal_rate, appeals_decided, appeals_reversed, appeal_overturn_rate,
  ${cols(g, ['median_time_to_appeal_decision_ms'])}
FROM (
  SELECT ${byDay ? 'toDate(action_time) AS day, ' : ''}countIf(violation = 1) AS enforcement_actions,
    ${partials(g, ['tta_samples', 'appeal_decision_samples'])},
    if(countIf(violation = 1) = 0, NULL, countIf(violation = 1 AND proactive = 1) / countIf(violation = 1)) AS proactive_rate,
    if(countIf(violation = 1) = 0, NULL, countIf(violation = 1 AND appealed = 1) / countIf(violation = 1)) AS appeal_rate,
    countIf(appeal_outcome != '') AS appeals_decided,
    countIf(appeal_outcome = 'reversed') AS appeals_reversed,
    if(countIf(appeal_outcome != '') = 0, NULL, countIf(appeal_outcome = 'reversed') / countIf(appeal_outcome != '')) AS appeal_overturn_rate
  FROM {db}.safety_cases FINAL
  WHERE action_time IS NOT NULL${byDay ? '\n  GROUP BY day' : ''})`;
}

function showOverview(): string {
  const g: Grain = 'view_end';
  return `-- For each show: its production issues beside engagement and QoE, now from the final views
-- (qoe_views) with the catalog's formulas: one rebuffer percentage (of watch time, startup and the
-- wait of views that never played included) instead of rebuffer ÷ (playing + rebuffer) from
-- raw_playback. content -> show from raw_catalog (latest event per content_id). Generated from the catalog.
CREATE OR REPLACE VIEW {db}.production_show_overview AS
WITH
  catalog AS (
    SELECT content_id, argMax(show_name, (event_time, version)) AS show_name
    FROM {db}.raw_catalog FINAL GROUP BY content_id),
  engagement AS (
    SELECT show_name, ${P('views_ended')} AS views, ${cols(g, ['playing_hours', 'rebuffer_pct'])},
      ${P('failed_views')} AS playback_failures, ${cols(g, ['playback_failure_pct'])}
    FROM (
      SELECT c.show_name AS show_name, ${partials(g, ['views_ended', 'playing_ms', 'rebuffer_ms', 'watch_ms', 'failed_views'])}
      FROM ${SOURCES.view_end.from('{db}')} AS v INNER JOIN catalog AS c ON c.content_id = v.content_id
      GROUP BY c.show_name)),
  issues AS (SELECT * FROM {db}.production_show_impact WHERE show_name != '')
SELECT if(issues.show_name != '', issues.show_name, engagement.show_name) AS show_name,
  issues.issues AS issues, issues.open_issues AS open_issues, issues.open_critical AS open_critical,
  issues.cost_impact_usd_total AS cost_impact_usd_total, issues.delay_days_total AS delay_days_total,
  issues.open_cost_impact_usd AS open_cost_impact_usd, issues.cost_impact_usd_total - issues.open_cost_impact_usd AS resolved_cost_impact_usd,
  issues.open_delay_days AS open_delay_days, issues.delay_days_total - issues.open_delay_days AS resolved_delay_days,
  engagement.views AS views, engagement.playing_hours AS playing_hours, engagement.rebuffer_pct AS rebuffer_pct,
  engagement.playback_failures AS playback_failures, engagement.playback_failure_pct AS playback_failure_pct
FROM issues FULL OUTER JOIN engagement ON engagement.show_name = issues.show_name`;
}

export function metricViewsMigration(): string {
  return `-- GENERATED by scripts/metric-views.ts from contracts/metrics-catalog.ts (issue 18): do not edit.
-- The views that show catalogued metrics, every formula from the catalog: one rebuffer percentage
-- (watch time includes startup and the wait of views that never played, real time and by view
-- end), payers / net_payers, one percentile method (nearest rank).

-- Startup (of plays, in the minute of the first frame) and the wait of views that never played (in
-- the minute of their view_end): the real-time part of watch time that the counters lack.
ALTER TABLE {db}.qoe_minute ADD COLUMN IF NOT EXISTS startup_wait_ms UInt64 DEFAULT 0 AFTER seek_ms;

${[qoeMinuteAll(), qoeByViewEnd(), businessHourly(), activeDaily(), safetyKpis('safety_kpi_1d', true), safetyKpis('safety_kpi_total', false), showOverview()].join(';\n\n')};
`;
}
