/**
 * Writes docs/tables.md: every table and view of a freshly migrated database (system.tables /
 * system.columns via scripts/schema-catalog.ts) with its engine, key, columns and types, plus the
 * meanings written by hand below. Run after adding or changing a migration:
 *
 *   npx tsx scripts/tables-doc.ts            # rewrites docs/tables.md
 *
 * tests/api/tables-doc.test.ts fails when a table or column of the migrations is missing from the doc.
 * A table without an entry in MEANINGS is listed with "(meaning not written yet)".
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS_DIR } from '../sinks/clickhouse/migrate.js';
import { schemaCatalog, type CatalogTable } from './schema-catalog.js';

interface Meaning {
  by: string;
  text: string;
  columns?: Record<string, string>;
}

const RAW = (what: string, key: string): Meaning => ({
  by: 'processors/raw-store (one row per valid event of the topic)',
  text: `${what} Columns are the Avro fields of the event (snake_case, the contract in contracts/avro) plus the source position. Deduplicated by event_id within the hour of event_time (a replay rewrites the same rows); read with FINAL when duplicates matter. Primary lookup: ${key}.`,
  columns: {
    event_id: 'producer-assigned id (dedup key)',
    event_time: 'when it happened (client clock, event time)',
    received_time: 'when the gateway received it',
    src_topic: 'Kafka topic',
    src_partition: 'Kafka partition',
    src_offset: 'Kafka offset',
    version: 'replacing version (source offset)',
    ingested_at: 'when raw-store wrote it',
  },
});

const PARTIAL =
  'Rows are partial aggregates per source partition (src_topic, src_partition): sum them over partitions; read with FINAL (the newest version of each key wins).';
const COMMON: Record<string, string> = {
  is_final: '1 once the window/view is closed (grace passed); 0 for early updates',
  src_topic: 'source topic',
  src_partition: 'source partition (part of the key: partials are summed)',
  version: 'replacing version (runner offset); newest wins under FINAL',
};

const MEANINGS: Record<string, Meaning> = {
  raw_playback: {
    ...RAW(
      'Player heartbeats and lifecycle events (view start, play, pause, rebuffer, error, end) — the input of QoE, engagement, churn and production-show metrics.',
      'event_time range',
    ),
    columns: {
      ...RAW('', '').columns,
      view_id: 'one playback session',
      seq: 'event number within the view',
      cum_playing_ms: 'cumulative playing time at this event (cum_* are counters since view start)',
      asn: 'network (autonomous system) of the viewer',
      error_business: 'error is a business rule (geo-block, entitlement), not a failure',
    },
  },
  raw_payments: {
    ...RAW(
      'Payment lifecycle events (subscriptions, renewals, top-ups, refunds, chargebacks, failures), amounts in minor units of their currency.',
      'event_time range',
    ),
    columns: {
      ...RAW('', '').columns,
      amount_minor: 'amount in minor units of `currency` (USD via fx_rates)',
      og_tier: 'OG (loyalty) tier of the account',
      period_end: 'subscription period end (epoch ms)',
    },
  },
  raw_gifts: {
    ...RAW('Virtual gifts sent by viewers to creators during live streams.', 'event_time range'),
    columns: { ...RAW('', '').columns, coin_value_usd_micros: 'USD value of one coin, micro-dollars', unit_coins: 'coins per gift unit' },
  },
  raw_moderation: RAW('Trust & safety events: user reports, classifier detections, moderation actions, appeals and their decisions.', 'event_time range'),
  raw_jira: {
    ...RAW(
      'Jira webhooks for production issues (created/updated/deleted), normalised with the custom fields mapped (show, severity, cost impact, delay).',
      'event_time range',
    ),
    columns: { ...RAW('', '').columns, created: 'issue created (epoch ms)', updated: 'issue updated (epoch ms)', raw_payload: 'the webhook body as received' },
  },
  raw_catalog: RAW('Content catalog events: titles, shows, genres, stream type, creator — used to map content_id to show and genre.', 'event_time range'),
  late_events: {
    by: 'every windowing processor',
    text: 'Events that arrived after their window closed (watermark ≥ window end + grace + allowed lateness). Kept, never silently dropped; keyed by source position so a replay writes the same rows.',
    columns: {
      processor: 'processor that rejected it',
      watermark: 'processor watermark at detection',
      window_end: 'end of the window the event belonged to',
      reason: 'why it is late',
      payload: 'the event as JSON',
    },
  },
  fx_rates: {
    by: 'processors/business at start (contracts/fx-rates.ts)',
    text: 'Currency conversion rates used to report revenue in USD (docs/metrics.md).',
    columns: { usd_per_unit: 'USD per 1 unit of the currency', minor_digits: 'decimals of the minor unit', valid_from: 'first day the rate applies' },
  },
  kpi_payments_1m: {
    by: 'processors/business',
    text: `Payments per minute by method × plan × OG tier × country: attempts, outcomes and money in USD micro-dollars (Int64, exact sums). ${PARTIAL}`,
    columns: {
      window_start: 'minute (UTC)',
      net_usd_micros: 'gross − refunds − chargebacks',
      topups: 'coin top-ups (counted apart from subscription revenue)',
    },
  },
  kpi_gifts_1m: { by: 'processors/business', text: `Gifts per minute by creator × sender: count, quantity, coins, USD value. ${PARTIAL}` },
  account_activity_1h: {
    by: 'processors/business',
    text: `One row per hour × account × source partition with what the account did (played, paid, gifted, money). Distinct accounts (DAU, payers, ARPU/ARPPU) are counted at query time with uniqExact, so any roll-up is exact. ${PARTIAL}`,
  },
  kpi_payments_1h: {
    by: 'view over kpi_payments_1m FINAL',
    text: 'Hourly payments by method × plan × OG tier × country, USD, with failure_rate = failed / attempts.',
  },
  kpi_payments_1d: { by: 'view over kpi_payments_1m FINAL', text: 'Daily payments by method × plan × OG tier × country, USD, with failure_rate.' },
  kpi_business_1h: {
    by: 'view over kpi_payments_1m, kpi_gifts_1m, account_activity_1h',
    text: 'One row per hour with every headline business KPI: revenue (gross, refunds, chargebacks, net), top-ups, payment failure rate, gifts, active accounts, payers (a succeeded charge) and net payers (net revenue > 0), ARPU, ARPPU (÷ payers), payer rate (payers ÷ active). Generated from the metric catalog (migration 016). The API `/v1/business/hourly` reads it.',
  },
  kpi_business_growth_1h: {
    by: 'view over kpi_business_1h',
    text: 'Hourly revenue and payer rate against the previous hour and the same hour averaged over the previous 7 days (growth ratios NULL without a base).',
  },
  qoe_minute_rollup: {
    by: "the qoe role's rollup job (sinks/clickhouse/rollups.ts, INSERT … SELECT from qoe_minute FINAL)",
    text: "Closed buckets of qoe_minute (every partition's watermark past the bucket end + grace) per `step` (60, 300, 3600 s) and cdn × device_category × country, combined across source partitions; written once per bucket. The API reads it for closed buckets of QoE series grouped or filtered by these dimensions (docs/api.md).",
    columns: {
      step: 'bucket size in seconds',
      bucket: 'bucket start',
      minutes: 'distinct minutes with rows (the denominator of mean concurrent viewers)',
      version: 'time of the build; a rebuild of the same bucket replaces it under FINAL',
    },
  },
  qoe_series_rollup: {
    by: "the qoe role's rollup job (sinks/clickhouse/rollups.ts, INSERT … SELECT from qoe_minute_rollup FINAL)",
    text: 'qoe_minute_rollup per single dimension (migration 022): per `step` (300, 3600 s) and bucket one row per value of cdn, device_category and country and one for all, with the same measures combined (sums, startup samples concatenated and sorted, distinct minutes), and the startup p50 / p95 of its own samples (migration 024). The API reads it for closed buckets of QoE series without filters grouped by none or one of these dimensions (docs/api.md); the overall safety score sums its hourly views_started (migration 023).',
    columns: {
      step: 'bucket size in seconds',
      dim: "'all', 'cdn', 'device_category' or 'country'",
      bucket: 'bucket start',
      value: "the dimension's value ('all' for dim 'all')",
      minutes: 'distinct minutes with rows (the denominator of mean concurrent viewers)',
      m_startup_p50_ms:
        "the catalog's startup_p50_ms over the row's samples (nearest rank; DEFAULT from p_startup_samples): read instead of the samples by a series at the rollup's own step",
      m_startup_p95_ms: "the catalog's startup_p95_ms over the row's samples, likewise",
      version: 'time of the build; a rebuild of the same bucket replaces it under FINAL',
    },
  },
  kpi_business_1h_closed: {
    by: "the business role's rollup job (sinks/clickhouse/rollups.ts, INSERT … SELECT from the view kpi_business_1h)",
    text: "The rows of kpi_business_1h for closed hours (every business partition's watermark past the hour end + grace), written once; `/v1/business/hourly` reads closed hours here and the open ones from the view.",
    columns: { version: 'time of the build; a rebuild of the same hour replaces it under FINAL' },
  },
  kpi_gifts_creator_1h: {
    by: "the business role's rollup job (sinks/clickhouse/rollups.ts, INSERT … SELECT from kpi_gifts_1m FINAL)",
    text: 'Gifts of closed hours summed per hour and creator (migration 021), written once per hour; `/v1/creators/top` picks the page of creators here for whole closed hours and from kpi_gifts_1m for the rest of the range.',
    columns: { version: 'time of the build; a rebuild of the same hour replaces it under FINAL' },
  },
  kpi_gifts_sender_1h: {
    by: "the business role's rollup job (sinks/clickhouse/rollups.ts, INSERT … SELECT from kpi_gifts_1m FINAL)",
    text: "Gifts of closed hours summed per creator, hour and sender (migration 021), sorted by creator so a creator's rows are read alone; `/v1/creators/*` read whole closed hours here and the rest of the range from kpi_gifts_1m.",
    columns: { version: 'time of the build; a rebuild of the same hour replaces it under FINAL' },
  },
  rollup_sealed_qoe: {
    by: "the qoe role's rollup job",
    text: 'How far each QoE rollup is sealed: name `qoe_<step>` for qoe_minute_rollup, `qoe_series_<step>` for qoe_series_rollup; buckets before sealed_until are in the rollup. Emptied by a replay with the qoe tables.',
  },
  rollup_sealed_business: {
    by: "the business role's rollup job",
    text: 'How far kpi_business_1h_closed (name `business_1h`) and the gift rollups kpi_gifts_creator_1h and kpi_gifts_sender_1h (name `gifts_1h`) are sealed. Emptied by a replay with the business tables.',
  },
  kpi_active_1d: {
    by: 'view over account_activity_1h',
    text: 'Daily active accounts (dau), payers (a succeeded charge) and net payers (net revenue > 0), distinct and exact. Generated from the metric catalog (migration 016).',
  },
  kpi_creator_gifts_1d: {
    by: 'view over kpi_gifts_1m',
    text: 'Per day and creator: gift value, coins, gifts, distinct gifters and the share of value from the top 20 % of gifters (concentration).',
  },
  qoe_views: {
    by: 'processors/qoe',
    text: 'One row per view (playback session) with its QoE: startup time, outcome (play, VSF, EBVS, business exception, playback failure), watch/playing/rebuffer time, bitrate and 0–100 scores. Open views are written with is_final = 0 at every flush and replaced by the final row; read with FINAL. Definitions: docs/qoe.md.',
    columns: {
      outcome: 'play | vsf (video start failure) | ebvs (exit before video start) | business_exception | playback_failure',
      dropped: 'view ended without an end event (timed out)',
      rebuffer_pct: 'rebuffer ÷ (playing + rebuffer) %',
      weighted_avg_bitrate_kbps: 'bitrate weighted by playing time',
    },
  },
  qoe_minute: {
    by: 'processors/qoe',
    text: `Real-time one-minute QoE from heartbeat deltas by cdn × device category × country × ASN × content: concurrent viewers, views started/ended, outcomes, playing/rebuffer/seek time, startup samples. ${PARTIAL} Concatenate startup_ms_samples (groupArrayArray) for percentiles.`,
    columns: {
      concurrent_viewers: 'views with a heartbeat in the minute',
      startup_ms_samples: 'startup times of views that started in the minute',
      bitrate_kbps_ms: 'Σ bitrate × playing ms (÷ playing_ms = average bitrate)',
      fatal_errors: 'fatal (non-business) playback errors',
    },
  },
  qoe_minute_all: {
    by: 'view over qoe_minute FINAL',
    text: 'Minute QoE with the partials combined and the ratios computed: startup p50/p95 (nearest rank), rebuffer % and rebuffers per minute of watch time (startup and the wait of views that never played included), average bitrate, VSF %, EBVS %, playback failure %. Generated from the metric catalog (migration 016).',
  },
  qoe_by_view_end_1h: {
    by: 'view over qoe_views FINAL + raw_catalog',
    text: 'QoE for reporting: final views bucketed by the hour they ended (Mux convention), with show name; ratios of sums, startup percentiles (nearest rank) over plays, average scores. Generated from the metric catalog (migration 016).',
  },
  safety_events_1m: {
    by: 'processors/safety',
    text: `Moderation events per minute by event type × policy × severity × detection source × action × outcome × target type. ${PARTIAL}`,
  },
  safety_cases: {
    by: 'processors/safety',
    text: 'One row per moderation case (all events of a case share a target, so one partition): first report/detection, action and time to action, proactive (detected before any user report), appeal and its outcome. Read with FINAL.',
    columns: { proactive: 'actioned before any user report', violation: 'action other than none', time_to_action_ms: 'action − first report or detection' },
  },
  safety_events_1h: { by: 'view over safety_events_1m FINAL', text: 'Hourly roll-up of safety_events_1m.' },
  safety_events_1d: { by: 'view over safety_events_1m FINAL', text: 'Daily roll-up of safety_events_1m.' },
  safety_reports_actions_1d: {
    by: 'view over safety_events_1m FINAL',
    text: 'Per day, policy, severity and action type: user reports, detections, actions and enforcement actions (action ≠ none).',
  },
  safety_kpi_1d: {
    by: 'view over safety_cases FINAL',
    text: 'Case KPIs per day of action: enforcement actions, median/p90 time to action (nearest rank), proactive rate, appeal rate, appeal overturn rate, median time to appeal decision (docs/safety.md).',
  },
  safety_kpi_total: { by: 'view over safety_cases FINAL', text: 'The safety_kpi_1d KPIs over every case in the table.' },
  safety_creator_score: {
    by: 'view over safety_cases FINAL + raw_playback',
    text: 'Safety score 0–100 per creator: 100·exp(−rate/10), rate = severity-weighted confirmed violations (not overturned on appeal) per 1000 live views (views floored at 1000).',
  },
  safety_score_overall: {
    by: 'view over safety_cases FINAL + qoe_series_rollup FINAL + qoe_minute FINAL',
    text: 'The safety score over all violations and all views that started playing (one row); views = Σ views_started, closed hours from qoe_series_rollup and the minutes after its sealed point from qoe_minute (migration 023, docs/safety.md).',
  },
  production_issues: {
    by: 'processors/production',
    text: 'One row per Jira issue with its latest state. The replacing version is state_version (updated ms; deletions DELETE_BASE + ms), so the latest update wins even out of order and a deletion wins over any update. Read with FINAL.',
    columns: {
      state_version: 'replacing version: updated ms (deletions: DELETE_BASE + ms)',
      resolve_ms: 'resolved − created',
      is_critical: 'severity critical (or priority highest)',
      cost_impact_usd: 'custom field: estimated cost',
      delay_days: 'custom field: schedule delay',
    },
  },
  production_issues_current: { by: 'view over production_issues FINAL', text: 'Current issues: production_issues without the deleted ones.' },
  production_deleted_issues: { by: 'view over production_issues FINAL', text: 'Issues deleted in Jira (their deletion is kept).' },
  production_open_by_severity_show: { by: 'view over production_issues_current', text: 'Open issues per show and severity (and how many are critical).' },
  production_open_critical: { by: 'view over production_issues_current', text: 'One row: open critical issues and open issues.' },
  production_show_impact: {
    by: 'view over production_issues_current',
    text: 'Per show: issues, open, open critical, cost impact and delay days (all and open), mean time to resolve.',
  },
  production_mttr: { by: 'view over production_issues_current', text: 'One row: resolved issues and mean time to resolve (resolved − created).' },
  production_show_overview: {
    by: 'view over production_show_impact, qoe_views, raw_catalog',
    text: "Per show: production issues (cost impact and delay days in total, open and resolved) beside engagement and QoE by view end from the final views with the metric catalog's formulas (views, playing hours, rebuffer % of watch time, playback failures and their %); content → show from raw_catalog. Generated from the metric catalog (migration 016).",
  },
  production_issue_history: {
    by: 'processors/production',
    text: "Every Jira event's issue state (stale ones too), one row per event: the state as of t is the row with the greatest (updated, first offset) among rows with updated < t; a deletion with deleted_time < t removes the issue. The alert metrics read it (as of t).",
  },
  kpi_payments_1m_history: {
    by: 'processors/business',
    text: 'kpi_payments_1m: Revisions of its re-fired rows (late firings, migration 018), one row per row key × known_at: the on-time content (known at the window end) and each late firing (known at the partition\'s stream time at the late event). Rows never re-fired have none. The alert metrics read, for evaluation time t, the latest revision known before t + settle_delay − 1 min (docs/alerting.md, "As of t"); the API and Grafana read the table itself.',
    columns: { known_at: 'when this content became known, from the log (window end, or stream time at the late event)' },
  },
  kpi_gifts_1m_history: {
    by: 'processors/business',
    text: 'kpi_gifts_1m: Revisions of its re-fired rows (late firings, migration 018), one row per row key × known_at: the on-time content (known at the window end) and each late firing (known at the partition\'s stream time at the late event). Rows never re-fired have none. The alert metrics read, for evaluation time t, the latest revision known before t + settle_delay − 1 min (docs/alerting.md, "As of t"); the API and Grafana read the table itself.',
    columns: { known_at: 'when this content became known, from the log (window end, or stream time at the late event)' },
  },
  account_activity_1h_history: {
    by: 'processors/business',
    text: 'account_activity_1h: Revisions of its re-fired rows (late firings, migration 018), one row per row key × known_at: the on-time content (known at the window end) and each late firing (known at the partition\'s stream time at the late event). Rows never re-fired have none. The alert metrics read, for evaluation time t, the latest revision known before t + settle_delay − 1 min (docs/alerting.md, "As of t"); the API and Grafana read the table itself.',
    columns: { known_at: 'when this content became known, from the log (hour end, or stream time at the late event)' },
  },
  safety_events_1m_history: {
    by: 'processors/safety',
    text: 'safety_events_1m: Revisions of its re-fired rows (late firings, migration 018), one row per row key × known_at: the on-time content (known at the window end) and each late firing (known at the partition\'s stream time at the late event). Rows never re-fired have none. The alert metrics read, for evaluation time t, the latest revision known before t + settle_delay − 1 min (docs/alerting.md, "As of t"); the API and Grafana read the table itself.',
    columns: { known_at: 'when this content became known, from the log (window end, or stream time at the late event)' },
  },
  churn_account_daily: {
    by: 'processors/churn',
    text: `Daily churn facts per UTC day × account × source partition: views, playing/rebuffer time, failures, startup samples, titles watched, revenue, gifts, payment failures, downgrades, the day's last view and the latest payment state. ${PARTIAL} Input of the day-close scoring.`,
  },
  churn_scores: {
    by: 'processors/churn/churn-scores.ts (day-close job, churn role)',
    text: "One row per scored day × account: the 7/28-day features as of the end of the day, the logistic churn risk in [0, 1], its level (low < 0.2 ≤ medium < 0.5 ≤ high), the top 3 reasons and every factor's log-odds contribution; plan, tenure band and top genre for cohorts. Rescoring a day replaces its rows (newest version). API: /v1/churn/accounts; alert metric churn_high_risk_entries. Model: docs/churn.md.",
    columns: {
      risk: 'churn probability in [0, 1]',
      level: 'low | medium | high',
      reasons: 'top factors by contribution (≤ 3)',
      contributions: 'factor → log-odds contribution',
      trend: '7-day playing ÷ (28-day playing / 4)',
      revenue_usd_28d: 'net revenue of the last 28 days (USD)',
      auto_renew_off: 'paid plan with auto-renew off',
      version: 'replacing version (scoring time ms)',
    },
  },
  churn_score_days: {
    by: 'processors/churn/churn-scores.ts',
    text: 'Days the scoring job has completed, with the number of accounts scored; the job resumes after the newest. Also the frontier of the churn alert metric.',
  },
  churn_cohorts: {
    by: 'view over churn_scores FINAL',
    text: 'Per day, plan × tenure band × top genre: accounts, high- and medium-risk accounts, average risk, 28-day revenue and revenue at risk = Σ risk × 28-day revenue. API: /v1/churn/cohorts.',
  },
  alert_events: {
    by: 'alerts/ (copied from Redis)',
    text: 'Every alert state transition (inactive → pending → firing → resolved) with value, baseline and volume; deterministic ids make a repeated copy harmless. Read with FINAL.',
    columns: { at: 'processing time of the transition', event_time: 'event time evaluated', alert_key: '<rule>/<sha256(labels)[:16]>' },
  },
  notification_log: {
    by: 'alerts/ (copied from Redis)',
    text: 'Every notification attempt (enqueued, delivered, failed, dropped) per receiver, with HTTP status and error. Read with FINAL.',
  },
  playback_views_by_creator: {
    by: 'materialized view playback_views_by_creator_mv (every insert into raw_playback); backfilled by 010',
    text: "Distinct playback views per creator as mergeable uniqExact states ('' = views without a creator, i.e. VOD). Read with uniqExactMerge(views) (GROUP BY creator_id); duplicates and replays never change a count. Feeds safety_creator_score without scanning raw_playback (safety_score_overall counts views that started playing since migration 023).",
    columns: { views: 'uniqExact state of view_id' },
  },
  playback_views_by_creator_mv: {
    by: 'ClickHouse, on each insert into raw_playback',
    text: 'Materialized view: aggregates each block inserted into raw_playback into playback_views_by_creator.',
  },
  schema_migrations: { by: 'sinks/clickhouse/migrate.ts', text: 'Applied migration versions.' },
};

/** Field docs of the Avro contracts (contracts/avro/<kind>.avsc) for the raw_<kind> columns. */
function avroDocs(): Map<string, Record<string, string>> {
  const dir = join(import.meta.dirname, '..', 'contracts', 'avro');
  const out = new Map<string, Record<string, string>>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.avsc'))) {
    const schema = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { doc?: string; fields?: Array<{ name: string; doc?: string; type: unknown }> };
    const docs: Record<string, string> = {};
    for (const fl of schema.fields ?? []) {
      const sym = (t: unknown): string[] =>
        Array.isArray(t) ? t.flatMap(sym) : t && typeof t === 'object' && 'symbols' in t ? (t as { symbols: string[] }).symbols : [];
      const symbols = sym(fl.type);
      const d = [fl.doc, symbols.length ? `one of ${symbols.join(', ')}` : ''].filter(Boolean).join('; ');
      if (d) docs[fl.name] = d;
    }
    out.set(`raw_${f.replace(/\.avsc$/, '')}`, docs);
  }
  return out;
}

function migrationOf(): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of readdirSync(MIGRATIONS_DIR)
    .filter((x) => x.endsWith('.sql'))
    .sort()) {
    for (const m of readFileSync(join(MIGRATIONS_DIR, f), 'utf8').matchAll(/CREATE\s+(?:MATERIALIZED\s+)?(?:TABLE|VIEW)\s+IF\s+NOT\s+EXISTS\s+\{db\}\.(\w+)/gi))
      out.set(m[1]!, f);
  }
  out.set('schema_migrations', 'sinks/clickhouse/migrate.ts');
  return out;
}

const esc = (s: string) => s.replaceAll('|', '\\|');

export function renderTablesDoc(catalog: CatalogTable[]): string {
  const file = migrationOf();
  const avro = avroDocs();
  const groups = new Map<string, CatalogTable[]>();
  for (const t of catalog) {
    const g = file.get(t.name) ?? 'other';
    groups.set(g, [...(groups.get(g) ?? []), t]);
  }
  const order = [...groups.keys()].sort((a, b) => (a.endsWith('.ts') ? 1 : b.endsWith('.ts') ? -1 : a.localeCompare(b)));
  const lines: string[] = [
    '# Tables and views',
    '',
    'Every table and view of the StreamPulse ClickHouse database, grouped by the migration that creates it',
    '(`sinks/clickhouse/migrations`). Engines, keys, columns and types are generated from a migrated database',
    '(`npx tsx scripts/tables-doc.ts` rewrites this file; `tests/api/tables-doc.test.ts` fails when a table or',
    'column is missing); the meanings are written by hand in that script.',
    '',
    '## Conventions',
    '- **Raw tables** (`raw_<kind>`, 001) hold every valid event of a topic as the Avro contract defines it, deduplicated',
    '  by `event_id` within the hour of `event_time`.',
    '- **Derived tables** are `ReplacingMergeTree(version)` keyed by (key, window, `src_topic`, `src_partition`): the runner',
    '  writes rows, then checkpoints, so a replay rewrites the same keys. **Read them with `FINAL`**; rows are partial',
    '  aggregates per source partition — sum over partitions. Money is Int64 USD micro-dollars (`*_usd_micros`) in tables,',
    '  Float64 USD in views. Times are UTC.',
    `- Common columns: ${Object.entries(COMMON)
      .map(([k, v]) => `\`${k}\` ${v}`)
      .join('; ')}.`,
    '- **Views** compute at query time (no storage) and have no key.',
    '- Raw column meanings come from the Avro field docs; `key` = part of the sorting key (ORDER BY).',
    '',
  ];
  for (const g of order) {
    lines.push(`## ${g}`, '');
    for (const t of groups.get(g)!) {
      const m = MEANINGS[t.name];
      const isView = t.engine === 'View';
      lines.push(`### ${t.name}`, '');
      lines.push(
        `${isView ? 'View' : `Table, ${t.engine}`}${t.sorting_key ? `, ORDER BY (${t.sorting_key})` : ''}${t.partition_key ? `, PARTITION BY ${t.partition_key}` : ''}. Written by: ${m?.by ?? '—'}.`,
        '',
      );
      lines.push(m?.text ?? '(meaning not written yet)', '');
      lines.push('| column | type | key | meaning |', '|---|---|---|---|');
      for (const c of t.columns) {
        const note = m?.columns?.[c.name] ?? avro.get(t.name)?.[c.name] ?? (isView ? '' : (COMMON[c.name] ?? ''));
        lines.push(`| ${c.name} | ${esc(c.type)} | ${c.in_sorting_key ? 'yes' : ''} | ${esc(note)} |`);
      }
      lines.push('');
    }
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = join(import.meta.dirname, '..', 'docs', 'tables.md');
  writeFileSync(out, renderTablesDoc(await schemaCatalog()));
  console.log(`wrote ${out}`);
}
