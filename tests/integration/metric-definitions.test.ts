/**
 * Hand-worked figures for the definitions issue 18 changed, on embedded ClickHouse through the
 * views generated from the metric catalog (migration 016). Each figure is written next to the
 * formula's words.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertRows, openClickHouse, queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { migrate } from '../../sinks/clickhouse/migrate.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';

const t = testEnv('metric-definitions');
let ch: ClickHouse;
const H = '2026-11-20 10:00:00';
const base = { is_final: 1, src_topic: 'payments', src_partition: 0, version: 1 };

beforeAll(async () => {
  ch = await openClickHouse(t.config.clickhouse);
  await migrate(ch);
  // One hour, four accounts (net in USD micros):
  //  a1: charged 9.99 and refunded 9.99 in the same hour → paid, net 0
  //  a2: coin top-up 3.75 → paid, net 3.75
  //  a3: only watched → active, not paid
  //  a4: a refund of last month's 1.00 charge, nothing charged this hour → active, net −1.00
  await insertRows(ch, 'account_activity_1h', [
    { hour: H, account_id: 'a1', played: 0, paid: 1, gifted: 0, net_usd_micros: 0, gift_usd_micros: 0, ...base },
    { hour: H, account_id: 'a2', played: 0, paid: 1, gifted: 0, net_usd_micros: 3_750_000, gift_usd_micros: 0, ...base },
    { hour: H, account_id: 'a3', played: 1, paid: 0, gifted: 0, net_usd_micros: 0, gift_usd_micros: 0, ...base },
    { hour: H, account_id: 'a4', played: 0, paid: 0, gifted: 0, net_usd_micros: -1_000_000, gift_usd_micros: 0, ...base },
  ]);
  await insertRows(ch, 'kpi_payments_1m', [
    {
      window_start: H,
      method: 'card',
      plan: 'basic',
      og_tier: 0,
      country: 'US',
      attempts: 2,
      succeeded: 2,
      failed: 0,
      gross_usd_micros: 13_740_000,
      refunds_usd_micros: 10_990_000,
      chargebacks_usd_micros: 0,
      net_usd_micros: 2_750_000,
      topups: 1,
      topup_usd_micros: 3_750_000,
      ...base,
    },
  ]);
}, 120_000);
afterAll(async () => {
  await ch?.close();
  await cleanupTestEnv(t);
});

describe('payers and net payers: two names, one meaning each', () => {
  it('kpi_business_1h and kpi_active_1d', async () => {
    const [h] = await queryRows<Record<string, unknown>>(
      ch,
      `SELECT active_accounts, payers, net_payers, revenue_usd, arpu_usd, arppu_usd, payer_rate FROM ${ch.database}.kpi_business_1h`,
    );
    // active accounts = distinct accounts with any playback, payment or gift: a1, a2, a3, a4 = 4
    expect(Number(h!.active_accounts)).toBe(4);
    // payers = accounts with at least one succeeded charge, whatever was refunded later: a1, a2 = 2
    expect(Number(h!.payers)).toBe(2);
    // net payers = accounts whose net revenue is > 0: a2 only (a1 nets 0, a4 −1.00) = 1
    expect(Number(h!.net_payers)).toBe(1);
    // payer rate = payers ÷ active accounts = 2 ÷ 4 = 0.5 (the old net-based figure read 1 ÷ 4 = 0.25)
    expect(Number(h!.payer_rate)).toBeCloseTo(0.5, 12);
    // revenue = gross − refunds − chargebacks = 13.74 − 10.99 = 2.75 USD
    expect(Number(h!.revenue_usd)).toBeCloseTo(2.75, 12);
    // ARPU = revenue ÷ active accounts = 2.75 ÷ 4 = 0.6875; ARPPU = revenue ÷ payers = 2.75 ÷ 2 = 1.375
    expect(Number(h!.arpu_usd)).toBeCloseTo(0.6875, 12);
    expect(Number(h!.arppu_usd)).toBeCloseTo(1.375, 12);
    const [d] = await queryRows<Record<string, unknown>>(ch, `SELECT dau, payers, net_payers FROM ${ch.database}.kpi_active_1d`);
    // The day has the one hour: DAU 4, payers 2, net payers 1 (the same meanings per day).
    expect([Number(d!.dau), Number(d!.payers), Number(d!.net_payers)]).toEqual([4, 2, 1]);
  });
});
