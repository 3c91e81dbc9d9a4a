/** Churn processor: daily facts straight = crash/restore = more partitions; 007 on embedded ClickHouse. */
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateEvent } from '../../contracts/validate.js';
import { churnProcessor } from '../../processors/churn/churn.processor.js';
import { ProcessorTestDriver, type DriverRecord } from '../../processors/core/test-driver.js';
import { insertRows, openClickHouse, queryRows } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { REPO_ROOT } from '../helpers/env.js';

const T0 = Date.UTC(2024, 4, 1, 10);
let n = 0;
const uuid = () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
const pb = (view: string, s: number, type: string, f: Record<string, unknown> = {}) => ({
  kind: 'playback' as const,
  key: view,
  event: {
    event_id: uuid(),
    event_time: T0 + s * 1000,
    view_id: view,
    seq: s,
    event_type: type,
    player_state: 'playing',
    playhead_ms: 0,
    viewer_id: 'u1',
    account_id: 'a1',
    content_id: `c-${view}`,
    stream_type: 'vod',
    device_category: 'tv',
    os: 'tizen',
    app_version: '1',
    cdn: 'x',
    country: 'NP',
    asn: 1,
    ...f,
  },
});
const pay = (s: number, kind: string, status: string) => ({
  kind: 'payments' as const,
  key: 'a1',
  event: {
    event_id: uuid(),
    event_time: T0 + s * 1000,
    payment_id: uuid(),
    account_id: 'a1',
    kind,
    status,
    amount_minor: 999,
    currency: 'USD',
    method: 'card',
    plan: 'standard',
    og_tier: 0,
    auto_renew: true,
    period_end: T0 + 30 * 86_400_000,
    country: 'NP',
  },
});
const input = [
  pay(0, 'renewal', 'failed'),
  pb('v1', 1, 'view_start'),
  pb('v1', 3, 'first_frame'),
  pb('v1', 13, 'heartbeat', { cum_playing_ms: 10_000, cum_rebuffer_ms: 0 }),
  pb('v2', 20, 'view_start'),
  pb('v1', 23, 'heartbeat', { cum_playing_ms: 20_000, cum_rebuffer_ms: 1_000 }),
  pb('v1', 23, 'heartbeat', { cum_playing_ms: 20_000, cum_rebuffer_ms: 1_000 }), // duplicate heartbeat: harmless
  pb('v2', 25, 'error', { error_severity: 'fatal', error_business: false, player_state: 'error' }),
  pay(30, 'renewal', 'succeeded'),
  pb('v1', 40, 'view_end', { cum_playing_ms: 30_000, cum_rebuffer_ms: 1_000 }),
  pb('v3', 86_400, 'view_start'),
  pb('v3', 86_402, 'first_frame'),
  pb('v3', 86_460, 'view_end', { cum_playing_ms: 58_000, cum_rebuffer_ms: 0 }),
];
const partitionOf = (key: string, k: number) => createHash('md5').update(key).digest().readUInt32BE(0) % k;

function run(parts: number, crashAfter?: number) {
  const d = new ProcessorTestDriver(churnProcessor());
  const recs: DriverRecord[] = input.map((r) => ({ kind: r.kind, partition: partitionOf(r.key, parts), event: r.event }));
  if (crashAfter === undefined) d.pipe(recs);
  else {
    d.pipe(recs.slice(0, crashAfter));
    const c = d.checkpoint();
    d.pipe(recs.slice(crashAfter));
    d.restore(c);
  }
  d.flush();
  return d;
}
/** Sum over source partitions per (day, account), as the features do. */
function facts(d: ProcessorTestDriver<unknown>) {
  const m = new Map<string, Record<string, number>>();
  for (const r of d.table('churn_account_daily', ['day', 'account_id'])) {
    const k = `${r.day}/${r.account_id}`;
    const a = m.get(k) ?? { views: 0, playing_ms: 0, rebuffer_ms: 0, vsf: 0, playback_failures: 0, revenue_usd_micros: 0, payment_failures: 0, startups: 0 };
    for (const f of ['views', 'playing_ms', 'rebuffer_ms', 'vsf', 'playback_failures', 'revenue_usd_micros', 'payment_failures'] as const)
      a[f]! += r[f] as number;
    a.startups! += (r.startup_ms as number[]).length;
    m.set(k, a);
  }
  return Object.fromEntries([...m].sort());
}

describe('churn daily facts', () => {
  it('input passes the contract', () => {
    for (const r of input) expect(validateEvent(r.kind, r.event).ok, JSON.stringify(validateEvent(r.kind, r.event))).toBe(true);
  });
  const straight = facts(run(1));
  it('hand-computed facts', () => {
    const day0 = Math.floor(T0 / 86_400_000);
    expect(straight).toEqual({
      [`${day0}/a1`]: {
        views: 2,
        playing_ms: 30_000,
        rebuffer_ms: 1_000,
        vsf: 1,
        playback_failures: 0,
        revenue_usd_micros: 9_990_000,
        payment_failures: 1,
        startups: 1,
      },
      [`${day0 + 1}/a1`]: {
        views: 1,
        playing_ms: 58_000,
        rebuffer_ms: 0,
        vsf: 0,
        playback_failures: 0,
        revenue_usd_micros: 0,
        payment_failures: 0,
        startups: 1,
      },
    });
  });
  it('live cycles (open account-days written by age, at most once per 60 s of processing time) and a last full flush give the same facts', () => {
    const d = new ProcessorTestDriver(churnProcessor());
    const open: number[] = [];
    let seen = 0;
    for (const r of input) {
      d.nowMs = r.event.event_time;
      d.pipe([{ kind: r.kind, partition: 0, event: r.event }]);
      d.flushLive();
      const rows = d.emitted.get('churn_account_daily') ?? [];
      for (const row of rows.slice(seen)) if (row.is_final === 0) open.push(d.nowMs);
      seen = rows.length;
      // Every 1 s of processing time after the event a cycle finds nothing new and writes by age.
      for (let t = 1; t <= 3; t++) d.flushLive(d.nowMs + t * 1_000);
    }
    const liveRows = (d.emitted.get('churn_account_daily') ?? []).length;
    d.flush();
    expect(facts(d)).toEqual(straight);
    expect(open.length).toBeGreaterThan(0);
    // The same account-day is written at most once a minute: fewer rows than a write at every cycle.
    const every = new ProcessorTestDriver(churnProcessor({ dayRowIntervalMs: 0 }));
    for (const r of input) {
      every.nowMs = r.event.event_time;
      every.pipe([{ kind: r.kind, partition: 0, event: r.event }]);
      every.flushLive();
    }
    expect(liveRows).toBeLessThan((every.emitted.get('churn_account_daily') ?? []).length);
  });

  it.each([
    [1, 4],
    [3, undefined],
    [4, 7],
  ])('same facts with %i partitions, crash after %s', (parts, crash) => {
    expect(facts(run(parts, crash))).toEqual(straight);
  });
  const chdbPath = join(REPO_ROOT, '.data/test', `churn-${process.pid}-${Date.now()}`);
  afterAll(() => rmSync(chdbPath, { recursive: true, force: true }));
  it('all migrations apply; 007 holds the rows on embedded ClickHouse', async () => {
    const ch = await openClickHouse({ url: null, chdbPath, database: `churn_${process.pid}`, user: 'default', password: '' });
    try {
      await migrate(ch);
      await insertRows(ch, 'churn_account_daily', run(3, 5).emitted.get('churn_account_daily')!);
      const rows = await queryRows<Record<string, unknown>>(
        ch,
        `SELECT toString(day) AS day, sum(views) AS views, sum(playing_ms) AS playing, sum(payment_failures) AS pf FROM ${ch.database}.churn_account_daily FINAL GROUP BY day ORDER BY day`,
      );
      expect(rows.map((r) => [r.day, Number(r.views), Number(r.playing), Number(r.pf)])).toEqual([
        ['2024-05-01', 2, 30_000, 1],
        ['2024-05-02', 1, 58_000, 0],
      ]);
    } finally {
      await ch.close();
    }
  });
});
