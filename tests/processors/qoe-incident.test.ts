/**
 * Acceptance: the simulator's cdn-degradation incident makes rebuffer % of the affected CDN rise
 * in the one-minute QoE table while the other CDNs stay flat. Simulated traffic → QoE processor
 * (in-memory driver, 3 partitions) → rows into embedded ClickHouse → the `qoe_minute_all` view.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse, queryRows, insertRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { qoeProcessor } from '../../processors/qoe/qoe.processor.js';
import { ProcessorTestDriver } from '../../processors/core/test-driver.js';
import { TrafficGenerator } from '../../producers/simulator/generator.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { partitionOf } from '../helpers/golden.js';

const t = testEnv('qoe-incident');
let ch: ClickHouse;
const START = Date.UTC(2026, 10, 20, 12);
const MIN = 60_000;
const INCIDENT_AT = START + 30 * MIN;

beforeAll(async () => {
  ch = await openClickHouse({ ...t.config.clickhouse, url: null });
  await migrate(ch);
});
afterAll(async () => {
  await ch?.close();
  await cleanupTestEnv(t);
});

describe('cdn-degradation in the one-minute QoE table', () => {
  it('raises rebuffer % of the degraded CDN only', async () => {
    const gen = new TrafficGenerator({
      seed: 3,
      startMs: START,
      ratePerSec: 120,
      diurnal: false,
      incidents: [{ name: 'cdn-degradation', target: 'akamai', startMs: INCIDENT_AT, durationMs: 30 * MIN }],
    });
    const d = new ProcessorTestDriver(qoeProcessor({ graceMs: 60_000, allowedLatenessMs: 5_000 }));
    for (let m = 1; m <= 60; m++) {
      const batch = gen.advance(START + m * MIN).filter((e) => e.kind === 'playback');
      d.pipe(
        batch.map((e) => ({
          kind: 'playback' as const,
          event: e.event as unknown as Record<string, unknown>,
          partition: partitionOf(String((e.event as { view_id: string }).view_id), 3),
        })),
      );
      d.flush();
    }
    await insertRows(ch, 'qoe_minute', d.emitted.get('qoe_minute') ?? []);
    const rows = await queryRows<{ cdn: string; phase: string; rebuffer_pct: number }>(
      ch,
      `
      SELECT cdn, multiIf(window_start < toDateTime({at:UInt32}), 'before', window_start >= toDateTime({settled:UInt32}), 'during', 'onset') AS phase,
        100 * sum(rebuffer_ms) / sum(watch_ms) AS rebuffer_pct
      FROM ${ch.database}.qoe_minute_all
      WHERE window_start >= toDateTime({from:UInt32}) AND window_start < toDateTime({to:UInt32})
      GROUP BY cdn, phase HAVING phase != 'onset' ORDER BY cdn, phase`,
      { at: INCIDENT_AT / 1000, settled: INCIDENT_AT / 1000 + 5 * 60, from: START / 1000 + 5 * 60, to: START / 1000 + 59 * 60 },
    );
    const pct = (cdn: string, phase: string) => Number(rows.find((r) => r.cdn === cdn && r.phase === phase)?.rebuffer_pct);
    const cdns = [...new Set(rows.map((r) => r.cdn))];
    expect(cdns).toContain('akamai');
    expect(cdns.length).toBeGreaterThanOrEqual(3);
    // The degraded CDN rises well above the 2 % alert threshold and several times its own baseline.
    expect(pct('akamai', 'during')).toBeGreaterThan(2);
    expect(pct('akamai', 'during')).toBeGreaterThan(3 * pct('akamai', 'before'));
    // The others stay flat: within one percentage point of their own baseline and under 2 %.
    for (const cdn of cdns.filter((c) => c !== 'akamai')) {
      expect(Math.abs(pct(cdn, 'during') - pct(cdn, 'before')), cdn).toBeLessThan(1);
      expect(pct(cdn, 'during'), cdn).toBeLessThan(2);
    }
  });
});
