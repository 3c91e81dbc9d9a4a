/**
 * Business KPIs on the golden input, in memory (no broker): straight, with a crash and restore
 * from a mid-stream checkpoint, and at three partitionings. All must give the hand-worked rows.
 * The same files run through real Kafka, Redis and ClickHouse in tests/integration/.
 */
import { describe, expect, it } from 'vitest';
import { validateEvent } from '../../contracts/validate.js';
import { businessProcessor, type BusinessState } from '../../processors/business/business.processor.js';
import { ProcessorTestDriver } from '../../processors/core/test-driver.js';
import { loadGoldenExpected, loadGoldenInput, sortRows, sumBy, toDriverRecords } from '../helpers/golden.js';

const input = loadGoldenInput('business');
const expected = loadGoldenExpected<Record<string, any>>('business');

const PAY_KEYS = ['window_start', 'method', 'plan', 'og_tier', 'country'];
const PAY_VALUES = [
  'attempts',
  'succeeded',
  'failed',
  'gross_usd_micros',
  'refunds_usd_micros',
  'chargebacks_usd_micros',
  'net_usd_micros',
  'topups',
  'topup_usd_micros',
];
const GIFT_KEYS = ['window_start', 'creator_id', 'sender_account_id'];
const GIFT_VALUES = ['gifts', 'quantity', 'coins', 'value_usd_micros'];
const ACT_KEYS = ['hour', 'account_id'];
const ACT_VALUES = ['played', 'paid', 'gifted', 'net_usd_micros', 'gift_usd_micros'];
const FLAGS = { played: 'max', paid: 'max', gifted: 'max' } as const;

function newDriver() {
  return new ProcessorTestDriver<BusinessState>(businessProcessor({ graceMs: expected.graceMs, allowedLatenessMs: expected.allowedLatenessMs }));
}

function assertGolden(d: ProcessorTestDriver<BusinessState>) {
  d.flush();
  expect(sumBy(d.table('kpi_payments_1m', PAY_KEYS), PAY_KEYS, PAY_VALUES)).toEqual(sortRows(expected.kpi_payments_1m, PAY_KEYS));
  expect(sumBy(d.table('kpi_gifts_1m', GIFT_KEYS), GIFT_KEYS, GIFT_VALUES)).toEqual(sortRows(expected.kpi_gifts_1m, GIFT_KEYS));
  expect(sumBy(d.table('account_activity_1h', ACT_KEYS), ACT_KEYS, ACT_VALUES, FLAGS)).toEqual(sortRows(expected.account_activity_1h, ACT_KEYS));
  const late = d.table('late_events', ['processor', 'src_offset']).map((r) => ({ event_id: r.event_id, reason: r.reason }));
  expect(late).toEqual(expected.late_events);
}

describe('business processor on the golden input (in memory)', () => {
  it('every golden event is valid against its contract', () => {
    for (const r of input) expect(validateEvent(r.kind, r.event)).toMatchObject({ ok: true });
  });

  it('straight run, one partition per topic', () => {
    const d = newDriver();
    d.pipe(toDriverRecords(input, 1));
    assertGolden(d);
  });

  it.each([1, 2, 3, 6])('straight run, %i partitions per topic', (n) => {
    const d = newDriver();
    d.pipe(toDriverRecords(input, n));
    assertGolden(d);
  });

  it.each([3, 7, 11, 15])('crash after %i records: restore from the checkpoint, reprocess the rest', (cut) => {
    const records = toDriverRecords(input, 3);
    const d = newDriver();
    d.pipe(records.slice(0, cut));
    const ckpt = d.checkpoint();
    d.pipe(records.slice(cut, cut + 2)); // work after the checkpoint that the crash loses
    d.restore(ckpt); // state from the checkpoint; the records after it are processed again
    d.pipe(records.slice(cut + 2));
    assertGolden(d);
  });

  it('one record at a time (a batch per record) gives the same rows', () => {
    const d = newDriver();
    for (const r of toDriverRecords(input, 2)) d.pipe([r]);
    assertGolden(d);
  });
});
