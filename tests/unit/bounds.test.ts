/**
 * Time and value bounds (contracts/bounds.ts) at the edge (validateEvent with an injected
 * reference clock) and in the processors (the in-memory driver with chosen Kafka timestamps):
 * a far-future record never moves a watermark and is dead-lettered; every event at the bounds
 * gives rows that encode in their tables' Avro (the column types of the migrations), also
 * summed over a window until the processor refuses the record that would overflow.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_FUTURE_SKEW_MS,
  MAX_AMOUNT_MINOR_UNRATED,
  MAX_EVENT_USD_MICROS,
  MAX_WINDOW_SUM,
  amountBounds,
  checkBounds,
  eventTimeProblem,
  maxAmountMinor,
} from '../../contracts/bounds.js';
import { FX_RATES, toUsdMicros } from '../../contracts/fx-rates.js';
import { schemaJson } from '../../contracts/schemas.js';
import type { EventKind } from '../../contracts/topics.js';
import { validateEvent } from '../../contracts/validate.js';
import { businessProcessor, type BusinessState } from '../../processors/business/business.processor.js';
import { churnProcessor } from '../../processors/churn/churn.processor.js';
import { ProcessorTestDriver } from '../../processors/core/test-driver.js';
import { qoeProcessor } from '../../processors/qoe/qoe.processor.js';
import { RowEncoder, type ColumnType } from '../../sinks/clickhouse/avro-rows.js';
import { REPO_ROOT } from '../helpers/env.js';

const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);
const MIN = 60_000;
/** The records' Kafka timestamp in the driver runs. */
const TS = NOW;
let n = 0;
const uuid = () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;

function payment(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: uuid(),
    event_time: NOW - 10 * MIN,
    payment_id: `p-${n}`,
    account_id: 'acct-1',
    kind: 'renewal',
    status: 'succeeded',
    amount_minor: 999,
    currency: 'USD',
    method: 'card',
    plan: 'basic',
    og_tier: 0,
    auto_renew: true,
    period_end: null,
    failure_code: null,
    country: 'US',
    ...over,
  };
}

function gift(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: uuid(),
    event_time: NOW - 10 * MIN,
    gift_id: `g-${n}`,
    sender_account_id: 'acct-1',
    creator_id: 'cr-1',
    stream_id: 's-1',
    gift_type: 'rose',
    quantity: 1,
    unit_coins: 10,
    coin_value_usd_micros: 10_000,
    ...over,
  };
}

function playback(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: uuid(),
    event_time: NOW - 10 * MIN,
    view_id: 'view-1',
    seq: 0,
    event_type: 'view_start',
    player_state: 'starting',
    playhead_ms: 0,
    viewer_id: 'viewer-1',
    account_id: 'acct-1',
    stream_type: 'vod',
    cdn: 'akamai',
    device_category: 'mobile',
    country: 'NP',
    asn: 17501,
    content_id: 'c1',
    os: 'android',
    app_version: '5.1.0',
    ...over,
  };
}

/** Column types of every table of the migrations, as the sink builds its Avro schemas from them. */
function migrationColumns(): Map<string, ColumnType[]> {
  const dir = join(REPO_ROOT, 'sinks', 'clickhouse', 'migrations');
  const tables = new Map<string, ColumnType[]>();
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.sql'))
    .sort()) {
    const sql = readFileSync(join(dir, f), 'utf8');
    for (const m of sql.matchAll(/CREATE TABLE IF NOT EXISTS \{db\}\.(\w+) \(\n([\s\S]*?)\n\) ENGINE/g)) {
      const cols = m[2]!
        .split('\n')
        .map((l) => /^\s+(\w+)\s+(.+?),?\s*$/.exec(l))
        .filter((x): x is RegExpExecArray => x !== null)
        .map((x) => ({ name: x[1]!, type: x[2]! }));
      tables.set(m[1]!, cols);
    }
  }
  return tables;
}

const COLUMNS = migrationColumns();

/** Every row the driver emitted encodes in its table's Avro schema (what the sink writes). */
function expectAllRowsEncode(d: ProcessorTestDriver<unknown>): number {
  let rows = 0;
  for (const [table, list] of d.emitted) {
    const cols = COLUMNS.get(table);
    expect(cols, `columns of ${table}`).toBeDefined();
    const enc = new RowEncoder(table, cols!);
    for (const row of list) {
      expect(enc.invalid(row), `${table}: ${JSON.stringify(row)}`).toBeNull();
      rows++;
    }
    expect(() => enc.encode(list)).not.toThrow();
  }
  return rows;
}

describe('event time bounds (injected clock)', () => {
  it('refuses an event time more than the skew ahead of the reference, and accepts it at the skew', () => {
    expect(eventTimeProblem(NOW + DEFAULT_MAX_FUTURE_SKEW_MS, { referenceMs: NOW })).toBeNull();
    expect(eventTimeProblem(NOW + DEFAULT_MAX_FUTURE_SKEW_MS + 1, { referenceMs: NOW })).toMatch(
      /ahead of the reference clock .* at most 300000 ms \(MAX_FUTURE_SKEW_MS\)/,
    );
    expect(eventTimeProblem(NOW + 2_000, { referenceMs: NOW, maxFutureSkewMs: 1_000 })).toMatch(/2000 ms ahead/);
    expect(eventTimeProblem(NOW + 1_000, { referenceMs: NOW, maxFutureSkewMs: 1_000 })).toBeNull();
  });

  it('keeps old history (backfills) from 2000 on, and refuses earlier times', () => {
    expect(eventTimeProblem(Date.UTC(2000, 0, 1), { referenceMs: NOW })).toBeNull();
    expect(eventTimeProblem(Date.UTC(2012, 5, 1), { referenceMs: NOW })).toBeNull();
    expect(eventTimeProblem(Date.UTC(1999, 11, 31, 23, 59, 59, 999), { referenceMs: NOW })).toMatch(/before 2000-01-01T00:00:00.000Z/);
  });

  it('without a reference only the absolute range applies; 2100 is refused either way', () => {
    expect(eventTimeProblem(Date.UTC(2099, 0, 1))).toBeNull();
    expect(eventTimeProblem(Date.UTC(2099, 0, 1), { referenceMs: NOW })).toMatch(/ahead of the reference clock/);
    expect(eventTimeProblem(Date.UTC(2100, 0, 1))).toMatch(/not before 2100/);
    expect(eventTimeProblem(1.5e12 + 0.5)).toMatch(/integer/);
  });

  it('validateEvent refuses a 2099 payment with out_of_bounds and the reason', () => {
    const v = validateEvent('payments', payment({ event_time: Date.UTC(2099, 0, 1) }), { referenceMs: NOW, maxFutureSkewMs: DEFAULT_MAX_FUTURE_SKEW_MS });
    expect(v).toMatchObject({ ok: false, errorClass: 'out_of_bounds' });
    expect(v.ok ? '' : v.reason).toMatch(/^event_time: 2099-01-01T00:00:00.000Z is \d+ ms ahead of the reference clock \(2026-12-06T12:00:00.000Z\)/);
    expect(validateEvent('payments', payment({ event_time: NOW + 60_000 }), { referenceMs: NOW })).toMatchObject({ ok: true });
  });
});

describe('value bounds', () => {
  it('amount_minor is bounded per currency at one million USD (minor units differ)', () => {
    expect(maxAmountMinor('USD')).toBe(100_000_000); // cents
    expect(maxAmountMinor('JPY')).toBe(149_253_731); // no minor unit
    expect(maxAmountMinor('NPR')).toBe(13_333_333_333);
    expect(maxAmountMinor('KWD')).toBe(MAX_AMOUNT_MINOR_UNRATED); // no reference rate: never converted
    for (const { currency, maxAmountMinor: max } of amountBounds()) {
      const usd = toUsdMicros(max, currency)!;
      expect(usd, currency).toBeLessThanOrEqual(MAX_EVENT_USD_MICROS);
      expect(toUsdMicros(max + 1, currency)!, currency).toBeGreaterThan(MAX_EVENT_USD_MICROS - 1e6);
      expect(validateEvent('payments', payment({ currency, amount_minor: max }), { referenceMs: NOW })).toMatchObject({ ok: true });
      expect(validateEvent('payments', payment({ currency, amount_minor: max + 1 }), { referenceMs: NOW })).toMatchObject({
        ok: false,
        errorClass: 'out_of_bounds',
      });
    }
  });

  it('the bound per currency is the one the Avro contract and docs/security.md state', () => {
    const doc = schemaJson('payments').fields.find((f) => f.name === 'amount_minor')!.doc!;
    const security = readFileSync(join(REPO_ROOT, 'docs', 'security.md'), 'utf8');
    for (const { currency, maxAmountMinor: max } of amountBounds()) {
      expect(doc).toContain(`${currency} ${max}`);
      expect(security).toContain(`| ${currency} | ${FX_RATES.find((r) => r.currency === currency)!.minorDigits} | ${max.toLocaleString('en-US')} |`);
    }
    expect(doc).toContain(`without a rate: ${MAX_AMOUNT_MINOR_UNRATED}`);
  });

  it('refuses the amount of the issue (1e12 USD cents) with a reason naming the bound', () => {
    const v = validateEvent('payments', payment({ amount_minor: 1e12 }), { referenceMs: NOW });
    expect(v).toEqual({
      ok: false,
      errorClass: 'out_of_bounds',
      reason: 'amount_minor: 1000000000000 is out of bounds [0, 100000000] (one million USD in USD)',
    });
  });

  it('bounds gifts by field and by the value of the whole gift', () => {
    expect(validateEvent('gifts', gift({ quantity: 10_000, unit_coins: 100, coin_value_usd_micros: 1_000_000 }), { referenceMs: NOW })).toMatchObject({
      ok: true,
    });
    expect(validateEvent('gifts', gift({ quantity: 10_001 }), { referenceMs: NOW })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^quantity: 10001 is out of bounds/),
    });
    expect(validateEvent('gifts', gift({ quantity: 10_000, unit_coins: 1_000_000, coin_value_usd_micros: 1_000_000 }), { referenceMs: NOW })).toMatchObject({
      ok: false,
      errorClass: 'out_of_bounds',
      reason: expect.stringMatching(/^gift value: .* is over 1000000000000/),
    });
  });

  it('bounds playback counters, bitrate and asn, and Jira numbers', () => {
    expect(checkBounds('playback', playback({ cum_playing_ms: 31 * 86_400_000 }))).toBeNull();
    expect(checkBounds('playback', playback({ cum_playing_ms: 31 * 86_400_000 + 1 }))?.reason).toMatch(/^cum_playing_ms: .* out of bounds/);
    expect(checkBounds('playback', playback({ bitrate_kbps: 200_001 }))?.reason).toMatch(/^bitrate_kbps/);
    expect(checkBounds('playback', playback({ asn: -1 }))?.reason).toMatch(/^asn/);
    expect(checkBounds('jira', { event_time: NOW, created: NOW, updated: NOW, resolved: null, cost_impact_usd: 1e13, delay_days: 2 })?.reason).toMatch(
      /^cost_impact_usd/,
    );
    expect(checkBounds('jira', { event_time: NOW, created: 5, updated: NOW, cost_impact_usd: null, delay_days: null })?.reason).toMatch(/^created/);
  });
});

describe('processors guard with the Kafka timestamp (in-memory driver)', () => {
  it('a 2099 payment does not move the watermark, is in no table and goes to the dead letters', () => {
    const d = new ProcessorTestDriver<BusinessState>(businessProcessor({ graceMs: 60_000, allowedLatenessMs: 5_000 }));
    const before = payment({ event_time: NOW - 5 * MIN });
    const future = payment({ event_time: Date.UTC(2099, 0, 1), amount_minor: 5_000 });
    const after = payment({ event_time: NOW - 4 * MIN, amount_minor: 700 });
    d.pipe([{ kind: 'payments', partition: 0, event: before, timestampMs: TS }]);
    const task = () => (d as unknown as { tasks: Map<string, { time: { watermarkMs: number; maxEventMs: number } }> }).tasks.get('payments/0')!;
    const wm = task().time.watermarkMs;
    expect(wm).toBe(NOW - 5 * MIN - 5_000);
    d.pipe([
      { kind: 'payments', partition: 0, event: future, timestampMs: TS },
      { kind: 'payments', partition: 0, event: after, timestampMs: TS },
    ]);
    expect(task().time.maxEventMs).toBe(NOW - 4 * MIN);
    expect(task().time.watermarkMs).toBe(NOW - 4 * MIN - 5_000);
    expect(d.deadLetters).toEqual([
      {
        kind: 'payments',
        partition: 0,
        offset: 1,
        errorClass: 'out_of_bounds',
        by: 'bounds',
        reason: expect.stringMatching(/^event_time: 2099-01-01T00:00:00.000Z is \d+ ms ahead of the reference clock \(2026-12-06T12:00:00.000Z\)/),
      },
    ]);
    d.flush();
    // The later event is counted, not late; the 2099 one is nowhere.
    expect(d.table('late_events', ['src_offset'])).toEqual([]);
    const gross = d.table('kpi_payments_1m', ['window_start', 'method', 'plan', 'og_tier', 'country']).reduce((a, r) => a + (r.gross_usd_micros as number), 0);
    expect(gross).toBe(toUsdMicros(999, 'USD')! + toUsdMicros(700, 'USD')!);
  });

  it('the decision depends on the record and its Kafka timestamp only: the same log gives the same dead letters after a restore', () => {
    const records = [
      { kind: 'payments' as EventKind, partition: 0, event: payment({ event_time: NOW - MIN }), timestampMs: TS },
      { kind: 'payments' as EventKind, partition: 0, event: payment({ event_time: NOW + 10 * MIN }), timestampMs: TS },
      // Written 20 minutes later by its producer: 10 minutes ahead of NOW is within its skew.
      { kind: 'payments' as EventKind, partition: 0, event: payment({ event_time: NOW + 10 * MIN }), timestampMs: TS + 20 * MIN },
    ];
    const d = new ProcessorTestDriver<BusinessState>(businessProcessor({}));
    d.nowMs = Date.UTC(2030, 0, 1); // processing time is irrelevant
    d.pipe(records.slice(0, 1));
    const ckpt = d.checkpoint();
    d.pipe(records.slice(1));
    expect(d.deadLetters.map((x) => x.offset)).toEqual([1]);
    d.nowMs = NOW - 86_400_000;
    d.restore(ckpt);
    expect(d.deadLetters.map((x) => x.offset)).toEqual([1, 1]);
  });

  it('a record the edge would refuse for a semantic rule is refused too (schema_violation), before it reaches event time', () => {
    const d = new ProcessorTestDriver<BusinessState>(businessProcessor({}));
    d.pipe([
      { kind: 'payments', partition: 0, event: payment({ event_id: 'not-a-uuid', event_time: NOW }), timestampMs: TS },
      { kind: 'payments', partition: 0, event: payment({ og_tier: 9, event_time: NOW }), timestampMs: TS },
    ]);
    expect(d.deadLetters).toEqual([
      { kind: 'payments', partition: 0, offset: 0, errorClass: 'schema_violation', reason: 'event_id: must be a UUID', by: 'bounds' },
      { kind: 'payments', partition: 0, offset: 1, errorClass: 'schema_violation', reason: 'og_tier: must be 0..5', by: 'bounds' },
    ]);
    const task = (d as unknown as { tasks: Map<string, { time: { maxEventMs: number } }> }).tasks.get('payments/0')!;
    expect(task.time.maxEventMs).toBeLessThan(0); // never observed
  });

  it('a record written by another producer with a value out of bounds is refused by every processor alike', () => {
    for (const make of [() => businessProcessor({}), () => churnProcessor({})]) {
      const d = new ProcessorTestDriver<unknown>(make());
      d.pipe([{ kind: 'payments', partition: 0, event: payment({ amount_minor: 1e12 }), timestampMs: TS }]);
      expect(d.deadLetters).toMatchObject([{ errorClass: 'out_of_bounds', reason: expect.stringMatching(/^amount_minor: 1000000000000 is out of bounds/) }]);
      d.flush();
      expect([...d.emitted.values()].flat()).toEqual([]);
    }
  });
});

describe('every accepted event encodes in every derived table', () => {
  it('payments and gifts at the bound of every currency, through business and churn', () => {
    const events: Array<{ kind: EventKind; event: Record<string, unknown> }> = [];
    for (const r of FX_RATES) {
      for (const kind of ['renewal', 'coin_topup', 'refund', 'chargeback'])
        events.push({ kind: 'payments', event: payment({ currency: r.currency, kind, amount_minor: maxAmountMinor(r.currency) }) });
    }
    events.push({ kind: 'payments', event: payment({ currency: 'KWD', amount_minor: MAX_AMOUNT_MINOR_UNRATED }) });
    events.push({ kind: 'gifts', event: gift({ quantity: 10_000, unit_coins: 100, coin_value_usd_micros: 1_000_000 }) });
    for (const e of events) expect(validateEvent(e.kind, e.event, { referenceMs: NOW }), JSON.stringify(e.event)).toMatchObject({ ok: true });
    for (const make of [() => businessProcessor({}), () => churnProcessor({})]) {
      const d = new ProcessorTestDriver<unknown>(make());
      d.pipe(events.map((e) => ({ ...e, partition: 0, timestampMs: TS })));
      d.flush();
      expect(d.deadLetters).toEqual([]);
      expect(expectAllRowsEncode(d)).toBeGreaterThan(0);
    }
  });

  it('a window sum stops at the bound: the payment that would pass it is refused (value_overflow), the rows still encode', () => {
    const d = new ProcessorTestDriver<BusinessState>(businessProcessor({}));
    const max = maxAmountMinor('USD');
    const fits = Math.floor(MAX_WINDOW_SUM / toUsdMicros(max, 'USD')!);
    const records = Array.from({ length: fits + 2 }, () => ({
      kind: 'payments' as const,
      partition: 0,
      event: payment({ amount_minor: max }),
      timestampMs: TS,
    }));
    d.pipe(records);
    d.flush();
    expect(d.deadLetters.map((x) => [x.offset, x.errorClass, x.by])).toEqual([
      [fits, 'value_overflow', 'processor'],
      [fits + 1, 'value_overflow', 'processor'],
    ]);
    expect(d.deadLetters[0]!.reason).toMatch(/^kpi_payments_1m.gross_usd_micros: adding 1000000000000 to \d+ would pass 2251799813685247/);
    const [row] = d.table('kpi_payments_1m', ['window_start', 'method', 'plan', 'og_tier', 'country']);
    expect(row).toMatchObject({ attempts: fits, gross_usd_micros: fits * 1e12 });
    expectAllRowsEncode(d);
  });

  it('QoE refuses the heartbeat that would take a minute sum past the bound, before changing its view', () => {
    const d = new ProcessorTestDriver<unknown>(qoeProcessor({}));
    const t0 = NOW - 30 * MIN;
    const maxBitrateMs = 31 * 86_400_000 * 200_000;
    const fits = Math.floor(MAX_WINDOW_SUM / maxBitrateMs); // 4
    const beats = Array.from({ length: fits + 1 }, (_, i) =>
      playback({
        view_id: `hb-${i}`,
        event_time: t0 + i,
        seq: 1,
        event_type: 'heartbeat',
        player_state: 'playing',
        cum_playing_ms: 31 * 86_400_000,
        cum_bitrate_ms: maxBitrateMs,
      }),
    );
    for (const e of beats) expect(validateEvent('playback', e, { referenceMs: NOW })).toMatchObject({ ok: true });
    d.pipe(beats.map((event) => ({ kind: 'playback', partition: 0, event, timestampMs: TS })));
    expect(d.deadLetters).toEqual([
      {
        kind: 'playback',
        partition: 0,
        offset: fits,
        errorClass: 'value_overflow',
        by: 'processor',
        reason: expect.stringMatching(/^qoe_minute.cum_bitrate_ms: adding 535680000000000 to 2142720000000000 would pass 2251799813685247/),
      },
    ]);
    d.flush();
    expect(
      d
        .table('qoe_views', ['view_id'])
        .map((r) => r.view_id)
        .sort(),
    ).toEqual(beats.slice(0, fits).map((b) => b.view_id));
    expectAllRowsEncode(d);
  });

  it('playback at the bounds encodes in the QoE tables', () => {
    const d = new ProcessorTestDriver<unknown>(qoeProcessor({}));
    const t0 = NOW - 60 * MIN;
    const big = {
      bitrate_kbps: 200_000,
      width: 16_384,
      height: 16_384,
      cum_playing_ms: 31 * 86_400_000,
      cum_rebuffer_ms: 31 * 86_400_000,
      cum_seek_ms: 31 * 86_400_000,
      cum_rebuffer_count: 1_000_000,
      cum_bitrate_ms: 31 * 86_400_000 * 200_000,
    };
    const views = ['v1', 'v2', 'v3'].flatMap((view_id) => [
      playback({ view_id, event_time: t0, seq: 0 }),
      playback({
        view_id,
        event_time: t0 + 1_000,
        seq: 1,
        event_type: 'first_frame',
        player_state: 'playing',
        bitrate_kbps: 200_000,
        width: 16_384,
        height: 16_384,
      }),
      playback({ view_id, event_time: t0 + 11_000, seq: 2, event_type: 'heartbeat', player_state: 'playing', ...big }),
      playback({ view_id, event_time: t0 + 12_000, seq: 2_147_483_647, event_type: 'view_end', player_state: 'ended', playhead_ms: 2 ** 53 - 2, ...big }),
    ]);
    for (const e of views) expect(validateEvent('playback', e, { referenceMs: NOW }), JSON.stringify(e)).toMatchObject({ ok: true });
    d.pipe(views.map((event) => ({ kind: 'playback', partition: 0, event, timestampMs: TS })));
    d.pipe([{ kind: 'playback', partition: 0, event: playback({ view_id: 'v9', event_time: NOW }), timestampMs: TS }]); // closes the windows
    d.flush();
    expect(d.deadLetters).toEqual([]);
    expect(expectAllRowsEncode(d)).toBeGreaterThan(3);
  });
});
