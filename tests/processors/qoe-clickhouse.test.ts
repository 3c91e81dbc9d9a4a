/** 004_qoe.sql runs on embedded ClickHouse; the driver's rows insert and read back with FINAL. */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertRows, openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { MIGRATIONS_DIR, migrate } from '../../sinks/clickhouse/migrate.js';
import { ProcessorTestDriver } from '../../processors/core/test-driver.js';
import { qoeProcessor } from '../../processors/qoe/qoe.processor.js';
import { REPO_ROOT } from '../helpers/env.js';

type Row = Record<string, unknown>;
const id = randomBytes(4).toString('hex');
const dataDir = join(REPO_ROOT, '.data', 'test', `qoe-ch.${id}`);
const input = readFileSync(new URL('../golden/qoe/input.jsonl', import.meta.url), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { kind: 'playback'; event: Row });
const expected = JSON.parse(readFileSync(new URL('../golden/qoe/expected.json', import.meta.url), 'utf8')) as { qoe_views: Row[]; qoe_minute: Row[] };
let ch: ClickHouse;

beforeAll(async () => {
  ch = await openClickHouse({ url: null, chdbPath: join(dataDir, 'chdb'), database: `qoe_test_${id}`, user: 'default', password: '' });
  // Every migration: qoe_minute_all and qoe_by_view_end_1h are generated from the metric catalog in 016 (issue 18).
  await migrate(ch, undefined, MIGRATIONS_DIR);
});
afterAll(async () => {
  await ch?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('qoe tables on ClickHouse', () => {
  it('stores the driver rows and the views compute the expected metrics', async () => {
    const d = new ProcessorTestDriver(qoeProcessor());
    const order = new Map<string, number>();
    d.pipe(
      input.map(({ kind, event }) => {
        if (!order.has(event.view_id as string)) order.set(event.view_id as string, order.size);
        return { kind, partition: order.get(event.view_id as string)! % 2, event };
      }),
    );
    d.flush();
    // Every emitted row (superseded ones too): FINAL must keep the newest per key.
    await insertRows(ch, 'qoe_views', d.emitted.get('qoe_views')!);
    await insertRows(ch, 'qoe_minute', d.emitted.get('qoe_minute')!);

    const views = await queryRows<Row>(
      ch,
      `SELECT view_id, outcome, startup_ms, watch_ms, rebuffer_pct, smoothness_score, playback_success_score, dropped, ended, toUnixTimestamp64Milli(view_start) AS view_start_ms FROM ${ch.database}.qoe_views FINAL ORDER BY view_id`,
    );
    expect(views.map((r) => r.view_id)).toEqual(expected.qoe_views.map((r) => r.view_id));
    for (const w of expected.qoe_views) {
      const a = views.find((r) => r.view_id === w.view_id)!;
      expect(a.outcome).toBe(w.outcome);
      expect(a.startup_ms === null ? null : Number(a.startup_ms)).toBe(w.startup_ms);
      expect(Number(a.watch_ms)).toBe(w.watch_ms);
      expect(Number(a.view_start_ms)).toBe(w.view_start);
      expect(a.dropped).toBe(w.dropped);
      if (w.smoothness_score !== null) expect(a.smoothness_score).toBeCloseTo(w.smoothness_score as number, 5);
      expect(a.playback_success_score).toBe(w.playback_success_score);
    }

    const minute = await queryRows<Row>(
      ch,
      `SELECT toUnixTimestamp(window_start) AS ws, cdn, concurrent_viewers, startup_p50_ms, startup_p95_ms, playing_ms, rebuffer_pct, vsf_views, views_ended FROM ${ch.database}.qoe_minute_all ORDER BY ws, cdn, device_category`,
    );
    expect(minute).toHaveLength(expected.qoe_minute.length);
    const m0 = minute.find((r) => Number(r.ws) === 1704067200 && r.cdn === 'akamai')!;
    expect(Number(m0.concurrent_viewers)).toBe(3);
    expect(Number(m0.startup_p50_ms)).toBe(2000);
    expect(Number(m0.playing_ms)).toBe(33000);
    // rebuffer % = 100 × Σ rebuffer ÷ Σ watch, watch = startup/wait 8 500 (A 2 000, B 5 000, D 1 500) + playing 33 000 + rebuffer 5 000 (issue 18)
    expect(m0.rebuffer_pct).toBeCloseTo((100 * 5000) / 46500, 6);
    expect(Number(m0.vsf_views)).toBe(1);
    const tail = minute.find((r) => Number(r.ws) === 1704067200 + 62 * 60)!;
    expect(Number(tail.concurrent_viewers)).toBe(3);
    expect(Number(tail.startup_p95_ms)).toBe(1000);

    const byEnd = await queryRows<Row>(
      ch,
      `SELECT cdn, views, plays, vsf_views, ebvs_views, dropped_views, playback_failure_pct FROM ${ch.database}.qoe_by_view_end_1h ORDER BY cdn, device_category`,
    );
    // Only final views (A–F; the tail views are still open): akamai A, B, D; cloudfront C, F; fastly E.
    expect(byEnd.map((r) => [r.cdn, Number(r.views), Number(r.plays), Number(r.vsf_views), Number(r.ebvs_views), Number(r.dropped_views)])).toEqual([
      ['akamai', 3, 1, 1, 0, 0],
      ['cloudfront', 2, 1, 0, 1, 1],
      ['fastly', 1, 1, 0, 0, 0],
    ]);
  });
});
