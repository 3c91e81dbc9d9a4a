/**
 * The metric catalog is the one place formulas live (issue 18):
 *  - migration 016 (views) and docs/metrics.md are generated from it and committed current;
 *  - no formula fragment is written in api/, alerts/ or grafana/src outside the catalog (grep);
 *  - the percentile method is nearest rank, and differs from ClickHouse's quantileExact exactly
 *    where the catalog says (q·n whole), checked on ClickHouse with the worked examples.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATALOG, METRIC, SOURCES, metricSql, metricsDoc, nearestRank, nearestRankSql } from '../contracts/metrics-catalog.js';
import { openClickHouse, queryRows, type ClickHouse } from '../sinks/clickhouse/client.js';
import { MIGRATIONS_DIR } from '../sinks/clickhouse/migrate.js';
import { metricViewsMigration } from '../sinks/clickhouse/metric-views.js';
import { REPO_ROOT, cleanupTestEnv, testEnv } from './helpers/env.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/**
 * Fragments of formulas that must come from the catalog. Each is a restatement of a catalogued
 * formula (or of a percentile method) as it was written before the catalog existed.
 */
const FRAGMENTS: Array<[string, RegExp]> = [
  [
    'a ClickHouse quantile function (the one method is nearest rank: nearestRankSql)',
    /\bquantile(Exact|ExactInclusive|ExactLow|ExactHigh|TDigest|Timing)?(If)?\s*\(/,
  ],
  ['nearest rank written by hand', /ceil\(\s*0\.\d+\s*\*/],
  ['a rebuffer ratio written by hand', /sum\(rebuffer_ms\)\s*\//],
  ['watch time written by hand', /playing_ms\s*\+\s*rebuffer_ms|sum\(playing_ms\)\s*\+\s*sum\(rebuffer_ms\)/],
  ['a VSF / failure / EBVS share written by hand', /\/\s*(greatest\()?sum\(views_ended\)/],
  ['a payment failure rate written by hand', /sum\(failed\)\s*\/\s*(greatest\()?sum\(attempts\)/],
  ['net payers written by hand', /countIf\(net\w*\s*>\s*0\)/],
  ['payers written by hand', /countIf\(paid\s*=\s*1\)|uniqExactIf\(account_id,\s*paid/],
  ['an average bitrate written by hand', /sum\(bitrate_kbps_ms\)\s*\/\s*sum\(playing_ms\)/],
  ['the old paying_accounts name', /paying_accounts/],
];

describe('the metric catalog', () => {
  it('migration 016 is the views generated from the catalog (npx tsx scripts/metric-views.ts)', () => {
    expect(readFileSync(join(MIGRATIONS_DIR, '016_metric_views.sql'), 'utf8')).toBe(metricViewsMigration());
  });

  it('docs/metrics.md is generated from the catalog (npx tsx scripts/metrics-doc.ts)', () => {
    expect(readFileSync(join(REPO_ROOT, 'docs', 'metrics.md'), 'utf8')).toBe(metricsDoc());
  });

  it('no formula fragment in api/, alerts/ or grafana/src outside the catalog', () => {
    const found: string[] = [];
    for (const dir of ['api', 'alerts', join('grafana', 'src')]) {
      for (const f of files(join(REPO_ROOT, dir))) {
        const lines = readFileSync(f, 'utf8').split('\n');
        lines.forEach((line, i) => {
          for (const [what, re] of FRAGMENTS) if (re.test(line)) found.push(`${f.slice(REPO_ROOT.length + 1)}:${i + 1}: ${what}: ${line.trim().slice(0, 120)}`);
        });
      }
    }
    expect(found).toEqual([]);
  });

  it('the grep would catch the formulas as they were written before the catalog', () => {
    const before = [
      '100 * sum(rebuffer_ms) / greatest(sum(playing_ms + rebuffer_ms + seek_ms), 1)',
      'quantileExact(0.95)(s)',
      'quantileExactInclusiveIf(0.5)(toFloat64(time_to_action_ms), violation = 1)',
      'SELECT hour, count() AS active_accounts, countIf(net > 0) AS paying_accounts',
      'sum(failed) / greatest(sum(attempts), 1) AS failure_rate',
      'if(sum(views_ended) = 0, NULL, 100 * sum(vsf_views) / sum(views_ended))',
      'samples[toUInt64(greatest(1, ceil(0.95 * length(samples))))]',
    ];
    for (const b of before)
      expect(
        FRAGMENTS.some(([, re]) => re.test(b)),
        b,
      ).toBe(true);
  });

  it("every metric has words, a formula, a worked example, its grains' measures and a surface", () => {
    for (const m of CATALOG) {
      expect(m.words.length, m.name).toBeGreaterThan(20);
      expect(m.formula.length, m.name).toBeGreaterThan(5);
      expect(m.example.length, m.name).toBeGreaterThan(10);
      expect(m.surfaces.length, m.name).toBeGreaterThan(0);
      for (const g of m.grains) expect(() => metricSql(m.name, g), `${m.name} on ${g}`).not.toThrow();
    }
    expect(Object.keys(METRIC)).toHaveLength(CATALOG.length);
    expect(Object.keys(SOURCES).length).toBeGreaterThan(0);
  });
});

describe('one percentile method: nearest rank', () => {
  const t = testEnv('metrics-catalog');
  let ch: ClickHouse;
  beforeAll(async () => {
    ch = await openClickHouse(t.config.clickhouse);
  }, 60_000);
  afterAll(async () => {
    await ch?.close();
    await cleanupTestEnv(t);
  });

  it('the worked examples: nearest rank in SQL = in TS, and quantileExact differs when q·n is whole', async () => {
    const cases: Array<{ samples: number[]; q: number; rank: number; exact: number }> = [
      // startup_p50_ms: 900, 1000, 1200, 4000: ceil(0.5 × 4) = 2nd = 1000; quantileExact: 3rd = 1200.
      { samples: [4000, 900, 1200, 1000], q: 0.5, rank: 1000, exact: 1200 },
      // startup_p95_ms: 20 samples 900..1850: ceil(0.95 × 20) = 19th = 1800; quantileExact: 20th = 1850.
      { samples: Array.from({ length: 20 }, (_, k) => 900 + 50 * k), q: 0.95, rank: 1800, exact: 1850 },
      // median time to action: 0, 60 000, 600 000, 1 800 000: 2nd = 60 000.
      { samples: [600000, 60000, 1800000, 0], q: 0.5, rank: 60000, exact: 600000 },
      // p90: ceil(3.6) = 4th = 1 800 000; q·n not whole: quantileExact agrees.
      { samples: [600000, 60000, 1800000, 0], q: 0.9, rank: 1800000, exact: 1800000 },
    ];
    for (const c of cases) {
      expect(nearestRank(c.samples, c.q)).toBe(c.rank);
      const [r] = await queryRows<{ rank: number; exact: number }>(
        ch,
        `SELECT ${nearestRankSql('groupArray(x)', c.q)} AS rank, quantileExact(${c.q})(x) AS exact FROM (SELECT arrayJoin({s:Array(Float64)}) AS x)`,
        { s: c.samples },
      );
      expect([Number(r!.rank), Number(r!.exact)]).toEqual([c.rank, c.exact]);
    }
  });
});
