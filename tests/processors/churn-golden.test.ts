/**
 * Churn on the golden input (tests/golden/churn, worked out by hand in its README): daily facts in
 * memory (straight, at several partitionings, crash + restore mid-way, a batch per record), then
 * the day-close scoring (churnScoreRows); and on embedded ClickHouse: full migrate(), the facts
 * inserted, scoreChurnDay, churn_scores and churn_cohorts read back. ClickHouse (FINAL, partial
 * rows summed) and the in-memory TS path must agree to 1e-9, and both give the hand-worked rows.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateEvent } from '../../contracts/validate.js';
import { churnProcessor, type ChurnState } from '../../processors/churn/churn.processor.js';
import { churnScoreRows, scoreChurnDay, scoreClosedChurnDays, type ChurnDailyRow, type ChurnScoreRow } from '../../processors/churn/churn-scores.js';
import { ProcessorTestDriver } from '../../processors/core/test-driver.js';
import { insertRows, openClickHouse, queryRows } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { REPO_ROOT } from '../helpers/env.js';
import { loadGoldenExpected, loadGoldenInput, sumBy, toDriverRecords } from '../helpers/golden.js';

type Expected = {
  graceMs: number;
  allowedLatenessMs: number;
  day: number;
  churn_scores: Array<Record<string, unknown>>;
  churn_cohorts: Array<Record<string, unknown>>;
};
const all = loadGoldenInput('churn');
const expected = loadGoldenExpected<Expected>('churn');
const KINDS = new Set(['payments', 'playback', 'gifts']);
const input = all.filter((r) => KINDS.has(r.kind));
const catalog = all.filter((r) => r.kind === 'catalog');
const genreOf = new Map(catalog.map((r) => [r.event.content_id as string, r.event.genre as string]));
const DAY = expected.day;

const newDriver = () => new ProcessorTestDriver<ChurnState>(churnProcessor({ graceMs: expected.graceMs, allowedLatenessMs: expected.allowedLatenessMs }));
const factRows = (d: ProcessorTestDriver<ChurnState>) => {
  d.flush();
  return d.table('churn_account_daily', ['day', 'account_id']) as unknown as ChurnDailyRow[];
};
const FACT_VALUES = [
  'views',
  'playing_ms',
  'rebuffer_ms',
  'vsf',
  'playback_failures',
  'revenue_usd_micros',
  'gift_usd_micros',
  'payment_failures',
  'downgrades',
];
const summedFacts = (rows: ChurnDailyRow[]) => sumBy(rows as unknown as Record<string, unknown>[], ['day', 'account_id'], FACT_VALUES);

function expectRows(actual: Array<Record<string, unknown>>, want: Array<Record<string, unknown>>, riskDigits = 6) {
  expect(actual.map((r) => r.account_id ?? `${r.plan}/${r.tenure_band}/${r.top_genre}`)).toEqual(
    want.map((r) => r.account_id ?? `${r.plan}/${r.tenure_band}/${r.top_genre}`),
  );
  actual.forEach((a, i) => {
    for (const [k, v] of Object.entries(want[i]!)) {
      const got = a[k];
      const what = `${String(want[i]!.account_id ?? want[i]!.plan)}.${k}`;
      if (typeof v === 'number') expect(Number(got), what).toBeCloseTo(v, ['risk', 'avg_risk', 'revenue_at_risk_usd'].includes(k) ? riskDigits : 9);
      else if (typeof v === 'boolean') expect(Boolean(Number(got)), what).toBe(v);
      else expect(got, what).toEqual(v);
    }
  });
}

/** The cohort rows the view should give, computed from the scored rows in TS. */
function cohortsOf(rows: ChurnScoreRow[]) {
  const m = new Map<
    string,
    { plan: string; tenure_band: string; top_genre: string; accounts: number; high_risk_accounts: number; risk: number; revenue_at_risk_usd: number }
  >();
  for (const r of rows) {
    const k = `${r.plan}/${r.tenure_band}/${r.top_genre}`;
    const c = m.get(k) ?? {
      plan: r.plan,
      tenure_band: r.tenure_band,
      top_genre: r.top_genre,
      accounts: 0,
      high_risk_accounts: 0,
      risk: 0,
      revenue_at_risk_usd: 0,
    };
    c.accounts++;
    c.high_risk_accounts += r.level === 'high' ? 1 : 0;
    c.risk += r.risk;
    c.revenue_at_risk_usd += r.risk * r.revenue_usd_28d;
    m.set(k, c);
  }
  return [...m]
    .sort((a, b) => a[0].localeCompare(b[0]))
    .map(([, c]) => ({
      plan: c.plan,
      tenure_band: c.tenure_band,
      top_genre: c.top_genre,
      accounts: c.accounts,
      high_risk_accounts: c.high_risk_accounts,
      avg_risk: c.risk / c.accounts,
      revenue_at_risk_usd: c.revenue_at_risk_usd,
    }));
}

describe('churn golden (in memory)', () => {
  it('every golden event is valid against its contract', () => {
    for (const r of all) expect(validateEvent(r.kind, r.event), JSON.stringify(r.event)).toMatchObject({ ok: true });
  });

  const straightDriver = newDriver();
  straightDriver.pipe(toDriverRecords(input, 1));
  const straight = factRows(straightDriver);
  const straightScores = churnScoreRows(DAY, straight, genreOf);

  it('straight run gives the hand-worked scores, levels and reasons', () => {
    expectRows(straightScores as unknown as Array<Record<string, unknown>>, expected.churn_scores);
  });

  it('hand-worked cohorts (plan × tenure band × top genre)', () => {
    expectRows(cohortsOf(straightScores), expected.churn_cohorts);
  });

  it('failed payments and falling watch time score higher than the steady payer', () => {
    const by = new Map(straightScores.map((r) => [r.account_id, r]));
    expect(by.get('a-falling')!.risk).toBeGreaterThan(by.get('a-steady')!.risk);
    expect(by.get('a-falling')!.level).toBe('high');
    expect(by.get('a-steady')!.level).toBe('low');
  });

  function sameAsStraight(rows: ChurnDailyRow[]) {
    expect(summedFacts(rows)).toEqual(summedFacts(straight));
    const scores = churnScoreRows(DAY, rows, genreOf);
    expect(scores).toEqual(straightScores);
  }

  it.each([2, 3, 5])('%i partitions per topic give the same facts and scores', (parts) => {
    const d = newDriver();
    d.pipe(toDriverRecords(input, parts));
    sameAsStraight(factRows(d));
  });

  it.each([40, 150, 260, 320])('crash after %i records: restore from the checkpoint, reprocess the rest', (cut) => {
    const records = toDriverRecords(input, 3);
    const d = newDriver();
    d.pipe(records.slice(0, cut));
    const ckpt = d.checkpoint();
    d.pipe(records.slice(cut, cut + 7)); // lost with the crash
    d.restore(ckpt);
    d.pipe(records.slice(cut + 7));
    sameAsStraight(factRows(d));
  });

  it('one record per batch gives the same facts and scores', () => {
    const d = newDriver();
    for (const r of toDriverRecords(input, 2)) d.pipe([r]);
    sameAsStraight(factRows(d));
  });

  it('scores are only as of their day: nothing after D counts, earlier days differ', () => {
    const before = churnScoreRows(DAY - 7, straight, genreOf);
    const falling = before.find((r) => r.account_id === 'a-falling')!;
    expect(falling.payment_failures_28d).toBe(0);
    expect([falling.views_7d, falling.days_since_last_view, falling.trend]).toEqual([7, 0, 7 / (24 / 4)]); // as of day 23: 7 h in 7 d, 24 h (days 0..23) in 28 d
    expect(before.find((r) => r.account_id === 'a-new')).toBeUndefined(); // not a customer yet
  });

  // ClickHouse: the same facts (a 3-partition run with a crash) through migrate(), FINAL and scoreChurnDay.
  const chdbPath = join(REPO_ROOT, '.data/test', `churn-golden-${process.pid}-${Date.now()}`);
  afterAll(() => rmSync(chdbPath, { recursive: true, force: true }));
  it('on embedded ClickHouse: churn_scores and churn_cohorts equal the TS rows (1e-9) and the hand-worked ones', async () => {
    const ch = await openClickHouse({ url: null, chdbPath, database: `churn_golden_${process.pid}`, user: 'default', password: '' });
    try {
      await migrate(ch);
      const records = toDriverRecords(input, 3);
      const d = newDriver();
      d.pipe(records.slice(0, 200));
      const ckpt = d.checkpoint();
      d.pipe(records.slice(200, 210));
      d.restore(ckpt);
      d.pipe(records.slice(210));
      d.flush();
      await insertRows(ch, 'churn_account_daily', d.emitted.get('churn_account_daily')!); // every emitted version: FINAL must pick the newest
      await insertRows(
        ch,
        'raw_catalog',
        catalog.map((r, i) => ({ ...r.event, src_topic: 'catalog', src_partition: 0, src_offset: i, version: i + 1 })),
      );

      const written = await scoreChurnDay(ch, DAY, 1);
      expect(written).toEqual(straightScores);
      const read = async () =>
        (
          await queryRows<Record<string, unknown>>(
            ch,
            `SELECT * EXCEPT (day, version), toInt32(dateDiff('day', toDate('1970-01-01'), day)) AS day_num FROM ${ch.database}.churn_scores FINAL WHERE day = toDate({d:Int32}) ORDER BY account_id`,
            { d: DAY },
          )
        ).map(({ day_num, ...r }): Record<string, unknown> => ({ ...r, day: day_num }));
      const rows = await read();
      expectRows(rows, expected.churn_scores);
      expectRows(
        rows,
        straightScores.map(({ contributions: _c, ...r }): Record<string, unknown> => r),
        9,
      );
      for (const [i, r] of rows.entries())
        for (const [k, v] of Object.entries(straightScores[i]!.contributions))
          expect(Number((r.contributions as Record<string, unknown>)[k])).toBeCloseTo(v, 9);

      const cohorts = await queryRows<Record<string, unknown>>(
        ch,
        `SELECT * FROM ${ch.database}.churn_cohorts WHERE day = toDate({d:Int32}) ORDER BY plan, tenure_band, top_genre`,
        { d: DAY },
      );
      expectRows(cohorts, expected.churn_cohorts);
      expectRows(cohorts, cohortsOf(straightScores), 9);

      // Idempotent: scoring the day again replaces the rows with identical ones.
      await scoreChurnDay(ch, DAY, 2);
      expect(await read()).toEqual(rows);

      // The scheduled job resumes after the last day scored (D) and rescores `rescoreDays` days before it.
      const job = (nowMs: number) => scoreClosedChurnDays(ch, { nowMs, closeDelayMs: 3 * 3_600_000, rescoreDays: 1 });
      const dayEnd = (DAY + 1) * 86_400_000;
      expect(await job(dayEnd + 2 * 3_600_000)).toEqual([]); // D closes at its end + 3 h and is already scored
      expect(await job(dayEnd + 3 * 3_600_000)).toEqual([DAY]); // rescored (late corrections)
      expect(await job(dayEnd + 86_400_000 + 3 * 3_600_000)).toEqual([DAY, DAY + 1]); // D again (one rescore day), then D + 1
      const next = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${ch.database}.churn_scores FINAL WHERE day = toDate({d:Int32})`, {
        d: DAY + 1,
      });
      expect(Number(next[0]!.n)).toBe(4);
    } finally {
      await ch.close();
    }
  }, 120_000);
});
