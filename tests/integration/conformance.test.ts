/**
 * Conformance (issue 18): on simulator traffic with incidents (3 h, seed 9, 20 events/s; a CDN
 * degradation, a payment outage, an abuse spike and a late delivery of beacons inside the checked hour), through the real
 * processors into embedded ClickHouse, for EVERY metric of the catalog
 * (contracts/metrics-catalog.ts) and each grain it is defined on, the API's answer, each Grafana
 * panel query that shows it (macros expanded as the plugin does) and the alert metric that reads
 * it give the same number for the same slice and period — and that number equals the metric
 * recomputed here in TypeScript from the source rows, from the definition in words (a reference
 * that shares no SQL with the catalog).
 *
 * Period: the hour [P0, P1). Grafana's $__timeFilter is inclusive at both ends with whole
 * seconds, so minute tables are queried up to P1 − 1 s (the minute starting at P1 excluded) and
 * millisecond columns (view_end, action_time) up to P1.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Evaluator } from '../../alerts/evaluator.js';
import { parseRules } from '../../alerts/rules.js';
import { AlertStore } from '../../alerts/store.js';
import { apiPlugin } from '../../api/app.js';
import { RedisApiKeyStore } from '../../api/api-keys.js';
import { RedisRateLimiter } from '../../api/rate-limit.js';
import { CATALOG, nearestRank, type Grain } from '../../contracts/metrics-catalog.js';
import { DASHBOARDS } from '../../grafana/src/dashboards.js';
import { createLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { silentLogger } from '../../lib/logger.js';
import type { IncidentSpec } from '../../producers/simulator/index.js';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { sealBusiness, sealQoe } from '../../sinks/clickhouse/rollups.js';
import { SimPipeline } from '../alerts/support/sim-pipeline.js';
import { expandMacros } from '../grafana/macros.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const D0 = Date.UTC(2025, 6, 1, 6);
const P0 = D0 + HOUR;
const P1 = D0 + 2 * HOUR;
const specs: IncidentSpec[] = [
  { name: 'cdn-degradation', startMs: P0 + 10 * MIN, durationMs: 20 * MIN, target: 'akamai' },
  { name: 'payment-outage', startMs: P0 + 25 * MIN, durationMs: 20 * MIN },
  { name: 'abuse-spike', startMs: P0 + 5 * MIN, durationMs: 30 * MIN },
  // Beacons queued on devices and delivered 1-15 min late: late for the minute windows.
  { name: 'late-delivery', startMs: P0 + 40 * MIN, durationMs: 10 * MIN },
];

// Grafana's datasource sets defaultDatabase: unqualified table names, so the tables live in `default`.
const t = testEnv('conformance', { CLICKHOUSE_DATABASE: 'default' });
const KEY = 'viewer-key-0123456789abcdef';
let ch: ClickHouse;
let redis: Redis;
let app: FastifyInstance;
let ev: Evaluator;
let ruleSet: ReturnType<typeof parseRules>;

const iso = (ms: number) => new Date(ms).toISOString();
async function api(path: string): Promise<Record<string, unknown>> {
  const r = await app.inject({ method: 'GET', url: path, headers: { 'x-api-key': KEY } });
  expect(r.statusCode, `${path}: ${r.body}`).toBe(200);
  return r.json<Record<string, unknown>>();
}
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/** A Grafana panel by title, its SQL run for [fromMs, toMs] with one bucket of `intervalS`. */
async function panel(title: string, toMs: number, intervalS = 3600): Promise<Record<string, unknown>[]> {
  const p = DASHBOARDS.flatMap((d) => d.panels).find((x) => x.title === title);
  if (!p) throw new Error(`no panel ${title}`);
  return queryRows<Record<string, unknown>>(ch, expandMacros(p.sql, P0, toMs, intervalS));
}

/** The alert metric's value for the hour ending at P1 (window 1 h), per group key. */
async function alertValue(metric: string, groupBy: string[] = []): Promise<Map<string, number | null>> {
  const rule = {
    ...ruleSet.rules[0]!,
    name: `conf_${metric}`,
    metric,
    groupBy,
    windowMs: HOUR,
    condition: { kind: 'threshold' as const, op: '>' as const, threshold: 0 },
  };
  const obs = await ev.observe(rule, P1);
  return new Map([...obs.values()].map((o) => [groupBy.map((g) => o.labels[g]).join('|'), o.value]));
}

const checked = new Map<string, number>();
function same(metric: string, grain: Grain, slice: string, values: Record<string, number | null>): void {
  const entries = Object.entries(values);
  const [refName, ref] = entries[0]!;
  for (const [name, v] of entries.slice(1)) {
    const what = `${metric} (${grain}, ${slice}): ${name} = ${v} vs ${refName} = ${ref}`;
    if (ref === null) expect(v, what).toBeNull();
    else {
      expect(v, what).not.toBeNull();
      expect(Math.abs(v! - ref), what).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(ref)));
    }
  }
  const k = `${metric}@${grain}`;
  checked.set(k, (checked.get(k) ?? 0) + entries.length);
}

// ---- the reference: the definitions in words, computed in TypeScript from the source rows ----
const ratio = (a: number, b: number, s = 1) => (b === 0 ? null : (s * a) / b);
interface QoeSums {
  watch: number;
  playing: number;
  rebuffer: number;
  count: number;
  bitrate: number;
  ended: number;
  vsf: number;
  ebvs: number;
  failed: number;
  fatal: number;
  samples: number[];
}
function qoeReference(s: QoeSums): Record<string, number | null> {
  return {
    rebuffer_pct: ratio(s.rebuffer, s.watch, 100),
    rebuffer_per_min: ratio(s.count, s.watch / 60_000),
    watch_hours: s.watch / 3_600_000,
    playing_hours: s.playing / 3_600_000,
    vsf_pct: ratio(s.vsf, s.ended, 100),
    ebvs_pct: ratio(s.ebvs, s.ended, 100),
    playback_failure_pct: ratio(s.failed, s.ended, 100),
    fatal_errors: s.fatal,
    startup_p50_ms: nearestRank(s.samples, 0.5),
    startup_p95_ms: nearestRank(s.samples, 0.95),
    avg_bitrate_kbps: ratio(s.bitrate, s.playing),
  };
}
async function minuteSums(where = '1'): Promise<QoeSums> {
  const rows = await queryRows<Record<string, unknown>>(
    ch,
    `SELECT startup_wait_ms, playing_ms, rebuffer_ms, seek_ms, rebuffer_count, bitrate_kbps_ms, views_ended, vsf_views, ebvs_views, playback_failure_views, fatal_errors, startup_ms_samples
    FROM qoe_minute FINAL WHERE window_start >= toDateTime(${P0 / 1000}) AND window_start < toDateTime(${P1 / 1000}) AND ${where}`,
  );
  const s: QoeSums = { watch: 0, playing: 0, rebuffer: 0, count: 0, bitrate: 0, ended: 0, vsf: 0, ebvs: 0, failed: 0, fatal: 0, samples: [] };
  for (const r of rows) {
    const n = (c: string) => Number(r[c]);
    // watch time = startup (or the wait of a view that never played) + playing + rebuffer + seek (DOMAIN §3)
    s.watch += n('startup_wait_ms') + n('playing_ms') + n('rebuffer_ms') + n('seek_ms');
    s.playing += n('playing_ms');
    s.rebuffer += n('rebuffer_ms');
    s.count += n('rebuffer_count');
    s.bitrate += n('bitrate_kbps_ms');
    s.ended += n('views_ended');
    s.vsf += n('vsf_views');
    s.ebvs += n('ebvs_views');
    s.failed += n('vsf_views') + n('playback_failure_views');
    s.fatal += n('fatal_errors');
    s.samples.push(...(r.startup_ms_samples as unknown[]).map(Number));
  }
  return s;
}
async function viewSums(where = '1', period = true): Promise<QoeSums> {
  const rows = await queryRows<Record<string, unknown>>(
    ch,
    `SELECT outcome, startup_ms, watch_ms, playing_ms, rebuffer_ms, rebuffer_count, weighted_avg_bitrate_kbps
    FROM qoe_views FINAL WHERE is_final = 1 AND ${period ? `view_end >= fromUnixTimestamp64Milli(${P0}) AND view_end < fromUnixTimestamp64Milli(${P1})` : '1'} AND ${where}`,
  );
  const s: QoeSums = { watch: 0, playing: 0, rebuffer: 0, count: 0, bitrate: 0, ended: 0, vsf: 0, ebvs: 0, failed: 0, fatal: 0, samples: [] };
  for (const r of rows) {
    s.watch += Number(r.watch_ms);
    s.playing += Number(r.playing_ms);
    s.rebuffer += Number(r.rebuffer_ms);
    s.count += Number(r.rebuffer_count);
    s.bitrate += r.weighted_avg_bitrate_kbps === null ? 0 : Number(r.weighted_avg_bitrate_kbps) * Number(r.playing_ms);
    s.ended += 1;
    s.vsf += r.outcome === 'vsf' ? 1 : 0;
    s.ebvs += r.outcome === 'ebvs' ? 1 : 0;
    s.failed += r.outcome === 'vsf' || r.outcome === 'playback_failure' ? 1 : 0;
    if (r.startup_ms !== null) s.samples.push(Number(r.startup_ms));
  }
  return s;
}

beforeAll(async () => {
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  await migrate(ch);
  const sim = await SimPipeline.create(ch, { generator: { seed: 9, startMs: D0, ratePerSec: 20, heartbeatMs: 30_000, incidents: specs }, chunkMs: 10 * MIN });
  await sim.advanceTo(D0 + 3 * HOUR);
  await sim.drain();
  // What the qoe and business roles' rollup job does once every partition's watermark is past P1
  // (bin/pipeline.ts): the API's answers for the checked hour then come from the rollups
  // (qoe_minute_rollup, qoe_series_rollup, kpi_business_1h_closed, the gift rollups), and must
  // still equal every other surface.
  expect((await sealQoe(ch, P1)).length).toBe(5);
  expect((await sealBusiness(ch, P1)).length).toBe(2);
  redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  const keys = new RedisApiKeyStore(redis, t.redisPrefix);
  await keys.seed(`${KEY}:viewer`);
  app = Fastify({ logger: false });
  await app.register(apiPlugin, {
    logger: createLogger('silent'),
    metrics: createMetrics(),
    redis,
    ch,
    keys,
    limiter: new RedisRateLimiter(redis, t.redisPrefix, 60_000),
    now: () => D0 + 3 * HOUR,
    docs: false,
  });
  await app.ready();
  ruleSet = parseRules('rules:\n  - { name: x, metric: qoe_vsf_pct, condition: "> 0", severity: warning, annotations: { summary: x } }\n', 'conformance');
  ev = new Evaluator({
    ruleSet,
    ch,
    store: new AlertStore(redis, t.redisPrefix),
    logger: silentLogger(),
    metrics: createMetrics(),
    clock: () => D0 + 3 * HOUR,
  });
}, 600_000);

afterAll(async () => {
  await app?.close();
  if (redis) {
    const k = await redis.keys(`${t.redisPrefix}*`);
    if (k.length) await redis.del(...k);
    redis.disconnect();
  }
  await ch?.close();
  await cleanupTestEnv(t);
});

describe('every catalogued metric gives the same number on every surface', () => {
  it('real time (qoe_minute): API timeseries, Grafana panels, alert metrics, reference', async () => {
    const ref = qoeReference(await minuteSums());
    const body = await api(`/v1/qoe/timeseries?from=${iso(P0)}&to=${iso(P1)}&step=3600`);
    const pt = (body.points as Record<string, unknown>[])[0]!;
    const startup = (await panel('Startup p50 / p95 (ms)', P1 - 1000))[0]!;
    const vsf = (await panel('VSF % and playback failures %', P1 - 1000))[0]!;
    const a = async (m: string) => (await alertValue(m)).get('') ?? null;
    same('rebuffer_pct', 'minute', 'all', { reference: ref.rebuffer_pct!, api: num(pt.rebuffer_pct), alert: await a('qoe_rebuffer_pct') });
    same('rebuffer_per_min', 'minute', 'all', { reference: ref.rebuffer_per_min!, api: num(pt.rebuffer_per_min) });
    same('watch_hours', 'minute', 'all', { reference: ref.watch_hours!, api: num(pt.watch_hours), api_watch_ms: num(pt.watch_ms)! / 3_600_000 });
    same('playing_hours', 'minute', 'all', { reference: ref.playing_hours!, api: num(pt.playing_hours), alert: await a('engagement_playing_hours') });
    same('vsf_pct', 'minute', 'all', { reference: ref.vsf_pct!, api: num(pt.vsf_pct), grafana: num(vsf.vsf_pct), alert: await a('qoe_vsf_pct') });
    same('ebvs_pct', 'minute', 'all', { reference: ref.ebvs_pct!, api: num(pt.ebvs_pct) });
    same('playback_failure_pct', 'minute', 'all', {
      reference: ref.playback_failure_pct!,
      api: num(pt.playback_failure_pct),
      grafana: num(vsf.playback_failure_pct),
    });
    same('fatal_errors', 'minute', 'all', { reference: ref.fatal_errors!, api: num(pt.fatal_errors), alert: await a('qoe_fatal_errors') });
    same('startup_p50_ms', 'minute', 'all', { reference: ref.startup_p50_ms!, api: num(pt.startup_p50_ms), grafana: num(startup.p50_ms) });
    same('startup_p95_ms', 'minute', 'all', {
      reference: ref.startup_p95_ms!,
      api: num(pt.startup_p95_ms),
      grafana: num(startup.p95_ms),
      alert: (await a('qoe_startup_p95_s'))! * 1000,
    });
    same('avg_bitrate_kbps', 'minute', 'all', { reference: ref.avg_bitrate_kbps!, api: num(pt.avg_bitrate_kbps) });
    // By CDN (the incident's slice): API group_by=cdn, the Grafana panel by CDN, the alert grouped by cdn.
    const byCdn = await api(`/v1/qoe/timeseries?from=${iso(P0)}&to=${iso(P1)}&step=3600&group_by=cdn`);
    const gf = await panel('Rebuffer % by CDN', P1 - 1000);
    const al = await alertValue('qoe_rebuffer_pct', ['cdn']);
    const cdns = (byCdn.points as Record<string, unknown>[]).map((p) => String(p.series));
    expect(cdns).toContain('akamai');
    for (const p of byCdn.points as Record<string, unknown>[]) {
      const cdn = String(p.series);
      const r = qoeReference(await minuteSums(`cdn = '${cdn}'`));
      same('rebuffer_pct', 'minute', `cdn=${cdn}`, {
        reference: r.rebuffer_pct!,
        api: num(p.rebuffer_pct),
        grafana: num(gf.find((g) => g.cdn === cdn)?.rebuffer_pct),
        alert: al.get(cdn) ?? null,
      });
    }
    console.log(
      `conformance, the hour with the incidents: rebuffer % ${ref.rebuffer_pct?.toFixed(3)} (akamai ${num((byCdn.points as Record<string, unknown>[]).find((p) => p.series === 'akamai')!.rebuffer_pct)?.toFixed(3)}), VSF % ${ref.vsf_pct?.toFixed(3)}, startup p95 ${ref.startup_p95_ms} ms`,
    );
  });

  it('by view end (qoe_views): API views-summary, the Grafana table per cdn × country, reference', async () => {
    const ref = qoeReference(await viewSums());
    const pt = ((await api(`/v1/qoe/views-summary?from=${iso(P0)}&to=${iso(P1)}&step=3600`)).points as Record<string, unknown>[])[0]!;
    for (const m of [
      'rebuffer_pct',
      'rebuffer_per_min',
      'watch_hours',
      'playing_hours',
      'vsf_pct',
      'ebvs_pct',
      'playback_failure_pct',
      'startup_p50_ms',
      'startup_p95_ms',
      'avg_bitrate_kbps',
    ])
      same(m, 'view_end', 'all', { reference: ref[m]!, api: num(pt[m]) });
    const table = await panel('QoE by CDN and country (views ended in range)', P1);
    expect(table.length).toBeGreaterThan(3);
    for (const row of table) {
      const [cdn, country] = [String(row.cdn), String(row.country)];
      const r = qoeReference(await viewSums(`cdn = '${cdn}' AND country = '${country}'`));
      const p = (
        (await api(`/v1/qoe/views-summary?from=${iso(P0)}&to=${iso(P1)}&step=3600&cdn=${cdn}&country=${country}`)).points as Record<string, unknown>[]
      )[0]!;
      for (const m of ['rebuffer_pct', 'vsf_pct', 'startup_p95_ms'])
        same(m, 'view_end', `${cdn}/${country}`, { reference: r[m]!, api: num(p[m]), grafana: num(row[m]) });
    }
    // Per show (all final views, content → show from the catalog): /v1/production/shows and the Grafana production table.
    const shows = ((await api('/v1/production/shows')).shows as Record<string, unknown>[]).filter((s) => Number(s.views) > 0);
    expect(shows.length).toBeGreaterThan(3);
    const gshows = await panel('Shows: issues beside engagement', P1);
    for (const s of shows.slice(0, 8)) {
      const name = String(s.show_name).replaceAll("'", "\\'");
      const r = qoeReference(
        await viewSums(
          `content_id IN (SELECT content_id FROM (SELECT content_id, argMax(show_name, (event_time, version)) AS sn FROM raw_catalog FINAL GROUP BY content_id) WHERE sn = '${name}')`,
          false,
        ),
      );
      const g = gshows.find((x) => x.show_name === s.show_name);
      for (const m of ['rebuffer_pct', 'playing_hours', 'playback_failure_pct'])
        same(m, 'view_end', `show ${String(s.show_name)}`, { reference: r[m]!, api: num(s[m]), ...(g ? { grafana: num(g[m]) } : {}) });
    }
  });

  it('payments and accounts: API hourly, Grafana panels and table, alert metrics, reference', async () => {
    const [pay] = await queryRows<Record<string, unknown>>(
      ch,
      `SELECT sum(attempts) AS attempts, sum(failed) AS failed, sum(net_usd_micros) AS net FROM kpi_payments_1m FINAL WHERE window_start >= toDateTime(${P0 / 1000}) AND window_start < toDateTime(${P1 / 1000})`,
    );
    const accts = await queryRows<Record<string, unknown>>(
      ch,
      `SELECT account_id, played, paid, gifted, net_usd_micros FROM account_activity_1h FINAL WHERE hour = toDateTime(${P0 / 1000})`,
    );
    // Accounts: one per account over the hour (partial rows per source partition merged).
    const byAcct = new Map<string, { paid: boolean; net: number }>();
    for (const r of accts) {
      const a = byAcct.get(String(r.account_id)) ?? { paid: false, net: 0 };
      a.paid ||= Number(r.paid) === 1;
      a.net += Number(r.net_usd_micros);
      byAcct.set(String(r.account_id), a);
    }
    const active = byAcct.size;
    const payers = [...byAcct.values()].filter((a) => a.paid).length; // a succeeded charge, whatever was refunded
    const netPayers = [...byAcct.values()].filter((a) => a.net > 0).length; // net revenue > 0
    const netAll = [...byAcct.values()].reduce((s, a) => s + a.net, 0);
    const ref = {
      payment_failure_pct: ratio(Number(pay!.failed), Number(pay!.attempts), 100),
      revenue_usd: Number(pay!.net) / 1e6,
      active_accounts: active,
      payers,
      net_payers: netPayers,
      payer_rate_pct: ratio(payers, active, 100),
      arpu_usd: ratio(netAll / 1e6, active),
      arppu_usd: ratio(netAll / 1e6, payers),
    };
    const h = ((await api(`/v1/business/hourly?from=${iso(P0)}&to=${iso(P1)}`)).hours as Record<string, unknown>[]).find((x) => Number(x.t) === P0)!;
    const kpi = (await panel('Hourly KPIs', P0 + 1000)).find((r) => Date.parse(`${String(r.hour).replace(' ', 'T')}Z`) === P0)!;
    const rev = (await panel('Net revenue (USD)', P1 - 1000))[0]!;
    const fail = (await panel('Payment failure %', P1 - 1000))[0]!;
    const a = async (m: string) => (await alertValue(m)).get('') ?? null;
    same('payment_failure_pct', 'payment_minute', 'all', {
      reference: ref.payment_failure_pct!,
      api: num(h.payment_failure_rate)! * 100,
      grafana: num(fail.payment_failure_pct),
      alert: await a('business_payment_failure_pct'),
    });
    same('revenue_usd', 'payment_minute', 'all', {
      reference: ref.revenue_usd,
      api: num(h.revenue_usd),
      grafana: num(rev.revenue_usd),
      grafana_table: num(kpi.revenue_usd),
      alert: await a('business_revenue_usd'),
    });
    same('active_accounts', 'account_period', 'hour', { reference: ref.active_accounts, api: num(h.active_accounts), grafana: num(kpi.active_accounts) });
    same('payers', 'account_period', 'hour', { reference: ref.payers, api: num(h.payers), grafana: num(kpi.payers) });
    same('net_payers', 'account_period', 'hour', { reference: ref.net_payers, api: num(h.net_payers), grafana: num(kpi.net_payers) });
    same('payer_rate_pct', 'account_period', 'hour', {
      reference: ref.payer_rate_pct!,
      api: num(h.payer_rate)! * 100,
      grafana: num(kpi.payer_rate)! * 100,
      alert: await a('business_payer_rate_pct'),
    });
    same('arpu_usd', 'account_period', 'hour', { reference: ref.arpu_usd!, api: num(h.arpu_usd), grafana: num(kpi.arpu_usd) });
    same('arppu_usd', 'account_period', 'hour', { reference: ref.arppu_usd!, api: num(h.arppu_usd), grafana: num(kpi.arppu_usd) });
    console.log(
      `conformance, payments in the hour: failure ${ref.payment_failure_pct?.toFixed(2)} %, revenue $${ref.revenue_usd.toFixed(2)}, active ${active}, payers ${payers}, net payers ${netPayers}`,
    );
  });

  it('moderation cases: API safety summary, the Grafana stat, reference', async () => {
    const rows = await queryRows<Record<string, unknown>>(
      ch,
      `SELECT violation, time_to_action_ms, time_to_appeal_decision_ms FROM safety_cases FINAL
      WHERE action_time >= fromUnixTimestamp64Milli(${P0}) AND action_time < fromUnixTimestamp64Milli(${P1})`,
    );
    const tta = rows.filter((r) => Number(r.violation) === 1).map((r) => Number(r.time_to_action_ms));
    const appeal = rows.filter((r) => r.time_to_appeal_decision_ms !== null).map((r) => Number(r.time_to_appeal_decision_ms));
    expect(tta.length).toBeGreaterThan(3);
    const s = await api(`/v1/safety/summary?from=${iso(P0)}&to=${iso(P1)}`);
    const g = (await panel('Time to action, median and p90 (ms)', P1))[0]!;
    same('median_time_to_action_ms', 'case', 'hour', {
      reference: nearestRank(tta, 0.5)!,
      api: num(s.median_time_to_action_ms),
      grafana: num(g.median_time_to_action_ms),
    });
    same('p90_time_to_action_ms', 'case', 'hour', {
      reference: nearestRank(tta, 0.9)!,
      api: num(s.p90_time_to_action_ms),
      grafana: num(g.p90_time_to_action_ms),
    });
    const ap = nearestRank(appeal, 0.5);
    if (ap === null) expect(num(s.median_time_to_appeal_decision_ms)).toBeNull();
    else same('median_time_to_appeal_decision_ms', 'case', 'hour', { reference: ap, api: num(s.median_time_to_appeal_decision_ms) });
    if (ap === null) checked.set('median_time_to_appeal_decision_ms@case', 2);
  });

  it('the overall safety score (docs/safety.md, migration 023): API safety summary, the Grafana stat, reference', async () => {
    // Reference from the definition in words: severity weights of the confirmed violations (not
    // reversed on appeal) of every case; views = views that started playing, every minute row's
    // count (the view reads the hours sealed above from qoe_series_rollup, the rest from qoe_minute).
    const WEIGHT: Record<string, number> = { low: 1, medium: 3, high: 10, critical: 30 };
    const cases = await queryRows<Record<string, unknown>>(ch, `SELECT severity, violation, appeal_outcome FROM safety_cases FINAL`);
    const w = cases.filter((c) => Number(c.violation) === 1 && c.appeal_outcome !== 'reversed').reduce((a, c) => a + WEIGHT[String(c.severity)]!, 0);
    const minutes = await queryRows<{ n: string }>(ch, `SELECT views_started AS n FROM qoe_minute FINAL`);
    const views = minutes.reduce((a, r) => a + Number(r.n), 0);
    expect(w).toBeGreaterThan(0);
    expect(views).toBeGreaterThan(0);
    const [v] = await queryRows<{ views: string; weighted_violations: string }>(ch, `SELECT views, weighted_violations FROM safety_score_overall`);
    expect([Number(v!.views), Number(v!.weighted_violations)]).toEqual([views, w]);
    const reference = 100 * Math.exp(-((1000 * w) / Math.max(views, 1000)) / 10);
    const fromApi = num((await api(`/v1/safety/summary?from=${iso(P0)}&to=${iso(P1)}`)).safety_score_overall);
    const fromGrafana = num((await panel('Safety score (overall)', P1))[0]!.safety_score);
    for (const [what, x] of [
      ['api', fromApi],
      ['grafana', fromGrafana],
    ] as const)
      expect(Math.abs(x! - reference), `${what} ${x} vs reference ${reference}`).toBeLessThanOrEqual(1e-9 * Math.max(1, reference));
    console.log(`conformance, overall safety score: W ${w}, views ${views}, score ${reference.toFixed(4)}`);
  });

  it('answers over the period say how many of its events were late and left out (late_events)', async () => {
    const count = async (processor: string, reasons?: string[]) =>
      Number(
        (
          await queryRows<{ n: string }>(
            ch,
            `SELECT count() AS n FROM late_events FINAL WHERE processor = '${processor}'
      AND event_time >= fromUnixTimestamp64Milli(${P0}) AND event_time < fromUnixTimestamp64Milli(${P1})${reasons ? ` AND reason IN (${reasons.map((r) => `'${r}'`).join(', ')})` : ''}`,
          )
        )[0]!.n,
      );
    const range = `from=${iso(P0)}&to=${iso(P1)}`;
    const qoeLate = await count('qoe');
    expect(qoeLate, 'the late delivery made late QoE events').toBeGreaterThan(100);
    expect((await api(`/v1/qoe/timeseries?${range}&step=3600`)).late_events).toBe(qoeLate);
    expect((await api(`/v1/qoe/views-summary?${range}&step=3600`)).late_events).toBe(await count('qoe', ['view_expired']));
    const bizLate = await count('business');
    expect(bizLate).toBeGreaterThan(0);
    expect((await api(`/v1/business/hourly?${range}`)).late_events).toBe(bizLate);
    expect((await api(`/v1/business/payments?${range}&by=method`)).late_events).toBe(bizLate);
    expect((await api(`/v1/safety/summary?${range}`)).late_events).toBe(await count('safety'));
    expect((await api(`/v1/safety/breakdown?${range}&by=policy`)).late_events).toBe(await count('safety', ['window_closed']));
    // The Grafana panel of late events per kind shows the same count for playback over the hour.
    const rows = await panel('Late events per kind', P1);
    const [all] = await queryRows<{ n: string }>(
      ch,
      `SELECT count() AS n FROM late_events FINAL WHERE src_topic LIKE '%playback' AND event_time >= toDateTime(${P0 / 1000}) AND event_time <= toDateTime(${P1 / 1000})`,
    );
    expect(rows.filter((r) => r.kind === 'playback').reduce((s, r) => s + Number(r.late_events), 0)).toBe(Number(all!.n));
    console.log(`conformance, late events in the hour: qoe ${qoeLate}, business ${bizLate}`);
  });

  it('every metric of the catalog, on every grain it is defined on, was checked on at least two surfaces', () => {
    const missing = CATALOG.flatMap((m) => m.grains.map((g) => `${m.name}@${g}`)).filter((k) => (checked.get(k) ?? 0) < 2);
    expect(missing).toEqual([]);
  });
});
