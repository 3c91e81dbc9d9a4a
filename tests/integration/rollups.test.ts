/**
 * Rollups of closed buckets (migration 017, sinks/clickhouse/rollups.ts, issue 20): the QoE series
 * and the hourly business KPIs read from the rollups give exactly the answer computed from the
 * source rows (FINAL) — for every step, grouping and filter the planner sends to a rollup, ranges
 * with ragged ends, ranges across the sealed point and open buckets — and sealing is idempotent.
 * Source rows include superseded versions (rows rewritten by the processor) that must not count.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRIC, P, nearestRankSql } from '../../contracts/metrics-catalog.js';
import { command, openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { MIGRATIONS_DIR, migrate } from '../../sinks/clickhouse/migrate.js';
import {
  M,
  QOE_ROLLUP_STEPS,
  QOE_SERIES_STEPS,
  SERIES_STORED_RANKS,
  qoeRollupPlan,
  qoeRollupStep,
  sealBusiness,
  sealQoe,
  sealedState,
} from '../../sinks/clickhouse/rollups.js';
import { qoeRollupSeriesSql, qoeSeriesSql } from '../../api/routes/qoe.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('rollups');
let ch: ClickHouse;
const H = 3_600_000;
const T0 = Date.UTC(2026, 0, 5, 0); // data: 4 hours from T0
const SEAL = T0 + 2 * H + 17 * 60_000; // closed up to here (not on a bucket boundary)

beforeAll(async () => {
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  await migrate(ch);
  const db = ch.database;
  const t0 = `toDateTime(${T0 / 1000}, 'UTC')`;
  // Per (minute, key, partition): an old version with different counts, then the final one.
  for (const [version, k] of [
    [1, 3],
    [2, 1],
  ] as const) {
    await command(
      ch,
      `
      INSERT INTO ${db}.qoe_minute (window_start, cdn, device_category, country, asn, content_id, concurrent_viewers, views_started, startup_ms_samples, playing_ms,
        rebuffer_ms, rebuffer_count, seek_ms, startup_wait_ms, bitrate_kbps_ms, views_ended, plays, vsf_views, ebvs_views, business_exception_views, playback_failure_views,
        fatal_errors, is_final, src_topic, src_partition, version)
      SELECT ${t0} + toIntervalMinute(intDiv(number, 40)), ['akamai', 'fastly', 'edgio'][1 + cityHash64(number, 1) % 3], ['tv', 'mobile'][1 + cityHash64(number, 2) % 2],
        ['US', 'DE', 'BR', 'JP'][1 + cityHash64(number, 3) % 4], toUInt32(7000 + cityHash64(number, 4) % 5), concat('c', toString(cityHash64(number, 5) % 7)),
        ${k} * (1 + number % 3), ${k} * (number % 2), arrayMap(i -> toUInt64(300 + cityHash64(number, i) % 4000), range(number % 3)), ${k} * (50000 + number % 9000),
        ${k} * (cityHash64(number, 6) % 3000), ${k} * (number % 4), ${k} * (number % 500), ${k} * (number % 700), ${k} * (50000 + number % 9000) * 3000,
        number % 3, number % 2, toUInt64(number % 17 = 0), toUInt64(number % 19 = 0), 0, toUInt64(number % 23 = 0), toUInt64(number % 29 = 0),
        ${version - 1}, 'playback', toUInt16(number % 3), ${version}
      FROM numbers(${4 * 60 * 40})`,
    );
  }
  for (const [version, k] of [
    [1, 2],
    [2, 1],
  ] as const) {
    await command(
      ch,
      `
      INSERT INTO ${db}.kpi_payments_1m (window_start, method, plan, og_tier, country, attempts, succeeded, failed, gross_usd_micros, refunds_usd_micros, chargebacks_usd_micros,
        net_usd_micros, topups, topup_usd_micros, is_final, src_topic, src_partition, version)
      SELECT ${t0} + toIntervalMinute(intDiv(number, 6)), ['card', 'paypal'][1 + number % 2], 'basic', 0, ['US', 'DE', 'BR'][1 + intDiv(number, 2) % 3], ${k} * (2 + number % 4),
        ${k} * (1 + number % 4), ${k}, ${k} * 9990000, 0, 0, ${k} * 9990000, 0, 0, ${version - 1}, 'payments', toUInt16(number % 3), ${version}
      FROM numbers(${4 * 60 * 6})`,
    );
    await command(
      ch,
      `
      INSERT INTO ${db}.account_activity_1h (hour, account_id, played, paid, gifted, net_usd_micros, gift_usd_micros, is_final, src_topic, src_partition, version)
      SELECT ${t0} + toIntervalHour(intDiv(number, 300)), concat('a', toString(cityHash64(number) % 500)), 1, toUInt8(number % ${3 + k} = 0), 0, if(number % 7 = 0, -5000000, 9990000 * (number % 3)), 0,
        ${version - 1}, 'payments', toUInt16(number % 3), ${version}
      FROM numbers(${4 * 300})`,
    );
  }
  // Gifts: an old version with other sums, then the final one (the creators' rollups must fold them).
  for (const [version, k] of [
    [1, 4],
    [2, 1],
  ] as const)
    await command(
      ch,
      `
    INSERT INTO ${db}.kpi_gifts_1m (window_start, creator_id, sender_account_id, gifts, quantity, coins, value_usd_micros, is_final, src_topic, src_partition, version)
    SELECT ${t0} + toIntervalMinute(number % 240), concat('cr', toString(1 + cityHash64(number, 1) % 4)), concat('a', toString(number % 50)), ${k}, 1, ${k} * 10, ${k} * 100000 * (1 + number % 3),
      ${version - 1}, 'gifts', 0, ${version} FROM numbers(2000)`,
    );
});

afterAll(async () => {
  await ch?.close();
  await cleanupTestEnv(t);
});

const s = (ms: number) => (ms / 1000).toFixed(3);

describe('QoE rollups', () => {
  it("seal closed buckets only, once, up to each step's last whole bucket", async () => {
    const done = await sealQoe(ch, SEAL, 1);
    expect(done.map((d) => [d.name, d.toMs])).toEqual([
      ['qoe_3600', T0 + 2 * H],
      ['qoe_300', T0 + 2 * H + 15 * 60_000],
      ['qoe_60', T0 + 2 * H + 17 * 60_000],
      // Per single dimension (migration 022), from the rows above (not at 1 min: QOE_SERIES_STEPS).
      ['qoe_series_3600', T0 + 2 * H],
      ['qoe_series_300', T0 + 2 * H + 15 * 60_000],
    ]);
    expect(await sealQoe(ch, SEAL, 2)).toEqual([]);
    const [r] = await queryRows<{ n: string; last: string }>(
      ch,
      `SELECT count() AS n, toUnixTimestamp(max(bucket)) AS last FROM ${ch.database}.qoe_minute_rollup WHERE step = 300`,
    );
    expect(Number(r!.n)).toBeGreaterThan(0);
    expect(Number(r!.last) * 1000).toBe(T0 + 2 * H + 10 * 60_000);
  });

  const cases: Array<{ from: number; to: number; step: number; group: string; filter?: [string, string] }> = [
    { from: T0, to: T0 + 4 * H, step: 300, group: 'cdn' }, // across the sealed point, into open buckets
    { from: T0, to: T0 + 4 * H, step: 3600, group: 'none' },
    { from: T0 + 7 * 60_000 + 500, to: T0 + 3 * H + 11 * 60_000, step: 600, group: 'country' }, // ragged ends
    { from: T0 + 30 * 60_000, to: T0 + 2 * H + 30 * 60_000, step: 60, group: 'device_category', filter: ['cdn', 'akamai'] },
    { from: T0 + H, to: T0 + 2 * H, step: 3600, group: 'cdn', filter: ['country', 'DE'] },
    { from: T0 + 59 * 60_000, to: T0 + 62 * 60_000, step: 60, group: 'none' }, // shorter than a bucket of the larger steps
  ];
  for (const c of cases) {
    it(`step ${c.step}, group ${c.group}${c.filter ? `, ${c.filter.join('=')}` : ''}: the same points as from qoe_minute`, async () => {
      const g = qoeRollupStep(c.step, c.group, c.filter ? [c.filter[0]] : []);
      expect(g).not.toBeNull();
      const groupExpr = c.group === 'none' ? "'all'" : c.group;
      const filters = c.filter ? ` AND ${c.filter[0]} = {f:String}` : '';
      const params = { from: s(c.from), to: s(c.to), step: c.step, f: c.filter?.[1] ?? '' };
      const lo = Math.ceil(Math.floor(c.from / 1000) / g!) * g!;
      const hiCap = Math.floor(Math.floor(c.to / 1000) / g!) * g!;
      const want = await queryRows(ch, qoeSeriesSql(ch.database, groupExpr, filters), params);
      const got = await queryRows(ch, qoeRollupSeriesSql(ch.database, groupExpr, filters, g!), { ...params, lo, hiCap });
      expect(want.length).toBeGreaterThan(0);
      expect(got).toEqual(want);
      // As the API runs it (qoeSeries): the sealed point read first, constant bounds, an empty side left out.
      const sealed = await sealedState(ch, 'qoe');
      const hi = Math.max(lo, Math.min(hiCap, Math.floor((sealed.get(`qoe_${g}`) ?? 0) / 1000)));
      const split = { rollup: hi > lo, source: c.from / 1000 < lo || c.to / 1000 > hi };
      expect(await queryRows(ch, qoeRollupSeriesSql(ch.database, groupExpr, filters, g!, split), { ...params, lo, hiCap, hi })).toEqual(want);
      // Without filters the API reads qoe_series_rollup (one row per bucket and value): the same points.
      const plan = qoeRollupPlan(c.step, c.group, c.filter ? [c.filter[0]] : []);
      expect(plan!.step).toBe(g);
      if (c.filter || g === 60) expect(plan!.dim).toBeNull();
      else {
        expect(plan!.dim).toBe(c.group === 'none' ? 'all' : c.group);
        expect(await queryRows(ch, qoeRollupSeriesSql(ch.database, groupExpr, '', g!, undefined, plan!.dim), { ...params, lo, hiCap })).toEqual(want);
        const hiD = Math.max(lo, Math.min(hiCap, Math.floor((sealed.get(plan!.sealed) ?? 0) / 1000)));
        const splitD = { rollup: hiD > lo, source: c.from / 1000 < lo || c.to / 1000 > hiD };
        expect(splitD.rollup).toBe(split.rollup);
        expect(await queryRows(ch, qoeRollupSeriesSql(ch.database, groupExpr, '', g!, splitD, plan!.dim), { ...params, lo, hiCap, hi: hiD })).toEqual(want);
        // At the rollup's own step (as qoeSeries asks): the sealed points' percentiles stored in their rows (migration 024).
        if (c.step === g) {
          expect(await queryRows(ch, qoeRollupSeriesSql(ch.database, groupExpr, '', g, splitD, plan!.dim, true), { ...params, lo, hiCap, hi: hiD })).toEqual(
            want,
          );
          expect(await queryRows(ch, qoeRollupSeriesSql(ch.database, groupExpr, '', g, undefined, plan!.dim, true), { ...params, lo, hiCap })).toEqual(want);
        }
      }
    });
  }

  it('closed buckets are read from the rollup: the answer stands when their minute rows are gone', async () => {
    const db = ch.database;
    const params = { from: s(T0), to: s(T0 + 2 * H), step: 3600, lo: T0 / 1000, hiCap: (T0 + 2 * H) / 1000 };
    const before = await queryRows(ch, qoeRollupSeriesSql(db, 'cdn', '', 3600), params);
    await command(ch, `CREATE TABLE ${db}.qoe_minute_keep AS ${db}.qoe_minute`);
    await command(ch, `INSERT INTO ${db}.qoe_minute_keep SELECT * FROM ${db}.qoe_minute`);
    await command(ch, `DELETE FROM ${db}.qoe_minute WHERE window_start < toDateTime({s:UInt32})`, { s: (T0 + 2 * H) / 1000 });
    try {
      expect(await queryRows(ch, qoeSeriesSql(db, 'cdn', ''), params)).toEqual([]);
      expect(await queryRows(ch, qoeRollupSeriesSql(db, 'cdn', '', 3600), params)).toEqual(before);
    } finally {
      await command(ch, `TRUNCATE TABLE ${db}.qoe_minute`);
      await command(ch, `INSERT INTO ${db}.qoe_minute SELECT * FROM ${db}.qoe_minute_keep`);
      await command(ch, `DROP TABLE ${db}.qoe_minute_keep`);
    }
  });

  it('a rebuild after a crash before the sealed mark gives the same rollup rows', async () => {
    const db = ch.database;
    const before = await queryRows(ch, `SELECT * EXCEPT version FROM ${db}.qoe_minute_rollup FINAL ORDER BY step, bucket, cdn, device_category, country`);
    const series = `SELECT * EXCEPT version FROM ${db}.qoe_series_rollup FINAL ORDER BY step, dim, bucket, value`;
    const beforeSeries = await queryRows(ch, series);
    expect(beforeSeries.length).toBeGreaterThan(0);
    await command(ch, `TRUNCATE TABLE ${db}.rollup_sealed_qoe`);
    expect((await sealQoe(ch, SEAL, 3)).length).toBe(QOE_ROLLUP_STEPS.length + QOE_SERIES_STEPS.length);
    expect(await queryRows(ch, `SELECT * EXCEPT version FROM ${db}.qoe_minute_rollup FINAL ORDER BY step, bucket, cdn, device_category, country`)).toEqual(
      before,
    );
    expect(await queryRows(ch, series)).toEqual(beforeSeries);
  });

  it("qoe_series_rollup's stored percentiles are the catalog's nearest rank of the row's samples (migration 024)", async () => {
    const sql = readFileSync(join(MIGRATIONS_DIR, '024_series_percentiles.sql'), 'utf8');
    for (const m of SERIES_STORED_RANKS) {
      const k = METRIC[m]!.kind;
      expect(k.kind === 'nearest_rank' && k.scale === 1, m).toBe(true);
      if (k.kind !== 'nearest_rank') continue;
      const expr = nearestRankSql(P(k.samples), k.q);
      expect(sql).toContain(`${M(m)} Nullable(UInt64) DEFAULT ${expr}`);
      const [r] = await queryRows<{ rows: string; bad: string; some: string }>(
        ch,
        `SELECT count() AS rows, countIf(NOT (${M(m)} <=> ${expr})) AS bad, countIf(${M(m)} IS NOT NULL) AS some FROM ${ch.database}.qoe_series_rollup FINAL`,
      );
      expect(Number(r!.rows)).toBeGreaterThan(0);
      expect(Number(r!.some)).toBeGreaterThan(0);
      expect(Number(r!.bad), m).toBe(0);
    }
    // Stored with the part (MATERIALIZE ran, and sealQoe's inserts compute the DEFAULT): not computed when read.
    const [c] = await queryRows<{ n: string }>(
      ch,
      `SELECT count() AS n FROM system.parts_columns WHERE database = {db:String} AND table = 'qoe_series_rollup' AND active AND column = {c:String}`,
      { db: ch.database, c: M(SERIES_STORED_RANKS[0]) },
    );
    expect(Number(c!.n)).toBeGreaterThan(0);
  });

  it("the overall safety score's views: Σ views_started, closed hours from qoe_series_rollup, the rest from qoe_minute (migration 023)", async () => {
    const db = ch.database;
    const views = async () => Number((await queryRows<{ v: string }>(ch, `SELECT views AS v FROM ${db}.safety_score_overall`))[0]!.v);
    const [src] = await queryRows<{ v: string }>(ch, `SELECT sum(views_started) AS v FROM ${db}.qoe_minute FINAL`);
    const want = Number(src!.v);
    expect(want).toBeGreaterThan(0);
    expect((await sealedState(ch, 'qoe')).get('qoe_series_3600')).toBe(T0 + 2 * H);
    expect(await views()).toBe(want);
    // The sealed hours come from the rollup: with their minute rows gone the count stands.
    await command(ch, `CREATE TABLE ${db}.qoe_minute_keep2 AS ${db}.qoe_minute`);
    await command(ch, `INSERT INTO ${db}.qoe_minute_keep2 SELECT * FROM ${db}.qoe_minute`);
    await command(ch, `DELETE FROM ${db}.qoe_minute WHERE window_start < toDateTime({s:UInt32})`, { s: (T0 + 2 * H) / 1000 });
    try {
      expect(await views()).toBe(want);
    } finally {
      await command(ch, `TRUNCATE TABLE ${db}.qoe_minute`);
      await command(ch, `INSERT INTO ${db}.qoe_minute SELECT * FROM ${db}.qoe_minute_keep2`);
      await command(ch, `DROP TABLE ${db}.qoe_minute_keep2`);
    }
    // Nothing sealed (a replay emptied the rollups): all from qoe_minute, the same count.
    const marks = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${db}.rollup_sealed_qoe`);
    await command(ch, `TRUNCATE TABLE ${db}.rollup_sealed_qoe`);
    try {
      expect(await views()).toBe(want);
    } finally {
      await ch.client.insert({ table: `${db}.rollup_sealed_qoe`, values: marks, format: 'JSONEachRow' });
    }
  });

  it('asn and content_id group-bys and filters are not answered from the rollup', () => {
    expect(qoeRollupStep(300, 'asn', [])).toBeNull();
    expect(qoeRollupStep(300, 'content_id', [])).toBeNull();
    expect(qoeRollupStep(300, 'none', ['content_id'])).toBeNull();
    expect(qoeRollupStep(90 * 60, 'none', [])).toBe(300);
    expect(qoeRollupStep(120, 'cdn', [])).toBe(60);
  });
});

describe('business hourly rollup', () => {
  it("closed hours hold exactly the view's rows", async () => {
    const db = ch.database;
    expect((await sealBusiness(ch, SEAL, 1)).map((d) => [d.name, d.toMs])).toEqual([
      ['business_1h', T0 + 2 * H],
      ['gifts_1h', T0 + 2 * H],
    ]);
    expect((await sealedState(ch, 'business')).get('business_1h')).toBe(T0 + 2 * H);
    const view = await queryRows(ch, `SELECT * FROM ${db}.kpi_business_1h WHERE hour < toDateTime({s:UInt32}) ORDER BY hour`, { s: (T0 + 2 * H) / 1000 });
    const closed = await queryRows(ch, `SELECT * EXCEPT version FROM ${db}.kpi_business_1h_closed FINAL ORDER BY hour`);
    expect(view.length).toBe(2);
    expect(closed).toEqual(view);
  });

  it("closed hours of gifts hold the final kpi_gifts_1m rows' sums per creator and per sender (migration 021)", async () => {
    const db = ch.database;
    const sums = (by: string, from: string) =>
      queryRows(
        ch,
        `SELECT toUnixTimestamp(hour) AS h, ${by}, toString(sum(gifts)) AS g, toString(sum(coins)) AS c, toString(sum(value_usd_micros)) AS v
         FROM (${from === 'kpi_gifts_1m' ? `SELECT toStartOfHour(window_start) AS hour, creator_id, sender_account_id, gifts, coins, value_usd_micros FROM ${db}.kpi_gifts_1m FINAL` : `SELECT * FROM ${db}.${from} FINAL`})
         WHERE hour < toDateTime({s:UInt32})
         GROUP BY h, ${by} ORDER BY h, ${by}`,
        { s: (T0 + 2 * H) / 1000 },
      );
    const perSender = await sums('creator_id, sender_account_id', 'kpi_gifts_1m');
    expect(perSender.length).toBeGreaterThan(100);
    expect(await sums('creator_id, sender_account_id', 'kpi_gifts_sender_1h')).toEqual(perSender);
    const perCreator = await sums('creator_id', 'kpi_gifts_1m');
    expect(perCreator.length).toBe(8);
    expect(await sums('creator_id', 'kpi_gifts_creator_1h')).toEqual(perCreator);
    // The hours after the sealed point are not in the rollups.
    const [late] = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${db}.kpi_gifts_sender_1h WHERE hour >= toDateTime({s:UInt32})`, {
      s: (T0 + 2 * H) / 1000,
    });
    expect(Number(late!.n)).toBe(0);
  });
});
