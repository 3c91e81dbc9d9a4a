/**
 * The API with inject(): every endpoint against embedded ClickHouse filled with simulator traffic
 * run through the processors, keys and rate limits in the shared Redis. Also auth failures, wrong
 * roles, bad parameters (the 400 names the parameter), rate limiting (429 + Retry-After) and SQL
 * writes refused at both layers.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { createLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { insertRows, openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { apiPlugin, type ApiOptions } from '../../api/app.js';
import { RedisApiKeyStore } from '../../api/api-keys.js';
import { RedisRateLimiter } from '../../api/rate-limit.js';
import type { AlertsService, AlertView, SilenceView } from '../../api/alerts-service.js';
import { createAlertsAdapter } from '../../api/alerts-adapter.js';
import { createAlertingApi } from '../../alerts/index.js';
import { AlertStore } from '../../alerts/store.js';
import { alertKey, type AlertState } from '../../alerts/state-machine.js';
import { registerHttpRoles } from '../../bin/http-roles.js';
import { loadConfig } from '../../lib/config.js';
import type { EventProducer } from '../../producers/sdk/event-producer.js';
import { scoreChurnDay } from '../../processors/churn/churn-scores.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { sealBusiness, sealQoe } from '../../sinks/clickhouse/rollups.js';
import { metricSql } from '../../contracts/metrics-catalog.js';
import { fillWithSimulatedData, type SimFill } from './support/sim-data.js';

const t = testEnv('api');
const KEYS = {
  viewer: 'viewer-key-0123456789abcdef',
  analyst: 'analyst-key-0123456789abcdef',
  admin: 'admin-key-0123456789abcdef',
  ingest: 'ingest-key-0123456789abcdef',
};
const NOW = Date.UTC(2025, 4, 14, 12, 0, 0);
let ch: ClickHouse;
let redis: Redis;
let app: FastifyInstance;
let fill: SimFill;

class FakeAlerts implements AlertsService {
  alerts: AlertView[] = [
    {
      id: 'a1',
      rule: 'qoe_rebuffer',
      state: 'firing',
      severity: 'critical',
      labels: { cdn: 'akamai' },
      value: 3.2,
      startsAt: new Date(NOW - 600_000).toISOString(),
      summary: 'rebuffer 3.2 %',
    },
  ];
  silences: SilenceView[] = [];
  async listAlerts(f: { state?: string }) {
    return this.alerts.filter((a) => !f.state || a.state === f.state);
  }
  async acknowledge(id: string, by: string) {
    const a = this.alerts.find((x) => x.id === id);
    if (!a) return false;
    a.acknowledgedBy = by;
    return true;
  }
  async silence(i: { matchers: Record<string, string>; durationMs: number; createdBy: string; comment: string }) {
    const s = {
      id: `s${this.silences.length + 1}`,
      matchers: i.matchers,
      startsAt: new Date(NOW).toISOString(),
      endsAt: new Date(NOW + i.durationMs).toISOString(),
      createdBy: i.createdBy,
      comment: i.comment,
    };
    this.silences.push(s);
    return s;
  }
  async listSilences() {
    return this.silences;
  }
}
const alerts = new FakeAlerts();

async function buildApp(over: Partial<ApiOptions> = {}, prefix = t.redisPrefix): Promise<FastifyInstance> {
  const a = Fastify({ logger: false });
  const keys = new RedisApiKeyStore(redis, prefix);
  await keys.seed(
    Object.entries(KEYS)
      .map(([role, key]) => `${key}:${role}`)
      .join(','),
  );
  await a.register(apiPlugin, {
    logger: createLogger(process.env.API_TEST_LOG ?? 'silent'),
    metrics: createMetrics(),
    redis,
    ch,
    keys,
    limiter: new RedisRateLimiter(redis, prefix, 60_000),
    alerts,
    now: () => NOW,
    docs: true,
    readiness: { redis: async () => void (await redis.ping()), clickhouse: async () => void (await queryRows(ch, 'SELECT 1')) },
    ...over,
  });
  await a.ready();
  return a;
}

const get = (url: string, key: string | null = KEYS.viewer) => app.inject({ method: 'GET', url, headers: key ? { 'x-api-key': key } : {} });
const iso = (ms: number) => new Date(ms).toISOString();
const RANGE = `from=${iso(NOW - 2 * 3_600_000)}&to=${iso(NOW)}`;

beforeAll(async () => {
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  fill = await fillWithSimulatedData(ch, { endMs: NOW, durationMs: 2 * 3_600_000, ratePerSec: 8 });
  // The churn day-close job (run by the churn role) scores the day of the simulated traffic.
  await scoreChurnDay(ch, Math.floor(NOW / 86_400_000), NOW);
  app = await buildApp();
}, 300_000);

afterAll(async () => {
  await app?.close();
  const keys = await redis.keys(`${t.redisPrefix}*`);
  if (keys.length) await redis.del(...keys);
  await redis?.quit();
  await ch?.close();
  await cleanupTestEnv(t);
});

describe('data filled through the processors', () => {
  it('has rows in the tables the endpoints read', () => {
    expect(fill.events).toBeGreaterThan(10_000);
    for (const table of [
      'qoe_minute',
      'qoe_views',
      'kpi_payments_1m',
      'kpi_gifts_1m',
      'account_activity_1h',
      'safety_events_1m',
      'safety_cases',
      'production_issues',
      'churn_account_daily',
      'raw_playback',
    ]) {
      expect(fill.rowsByTable[table], table).toBeGreaterThan(0);
    }
  });
});

describe('public endpoints', () => {
  it('/healthz, /readyz, /metrics, /docs and the dashboard page', async () => {
    expect((await get('/healthz', null)).json()).toEqual({ status: 'ok' });
    const ready = await get('/readyz', null);
    expect(ready.statusCode).toBe(200);
    expect(ready.json().checks).toEqual({ redis: 'ok', clickhouse: 'ok' });
    await get('/v1/qoe/timeseries');
    const m = await get('/metrics', null);
    expect(m.headers['content-type']).toContain('text/plain');
    expect(m.body).toContain('streampulse_http_request_duration_seconds_count{route="/v1/qoe/timeseries",status="200"}');
    const spec = (await get('/docs/json', null)).json<{ paths: Record<string, unknown> }>();
    for (const p of ['/v1/qoe/timeseries', '/v1/business/hourly', '/v1/sql', '/v1/alerts', '/v1/churn/accounts']) expect(Object.keys(spec.paths)).toContain(p);
    const page = await get('/', null);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain('EventSource');
  });

  it('/readyz answers 503 naming the dependency that is down', async () => {
    const a = await buildApp({
      readiness: {
        redis: async () => undefined,
        kafka: async () => {
          throw new Error('no broker');
        },
      },
      docs: false,
    });
    const r = await a.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(503);
    expect(r.json().checks).toEqual({ redis: 'ok', kafka: 'down: no broker' });
    await a.close();
  });
});

describe('auth and roles', () => {
  it('401 without a key or with an unknown key; the key is kept hashed in Redis', async () => {
    const none = await get('/v1/business/hourly', null);
    expect(none.statusCode).toBe(401);
    expect(none.json().error).toBe('unauthorized');
    expect((await get('/v1/business/hourly', 'not-a-key-at-all-xxxxxxxx')).statusCode).toBe(401);
    const stored = await redis.hgetall(`${t.redisPrefix}apikeys`);
    const digests = Object.keys(stored).filter((f) => f !== '@restored');
    expect(digests.length).toBe(4);
    for (const d of digests) expect(d).toMatch(/^[0-9a-f]{64}$/);
    for (const key of Object.values(KEYS)) expect(JSON.stringify(stored)).not.toContain(key);
  });

  it('Bearer and api_key query parameter work too', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/production/summary', headers: { authorization: `Bearer ${KEYS.viewer}` } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/v1/production/summary?api_key=${KEYS.viewer}` })).statusCode).toBe(200);
  });

  it('403 for the wrong role', async () => {
    const r = await get('/v1/qoe/timeseries', KEYS.ingest);
    expect(r.statusCode).toBe(403);
    expect(r.json().message).toContain('viewer');
    expect((await app.inject({ method: 'POST', url: '/v1/sql', headers: { 'x-api-key': KEYS.viewer }, payload: { query: 'SELECT 1' } })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/v1/alerts/a1/ack', headers: { 'x-api-key': KEYS.analyst }, payload: {} })).statusCode).toBe(403);
    expect(
      (
        await app.inject({
          method: 'POST',
          url: '/v1/silences',
          headers: { 'x-api-key': KEYS.viewer },
          payload: { matchers: { rule: 'x' }, duration_minutes: 5, comment: 'c' },
        })
      ).statusCode,
    ).toBe(403);
  });
});

describe('bad parameters name the parameter', () => {
  const cases: Array<[string, string]> = [
    ['/v1/qoe/timeseries?step=7', 'step'],
    ['/v1/qoe/timeseries?group_by=planet', 'group_by'],
    ['/v1/qoe/timeseries?from=yesterday', 'from'],
    [`/v1/qoe/timeseries?from=${iso(NOW)}&to=${iso(NOW - 1000)}`, 'from'],
    [`/v1/qoe/timeseries?step=60&from=${iso(NOW - 30 * 86_400_000)}&to=${iso(NOW)}`, 'step'],
    ['/v1/qoe/views?limit=0', 'limit'],
    ['/v1/qoe/views?cursor=bogus', 'cursor'],
    ['/v1/business/payments', 'by'],
    ['/v1/business/payments?by=colour', 'by'],
    ['/v1/creators/top?limit=5000', 'limit'],
    ['/v1/safety/breakdown?by=x', 'by'],
    ['/v1/churn/accounts?as_of=14/05/2025', 'as_of'],
    ['/v1/churn/accounts?level=extreme', 'level'],
    ['/v1/churn/accounts?min_risk=2', 'min_risk'],
    ['/v1/churn/cohorts?by=colour', 'by'],
    ['/v1/production/issues?state=maybe', 'state'],
  ];
  for (const [url, param] of cases) {
    it(`${url} → 400 naming ${param}`, async () => {
      const r = await get(url);
      expect(r.statusCode, r.body).toBe(400);
      expect(r.json().param).toBe(param);
    });
  }
});

describe('endpoints return data', () => {
  it('QoE time series, grouped and filtered', async () => {
    const allR = await get(`/v1/qoe/timeseries?${RANGE}&step=300`);
    expect(allR.statusCode, allR.body).toBe(200);
    const all = allR.json();
    expect(all.points.length).toBeGreaterThan(10);
    const p = all.points.find((x: Record<string, number>) => (x.concurrent_viewers ?? 0) > 0);
    expect(p.series).toBe('all');
    expect(typeof p.startup_p95_ms).toBe('number');
    const byCdn = (await get(`/v1/qoe/timeseries?${RANGE}&group_by=cdn`)).json();
    const cdns = [...new Set(byCdn.points.map((x: { series: string }) => x.series))];
    expect(cdns.length).toBeGreaterThan(1);
    const one = (await get(`/v1/qoe/timeseries?${RANGE}&group_by=country&cdn=${encodeURIComponent(String(cdns[0]))}`)).json();
    expect(one.points.length).toBeGreaterThan(0);
  });

  it('QoE per view, paged with a cursor, and one view', async () => {
    const p1 = (await get(`/v1/qoe/views?${RANGE}&limit=5`)).json();
    expect(p1.items.length).toBe(5);
    expect(p1.next_cursor).toBeTruthy();
    const p2 = (await get(`/v1/qoe/views?${RANGE}&limit=5&cursor=${p1.next_cursor}`)).json();
    expect(p2.items.length).toBe(5);
    expect(p2.items.map((v: { view_id: string }) => v.view_id)).not.toContain(p1.items[0].view_id);
    const v = await get(`/v1/qoe/views/${p1.items[0].view_id}`);
    expect(v.json().view_id).toBe(p1.items[0].view_id);
    expect((await get('/v1/qoe/views/nope')).statusCode).toBe(404);
    const plays = (await get(`/v1/qoe/views?${RANGE}&outcome=play&limit=3`)).json();
    for (const x of plays.items) expect(x.outcome).toBe('play');
  });

  it('business hourly, growth and payments by dimension', async () => {
    const h = (await get(`/v1/business/hourly?${RANGE}`)).json();
    expect(h.hours.length).toBeGreaterThanOrEqual(2);
    expect(h.hours.some((x: { revenue_usd: number }) => x.revenue_usd > 0)).toBe(true);
    expect(h.hours[0].active_accounts).toBeGreaterThan(0);
    const g = (await get(`/v1/business/growth?${RANGE}`)).json();
    expect(g.hours.length).toBeGreaterThanOrEqual(2);
    expect(g.hours[1].prev_hour_revenue_usd).toBeCloseTo(g.hours[0].revenue_usd, 6);
    for (const by of ['method', 'plan', 'og_tier', 'country']) {
      const rr = await get(`/v1/business/payments?${RANGE}&by=${by}`);
      expect(rr.statusCode, rr.body).toBe(200);
      const r = rr.json();
      expect(r.rows.length, by).toBeGreaterThan(0);
      expect(r.rows[0].attempts).toBeGreaterThan(0);
    }
    const hourly = (await get(`/v1/business/payments?${RANGE}&by=method&granularity=hour`)).json();
    expect(new Set(hourly.rows.map((r: { t: number }) => r.t)).size).toBeGreaterThanOrEqual(2);
  });

  it('creators: top, gifters, concentration', async () => {
    const top = (await get(`/v1/creators/top?${RANGE}&limit=3`)).json();
    expect(top.items.length).toBe(3);
    expect(top.items[0].gift_value_usd).toBeGreaterThanOrEqual(top.items[1].gift_value_usd);
    expect(top.items[0].top20_gifter_share).toBeGreaterThan(0);
    const gifters = (await get(`/v1/creators/${top.items[0].creator_id}/gifters?${RANGE}`)).json();
    expect(gifters.items.length).toBe(top.items[0].gifters);
    const c = (await get(`/v1/creators/concentration?${RANGE}`)).json();
    expect(c.top20_gifter_share).toBeGreaterThan(0.2);
    expect(c.top20_gifter_share).toBeLessThanOrEqual(1);
  });

  it('safety: summary, breakdown, creators', async () => {
    const s = (await get(`/v1/safety/summary?${RANGE}`)).json();
    expect(s.user_reports + s.detections).toBeGreaterThan(0);
    expect(s.safety_score_overall).toBeGreaterThan(0);
    const b = (await get(`/v1/safety/breakdown?${RANGE}&by=policy`)).json();
    expect(b.rows.length).toBeGreaterThan(0);
    const c = (await get('/v1/safety/creators?limit=5')).json();
    expect(Array.isArray(c.items)).toBe(true);
  });

  it('production: summary, issues, shows', async () => {
    const s = (await get('/v1/production/summary')).json();
    expect(s.open_issues).toBeGreaterThan(0);
    const i = (await get('/v1/production/issues?state=all&limit=2')).json();
    expect(i.items.length).toBe(2);
    // A resolved issue with a cost, on a show of its own (the 2 h of simulated Jira resolve none with a cost).
    const db = t.config.clickhouse.database;
    const ts3 = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
    await insertRows(ch, 'production_issues', [
      {
        issue_key: 'API-R1',
        project_key: 'API',
        summary: 'resolved',
        issue_type: 'Bug',
        status: 'Done',
        status_category: 'done',
        priority: 'High',
        severity: 'major',
        show_name: 'Resolved Show',
        cost_impact_usd: 1234.5,
        delay_days: 2,
        labels: [],
        created: ts3(NOW - 7_200_000),
        updated: ts3(NOW - 3_600_000),
        resolved: ts3(NOW - 3_600_000),
        resolve_ms: 3_600_000,
        is_open: 0,
        is_critical: 0,
        deleted: 0,
        deleted_time: null,
        last_event_id: 'api-r1',
        state_version: NOW - 3_600_000,
        src_topic: 'jira',
        src_partition: 0,
        version: 1,
      },
    ]);
    // The summary (one query) reads the same numbers as the production views Grafana reads.
    const sum = (await get('/v1/production/summary')).json();
    const [oc] = await queryRows<{ open_issues: string; open_critical: string }>(ch, `SELECT open_issues, open_critical FROM ${db}.production_open_critical`);
    const [mttr] = await queryRows<{ resolved_issues: string; h: number }>(
      ch,
      `SELECT resolved_issues, mean_time_to_resolve_hours AS h FROM ${db}.production_mttr`,
    );
    const bySev = await queryRows<{ severity: string; o: string; c: string }>(
      ch,
      `SELECT severity, sum(open_issues) AS o, sum(open_critical) AS c FROM ${db}.production_open_by_severity_show GROUP BY severity ORDER BY o DESC, severity`,
    );
    expect([sum.open_issues, sum.open_critical]).toEqual([Number(oc!.open_issues), Number(oc!.open_critical)]);
    expect(sum.resolved_issues).toBe(Number(mttr!.resolved_issues));
    expect(sum.resolved_issues).toBeGreaterThan(0);
    expect(sum.mean_time_to_resolve_hours).toBeCloseTo(mttr!.h, 9);
    expect(sum.open_by_severity).toEqual(bySev.map((r) => ({ severity: r.severity, open_issues: Number(r.o), open_critical: Number(r.c) })));
    const shows = (await get('/v1/production/shows')).json();
    expect(shows.shows.length).toBeGreaterThan(0);
    // Open and resolved cost and delay per show add up to the totals (issue 18).
    const impact = await queryRows<Record<string, unknown>>(
      ch,
      `SELECT show_name, sumIf(cost_impact_usd, is_open = 1) AS o, sumIf(cost_impact_usd, is_open = 0) AS r, sumIf(delay_days, is_open = 0) AS rd FROM ${db}.production_issues_current GROUP BY show_name`,
    );
    let withResolved = 0;
    for (const s of shows.shows as Array<Record<string, number | string | null>>) {
      const i = impact.find((x) => x.show_name === s.show_name);
      if (!i) continue;
      expect(s.open_cost_impact_usd, String(s.show_name)).toBeCloseTo(Number(i.o), 6);
      expect(s.resolved_cost_impact_usd, String(s.show_name)).toBeCloseTo(Number(i.r), 6);
      expect(s.resolved_delay_days, String(s.show_name)).toBeCloseTo(Number(i.rd), 6);
      expect((s.open_cost_impact_usd as number) + (s.resolved_cost_impact_usd as number)).toBeCloseTo(s.cost_impact_usd_total as number, 6);
      if (Number(i.r) > 0) withResolved++;
    }
    expect(withResolved, 'some show has resolved cost').toBeGreaterThan(0);
    expect(shows.shows.find((s: { show_name: string }) => s.show_name === 'Resolved Show')).toMatchObject({
      resolved_cost_impact_usd: 1234.5,
      open_cost_impact_usd: 0,
      resolved_delay_days: 2,
      open_delay_days: 0,
    });
  });

  it('churn: scored accounts (risk, level, top reasons) and cohorts from churn_scores / churn_cohorts', async () => {
    const db = t.config.clickhouse.database;
    const ar = await get('/v1/churn/accounts?limit=10');
    expect(ar.statusCode, ar.body).toBe(200);
    const a = ar.json();
    expect(a.as_of).toBe('2025-05-14'); // default: the newest scored day
    expect(a.items.length).toBe(10);
    expect(a.next_cursor).toBeTruthy();
    const risks = a.items.map((x: { risk: number }) => x.risk);
    expect(risks).toEqual([...risks].sort((x, y) => y - x));
    const top = a.items[0];
    expect(['low', 'medium', 'high']).toContain(top.level);
    expect(top.reasons.length).toBeGreaterThan(0);
    expect(top.reasons.length).toBeLessThanOrEqual(3);
    expect(top.contributions[top.reasons[0]]).toBeGreaterThan(0);
    // the row is the one the day-close job wrote
    const [row] = await queryRows<{ risk: number; level: string; reasons: string[] }>(
      ch,
      `SELECT risk, level, reasons FROM ${db}.churn_scores FINAL WHERE day = '2025-05-14' AND account_id = {a:String}`,
      { a: top.account_id },
    );
    expect(top).toMatchObject({ risk: row!.risk, level: row!.level, reasons: row!.reasons });
    const p2 = (await get(`/v1/churn/accounts?as_of=2025-05-14&limit=10&cursor=${a.next_cursor}`)).json();
    expect(p2.items[0].risk).toBeLessThanOrEqual(risks[9]);
    const [lv] = await queryRows<{ level: string; n: string }>(
      ch,
      `SELECT level, count() AS n FROM ${db}.churn_scores FINAL WHERE day = '2025-05-14' GROUP BY level ORDER BY n DESC LIMIT 1`,
    );
    const byLevel = (await get(`/v1/churn/accounts?level=${lv!.level}&limit=1000`)).json();
    expect(byLevel.items.length).toBe(Math.min(1000, Number(lv!.n)));
    for (const x of byLevel.items) expect(x.level).toBe(lv!.level);
    for (const x of (await get('/v1/churn/accounts?min_risk=0.2&limit=50')).json().items) expect(x.risk).toBeGreaterThanOrEqual(0.2);
    expect((await get('/v1/churn/accounts?as_of=2020-01-01')).json()).toEqual({ as_of: '2020-01-01', items: [], next_cursor: null, late_events: 0 });

    const cr = await get('/v1/churn/cohorts');
    expect(cr.statusCode, cr.body).toBe(200);
    const c = cr.json();
    expect(c.as_of).toBe('2025-05-14');
    expect(c.by).toEqual(['plan', 'tenure_band', 'top_genre']);
    const [tot] = await queryRows<{ n: string; high: string; rar: number }>(
      ch,
      `SELECT count() AS n, countIf(level = 'high') AS high, sum(risk * revenue_usd_28d) AS rar FROM ${db}.churn_scores FINAL WHERE day = '2025-05-14'`,
    );
    const sum = (rows: Array<Record<string, number>>, k: string) => rows.reduce((n, x) => n + x[k]!, 0);
    expect(sum(c.cohorts, 'accounts')).toBe(Number(tot!.n));
    expect(sum(c.cohorts, 'high_risk_accounts')).toBe(Number(tot!.high));
    expect(sum(c.cohorts, 'revenue_at_risk_usd')).toBeCloseTo(tot!.rar, 6);
    const byPlan = (await get('/v1/churn/cohorts?by=plan')).json();
    expect(byPlan.cohorts.every((x: { tenure_band: string; top_genre: string }) => x.tenure_band === 'all' && x.top_genre === 'all')).toBe(true);
    expect(sum(byPlan.cohorts, 'accounts')).toBe(Number(tot!.n));
    expect(new Set(byPlan.cohorts.map((x: { plan: string }) => x.plan)).size).toBe(byPlan.cohorts.length);
    const rar = byPlan.cohorts.map((x: { revenue_at_risk_usd: number }) => x.revenue_at_risk_usd);
    expect(rar).toEqual([...rar].sort((x, y) => y - x));
  });

  it('alerts: list, acknowledge (admin), silence (admin), 404 and 503', async () => {
    expect((await get('/v1/alerts?state=firing')).json().alerts[0].id).toBe('a1');
    const ack = await app.inject({ method: 'POST', url: '/v1/alerts/a1/ack', headers: { 'x-api-key': KEYS.admin }, payload: { comment: 'looking' } });
    expect(ack.json()).toEqual({ acknowledged: true, id: 'a1' });
    expect(alerts.alerts[0]!.acknowledgedBy).toMatch(/^key_[0-9a-f]{12}$/);
    expect((await app.inject({ method: 'POST', url: '/v1/alerts/zzz/ack', headers: { 'x-api-key': KEYS.admin }, payload: {} })).statusCode).toBe(404);
    const sil = await app.inject({
      method: 'POST',
      url: '/v1/silences',
      headers: { 'x-api-key': KEYS.admin },
      payload: { matchers: { rule: 'qoe_rebuffer' }, duration_minutes: 30, comment: 'maintenance' },
    });
    expect(sil.statusCode).toBe(201);
    expect((await get('/v1/silences')).json().silences).toHaveLength(1);
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/silences',
      headers: { 'x-api-key': KEYS.admin },
      payload: { matchers: { rule: 'x' }, duration_minutes: 0, comment: 'c' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().param).toBe('duration_minutes');
    const none = await buildApp({ alerts: null, docs: false });
    expect((await none.inject({ method: 'GET', url: '/v1/alerts', headers: { 'x-api-key': KEYS.viewer } })).statusCode).toBe(503);
    await none.close();
  });

  it('tables catalogue', async () => {
    const r = (await get('/v1/tables')).json();
    const names = r.tables.map((x: { name: string }) => x.name);
    for (const n of ['raw_playback', 'qoe_minute_all', 'kpi_business_1h', 'churn_account_daily']) expect(names).toContain(n);
  });

  it('live snapshot and the server-sent events stream', async () => {
    const sr = await get('/v1/live/snapshot?minutes=120');
    expect(sr.statusCode, sr.body).toBe(200);
    const s = sr.json();
    expect(s.qoe.length).toBeGreaterThan(60);
    expect(s.payments.length).toBeGreaterThan(0);
    // Payments, gifts and moderation per minute come from one query (a UNION ALL tagged per table):
    // each series is what its own table gives for the snapshot's range, minute by minute, in order.
    const db = t.config.clickhouse.database;
    const range = `window_start >= fromUnixTimestamp64Milli(toInt64(${s.from})) AND window_start < fromUnixTimestamp64Milli(toInt64(${s.to}))`;
    const direct = async (sql: string) =>
      (await queryRows<Record<string, string | number>>(ch, sql)).map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])));
    expect(s.payments).toEqual(
      await direct(
        `SELECT toUnixTimestamp(window_start) * 1000 AS t, sum(net_usd_micros) / 1e6 AS revenue_usd, sum(attempts) AS attempts, sum(failed) AS failed, ifNull(${metricSql('payment_failure_pct', 'payment_minute')} / 100, 0) AS failure_rate FROM ${db}.kpi_payments_1m FINAL WHERE ${range} GROUP BY t ORDER BY t SETTINGS prefer_column_name_to_alias = 1`,
      ),
    );
    const gifts = await direct(
      `SELECT toUnixTimestamp(window_start) * 1000 AS t, sum(value_usd_micros) / 1e6 AS gift_value_usd, sum(gifts) AS gifts FROM ${db}.kpi_gifts_1m FINAL WHERE ${range} GROUP BY t ORDER BY t`,
    );
    const safety = await direct(
      `SELECT toUnixTimestamp(window_start) * 1000 AS t, sumIf(events, event_type = 'report_created') AS reports, sumIf(events, event_type = 'action_taken' AND action_type != 'none') AS actions, sumIf(events, event_type = 'action_taken' AND severity = 'critical') AS critical_actions FROM ${db}.safety_events_1m FINAL WHERE ${range} GROUP BY t ORDER BY t`,
    );
    expect(gifts.length + safety.length).toBeGreaterThan(0);
    expect(s.gifts).toEqual(gifts);
    expect(s.safety).toEqual(safety);
    expect(s.alerts.items[0].rule).toBe('qoe_rebuffer');
    // Open and open critical issues: the sums over severities, the numbers of production_open_critical.
    const [oc] = await queryRows<{ open_issues: string; open_critical: string }>(
      ch,
      `SELECT open_issues, open_critical FROM ${t.config.clickhouse.database}.production_open_critical`,
    );
    expect(s.production.open_issues).toBeGreaterThan(0);
    expect([s.production.open_issues, s.production.open_critical]).toEqual([Number(oc!.open_issues), Number(oc!.open_critical)]);
    expect(s.production.by_severity.reduce((a: number, r: { open_issues: number }) => a + r.open_issues, 0)).toBe(s.production.open_issues);
    expect(Object.keys(s.production.by_severity[0])).toEqual(['severity', 'open_issues']);
    const live = await buildApp({ liveIntervalMs: 200, docs: false });
    const url = await live.listen({ port: 0, host: '127.0.0.1' });
    const ctl = new AbortController();
    const res = await fetch(`${url}/v1/live/stream?minutes=120&api_key=${KEYS.viewer}`, { signal: ctl.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/event: snapshot/g) ?? []).length < 2) text += new TextDecoder().decode((await reader.read()).value);
    ctl.abort();
    const first = JSON.parse(text.split('event: snapshot\ndata: ')[1]!.split('\n')[0]!);
    expect(first.qoe.length).toBeGreaterThan(60);
    await live.close();
  });

  it('open streams share one snapshot per period (not one each)', async () => {
    const live = await buildApp({ liveIntervalMs: 150, docs: false });
    const url = await live.listen({ port: 0, host: '127.0.0.1' });
    const metric = async (name: string) => {
      const body = await (await fetch(`${url}/metrics`)).text();
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1] ?? 0);
    };
    const open = async () => {
      const ctl = new AbortController();
      const res = await fetch(`${url}/v1/live/stream?minutes=90&api_key=${KEYS.viewer}`, { signal: ctl.signal });
      const reader = res.body!.getReader();
      const state = { events: 0, text: '' };
      const next = async () => {
        while ((state.text.match(/event: snapshot/g) ?? []).length <= state.events) state.text += new TextDecoder().decode((await reader.read()).value);
        state.events++;
      };
      return { ctl, state, next };
    };
    const [a, b, c] = [await open(), await open(), await open()];
    for (let i = 0; i < 5; i++) await Promise.all([a.next(), b.next(), c.next()]);
    expect(await metric('streampulse_live_streams')).toBe(3);
    // Every snapshot computed since the first stream opened went to it; three streams computing
    // their own would have made about three times as many.
    const computed = await metric('streampulse_live_snapshots_total\\{result="ok"\\}');
    expect(computed).toBeGreaterThanOrEqual(5);
    expect(computed).toBeLessThanOrEqual((a.state.text.match(/event: snapshot/g) ?? []).length + 2);
    for (const s of [a, b, c]) s.ctl.abort();
    await vi.waitFor(async () => expect(await metric('streampulse_live_streams')).toBe(0));
    await live.close();
  });
});

describe('alerts through the real adapter (alerts/ state in Redis, wired by bin/http-roles)', () => {
  const prefix = `${t.redisPrefix}real:`;
  let real: FastifyInstance;
  const state = (rule: string, labels: Record<string, string>, over: Partial<AlertState>): AlertState => ({
    key: alertKey(rule, labels),
    rule,
    labels,
    status: 'firing',
    activeAtMs: NOW - 600_000,
    firingAtMs: NOW - 420_000,
    resolvedAtMs: null,
    lastTrueMs: NOW - 60_000,
    value: 3.2,
    baseline: null,
    volume: 180,
    notifiedStatus: 'firing',
    notifiedAtMs: NOW - 400_000,
    notifications: 1,
    ...over,
  });
  const explanation: NonNullable<AlertState['explanation']> = {
    version: 1,
    metric: 'rebuffer_pct',
    unit: '%',
    kind: 'ratio',
    within: { cdn: 'akamai' },
    period: { from: iso(NOW - 660_000), to: iso(NOW - 420_000) },
    baseline_days: [1, 2],
    previous_period: false,
    current: 3.2,
    baseline: 0.6,
    change: 2.6,
    dimensions: ['country'],
    top: [
      {
        dimension: 'country',
        value: 'IN',
        share: 0.93,
        weight: 0.3,
        excess_share: 0.63,
        contribution: 2.418,
        rate_effect: 2.3,
        mix_effect: 0.118,
        current: 9.9,
        baseline: 0.8,
      },
    ],
    context: { slice: { dimension: 'country', value: 'IN' }, avg_concurrent_viewers: 41, views_started: 30, top_shows: [], lenses: [], jira: [] },
    grafana: '/d/streampulse-qoe',
    computed_ms: 120,
  };
  const reb = state('qoe_rebuffer_high', { cdn: 'akamai' }, { explanation });
  const vsf = state('qoe_vsf_high', {}, { status: 'pending', firingAtMs: null, value: 6.5, notifiedStatus: null, notifiedAtMs: null, notifications: 0 });
  const old = state(
    'business_payment_failures_high',
    {},
    { status: 'resolved', activeAtMs: NOW - 7_200_000, firingAtMs: NOW - 7_000_000, resolvedAtMs: NOW - 3_600_000, value: 12 },
  );
  const as = (key: string) => ({ 'x-api-key': key });

  beforeAll(async () => {
    // What the alerts role leaves in Redis after some evaluation steps.
    await new AlertStore(redis, prefix).commit({ rule: 'x', upserts: [reb, vsf], resolved: [old], removes: [], notifications: [], events: [], logs: [] }, NOW);
    const config = loadConfig({
      ...t.env,
      ROLES: 'api',
      REDIS_PREFIX: prefix,
      API_KEYS: Object.entries(KEYS)
        .map(([role, key]) => `${key}:${role}`)
        .join(','),
    });
    real = Fastify({ logger: false });
    await registerHttpRoles(real, {
      config,
      logger: createLogger('silent'),
      metrics: createMetrics(),
      producer: {} as EventProducer,
      redis,
      ch,
      clock: () => NOW,
    });
    await real.ready();
  });
  afterAll(async () => {
    await real?.close();
  });

  it('lists live alerts (firing first) with severity and summary from the rules file; state filters', async () => {
    const r = await real.inject({ method: 'GET', url: '/v1/alerts', headers: as(KEYS.viewer) });
    expect(r.statusCode, r.body).toBe(200);
    const list = r.json().alerts;
    expect(list.map((a: { id: string }) => a.id)).toEqual([reb.key, vsf.key]);
    expect(list[0]).toMatchObject({
      rule: 'qoe_rebuffer_high',
      state: 'firing',
      severity: 'critical',
      labels: { cdn: 'akamai' },
      value: 3.2,
      startsAt: iso(NOW - 420_000),
      endsAt: null,
      acknowledgedBy: null,
      silenced: false,
      summary: 'Rebuffering 3.20% of watch time on akamai (180 concurrent viewers)',
    });
    expect(list[1]).toMatchObject({ state: 'pending', severity: 'critical', startsAt: iso(NOW - 600_000) });
    expect(
      (await real.inject({ method: 'GET', url: '/v1/alerts?state=pending', headers: as(KEYS.viewer) })).json().alerts.map((a: { id: string }) => a.id),
    ).toEqual([vsf.key]);
    const resolved = (await real.inject({ method: 'GET', url: '/v1/alerts?state=resolved', headers: as(KEYS.viewer) })).json().alerts;
    expect(resolved).toHaveLength(1);
    expect(resolved[0]).toMatchObject({ id: old.key, state: 'resolved', endsAt: iso(NOW - 3_600_000) });
    const snap = (await real.inject({ method: 'GET', url: '/v1/live/snapshot?minutes=10', headers: as(KEYS.viewer) })).json();
    expect(snap.alerts).toMatchObject({ available: true });
    expect(snap.alerts.items.map((a: { id: string }) => a.id)).toEqual([reb.key, vsf.key]);
  });

  it('GET /v1/alerts/{id}: one alert with its explanation (live or last resolved), 404 otherwise; the alert panel says why', async () => {
    const r = await real.inject({ method: 'GET', url: `/v1/alerts/${encodeURIComponent(reb.key)}`, headers: as(KEYS.viewer) });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ id: reb.key, rule: 'qoe_rebuffer_high', state: 'firing', explanation });
    // The list stays compact: no explanation there.
    expect((await real.inject({ method: 'GET', url: '/v1/alerts', headers: as(KEYS.viewer) })).json().alerts[0].explanation).toBeUndefined();
    expect((await real.inject({ method: 'GET', url: `/v1/alerts/${encodeURIComponent(old.key)}`, headers: as(KEYS.viewer) })).json()).toMatchObject({
      state: 'resolved',
      explanation: null,
    });
    expect((await real.inject({ method: 'GET', url: '/v1/alerts/nope%2F0000', headers: as(KEYS.viewer) })).statusCode).toBe(404);
    const snap = (await real.inject({ method: 'GET', url: '/v1/live/snapshot?minutes=10', headers: as(KEYS.viewer) })).json();
    expect(snap.alerts.items[0].why).toBe('country=IN: 93 % of the change');
    expect(snap.alerts.items[1].why).toBeUndefined();
  });

  it('acknowledges by alert key (URL-encoded), 404 for unknown or resolved alerts', async () => {
    const ack = await real.inject({
      method: 'POST',
      url: `/v1/alerts/${encodeURIComponent(reb.key)}/ack`,
      headers: as(KEYS.admin),
      payload: { comment: 'on it' },
    });
    expect(ack.statusCode, ack.body).toBe(200);
    expect(ack.json()).toEqual({ acknowledged: true, id: reb.key });
    const stored = JSON.parse((await redis.hget(`${prefix}alerts:acks`, reb.key))!);
    expect(stored).toMatchObject({ alertKey: reb.key, atMs: NOW });
    expect(stored.by).toMatch(/^key_[0-9a-f]{12}$/);
    const a = (await real.inject({ method: 'GET', url: '/v1/alerts?state=firing', headers: as(KEYS.viewer) })).json().alerts[0];
    expect(a.acknowledgedBy).toBe(stored.by);
    expect((await real.inject({ method: 'POST', url: `/v1/alerts/${encodeURIComponent(old.key)}/ack`, headers: as(KEYS.admin), payload: {} })).statusCode).toBe(
      404,
    );
    expect((await real.inject({ method: 'POST', url: '/v1/alerts/nope%2F0000/ack', headers: as(KEYS.admin), payload: {} })).statusCode).toBe(404);
  });

  it('silences: rule → alertname matcher, end time from the injected clock, shown on matching alerts', async () => {
    const s = await real.inject({
      method: 'POST',
      url: '/v1/silences',
      headers: as(KEYS.admin),
      payload: { matchers: { rule: 'qoe_rebuffer_high', cdn: 'akamai' }, duration_minutes: 30, comment: 'CDN maintenance' },
    });
    expect(s.statusCode, s.body).toBe(201);
    const sil = s.json();
    expect(sil).toMatchObject({
      matchers: { rule: 'qoe_rebuffer_high', cdn: 'akamai' },
      startsAt: iso(NOW),
      endsAt: iso(NOW + 30 * 60_000),
      comment: 'CDN maintenance',
    });
    expect(sil.createdBy).toMatch(/^key_/);
    const raw = JSON.parse((await redis.hget(`${prefix}alerts:silences`, sil.id))!);
    expect(raw.matchers).toEqual([
      { name: 'alertname', value: 'qoe_rebuffer_high' },
      { name: 'cdn', value: 'akamai' },
    ]);
    expect((await real.inject({ method: 'GET', url: '/v1/silences', headers: as(KEYS.viewer) })).json().silences.map((x: { id: string }) => x.id)).toEqual([
      sil.id,
    ]);
    const list = (await real.inject({ method: 'GET', url: '/v1/alerts', headers: as(KEYS.viewer) })).json().alerts;
    expect(list.map((a: { silenced: boolean }) => a.silenced)).toEqual([true, false]);
    // Once the silence has ended (clock past endsAt) it is no longer listed.
    const later = createAlertsAdapter({
      alerting: createAlertingApi({ redis, redisPrefix: prefix, clock: () => NOW + 31 * 60_000 }),
      clock: () => NOW + 31 * 60_000,
    });
    expect(await later.listSilences()).toEqual([]);
    expect((await later.listAlerts({}))[0]).toMatchObject({ id: reb.key, silenced: false, severity: 'unknown' });
  });
});

describe('SQL for analysts', () => {
  const sql = (query: string, key = KEYS.analyst, params?: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/v1/sql', headers: { 'x-api-key': key }, payload: { query, params } });

  it('runs a SELECT with parameters and returns columns and rows', async () => {
    const r = await sql(
      `SELECT cdn, count() AS views FROM ${t.config.clickhouse.database}.qoe_views FINAL WHERE cdn != {skip:String} GROUP BY cdn ORDER BY cdn`,
      KEYS.analyst,
      { skip: '' },
    );
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().columns.map((c: { name: string }) => c.name)).toEqual(['cdn', 'views']);
    expect(r.json().row_count).toBeGreaterThan(1);
    expect((await sql('SELECT 1 AS one', KEYS.admin)).json().rows).toEqual([{ one: 1 }]);
  });

  it('refuses writes, DDL, several statements, SETTINGS and external table functions', async () => {
    const db = t.config.clickhouse.database;
    for (const q of [
      `INSERT INTO ${db}.fx_rates VALUES ('XXX', 1, 2, today(), 'x')`,
      `DROP TABLE ${db}.qoe_views`,
      `ALTER TABLE ${db}.qoe_views DELETE WHERE 1`,
      `SELECT 1; DROP TABLE ${db}.qoe_views`,
      `SELECT 1 SETTINGS readonly = 0`,
      `SELECT * FROM file('/etc/passwd', 'LineAsString')`,
      `SELECT * FROM url('http://example.com', 'CSV')`,
      `WITH x AS (SELECT 1) INSERT INTO ${db}.fx_rates SELECT 'X', 1, 2, today(), 'x'`,
    ]) {
      const r = await sql(q);
      expect(r.statusCode, q).toBe(403);
      expect(r.json().error).toBe('read_only');
    }
    const [n] = await queryRows<{ c: string }>(ch, `SELECT count() AS c FROM ${db}.fx_rates WHERE currency = 'XXX' OR currency = 'X'`);
    expect(Number(n!.c)).toBe(0);
  });

  it('limits result rows and answers 400 on a bad query', async () => {
    const big = await sql('SELECT number FROM numbers(1000000)');
    expect(big.statusCode).toBe(200);
    expect(big.json()).toMatchObject({ row_count: 100_000, truncated: true });
    expect((await sql('SELECT 1 AS one')).json().truncated).toBe(false);
    const bad = await sql('SELECT nope FROM nowhere_table');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().param).toBe('query');
  });
});

describe('rate limiting', () => {
  it('429 with Retry-After once a key has used its window', async () => {
    const prefix = `${t.redisPrefix}rl-test:`;
    // A fixed clock 20 s into a window, so the test cannot straddle a window boundary.
    const clock = () => 1_800_000_020_000;
    const a = await buildApp(
      { rateLimits: { viewer: 3, analyst: 25 }, sqlCost: 10, docs: false, limiter: new RedisRateLimiter(redis, prefix, 60_000, clock) },
      prefix,
    );
    const codes: number[] = [];
    for (let i = 0; i < 4; i++)
      codes.push((await a.inject({ method: 'GET', url: '/v1/production/summary', headers: { 'x-api-key': KEYS.viewer } })).statusCode);
    expect(codes).toEqual([200, 200, 200, 429]);
    const r = await a.inject({ method: 'GET', url: '/v1/production/summary', headers: { 'x-api-key': KEYS.viewer } });
    expect(r.statusCode).toBe(429);
    expect(r.headers['retry-after']).toBe('40');
    expect(r.json().error).toBe('rate_limited');
    // Other keys have their own budget; SQL costs 10 units: 2 calls fit in 25, the third does not.
    const sqlCodes: number[] = [];
    for (let i = 0; i < 3; i++)
      sqlCodes.push((await a.inject({ method: 'POST', url: '/v1/sql', headers: { 'x-api-key': KEYS.analyst }, payload: { query: 'SELECT 1' } })).statusCode);
    expect(sqlCodes).toEqual([200, 200, 429]);
    await a.close();
  });
});

describe('rollups and HTTP caching of closed answers (issue 20)', () => {
  it('the same answers from the rollups once sealed; closed ranges get Cache-Control max-age, an ETag and 304', async () => {
    const urls = [
      `/v1/qoe/timeseries?${RANGE}&step=300&group_by=cdn`,
      `/v1/qoe/timeseries?${RANGE}&step=3600`,
      `/v1/qoe/timeseries?from=${iso(NOW - 90 * 60_000)}&to=${iso(NOW - 31 * 60_000 + 500)}&step=60&group_by=country`,
      `/v1/business/hourly?${RANGE}`,
      '/v1/live/snapshot?minutes=120',
      `/v1/qoe/timeseries?${RANGE}&step=600&group_by=cdn&device_category=tv`,
      `/v1/qoe/timeseries?${RANGE}&step=300&device_category=tv`,
      // The creators' gift rollups (migration 021): whole closed hours, ragged ends and the open tail.
      `/v1/creators/top?${RANGE}&limit=3`,
      `/v1/creators/top?from=${iso(NOW - 150 * 60_000 + 500)}&to=${iso(NOW - 7 * 60_000)}`,
      // Whole hours, all sealed below: no kpi_gifts_1m side at all.
      `/v1/creators/top?from=${iso(NOW - 2 * 3_600_000)}&to=${iso(NOW - 3_600_000)}`,
      '/v1/creators/concentration',
    ];
    const before = await Promise.all(urls.map(async (u) => (await get(u)).json()));
    for (const b of before.slice(-6, -4)) expect(b.points.length).toBeGreaterThan(0);
    for (const b of before.slice(-4, -1)) expect(b.items.length).toBeGreaterThan(0);
    const open = await get(urls[0]!);
    expect(open.headers['cache-control']).toBe('private, no-cache');
    expect(open.headers.etag).toBeUndefined();
    // What the qoe and business roles' rollup job does once the watermark has passed (bin/pipeline.ts).
    const sealed = NOW - 30 * 60_000;
    expect((await sealQoe(ch, sealed)).length).toBe(5);
    expect((await sealBusiness(ch, sealed)).map((d) => d.name)).toEqual(['business_1h', 'gifts_1h']);
    const [g] = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${ch.database}.kpi_gifts_sender_1h`);
    expect(Number(g!.n)).toBeGreaterThan(0);
    const [n] = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${ch.database}.qoe_minute_rollup`);
    expect(Number(n!.n)).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1100)); // the API reads sealed points at most once a second
    for (const [i, u] of urls.entries()) expect((await get(u)).json(), u).toEqual(before[i]);
    const closedUrl = `/v1/qoe/timeseries?from=${iso(NOW - 2 * 3_600_000)}&to=${iso(sealed)}&step=300`;
    const closed = await get(closedUrl);
    expect(closed.statusCode).toBe(200);
    expect(closed.headers['cache-control']).toMatch(/^private, max-age=\d+$/);
    const etag = String(closed.headers.etag);
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await app.inject({ method: 'GET', url: closedUrl, headers: { 'x-api-key': KEYS.viewer, 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    expect((await get(`/v1/business/hourly?from=${iso(NOW - 2 * 3_600_000)}&to=${iso(NOW - 3_600_000)}`)).headers['cache-control']).toMatch(/max-age/);
    expect((await get(`/v1/business/hourly?${RANGE}`)).headers['cache-control']).toBe('private, no-cache');
  });
});

describe('late events in every answer over a period (issue 18)', () => {
  it('every GET route with a period (from/to, or a scored day as_of) has late_events in its schema and its answer', async () => {
    type Op = {
      parameters?: Array<{ in: string; name: string }>;
      responses: Record<string, { content?: Record<string, { schema: { properties?: Record<string, unknown> } }> }>;
    };
    const spec = (await get('/docs/json', null)).json<{ paths: Record<string, Record<string, Op>> }>();
    const periodRoutes = Object.entries(spec.paths)
      .filter(([, ops]) => ops.get?.parameters?.some((p) => p.in === 'query' && ['from', 'to', 'as_of'].includes(p.name)))
      .map(([path, ops]) => ({ path, op: ops.get! }));
    // The routes this session knows of; a new one is checked too.
    expect(periodRoutes.map((r) => r.path)).toEqual(
      expect.arrayContaining([
        '/v1/qoe/timeseries',
        '/v1/qoe/views-summary',
        '/v1/qoe/views',
        '/v1/business/hourly',
        '/v1/business/growth',
        '/v1/business/payments',
        '/v1/creators/top',
        '/v1/creators/concentration',
        '/v1/safety/summary',
        '/v1/safety/breakdown',
        '/v1/churn/accounts',
        '/v1/churn/cohorts',
      ]),
    );
    for (const { path, op } of periodRoutes) {
      expect(Object.keys(op.responses['200']!.content!['application/json']!.schema.properties ?? {}), path).toContain('late_events');
      const url =
        path.replace(/\{[^}]+\}/g, 'x') +
        (path.startsWith('/v1/churn') ? '' : `?${RANGE}`) +
        (path === '/v1/safety/breakdown' ? '&by=policy' : path === '/v1/business/payments' ? '&by=method' : '');
      const r = await get(url);
      expect(r.statusCode, `${url}: ${r.body}`).toBe(200);
      expect(Number.isInteger(r.json().late_events), url).toBe(true);
    }
  });

  it("counts the late events of the answer's processor, kinds and period", async () => {
    const [n] = await queryRows<{ business: string; gifts: string }>(
      ch,
      `SELECT countIf(processor = 'business') AS business, countIf(processor = 'business' AND endsWith(src_topic, 'gifts')) AS gifts
      FROM ${t.config.clickhouse.database}.late_events FINAL WHERE event_time >= fromUnixTimestamp64Milli(${NOW - 2 * 3_600_000}) AND event_time < fromUnixTimestamp64Milli(${NOW})`,
    );
    expect((await get(`/v1/business/growth?${RANGE}`)).json().late_events).toBe(Number(n!.business));
    expect((await get(`/v1/creators/top?${RANGE}`)).json().late_events).toBe(Number(n!.gifts));
  });
});
