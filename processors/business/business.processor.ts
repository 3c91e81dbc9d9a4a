/**
 * Business KPIs (DOMAIN §4) from payments, gifts and playback, in one-minute event-time windows
 * (account activity in one-hour windows). See docs/metrics.md for every definition.
 *
 *  - payments → kpi_payments_1m by (method, plan, og_tier, country): attempts, succeeded, failed,
 *    gross, refunds, chargebacks, net (USD micros), coin top-ups; account_activity_1h (paid, net)
 *  - gifts    → kpi_gifts_1m by (creator, sender): gifts, quantity, coins, value;
 *               account_activity_1h (gifted)
 *  - playback → account_activity_1h (played)
 *
 * Lateness is decided on the one-minute window: an event whose minute closed (watermark ≥ end +
 * grace) more than the allowed lateness of its kind ago is late for every table and goes to
 * late_events, so the tables always agree; within the allowed lateness it is counted in every
 * table, the closed windows' rows rewritten (late firings, processors/core/late-firing.ts).
 */
import type { EventKind } from '../../contracts/topics.js';
import type { PaymentEvent, GiftEvent, PlaybackEvent } from '../../contracts/types.generated.js';
import { command, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { type Emitter, type Processor, type WindowUpdates, WindowStore, type WindowStoreDeltaJSON, type WindowStoreJSON } from '../core/processor.js';
import { tumbling } from '../core/windows.js';
import {
  historyTable,
  lateFiringKnownAt,
  LateWindows,
  type LatenessPolicy,
  type LateWindowsJSON,
  latenessFor,
  maxLateness,
  NO_LATENESS,
} from '../core/late-firing.js';
import { FX_RATES, FX_SOURCE, toUsdMicros } from '../../contracts/fx-rates.js';
import { sumOverflow } from '../../contracts/bounds.js';
import { ROLLUP_TABLES } from '../../sinks/clickhouse/rollups.js';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

/** Charges: attempts of these kinds count in the payment failure rate and, if they succeed, in gross revenue. */
export const CHARGE_KINDS = new Set(['subscription_start', 'renewal', 'upgrade', 'downgrade', 'coin_topup']);

interface PayAcc {
  attempts: number;
  succeeded: number;
  failed: number;
  gross: number;
  refunds: number;
  chargebacks: number;
  topups: number;
  topup: number;
}
interface GiftAcc {
  gifts: number;
  quantity: number;
  coins: number;
  value: number;
}
interface ActAcc {
  played: number;
  paid: number;
  gifted: number;
  net: number;
  gift: number;
}

export interface BusinessState {
  pay: WindowStore<PayAcc>;
  gifts: WindowStore<GiftAcc>;
  activity: WindowStore<ActAcc>;
  /** Closed windows of each store kept for the allowed lateness of the kinds that write it. */
  latePay: LateWindows<PayAcc>;
  lateGifts: LateWindows<GiftAcc>;
  lateActivity: LateWindows<ActAcc>;
}

/** Where an update goes: the open windows or the kept closed ones (same calls). */
type Target<A> = WindowUpdates<A>;

export interface BusinessOptions {
  graceMs?: number;
  allowedLatenessMs?: number;
  dedupHorizonMs?: number;
  /** Writes the fx_rates reference table at start. */
  ch?: ClickHouse;
  /** Allowed lateness past the grace per kind (late firings); default none. */
  lateness?: LatenessPolicy;
}

const SEP = '\u001f';

/** Why a succeeded payment would take one of its window sums past MAX_WINDOW_SUM, or null. */
function paymentOverflow(p: PaymentEvent, usd: number, charge: boolean, pay: PayAcc | undefined, act: ActAcc | undefined): string | null {
  let problem: string | null = null;
  if (charge) {
    problem = sumOverflow('kpi_payments_1m.gross_usd_micros', pay?.gross ?? 0, usd);
    if (!problem && p.kind === 'coin_topup') problem = sumOverflow('kpi_payments_1m.topup_usd_micros', pay?.topup ?? 0, usd);
  } else if (p.kind === 'refund') problem = sumOverflow('kpi_payments_1m.refunds_usd_micros', pay?.refunds ?? 0, usd);
  else if (p.kind === 'chargeback') problem = sumOverflow('kpi_payments_1m.chargebacks_usd_micros', pay?.chargebacks ?? 0, usd);
  const net = charge ? usd : p.kind === 'refund' || p.kind === 'chargeback' ? -usd : 0;
  return problem ?? sumOverflow('account_activity_1h.net_usd_micros', act?.net ?? 0, net);
}

export function businessProcessor(opts: BusinessOptions = {}): Processor<BusinessState> {
  const graceMs = opts.graceMs ?? 60_000;
  const minute = tumbling(MINUTE_MS, graceMs) as Extract<ReturnType<typeof tumbling>, { kind: 'tumbling' }>;
  const hour = tumbling(HOUR_MS, graceMs) as typeof minute;
  const policy = opts.lateness ?? NO_LATENESS;
  const outOfOrderMs = opts.allowedLatenessMs ?? 5_000;
  const newPay = (): PayAcc => ({ attempts: 0, succeeded: 0, failed: 0, gross: 0, refunds: 0, chargebacks: 0, topups: 0, topup: 0 });
  const newGift = (): GiftAcc => ({ gifts: 0, quantity: 0, coins: 0, value: 0 });
  const newAct = (): ActAcc => ({ played: 0, paid: 0, gifted: 0, net: 0, gift: 0 });
  const newState = (): BusinessState => ({
    pay: new WindowStore<PayAcc>(minute, newPay),
    gifts: new WindowStore<GiftAcc>(minute, newGift),
    activity: new WindowStore<ActAcc>(hour, newAct),
    latePay: new LateWindows(minute, latenessFor(policy, 'payments'), newPay),
    lateGifts: new LateWindows(minute, latenessFor(policy, 'gifts'), newGift),
    lateActivity: new LateWindows(hour, maxLateness(policy, ['payments', 'gifts', 'playback']), newAct),
  });

  const payRow = (ws: number, key: string, a: PayAcc, final: boolean) => {
    const [method, plan, ogTier, country] = key.split(SEP);
    return {
      window_start: ws / 1000,
      method,
      plan,
      og_tier: Number(ogTier),
      country,
      attempts: a.attempts,
      succeeded: a.succeeded,
      failed: a.failed,
      gross_usd_micros: a.gross,
      refunds_usd_micros: a.refunds,
      chargebacks_usd_micros: a.chargebacks,
      net_usd_micros: a.gross - a.refunds - a.chargebacks,
      topups: a.topups,
      topup_usd_micros: a.topup,
      is_final: final ? 1 : 0,
    };
  };
  const giftRow = (ws: number, key: string, a: GiftAcc, final: boolean) => {
    const [creatorId, senderId] = key.split(SEP);
    return {
      window_start: ws / 1000,
      creator_id: creatorId,
      sender_account_id: senderId,
      gifts: a.gifts,
      quantity: a.quantity,
      coins: a.coins,
      value_usd_micros: a.value,
      is_final: final ? 1 : 0,
    };
  };
  const actRow = (ws: number, key: string, a: ActAcc, final: boolean) => ({
    hour: ws / 1000,
    account_id: key,
    played: a.played,
    paid: a.paid,
    gifted: a.gifted,
    net_usd_micros: a.net,
    gift_usd_micros: a.gift,
    is_final: final ? 1 : 0,
  });
  const emitAll = (s: BusinessState, out: Emitter, how: 'close' | 'flush', wm = 0, full = true) => {
    const e = (table: string) => (row: Record<string, unknown>) => out.emit(table, row);
    const h = (table: string) => e(historyTable(table));
    if (how === 'close') {
      s.latePay.closeUpTo(s.pay, wm, payRow, e('kpi_payments_1m'), h('kpi_payments_1m'));
      s.lateGifts.closeUpTo(s.gifts, wm, giftRow, e('kpi_gifts_1m'), h('kpi_gifts_1m'));
      s.lateActivity.closeUpTo(s.activity, wm, actRow, e('account_activity_1h'), h('account_activity_1h'));
    } else {
      s.pay.flushDue(full, payRow, e('kpi_payments_1m'));
      s.gifts.flushDue(full, giftRow, e('kpi_gifts_1m'));
      s.activity.flushDue(full, actRow, e('account_activity_1h'));
      s.latePay.flush(payRow, e('kpi_payments_1m'), h('kpi_payments_1m'));
      s.lateGifts.flush(giftRow, e('kpi_gifts_1m'), h('kpi_gifts_1m'));
      s.lateActivity.flush(actRow, e('account_activity_1h'), h('account_activity_1h'));
    }
  };

  return {
    name: 'business',
    kinds: ['payments', 'gifts', 'playback'],
    // The history tables hold the revisions of re-fired rows (late firings), read as of t by alerts.
    tables: ['kpi_payments_1m', 'kpi_gifts_1m', 'account_activity_1h', ...['kpi_payments_1m', 'kpi_gifts_1m', 'account_activity_1h'].map(historyTable)],
    // Rollups of closed buckets (sinks/clickhouse/rollups.ts): emptied with the tables by a replay.
    jobTables: ROLLUP_TABLES.business,
    allowedLatenessMs: outOfOrderMs,
    // A copy older than grace + allowed lateness + a minute behind the watermark falls in a
    // window past its allowed lateness: it is late (kept in late_events, keyed by position) and
    // cannot be counted, so ids need not be kept longer. Smaller dedup state means cheaper checkpoints.
    dedupHorizonMs: opts.dedupHorizonMs ?? graceMs + (opts.allowedLatenessMs ?? 5_000) + maxLateness(policy, ['payments', 'gifts']) + MINUTE_MS,
    // Playback only sets "played" flags (an OR): a duplicate cannot change it, so it skips dedup state.
    needsDedup: (kind: EventKind) => kind !== 'playback',
    init: newState,
    async start() {
      if (!opts.ch) return;
      const rows = FX_RATES.map((r) => `('${r.currency}', ${r.usdPerUnit}, ${r.minorDigits}, '${r.validFrom}', '${FX_SOURCE.replace(/'/g, "''")}')`).join(', ');
      await command(opts.ch, `INSERT INTO ${opts.ch.database}.fx_rates (currency, usd_per_unit, minor_digits, valid_from, source) VALUES ${rows}`);
    },
    process(s, ev, rec, ctx) {
      const t = ev.event_time as number;
      const wm = ctx.watermarkMs;
      const lateMs = latenessFor(policy, rec.kind);
      // The minute decides (the kind's own minute store; playback has none and asks payments'),
      // and the hour must agree: both open or kept, else the event is late for every table.
      const minuteLate = rec.kind === 'gifts' ? s.lateGifts : s.latePay;
      let minuteTo = minuteLate.target(t, wm, lateMs);
      let hourTo = s.lateActivity.target(t, wm, lateMs);
      if (minuteTo === 'close' || hourTo === 'close') {
        // The watermark closed the event's window within this batch: close the stores now, so the
        // closing (on-time) row never holds this late event, whatever the batch boundaries.
        emitAll(s, ctx, 'close', wm);
        minuteTo = minuteLate.target(t, wm, lateMs);
        hourTo = s.lateActivity.target(t, wm, lateMs);
      }
      if (minuteTo === 'late' || hourTo === 'late') {
        ctx.late('window_closed', s.pay.windowStart(t) + MINUTE_MS);
        return;
      }
      // A late firing is known at its record's Kafka timestamp, and never before the partition's
      // stream time (watermark + out-of-orderness bound): both from the log (lateFiringKnownAt).
      // (Views and closures only on this rare path: every playback event passes here.)
      const kept = minuteTo === 'kept' || hourTo === 'kept';
      let pay: Target<PayAcc> = s.pay;
      let gifts: Target<GiftAcc> = s.gifts;
      let activity: Target<ActAcc> = s.activity;
      if (kept) {
        const knownAt = lateFiringKnownAt(wm, outOfOrderMs, rec.timestampMs);
        const h = (table: string) => (row: Record<string, unknown>) => ctx.emit(historyTable(table), row);
        if (minuteTo === 'kept') {
          pay = s.latePay.at(knownAt, payRow, h('kpi_payments_1m'));
          gifts = s.lateGifts.at(knownAt, giftRow, h('kpi_gifts_1m'));
        }
        if (hourTo === 'kept') activity = s.lateActivity.at(knownAt, actRow, h('account_activity_1h'));
      }
      switch (rec.kind) {
        case 'payments': {
          const p = ev as unknown as PaymentEvent;
          const usd = toUsdMicros(p.amount_minor, p.currency);
          if (usd === null) {
            ctx.late('unknown_currency');
            return;
          }
          const ok = p.status === 'succeeded';
          const charge = CHARGE_KINDS.has(p.kind);
          // Every sum this payment adds to stays exact, or the payment is refused before any change.
          const pk = [p.method, p.plan, p.og_tier, p.country].join(SEP);
          const overflow = ok ? paymentOverflow(p, usd, charge, pay.peek(t, pk), activity.peek(t, p.account_id)) : null;
          if (overflow) {
            ctx.reject('value_overflow', overflow);
            return;
          }
          let net = 0;
          pay.update(t, pk, (a) => {
            if (charge) {
              a.attempts++;
              if (ok) {
                a.succeeded++;
                a.gross += usd;
                net = usd;
                if (p.kind === 'coin_topup') {
                  a.topups++;
                  a.topup += usd;
                }
              } else a.failed++;
            } else if (ok && p.kind === 'refund') {
              a.refunds += usd;
              net = -usd;
            } else if (ok && p.kind === 'chargeback') {
              a.chargebacks += usd;
              net = -usd;
            }
          });
          activity.update(t, p.account_id, (a) => {
            if (charge && ok) a.paid = 1;
            a.net += net;
          });
          break;
        }
        case 'gifts': {
          const g = ev as unknown as GiftEvent;
          const coins = g.quantity * g.unit_coins;
          const value = coins * g.coin_value_usd_micros;
          const gk = g.creator_id + SEP + g.sender_account_id;
          const ga = gifts.peek(t, gk);
          const overflow =
            sumOverflow('kpi_gifts_1m.value_usd_micros', ga?.value ?? 0, value) ??
            sumOverflow('kpi_gifts_1m.coins', ga?.coins ?? 0, coins) ??
            sumOverflow('account_activity_1h.gift_usd_micros', activity.peek(t, g.sender_account_id)?.gift ?? 0, value);
          if (overflow) {
            ctx.reject('value_overflow', overflow);
            return;
          }
          gifts.update(t, gk, (a) => {
            a.gifts++;
            a.quantity += g.quantity;
            a.coins += coins;
            a.value += value;
          });
          activity.update(t, g.sender_account_id, (a) => {
            a.gifted = 1;
            a.gift += value;
          });
          break;
        }
        case 'playback': {
          const v = ev as unknown as PlaybackEvent;
          activity.update(t, v.account_id, (a) => {
            if (a.played === 1) return false;
            a.played = 1;
          });
          break;
        }
        default:
          break;
      }
      if (kept) ctx.lateFiring();
    },
    onWatermark: (s, wm, out) => emitAll(s, out, 'close', wm),
    onFlush: (s, out, full) => emitAll(s, out, 'flush', 0, full),
    serialize: (s) => ({
      pay: s.pay.toJSON(),
      gifts: s.gifts.toJSON(),
      activity: s.activity.toJSON(),
      late: { pay: s.latePay.toJSON(), gifts: s.lateGifts.toJSON(), activity: s.lateActivity.toJSON() },
    }),
    deserialize: (j) => {
      const json = j as {
        pay: WindowStoreJSON<PayAcc>;
        gifts: WindowStoreJSON<GiftAcc>;
        activity: WindowStoreJSON<ActAcc>;
        late?: { pay: LateWindowsJSON<PayAcc>; gifts: LateWindowsJSON<GiftAcc>; activity: LateWindowsJSON<ActAcc> };
      };
      const s = newState();
      s.pay.load(json.pay);
      s.gifts.load(json.gifts);
      s.activity.load(json.activity);
      s.latePay.load(json.late?.pay);
      s.lateGifts.load(json.late?.gifts);
      s.lateActivity.load(json.late?.activity);
      return s;
    },
    // Incremental checkpoints: the windows' changes; the kept closed windows of late firings in
    // full when they changed (a window closed or forgotten, a late event).
    serializeDelta: (s) => ({
      pay: s.pay.takeDelta(),
      gifts: s.gifts.takeDelta(),
      activity: s.activity.takeDelta(),
      late: { pay: s.latePay.takeDelta(), gifts: s.lateGifts.takeDelta(), activity: s.lateActivity.takeDelta() },
    }),
    applyDelta: (s, d) => {
      const json = d as {
        pay: WindowStoreDeltaJSON<PayAcc>;
        gifts: WindowStoreDeltaJSON<GiftAcc>;
        activity: WindowStoreDeltaJSON<ActAcc>;
        late: { pay: LateWindowsJSON<PayAcc>; gifts: LateWindowsJSON<GiftAcc>; activity: LateWindowsJSON<ActAcc> };
      };
      s.pay.applyDelta(json.pay);
      s.gifts.applyDelta(json.gifts);
      s.activity.applyDelta(json.activity);
      s.latePay.applyDelta(json.late.pay);
      s.lateGifts.applyDelta(json.late.gifts);
      s.lateActivity.applyDelta(json.late.activity);
    },
    markSaved: (s) => {
      s.pay.markSaved();
      s.gifts.markSaved();
      s.activity.markSaved();
      s.latePay.markSaved();
      s.lateGifts.markSaved();
      s.lateActivity.markSaved();
    },
  };
}
