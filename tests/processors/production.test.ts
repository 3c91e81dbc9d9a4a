/**
 * Production processor: latest `updated` wins (out-of-order webhooks), deletes honoured and
 * recorded; golden file straight, crash/restore, more partitions; 006 on embedded ClickHouse.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateEvent } from '../../contracts/validate.js';
import { ProcessorTestDriver, type DriverRecord } from '../../processors/core/test-driver.js';
import { DELETE_BASE, isCritical, isOpen, stateVersion } from '../../processors/production/production-model.js';
import { productionProcessor } from '../../processors/production/production.processor.js';
import { insertRows, openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate, MIGRATIONS_DIR } from '../../sinks/clickhouse/migrate.js';
import { REPO_ROOT } from '../helpers/env.js';

const DIR = join(REPO_ROOT, 'tests/golden/production');
const input = readFileSync(join(DIR, 'input.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { kind: 'jira'; event: Record<string, unknown> });
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8'));
const FIELDS = Object.keys(expected.production_issues[0]);

const partitionOf = (key: string, n: number) => createHash('md5').update(key).digest().readUInt32BE(0) % n;
const records = (n: number, evs = input): DriverRecord[] =>
  evs.map((r) => ({ kind: r.kind, partition: partitionOf(String(r.event.issue_key), n), event: r.event }));

function run(partitions: number, crashAfter?: number, evs = input) {
  const d = new ProcessorTestDriver(productionProcessor());
  const recs = records(partitions, evs);
  if (crashAfter === undefined) d.pipe(recs);
  else {
    d.pipe(recs.slice(0, crashAfter));
    const ckpt = d.checkpoint();
    d.pipe(recs.slice(crashAfter));
    d.restore(ckpt);
  }
  d.flush();
  return d;
}

/** The table as ClickHouse FINAL shows it: per issue_key, the highest state_version. */
function final(d: ProcessorTestDriver<unknown>) {
  const best = new Map<string, Record<string, unknown>>();
  for (const r of d.emitted.get('production_issues') ?? []) {
    const cur = best.get(r.issue_key as string);
    if (!cur || (r.state_version as number) >= (cur.state_version as number)) best.set(r.issue_key as string, r);
  }
  return [...best.values()].map((r) => Object.fromEntries(FIELDS.map((f) => [f, r[f]]))).sort((a, b) => String(a.issue_key).localeCompare(String(b.issue_key)));
}

describe('production model (pure)', () => {
  it('deletes outrank every update; later updated outranks earlier', () => {
    expect(stateVersion({ webhook_event: 'issue_updated', updated: 2 })).toBeGreaterThan(stateVersion({ webhook_event: 'issue_updated', updated: 1 }));
    expect(stateVersion({ webhook_event: 'issue_deleted', updated: 1 })).toBe(DELETE_BASE + 1);
    expect(stateVersion({ webhook_event: 'issue_deleted', updated: 1 })).toBeGreaterThan(
      stateVersion({ webhook_event: 'issue_updated', updated: Date.UTC(2099, 0, 1) }),
    );
    expect(Number.isSafeInteger(DELETE_BASE + Date.UTC(2099, 0, 1))).toBe(true);
  });
  it('critical and open', () => {
    expect(isCritical({ severity: 'Critical', priority: 'Low' })).toBe(true);
    expect(isCritical({ severity: 'major', priority: 'Highest' })).toBe(false);
    expect(isCritical({ severity: null, priority: 'Highest' })).toBe(true);
    expect(isOpen({ status_category: 'Done', resolved: null })).toBe(false);
    expect(isOpen({ status_category: 'indeterminate', resolved: null })).toBe(true);
  });
});

describe('production golden', () => {
  it('input events pass the contract', () => {
    for (const r of input) expect(validateEvent(r.kind, r.event).ok, JSON.stringify(r.event)).toBe(true);
  });
  const straight = final(run(1));
  it('gives the hand-computed current state (stale updates ignored, delete wins)', () => {
    expect(straight).toEqual(expected.production_issues);
  });
  it.each([
    ['crash after 4', 1, 4],
    ['crash after 7', 1, 7],
    ['3 partitions', 3, undefined],
    ['4 partitions, crash after 6', 4, 6],
  ])('same rows: %s', (_n, parts, crash) => {
    expect(final(run(parts, crash))).toEqual(straight);
  });
  it('any arrival order gives the same current state', () => {
    const reversed = [...input].reverse();
    expect(final(run(1, undefined, reversed))).toEqual(straight);
    const rotated = [...input.slice(5), ...input.slice(0, 5)];
    expect(final(run(2, 3, rotated))).toEqual(straight);
  });
  it('writes nothing for stale or duplicate webhooks', () => {
    const d = run(1);
    // 12 records: e7 and e8 are stale, the last one is a duplicate of e5.
    expect(d.emitted.get('production_issues')!.length).toBe(9);
  });
});

describe('006_production on embedded ClickHouse', () => {
  let ch: ClickHouse;
  const chdbPath = join(REPO_ROOT, '.data/test', `production-${process.pid}-${Date.now()}`);
  const db = () => ch.database;
  beforeAll(async () => {
    ch = await openClickHouse({ url: null, chdbPath, database: `production_${process.pid}`, user: 'default', password: '' });
    // Every migration: production_show_overview reads qoe_views through the metric catalog (016).
    await migrate(ch, undefined, MIGRATIONS_DIR);
    // Every row of a reversed-order run, inserted newest first: FINAL must still pick the latest `updated`.
    const rows = [...run(3, 5, [...input].reverse()).emitted.get('production_issues')!].reverse();
    for (const r of rows) await insertRows(ch, 'production_issues', [r]);
    const T0 = Date.UTC(2024, 4, 1);
    const uuid = (n: number) => `00000000-0000-4000-9000-${String(n).padStart(12, '0')}`;
    const cat = (n: number, content: string, show: string, dt: number) => ({
      event_id: uuid(n),
      event_time: T0 + dt,
      content_id: content,
      title: content,
      show_name: show,
      genre: 'drama',
      stream_type: 'vod',
      version: n,
    });
    await insertRows(ch, 'raw_catalog', [
      cat(1, 'c1', 'Everest Live', 0),
      cat(2, 'c2', 'Everest Live', 0),
      cat(3, 'c3', 'Old Name', 0),
      cat(4, 'c3', 'Kathmandu Nights', 1000),
      cat(5, 'c4', 'Quiet Show', 0),
    ]);
    // Final views (qoe_views, written by the qoe processor): engagement and QoE by view end.
    const view = (id: string, content: string, outcome: string, startup: number | null, playing: number, rebuffer: number, watch: number) => ({
      view_id: id,
      content_id: content,
      outcome,
      startup_ms: startup,
      playing_ms: playing,
      rebuffer_ms: rebuffer,
      rebuffer_count: rebuffer > 0 ? 1 : 0,
      watch_ms: watch,
      view_start: T0,
      view_end: T0 + watch,
      ended: 1,
      dropped: 0,
      is_final: 1,
      src_topic: 'playback',
      src_partition: 0,
      version: 1,
    });
    await insertRows(ch, 'qoe_views', [
      view('v1', 'c1', 'play', 2000, 60000, 0, 62000),
      view('v2', 'c2', 'playback_failure', 1000, 120000, 0, 121000),
      view('v3', 'c3', 'play', 4000, 600000, 6000, 610000),
      view('v4', 'c4', 'ebvs', null, 0, 0, 3000),
    ]);
  }, 120_000);
  afterAll(async () => {
    await ch?.close();
    rmSync(chdbPath, { recursive: true, force: true });
  });
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

  it('production_issues FINAL: latest updated wins, deletion recorded', async () => {
    const rows = await queryRows<Record<string, unknown>>(
      ch,
      `SELECT issue_key, status, is_open, deleted, toUnixTimestamp64Milli(updated) AS updated, cost_impact_usd FROM ${db()}.production_issues FINAL ORDER BY issue_key`,
    );
    expect(rows.map((r) => [r.issue_key, r.status, r.is_open, r.deleted, num(r.updated), r.cost_impact_usd])).toEqual(
      expected.production_issues.map((r: Record<string, unknown>) => [r.issue_key, r.status, r.is_open, r.deleted, r.updated, r.cost_impact_usd]),
    );
    const cur = await queryRows<{ issue_key: string }>(ch, `SELECT issue_key FROM ${db()}.production_issues_current ORDER BY issue_key`);
    expect(cur.map((r) => r.issue_key)).toEqual(['PROD-1', 'PROD-2', 'PROD-3', 'PROD-5']);
    const del = await queryRows<{ issue_key: string }>(ch, `SELECT issue_key FROM ${db()}.production_deleted_issues`);
    expect(del.map((r) => r.issue_key)).toEqual(['PROD-4']);
  });
  it('open issues by severity and show, open critical', async () => {
    const rows = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${db()}.production_open_by_severity_show ORDER BY show_name, severity`);
    expect(rows.map((r) => ({ show_name: r.show_name, severity: r.severity, open_issues: num(r.open_issues), open_critical: num(r.open_critical) }))).toEqual(
      expected.open_by_severity_show,
    );
    const [c] = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${db()}.production_open_critical`);
    expect({ open_critical: num(c!.open_critical), open_issues: num(c!.open_issues) }).toEqual(expected.open_critical);
  });
  it('cost, delay and time to resolve by show; overall MTTR', async () => {
    const rows = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${db()}.production_show_impact ORDER BY show_name`);
    expect(rows.map((r) => Object.fromEntries(Object.keys(expected.show_impact[0]).map((k) => [k, k === 'show_name' ? r[k] : num(r[k])])))).toEqual(
      expected.show_impact,
    );
    const [m] = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${db()}.production_mttr`);
    expect(num(m!.resolved_issues)).toBe(2);
    expect(num(m!.mean_time_to_resolve_hours)).toBeCloseTo(4, 9);
  });
  it('show overview: issues beside engagement and QoE', async () => {
    const rows = await queryRows<Record<string, unknown>>(ch, `SELECT * FROM ${db()}.production_show_overview ORDER BY show_name`);
    expect(rows.length).toBe(expected.show_overview.length);
    rows.forEach((r, i) => {
      const want = expected.show_overview[i] as Record<string, number | string>;
      for (const [k, v] of Object.entries(want)) {
        if (typeof v === 'string') expect(r[k], k).toBe(v);
        else expect(num(r[k]), `${want.show_name} ${k}`).toBeCloseTo(v, 9);
      }
    });
  });
});
