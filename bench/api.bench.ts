/**
 * API latency: p50/p95 of the main dashboard endpoints over one day of simulated data with
 * 10 million raw playback events (plus the derived rows that traffic gives), in embedded
 * ClickHouse (chdb) under .data/bench/api/.
 *
 *   npm run bench:api                      # reuses .data/bench/api if it holds the data set
 *   BENCH_API_REGEN=1 npm run bench:api    # rebuilds it
 *   BENCH_API_EVENTS=2000000 …             # smaller data set (default 10,000,000)
 *
 * Data: generated in bulk straight into ClickHouse (INSERT … SELECT FROM numbers() with skewed,
 * deterministic distributions): raw_playback (views of 40 events each: start, heartbeats every 10 s,
 * end), qoe_views (one row per view), qoe_minute (≈ one row per concurrent view and minute, the
 * processor's cdn × device × country × ASN × content key, over 3 source partitions),
 * kpi_payments_1m, kpi_gifts_1m, account_activity_1h, safety_events_1m, safety_cases,
 * production_issues. Measurement: the API plugin built in-process (Redis for keys and the rate
 * limit, as in production), requests through Fastify inject() — routing, auth, rate limit, the
 * ClickHouse query and serialisation, no socket. Sequential: 20 warm-up requests, then 200 timed.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { createMetrics } from '../lib/metrics.js';
import { command, openClickHouse, queryRows, type ClickHouse } from '../sinks/clickhouse/client.js';
import { migrate } from '../sinks/clickhouse/migrate.js';
import { sealBusiness, sealQoe } from '../sinks/clickhouse/rollups.js';
import { apiPlugin } from '../api/app.js';
import { RedisApiKeyStore } from '../api/api-keys.js';
import { RedisRateLimiter } from '../api/rate-limit.js';
import { REPO_ROOT } from '../stack/kafka.js';
import { machine, recordResults } from './common.js';

const EVENTS = Number(process.env.BENCH_API_EVENTS ?? 10_000_000);
export const DAY0 = Date.UTC(2026, 10, 20);
const NOW = DAY0 + 86_400_000; // the API's clock: the end of the simulated day
const WARMUP = Number(process.env.BENCH_API_WARMUP ?? 20);
const RUNS = Number(process.env.BENCH_API_RUNS ?? 200);
/** Fewer timed requests are recorded too (the text says how many): on a machine shared by many, 200 × 14 series can take hours. */
const MIN_RECORDED_RUNS = 30;
const KEY = 'bench-viewer-key-0123456789abcdef';
/** Also measure every endpoint reading the source tables only (rollups set aside), in the same run. */
const REFERENCE = process.env.BENCH_API_REFERENCE !== '0';
const FAMILIES = ['qoe', 'business'] as const;
/** BENCH_API_PROFILE=1: after the timed requests, one more call per endpoint listing its ClickHouse queries and their times. */
const PROFILE = process.env.BENCH_API_PROFILE === '1';
/** How much of each query's text the profile prints (BENCH_API_PROFILE_CHARS, default 110). */
const PROFILE_CHARS = Number(process.env.BENCH_API_PROFILE_CHARS ?? 110);

// One data set per size, so the 10 M and 100 M runs do not regenerate each other's.
/**
 * BENCH_API_RAW=0: every table the endpoints read, for EVENTS raw events, but not raw_playback itself
 * (the 100 M run: 100 M raw rows take hours to generate on a shared 2-core machine); labelled so in the results.
 */
const RAW = process.env.BENCH_API_RAW !== '0';
const dir = join(REPO_ROOT, '.data', 'bench', EVENTS === 10_000_000 && RAW ? 'api' : `api-${EVENTS}${RAW ? '' : '-noraw'}`);
const t0 = `toDateTime64('${new Date(DAY0).toISOString().slice(0, 19).replace('T', ' ')}', 3, 'UTC')`;
const pick = (arr: string[], h: string) => `[${arr.map((x) => `'${x}'`).join(', ')}][1 + (${h}) % ${arr.length}]`;
/** Skewed pick: the first entries are the most common (h → index by a square law). */
const skew = (arr: string[], h: string) => `[${arr.map((x) => `'${x}'`).join(', ')}][1 + toUInt32(pow(((${h}) % 1000) / 1000, 2) * ${arr.length})]`;
const CDNS = ['akamai', 'fastly', 'cloudfront', 'edgio'];
const DEVICES = ['mobile', 'tv', 'desktop', 'tablet'];
const COUNTRIES = ['US', 'GB', 'DE', 'BR', 'IN', 'FR', 'JP', 'MX', 'CA', 'AU'];
const METHODS = ['card', 'paypal', 'apple_pay', 'google_pay'];
const PLANS = ['basic', 'standard', 'premium'];

async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const s = performance.now();
  const r = await fn();
  console.log(`  ${label}: ${((performance.now() - s) / 1000).toFixed(1)} s`);
  return r;
}

/** The data set's tables for EVENTS raw events (bench/explain.bench.ts reuses it). */
export async function generate(ch: ClickHouse): Promise<void> {
  const db = ch.database;
  const views = Math.floor(EVENTS / 40);
  const viewStart = (v: string) => `${t0} + toIntervalMillisecond(toUInt64(${v}) * ${Math.floor(86_000_000 / views)})`;
  console.log(`generating ${EVENTS.toLocaleString()} raw playback events (${views.toLocaleString()} views) and derived rows`);
  // View attributes from a hash of the view number v.
  const attrs = (v: string) => `
    ${skew(CDNS, `cityHash64(${v}, 1)`)} AS cdn, ${skew(DEVICES, `cityHash64(${v}, 2)`)} AS device_category, ${skew(COUNTRIES, `cityHash64(${v}, 3)`)} AS country,
    toUInt32(7000 + cityHash64(${v}, 4) % 40) AS asn, concat('content-', toString(toUInt32(pow((cityHash64(${v}, 5) % 1000) / 1000, 3) * 2000))) AS content_id,
    cityHash64(${v}, 6) % 5 = 0 AS is_live, concat('creator-', toString(toUInt32(pow((cityHash64(${v}, 7) % 1000) / 1000, 2) * 300))) AS creator,
    concat('acct-', toString(cityHash64(${v}, 8) % 200000)) AS account_id, cityHash64(${v}, 9) % 100 AS fate`;
  if (!RAW) {
    // No raw_playback: the benched endpoints read it only through playback_views_by_creator (the
    // safety scores), which its materialized view would fill with these states.
    await timed('playback_views_by_creator (no raw_playback: BENCH_API_RAW=0)', () =>
      command(
        ch,
        `
      INSERT INTO ${db}.playback_views_by_creator SELECT if(is_live, creator, '') AS creator_id, uniqExactState(concat('view-', toString(v))) AS views
      FROM (SELECT number AS v, ${attrs('number')} FROM numbers(${views})) GROUP BY creator_id`,
      ),
    );
  } else
    await timed('raw_playback', () =>
      command(
        ch,
        `
    INSERT INTO ${db}.raw_playback (event_id, event_time, received_time, view_id, seq, event_type, player_state, playhead_ms, viewer_id, account_id, content_id, stream_type,
      creator_id, device_category, os, app_version, cdn, country, asn, bitrate_kbps, width, height, error_code, error_severity, error_business, end_reason,
      cum_playing_ms, cum_rebuffer_ms, cum_rebuffer_count, cum_seek_ms, cum_bitrate_ms, src_topic, src_partition, src_offset, version, ingested_at)
    SELECT concat('e-', toString(number)), ${viewStart('v')} + toIntervalMillisecond(seq * 10000) AS et, et + toIntervalMillisecond(150), concat('view-', toString(v)), toInt32(seq),
      multiIf(seq = 0, 'view_start', seq = 39, 'view_end', fate < 3 AND seq = 20, 'error', 'heartbeat'), if(seq = 39, 'ended', 'playing'), toInt64(seq * 10000),
      concat('viewer-', toString(cityHash64(v, 8) % 200000)), account_id, content_id, if(is_live, 'live', 'vod'), if(is_live, creator, NULL), device_category,
      ${pick(['ios', 'android', 'tvos', 'web'], 'cityHash64(v, 10)')}, '5.2.0', cdn, country, toInt32(asn), toInt32(2000 + cityHash64(v, 11) % 6000), 1920, 1080,
      if(fate < 3 AND seq = 20, 'PLAYER_FATAL', NULL), if(fate < 3 AND seq = 20, 'fatal', NULL), if(fate < 3 AND seq = 20, false, NULL), if(seq = 39, 'completed', NULL),
      toInt64(seq * 9700), toInt64(seq * 200), toInt32(intDiv(seq, 10)), toInt64(seq * 100), toInt64(seq * 9700 * 3000), 'playback', toUInt16(v % 3), number, number, et
    FROM (SELECT number, intDiv(number, 40) AS v, number % 40 AS seq, ${attrs('v')} FROM numbers(${views * 40}))`,
      ),
    );
  await timed('qoe_views', () =>
    command(
      ch,
      `
    INSERT INTO ${db}.qoe_views (view_id, viewer_id, account_id, content_id, stream_type, creator_id, device_category, os, app_version, cdn, country, asn, view_start, view_end,
      ended, dropped, end_reason, error_code, outcome, startup_ms, watch_ms, playing_ms, seek_ms, rebuffer_ms, rebuffer_count, rebuffer_pct, rebuffer_per_min,
      weighted_avg_bitrate_kbps, startup_score, smoothness_score, playback_success_score, is_final, src_topic, src_partition, version)
    SELECT concat('view-', toString(v)), concat('viewer-', toString(cityHash64(v, 8) % 200000)), account_id, content_id, if(is_live, 'live', 'vod'), if(is_live, creator, ''),
      device_category, 'ios', '5.2.0', cdn, country, asn, ${viewStart('v')}, ${viewStart('v')} + toIntervalMillisecond(390000), 1, 0, 'completed', if(fate < 3, 'PLAYER_FATAL', ''),
      multiIf(fate < 2, 'vsf', fate < 4, 'ebvs', fate < 6, 'playback_failure', 'play'), if(fate < 4, NULL, toUInt64(400 + cityHash64(v, 12) % 3000)),
      390000, 378300, 3900, 7800, 3, 2.0, 1.2, 3000 + cityHash64(v, 11) % 3000, 90, 95, 100, 1, 'playback', toUInt16(v % 3), 1
    FROM (SELECT number AS v, ${attrs('number')} FROM numbers(${views}))`,
    ),
  );
  // About one row per concurrent view and minute, like the processor's per-key partials.
  const perMinute = Math.max(100, Math.round((views * 6.5) / 1440));
  await timed(`qoe_minute (${(perMinute * 1440).toLocaleString()} rows)`, () =>
    command(
      ch,
      `
    INSERT INTO ${db}.qoe_minute (window_start, cdn, device_category, country, asn, content_id, concurrent_viewers, views_started, startup_ms_samples, playing_ms, rebuffer_ms,
      rebuffer_count, seek_ms, bitrate_kbps_ms, views_ended, plays, vsf_views, ebvs_views, business_exception_views, playback_failure_views, fatal_errors, is_final, src_topic, src_partition, version)
    SELECT toDateTime(${t0}) + toIntervalMinute(intDiv(number, ${perMinute})) AS ws, cdn, device_category, country, asn, content_id, 1, toUInt64(fate % 7 = 0),
      if(fate % 7 = 0, [toUInt64(400 + cityHash64(number, 12) % 3000)], []), 58000, if(cdn = 'edgio', 1500, 300), toUInt64(fate % 13 = 0), 500, 58000 * (3000 + cityHash64(number, 11) % 3000),
      toUInt64(fate % 7 = 1), toUInt64(fate % 7 = 1 AND fate > 5), toUInt64(fate = 1), toUInt64(fate = 8), 0, toUInt64(fate = 50), toUInt64(fate = 99), 1, 'playback', toUInt16(number % 3), 1
    FROM (SELECT number, ${attrs('number')} FROM numbers(${perMinute * 1440}))`,
    ),
  );
  await timed('kpi_payments_1m', () =>
    command(
      ch,
      `
    INSERT INTO ${db}.kpi_payments_1m (window_start, method, plan, og_tier, country, attempts, succeeded, failed, gross_usd_micros, refunds_usd_micros, chargebacks_usd_micros, net_usd_micros, topups, topup_usd_micros, is_final, src_topic, src_partition, version)
    SELECT toDateTime(${t0}) + toIntervalMinute(intDiv(number, 120)) AS ws, ${pick(METHODS, 'number')}, ${pick(PLANS, 'intDiv(number, 4)')}, toUInt8(intDiv(number, 12) % 2),
      ${pick(COUNTRIES, 'intDiv(number, 24)')}, 3 + number % 5 AS a, a - toUInt64(number % 11 = 0), toUInt64(number % 11 = 0), a * 9990000, if(number % 97 = 0, 9990000, 0), 0,
      a * 9990000 - if(number % 97 = 0, 9990000, 0), number % 3, (number % 3) * 4990000, 1, 'payments', toUInt16(number % 3), 1
    FROM numbers(${1440 * 120})`,
    ),
  );
  await timed('kpi_gifts_1m', () =>
    command(
      ch,
      `
    INSERT INTO ${db}.kpi_gifts_1m (window_start, creator_id, sender_account_id, gifts, quantity, coins, value_usd_micros, is_final, src_topic, src_partition, version)
    SELECT toDateTime(${t0}) + toIntervalMinute(intDiv(number, 200)), concat('creator-', toString(toUInt32(pow((cityHash64(number, 7) % 1000) / 1000, 2) * 300))),
      concat('acct-', toString(toUInt32(pow((cityHash64(number, 13) % 1000) / 1000, 3) * 50000))), 1, 1 + number % 3, (1 + number % 3) * 10, (1 + number % 3) * 100000, 1, 'gifts', toUInt16(number % 3), 1
    FROM numbers(${1440 * 200})`,
    ),
  );
  await timed('account_activity_1h', () =>
    command(
      ch,
      `
    INSERT INTO ${db}.account_activity_1h (hour, account_id, played, paid, gifted, net_usd_micros, gift_usd_micros, is_final, src_topic, src_partition, version)
    SELECT toDateTime(${t0}) + toIntervalHour(intDiv(number, 25000)), concat('acct-', toString(cityHash64(number) % 200000)), 1, toUInt8(number % 20 = 0), toUInt8(number % 50 = 0),
      if(number % 20 = 0, 9990000, 0), if(number % 50 = 0, 300000, 0), 1, 'payments', toUInt16(number % 3), 1
    FROM numbers(${24 * 25000})`,
    ),
  );
  await timed('safety_events_1m, safety_cases, production_issues', async () => {
    await command(
      ch,
      `
      INSERT INTO ${db}.safety_events_1m (window_start, event_type, policy, severity, detection_source, action_type, outcome, target_type, events, is_final, src_topic, src_partition, version)
      SELECT toDateTime(${t0}) + toIntervalMinute(intDiv(number, 20)), ${pick(['report_created', 'report_created', 'action_taken', 'appeal_created', 'appeal_decided'], 'number')},
        ${pick(['spam', 'harassment', 'violence', 'nudity', 'hate'], 'intDiv(number, 5)')}, ${pick(['low', 'medium', 'high', 'critical'], 'cityHash64(number)')},
        ${pick(['user_report', 'classifier'], 'intDiv(number, 3)')}, ${pick(['none', 'remove', 'warn', 'suspend'], 'intDiv(number, 7)')}, '', 'stream', 1 + number % 4, 1, 'moderation', toUInt16(number % 3), 1
      FROM numbers(${1440 * 20})`,
    );
    await command(
      ch,
      `
      INSERT INTO ${db}.safety_cases (case_id, target_type, target_id, creator_id, policy, severity, user_reports, first_report_time, first_detection_time, action_time, action_type,
        time_to_action_ms, proactive, violation, appealed, appeal_time, appeal_outcome, appeal_decision_time, time_to_appeal_decision_ms, closed, last_event_time, src_topic, src_partition, version)
      SELECT concat('case-', toString(number)), 'stream', concat('stream-', toString(number)), concat('creator-', toString(number % 300)), ${pick(['spam', 'harassment', 'violence', 'nudity', 'hate'], 'number')},
        ${pick(['low', 'medium', 'high', 'critical'], 'cityHash64(number)')}, 1 + number % 3, ${t0} + toIntervalSecond(number * 4) AS fr, NULL, fr + toIntervalSecond(60 + number % 3600),
        ${pick(['none', 'remove', 'warn', 'suspend'], 'intDiv(number, 7)')} AS act, (60 + number % 3600) * 1000, toUInt8(number % 4 = 0), toUInt8(act != 'none'), toUInt8(number % 10 = 0),
        NULL, if(number % 10 = 0, ${pick(['upheld', 'reversed'], 'number')}, ''), NULL, if(number % 10 = 0, 3600000, NULL), 1, fr + toIntervalSecond(7200), 'moderation', toUInt16(number % 3), 1
      FROM numbers(20000)`,
    );
    await command(
      ch,
      `
      INSERT INTO ${db}.production_issues (issue_key, project_key, summary, issue_type, status, status_category, priority, severity, show_name, cost_impact_usd, delay_days, labels,
        created, updated, resolved, resolve_ms, is_open, is_critical, deleted, deleted_time, last_event_id, state_version, src_topic, src_partition, version)
      SELECT concat('PRD-', toString(number)), 'PRD', 'issue', 'Bug', if(number % 3 = 0, 'Done', 'Open'), if(number % 3 = 0, 'done', 'new'), 'High',
        ${pick(['minor', 'major', 'critical'], 'number')}, concat('Show ', toString(number % 40)), number % 50000, number % 9, [], ${t0} - toIntervalHour(number % 500) AS c, c + toIntervalHour(1),
        if(number % 3 = 0, c + toIntervalHour(5), NULL), if(number % 3 = 0, 18000000, NULL), toUInt8(number % 3 != 0), toUInt8(number % 3 = 2), 0, NULL, concat('ev-', toString(number)), 1, 'jira', 0, 1
      FROM numbers(2000)`,
    );
  });
  await command(ch, `CREATE TABLE IF NOT EXISTS ${db}.bench_marker (events UInt64) ENGINE = MergeTree ORDER BY tuple()`);
  await command(ch, `INSERT INTO ${db}.bench_marker VALUES (${EVENTS})`);
}

interface Endpoint {
  name: string;
  url: string;
}
const iso = (ms: number) => new Date(ms).toISOString();
const ENDPOINTS: Endpoint[] = [
  { name: 'live dashboard snapshot (`/v1/live/snapshot?minutes=60`, = each SSE push of `/v1/live/stream`)', url: '/v1/live/snapshot?minutes=60' },
  { name: 'QoE timeseries, group_by=cdn, last hour, step 60 s', url: '/v1/qoe/timeseries?group_by=cdn' },
  { name: 'QoE timeseries, group_by=cdn, 24 h, step 300 s', url: `/v1/qoe/timeseries?group_by=cdn&step=300&from=${iso(NOW - 86_400_000)}&to=${iso(NOW)}` },
  { name: 'business hourly (24 h)', url: '/v1/business/hourly' },
  { name: 'creators top (24 h, limit 20)', url: '/v1/creators/top?limit=20' },
  { name: 'safety summary (24 h)', url: '/v1/safety/summary' },
  { name: 'production summary', url: '/v1/production/summary' },
];

const NOTE =
  'Before migration 010 the safety summary took p50 221 ms / p95 231 ms on the same data: `safety_score_overall` counted ' +
  'uniqExact(view_id) over `raw_playback FINAL` (all 10 M events) on every call. 010 keeps distinct views per creator as uniqExact states ' +
  '(`playback_views_by_creator`, fed by a materialized view on raw_playback, backfilled) and both safety score views merge those instead — same numbers. ' +
  'Before migration 017 the 24 h QoE series read ~1.6 M qoe_minute rows with FINAL on every call (p95 143 ms at 10 M events) and business hourly ' +
  're-aggregated every account-hour (110 ms). 017 seals closed buckets into rollups (qoe_minute_rollup at 1 min, 5 min and 1 h by cdn, device and ' +
  'country; kpi_business_1h_closed; docs/api.md): the reference column is the same endpoint in the same run with the rollups set aside, and ' +
  '"same answer" compares the two response bodies byte for byte. 021 adds the gifts of closed hours per creator and per creator and sender ' +
  '(creators top), 022 qoe_minute_rollup per single dimension (QoE series without filters: one row per point instead of one per ' +
  'cdn × device × country). 023: the overall safety score counts views that started playing (Σ views_started: closed hours from ' +
  'qoe_series_rollup, the rest from qoe_minute) instead of merging every distinct view id (docs/safety.md). 024: each ' +
  'qoe_series_rollup row stores its startup p50 / p95, which a series at the rollup step (the 24 h series at 5 min) reads instead ' +
  "of sorting its samples. 025: the gift rollups' creator_id as LowCardinality (the creators top page filter). Since 2026-12-08 the " +
  'business hourly route leaves out the kpi_business_1h view when the range is wholly sealed, and answers travel as JSONCompact (docs/api.md).';

const pct = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;

async function main(): Promise<void> {
  const regen = process.env.BENCH_API_REGEN === '1';
  if (regen) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn', CHDB_PATH: join(dir, 'chdb'), REDIS_PREFIX: `bench:api:${Date.now().toString(36)}:` });
  const ch = await openClickHouse({ ...config.clickhouse, url: null });
  await migrate(ch);
  const have = existsSync(join(dir, 'chdb')) ? await queryRows<{ events: string }>(ch, `SELECT events FROM ${ch.database}.bench_marker`).catch(() => []) : [];
  if (have.length === 0 || Number(have[0]!.events) !== EVENTS) {
    if (have.length) {
      await ch.close();
      rmSync(dir, { recursive: true, force: true });
      return main();
    }
    await generate(ch);
  } else console.log(`reusing the data set in ${dir} (BENCH_API_REGEN=1 rebuilds it)`);
  // The day is over and its data final: the pipeline's rollup job would have sealed every bucket
  // of it (sinks/clickhouse/rollups.ts); a data set that is already sealed is left as it is.
  const sealMs = await timed('rollups (sealing the day: qoe_minute_rollup, qoe_series_rollup, kpi_business_1h_closed, gift rollups)', async () => {
    const s = performance.now();
    await sealQoe(ch, NOW);
    await sealBusiness(ch, NOW);
    return performance.now() - s;
  });
  const counts = await queryRows<{ t: string; n: string }>(
    ch,
    `SELECT table AS t, sum(rows) AS n FROM system.parts WHERE database = {db:String} AND active GROUP BY t ORDER BY t`,
    { db: ch.database },
  );
  const rowsOf = Object.fromEntries(counts.map((r) => [r.t, Number(r.n)]));
  console.log(rowsOf);

  const redis = new Redis(config.env.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  const app = Fastify({ logger: false });
  const keys = new RedisApiKeyStore(redis, config.env.REDIS_PREFIX);
  await keys.seed(`${KEY}:viewer`);
  await app.register(apiPlugin, {
    logger: createLogger('warn'),
    metrics: createMetrics(),
    redis,
    ch,
    keys,
    limiter: new RedisRateLimiter(redis, config.env.REDIS_PREFIX, 60_000),
    rateLimits: { viewer: 1_000_000 },
    alerts: null,
    now: () => NOW,
    docs: false,
  });
  await app.ready();

  const bodies = new Map<string, string>();
  const loadStart = loadavg()[0]!;
  const measure = async (e: Endpoint) => {
    const call = async () => {
      const s = performance.now();
      const r = await app.inject({ method: 'GET', url: e.url, headers: { 'x-api-key': KEY } });
      const ms = performance.now() - s;
      if (r.statusCode !== 200) throw new Error(`${e.url}: ${r.statusCode} ${r.body.slice(0, 300)}`);
      return { ms, body: r.body };
    };
    for (let i = 0; i < WARMUP; i++) await call();
    const times: number[] = [];
    let body = '';
    for (let i = 0; i < RUNS; i++) {
      const r = await call();
      times.push(r.ms);
      body = r.body;
    }
    times.sort((a, b) => a - b);
    return { p50: pct(times, 0.5), p95: pct(times, 0.95), max: times[times.length - 1]!, body };
  };
  const results: Array<{ e: Endpoint; p50: number; p95: number; max: number; bytes: number; ref?: { p50: number; p95: number }; same?: boolean }> = [];
  for (const e of ENDPOINTS) {
    const r = await measure(e);
    results.push({ e, p50: r.p50, p95: r.p95, max: r.max, bytes: r.body.length });
    bodies.set(e.url, r.body);
    console.log(`${e.url}: p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, max ${r.max.toFixed(1)} ms, ${r.body.length} bytes`);
  }
  if (PROFILE) {
    // Each query's time from the call to its parsed rows (embedded ClickHouse runs one query at a
    // time, so queries an endpoint sends together queue behind each other: their times overlap).
    const query = ch.client.query.bind(ch.client);
    let log: Array<{ sql: string; ms: number }> = [];
    ch.client.query = async (p: Parameters<typeof query>[0]) => {
      const s = performance.now();
      const rs = await query(p);
      const json = rs.json.bind(rs);
      return Object.assign(rs, {
        json: async () => {
          const rows = await json();
          log.push({ sql: p.query.replace(/\s+/g, ' ').trim().slice(0, PROFILE_CHARS), ms: performance.now() - s });
          return rows;
        },
      });
    };
    for (const e of ENDPOINTS) {
      for (let i = 0; i < 3; i++) {
        log = [];
        const s = performance.now();
        await app.inject({ method: 'GET', url: e.url, headers: { 'x-api-key': KEY } });
        const total = performance.now() - s;
        if (i < 2) continue;
        console.log(`profile ${e.url}: ${total.toFixed(1)} ms in all`);
        for (const q of log) console.log(`  ${q.ms.toFixed(1).padStart(6)} ms  ${q.sql}`);
      }
    }
    ch.client.query = query;
  }
  if (REFERENCE) {
    // Same run, same data, the API reading the source tables only: the rollups' sealed marks are
    // set aside (nothing counts as closed) and put back afterwards. Answers must be identical.
    const db = ch.database;
    const marks = await Promise.all(FAMILIES.map((f) => queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${db}.rollup_sealed_${f}`)));
    for (const f of FAMILIES) await command(ch, `TRUNCATE TABLE ${db}.rollup_sealed_${f}`);
    try {
      for (const res of results) {
        const r = await measure(res.e);
        res.ref = { p50: r.p50, p95: r.p95 };
        res.same = r.body === bodies.get(res.e.url);
        console.log(`  reference (sources only) ${res.e.url}: p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, same answer: ${res.same}`);
      }
    } finally {
      for (const [i, f] of FAMILIES.entries())
        if (marks[i]!.length) await ch.client.insert({ table: `${db}.rollup_sealed_${f}`, values: marks[i]!, format: 'JSONEachRow' });
    }
  }
  await app.close();
  redis.disconnect();
  await ch.close();

  const fmt = (n: number) => n.toLocaleString('en-US');
  const body = [
    `Machine: ${machine()}; load average (1 min) ${loadStart.toFixed(1)} at the start of the requests and ${loadavg()[0]!.toFixed(1)} at the end (other jobs on the machine). Embedded ClickHouse (chdb) in the API process; Redis for API keys and the rate limit.`,
    '',
    `Data: one simulated day (${iso(DAY0).slice(0, 10)}), generated in bulk into ClickHouse by \`bench/api.bench.ts\`: ${RAW ? `${fmt(rowsOf.raw_playback ?? 0)} raw_playback events` : `the derived rows of ${fmt(EVENTS)} raw playback events (raw_playback itself not generated, BENCH_API_RAW=0: no benched endpoint reads it except through playback_views_by_creator, filled with the same states)`} ` +
      `(${fmt(rowsOf.qoe_views ?? 0)} views), ${fmt(rowsOf.qoe_minute ?? 0)} qoe_minute rows, ${fmt(rowsOf.kpi_payments_1m ?? 0)} kpi_payments_1m, ${fmt(rowsOf.kpi_gifts_1m ?? 0)} kpi_gifts_1m, ` +
      `${fmt(rowsOf.account_activity_1h ?? 0)} account_activity_1h, ${fmt(rowsOf.safety_events_1m ?? 0)} safety_events_1m, ${fmt(rowsOf.safety_cases ?? 0)} safety_cases, ${fmt(rowsOf.production_issues ?? 0)} production_issues.`,
    '',
    `Rollups (migration 017, docs/api.md): sealing the whole day took ${(sealMs / 1000).toFixed(1)} s ` +
      `(${fmt(rowsOf.qoe_minute_rollup ?? 0)} qoe_minute_rollup rows at 1 min, 5 min and 1 h and ${fmt(rowsOf.qoe_series_rollup ?? 0)} qoe_series_rollup rows at 5 min and 1 h; ${fmt(rowsOf.kpi_business_1h_closed ?? 0)} kpi_business_1h_closed rows; ` +
      `${fmt(rowsOf.kpi_gifts_creator_1h ?? 0)} kpi_gifts_creator_1h and ${fmt(rowsOf.kpi_gifts_sender_1h ?? 0)} kpi_gifts_sender_1h rows; 0 s when the data set was already sealed).`,
    '',
    `Method: the API plugin in-process, requests via Fastify \`inject()\` (routing, auth, Redis rate limit, query, serialisation; no socket), sequential, ${WARMUP} warm-up then ${RUNS} timed requests per endpoint; API clock = end of the day.`,
    '',
    '| endpoint | p50 ms | p95 ms | max ms | response bytes | reference, same run: source tables only (rollups set aside), p50 / p95 ms | same answer |',
    '|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.e.name} | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} | ${r.max.toFixed(1)} | ${fmt(r.bytes)} | ${r.ref ? `${r.ref.p50.toFixed(1)} / ${r.ref.p95.toFixed(1)}` : '–'} | ${r.same === undefined ? '–' : r.same ? 'yes' : '**no**'} |`,
    ),
    '',
    NOTE,
  ].join('\n');
  if (EVENTS === 10_000_000 && RAW && RUNS >= MIN_RECORDED_RUNS) recordResults('API latency (npm run bench:api)', body);
  else if (EVENTS === 100_000_000 && RUNS >= MIN_RECORDED_RUNS)
    recordResults('API latency at 100 M events (BENCH_API_EVENTS=100000000 npm run bench:api)', body);
  else console.log(`${body}\n(not recorded: not the 10 M or 100 M data set, or BENCH_API_RUNS < ${MIN_RECORDED_RUNS})`);
}

// Run when started as a script (bench/explain.bench.ts imports `generate`).
if (process.argv[1] && import.meta.filename === resolve(process.argv[1])) await main();
