/**
 * Safety processor: pure case model, golden file (straight, crash/restore, 1 and 3 partitions)
 * and the 005 migration on embedded ClickHouse with the golden rows.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateEvent } from '../../contracts/validate.js';
import type { ModerationEvent } from '../../contracts/types.generated.js';
import { ProcessorTestDriver, type DriverRecord } from '../../processors/core/test-driver.js';
import { applyEvent, caseRow, newCase, safetyScore } from '../../processors/safety/safety-model.js';
import { nearestRank } from '../../contracts/metrics-catalog.js';
import { safetyProcessor } from '../../processors/safety/safety.processor.js';
import { insertRows, openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate, MIGRATIONS_DIR } from '../../sinks/clickhouse/migrate.js';
import { REPO_ROOT } from '../helpers/env.js';

const DIR = join(REPO_ROOT, 'tests/golden/safety');
const input = readFileSync(join(DIR, 'input.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { kind: 'moderation'; event: Record<string, unknown> });
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8'));
const COUNT_KEY = ['event_type', 'policy', 'severity', 'detection_source', 'action_type', 'outcome'] as const;

const partitionOf = (key: string, n: number) => createHash('md5').update(key).digest().readUInt32BE(0) % n;
const records = (n: number): DriverRecord[] => input.map((r) => ({ kind: r.kind, partition: partitionOf(String(r.event.target_id), n), event: r.event }));

function run(partitions: number, crashAfter?: number) {
  const d = new ProcessorTestDriver(safetyProcessor());
  const recs = records(partitions);
  if (crashAfter === undefined) d.pipe(recs);
  else {
    d.pipe(recs.slice(0, crashAfter));
    const ckpt = d.checkpoint();
    d.pipe(recs.slice(crashAfter));
    d.flush();
    d.restore(ckpt); // the work after the checkpoint is lost and redone
  }
  d.flush();
  return d;
}

function summary(d: ProcessorTestDriver<unknown>) {
  const cases = d
    .table('safety_cases', ['case_id'])
    .map((r) => {
      const { src_topic: _t, src_partition: _p, version: _v, target_type: _tt, ...rest } = r;
      return rest;
    })
    .sort((a, b) => String(a.case_id).localeCompare(String(b.case_id)));
  const sums = new Map<string, number>();
  for (const r of d.table('safety_events_1m', ['window_start', ...COUNT_KEY, 'target_type'])) {
    const k = JSON.stringify(COUNT_KEY.map((c) => r[c]));
    sums.set(k, (sums.get(k) ?? 0) + (r.events as number));
  }
  const counts = [...sums]
    .map(([k, events]) => ({ ...Object.fromEntries(COUNT_KEY.map((c, i) => [c, JSON.parse(k)[i]])), events }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const late = (d.emitted.get('late_events') ?? []).map((r) => ({ event_id: r.event_id, reason: r.reason }));
  const uniqLate = [...new Map(late.map((l) => [l.event_id, l])).values()].sort((a, b) => String(a.event_id).localeCompare(String(b.event_id)));
  return { cases, counts, late: uniqLate };
}

const sortCounts = (x: unknown[]) => [...x].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

describe('safety case model (pure)', () => {
  const base = input[0]!.event as unknown as ModerationEvent;
  it('is independent of arrival order and ignores duplicates', () => {
    const evs = input
      .filter((r) => r.event.case_id === 'C1')
      .slice(0, 6)
      .map((r) => r.event as unknown as ModerationEvent);
    const a = newCase(base);
    for (const e of evs) applyEvent(a, e);
    const b = newCase(base);
    for (const e of [...evs].reverse()) applyEvent(b, e);
    expect(caseRow(b)).toEqual(caseRow(a));
    expect(applyEvent(a, evs[0]!)).toBe(false);
  });
  it("percentiles are nearest rank, sorted[ceil(q·n)] (the catalog's one method, issue 18); score formula", () => {
    // Time to action of C1-C4 sorted: 0, 60 000, 600 000, 1 800 000 (n = 4).
    // Median: ceil(0.5 × 4) = 2nd = 60 000 (the interpolating quantileExactInclusive gave 330 000).
    expect(nearestRank([600000, 60000, 1800000, 0], 0.5)).toBe(60000);
    // p90: ceil(0.9 × 4) = ceil(3.6) = 4th = 1 800 000 (interpolated: 1 440 000).
    expect(nearestRank([600000, 60000, 1800000, 0], 0.9)).toBe(1800000);
    expect(nearestRank([], 0.5)).toBeNull();
    expect(safetyScore(0, 10)).toBe(100);
    expect(safetyScore(1, 3)).toBeCloseTo(90.4837, 3);
    expect(safetyScore(10, 2000)).toBeCloseTo(100 * Math.exp(-0.5), 6);
  });
});

describe('safety golden', () => {
  it('input events pass the contract', () => {
    for (const r of input) expect(validateEvent(r.kind, r.event).ok, JSON.stringify(r.event)).toBe(true);
  });
  const straight = summary(run(1));
  it('gives the hand-computed rows', () => {
    expect(straight.cases).toEqual(expected.safety_cases);
    expect(straight.counts).toEqual(sortCounts(expected.event_counts));
    expect(straight.late).toEqual(expected.late_events);
  });
  it.each([
    ['1 partition, crash after 5', 1, 5],
    ['1 partition, crash after 12', 1, 12],
    ['3 partitions', 3, undefined],
    ['3 partitions, crash after 9', 3, 9],
    ['7 partitions, crash after 15', 7, 15],
  ])('same rows: %s', (_n, parts, crash) => {
    expect(summary(run(parts, crash))).toEqual(straight);
  });
  it('forgets closed cases and keeps only tombstones', () => {
    const d = run(1);
    const snap = d.checkpoint().get('moderation/0')!.snapshot.state as { cases: Array<[string]>; tombstones: Array<[string, number]> };
    expect(snap.cases.map((c) => c[0]).sort()).toEqual(['C2', 'C4', 'C5', 'C6']);
    expect(snap.tombstones.map((t) => t[0]).sort()).toEqual(['C1', 'C3']);
  });
  it('forgets an idle case after the horizon; a straggler then goes to late_events', () => {
    const d = new ProcessorTestDriver(safetyProcessor({ caseHorizonMs: 3_600_000 }));
    const e = (n: number, s: number, c: string, type: string, extra = {}) => ({
      kind: 'moderation' as const,
      partition: 0,
      event: {
        ...input[0]!.event,
        event_id: `00000000-0000-4000-8000-${String(900 + n).padStart(12, '0')}`,
        event_time: (input[0]!.event.event_time as number) + s * 1000,
        case_id: c,
        event_type: type,
        ...extra,
      },
    });
    d.pipe([e(1, 0, 'X', 'report_created'), e(2, 4 * 3600, 'Y', 'report_created')]);
    const st = d.checkpoint().get('moderation/0')!.snapshot.state as { cases: Array<[string]> };
    expect(st.cases.map((c) => c[0])).toEqual(['Y']);
    d.pipe([e(3, 60, 'X', 'action_taken', { action_type: 'remove' })]);
    expect((d.emitted.get('late_events') ?? []).map((r) => r.reason)).toEqual(['case_expired']);
  });
});

describe('005_safety on embedded ClickHouse', () => {
  let ch: ClickHouse;
  const chdbPath = join(REPO_ROOT, '.data/test', `safety-${process.pid}-${Date.now()}`);
  beforeAll(async () => {
    ch = await openClickHouse({ url: null, chdbPath, database: `safety_${process.pid}`, user: 'default', password: '' });
    // Every migration: the KPI views are generated from the metric catalog in 016 (issue 18).
    await migrate(ch, undefined, MIGRATIONS_DIR);
    const d = run(3, 9);
    await insertRows(ch, 'safety_cases', d.emitted.get('safety_cases')!);
    await insertRows(ch, 'safety_events_1m', d.emitted.get('safety_events_1m')!);
    const T0 = Date.UTC(2024, 4, 1) / 1000;
    const views = Object.entries(expected.playback_views_fixture as Record<string, number>).flatMap(([creator, n]) =>
      Array.from({ length: n }, (_, i) => ({
        event_id: `00000000-0000-4000-9000-${creator}${i}`.padEnd(36, '0'),
        event_time: T0,
        view_id: `${creator}-v${i}`,
        creator_id: creator,
        version: 1,
      })),
    );
    await insertRows(ch, 'raw_playback', views);
    // The overall score's views (023): views that started playing in the QoE real-time rows, Σ
    // views_started of qoe_minute FINAL (nothing sealed here). An older version of each row with
    // other counts must not count.
    const minute = (version: number, k: number) =>
      [4, 3].map((n, i) => ({
        window_start: T0 + i * 60,
        cdn: 'akamai',
        device_category: 'tv',
        country: 'US',
        asn: 7000,
        content_id: 'c1',
        views_started: n * k,
        src_topic: 'playback',
        src_partition: 0,
        version,
      }));
    await insertRows(ch, 'qoe_minute', minute(1, 4));
    await insertRows(ch, 'qoe_minute', minute(2, 1));
  }, 120_000);
  afterAll(async () => {
    await ch?.close();
    rmSync(chdbPath, { recursive: true, force: true });
  });

  it('safety_cases FINAL holds the hand-computed cases', async () => {
    const rows = await queryRows<Record<string, unknown>>(
      ch,
      `SELECT case_id, time_to_action_ms, proactive, violation, appealed, appeal_outcome, toUnixTimestamp64Milli(action_time) AS action_ms FROM ${ch.database}.safety_cases FINAL ORDER BY case_id`,
    );
    expect(
      rows.map((r) => [
        r.case_id,
        r.time_to_action_ms === null ? null : Number(r.time_to_action_ms),
        r.proactive,
        r.violation,
        r.appealed,
        r.appeal_outcome,
        r.action_ms === null ? null : Number(r.action_ms),
      ]),
    ).toEqual(
      expected.safety_cases.map((c: Record<string, number | string | null>) => [
        c.case_id,
        c.time_to_action_ms,
        c.proactive,
        c.violation,
        c.appealed,
        c.appeal_outcome,
        c.action_time,
      ]),
    );
  });
  it('KPI views give the hand-computed values', async () => {
    const [k] = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${ch.database}.safety_kpi_total`);
    const want = expected.kpi_total as Record<string, number>;
    for (const [name, v] of Object.entries(want)) expect(Number(k![name]), name).toBeCloseTo(v, 6);
    const days = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${ch.database}.safety_kpi_1d`);
    expect(days.length).toBe(1);
    expect(Number(days[0]!.median_time_to_action_ms)).toBe(60000); // nearest rank: 2nd of 4
  });
  it('roll-up views sum the minute counts', async () => {
    const [h] = await queryRows<{ n: string }>(ch, `SELECT sum(events) AS n FROM ${ch.database}.safety_events_1h`);
    expect(Number(h!.n)).toBe(15);
    const ra = await queryRows<Record<string, unknown>>(
      ch,
      `SELECT policy, sum(user_reports) AS r, sum(actions) AS a, sum(enforcement_actions) AS e FROM ${ch.database}.safety_reports_actions_1d GROUP BY policy ORDER BY policy`,
    );
    expect(ra.map((r) => [r.policy, Number(r.r), Number(r.a), Number(r.e)])).toEqual([
      ['harassment', 2, 1, 1],
      ['hate', 1, 1, 1],
      ['nudity', 0, 1, 1],
      ['spam', 2, 2, 1],
    ]);
  });
  it('safety scores per creator and overall', async () => {
    const rows = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${ch.database}.safety_creator_score ORDER BY creator_id`);
    expect(
      rows.map((r) => ({
        creator_id: r.creator_id,
        confirmed_violations: Number(r.confirmed_violations),
        overturned: Number(r.overturned),
        weighted_violations: Number(r.weighted_violations),
        views: Number(r.views),
        safety_score: Math.round(Number(r.safety_score) * 1e4) / 1e4,
      })),
    ).toEqual(expected.creator_score);
    const [o] = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${ch.database}.safety_score_overall`);
    expect(Number(o!.weighted_violations)).toBe(34);
    expect(Number(o!.views)).toBe(expected.overall_score.views);
    expect(Number(o!.safety_score)).toBeCloseTo(expected.overall_score.safety_score, 3);
  });
});
