/**
 * Grafana as code: the committed provisioning files equal what grafana/src generates, and every
 * dashboard panel's SQL and every alert rule's SQL, with the plugin's macros expanded for a time
 * range (reference/grafana.md §1.3), runs against ClickHouse filled with simulator traffic through
 * the processors and returns rows with the columns the panel or rule reads.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { DASHBOARDS } from '../../grafana/src/dashboards.js';
import { RULES } from '../../grafana/src/alert-rules.js';
import { PROVISIONING, generatedFiles } from '../../grafana/src/build.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { fillWithSimulatedData } from '../api/support/sim-data.js';
import { expandMacros } from './macros.js';

// Grafana's datasource sets defaultDatabase; unqualified table names resolve in chdb's `default`.
const t = testEnv('grafana', { CLICKHOUSE_DATABASE: 'default' });
const NOW = Date.UTC(2025, 4, 14, 12, 0, 0);
let ch: ClickHouse;

beforeAll(async () => {
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  // A late delivery of beacons, so the late-events panel has rows.
  await fillWithSimulatedData(ch, {
    endMs: NOW,
    durationMs: 2 * 3_600_000,
    ratePerSec: 8,
    seed: 3,
    incidents: [{ name: 'late-delivery', startMs: NOW - 90 * 60_000, durationMs: 15 * 60_000 }],
  });
}, 300_000);
afterAll(async () => {
  await ch?.close();
  await cleanupTestEnv(t);
});

describe('provisioning files', () => {
  it('the committed dashboards and alert rules equal what the code generates', () => {
    for (const [path, text] of Object.entries(generatedFiles())) expect(readFileSync(PROVISIONING + path, 'utf8'), path).toBe(text);
  });

  it('dashboards reference the provisioned datasource uid; every target has format and rawSql', () => {
    const ds = parse(readFileSync(PROVISIONING + 'datasources/clickhouse.yaml', 'utf8')).datasources[0];
    expect(ds.type).toBe('grafana-clickhouse-datasource');
    for (const d of DASHBOARDS) {
      const json = JSON.parse(readFileSync(`${PROVISIONING}dashboards/${d.uid}.json`, 'utf8'));
      expect(json.uid).toBe(d.uid);
      expect(json.panels.length).toBe(d.panels.length);
      const prom = parse(readFileSync(PROVISIONING + 'datasources/prometheus.yaml', 'utf8')).datasources[0];
      expect(prom.type).toBe('prometheus');
      for (const p of json.panels) {
        if (p.datasource.type === 'prometheus') {
          // PromQL panels: parsed by promtool and names checked in tests/ops/prometheus-rules.test.ts.
          expect(p.datasource.uid).toBe(prom.uid);
          for (const target of p.targets) expect(target.expr).toMatch(/streampulse_/);
          continue;
        }
        expect(p.datasource.uid).toBe(ds.uid);
        expect(typeof p.targets[0].format).toBe('number');
        expect(p.targets[0].rawSql.length).toBeGreaterThan(10);
      }
    }
    const rules = parse(readFileSync(PROVISIONING + 'alerting/rules.yaml', 'utf8'));
    expect(rules.groups[0].rules.map((r: { uid: string }) => r.uid)).toEqual(RULES.map((r) => r.uid));
    for (const r of rules.groups[0].rules) expect(r.data[0].datasourceUid).toBe(ds.uid);
  });
});

describe('every panel query runs against real data', () => {
  for (const d of DASHBOARDS) {
    for (const p of d.panels.filter((x) => !x.promql)) {
      it(`${d.title} / ${p.title}`, async () => {
        const rows = await queryRows<Record<string, unknown>>(ch, expandMacros(p.sql, NOW - 2 * 3_600_000, NOW, 300));
        expect(rows.length, p.sql).toBeGreaterThan(0);
        for (const c of p.expect) expect(Object.keys(rows[0]!), c).toContain(c);
      });
    }
  }
});

describe('slice variables (the links of alert explanations)', () => {
  it('QoE and business dashboards declare them; a panel filtered on a slice sees only that slice', async () => {
    for (const d of DASHBOARDS.filter((x) => x.variables)) {
      const json = JSON.parse(readFileSync(`${PROVISIONING}dashboards/${d.uid}.json`, 'utf8'));
      expect(
        json.templating.list.map((v: { name: string; type: string }) => `${v.type}:${v.name}`),
        d.uid,
      ).toEqual(d.variables!.map((v) => `textbox:${v}`));
    }
    const qoe = DASHBOARDS.find((d) => d.uid === 'streampulse-qoe')!.panels.find((p) => p.title === 'Rebuffer % by CDN')!;
    const all = await queryRows<{ cdn: string }>(ch, expandMacros(qoe.sql, NOW - 2 * 3_600_000, NOW, 300));
    const cdns = [...new Set(all.map((r) => r.cdn))];
    expect(cdns.length).toBeGreaterThan(1);
    const one = await queryRows<{ cdn: string }>(ch, expandMacros(qoe.sql, NOW - 2 * 3_600_000, NOW, 300, { cdn: cdns[0]! }));
    expect(one.length).toBeGreaterThan(0);
    expect([...new Set(one.map((r) => r.cdn))]).toEqual([cdns[0]]);
    // A quote in a value stays inside the string (sqlstring format): no rows, no error.
    expect(await queryRows(ch, expandMacros(qoe.sql, NOW - 2 * 3_600_000, NOW, 300, { cdn: "x' OR '1' = '1" }))).toEqual([]);
  });
});

describe('every alert rule query runs against real data', () => {
  for (const r of RULES) {
    it(r.title, async () => {
      const rows = await queryRows<Record<string, unknown>>(ch, expandMacros(r.sql, NOW - r.rangeS * 1000, NOW, 60));
      expect(rows.length, r.sql).toBeGreaterThan(0);
      for (const row of rows) expect(Number.isFinite(Number(row.value)), JSON.stringify(row)).toBe(true);
    });
  }
});
