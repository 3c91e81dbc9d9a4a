/**
 * Churn daily facts (DOMAIN §5) from payments, playback and gifts. Writes churn_account_daily:
 * per (UTC day, account, source partition) additive facts that churn-model.ts turns into the
 * 7/28-day features and the risk score (docs/churn.md). Days are tumbling one-day windows with a
 * one-hour grace; events of a closed day go to late_events.
 *
 * Playback: per-view state (views are keyed by view_id, so a view is in one partition) turns the
 * cumulative counters into deltas, credited to the day of the event that carries them; so a lost
 * or duplicated heartbeat changes nothing. A view is forgotten after a day idle (event time: its
 * last event older than watermark − 1 day); an index by last event time finds those views without
 * scanning them all after every batch.
 */
import { toUsdMicros } from '../../contracts/fx-rates.js';
import { sumOverflow } from '../../contracts/bounds.js';
import type { EventKind } from '../../contracts/topics.js';
import type { GiftEvent, PaymentEvent, PlaybackEvent } from '../../contracts/types.generated.js';
import { KeyedStore, type KeyedEntry } from '../core/keyed-store.js';
import { type Emitter, type Processor, WindowStore, type WindowStoreDeltaJSON, type WindowStoreJSON } from '../core/processor.js';
import { tumbling } from '../core/windows.js';
import { DAY_MS } from './churn-model.js';

const CHARGE_KINDS = new Set(['subscription_start', 'renewal', 'upgrade', 'downgrade', 'coin_topup']);
const CAP = 200;

export interface DayAcc {
  views: number;
  playing: number;
  rebuffer: number;
  vsf: number;
  failures: number;
  startup: number[];
  titles: string[];
  revenue: number;
  gift: number;
  payFailures: number;
  downgrades: number;
  lastViewMs: number;
  lastViewBad: number;
  /** Payment state of the day's latest payment event (time, plan, auto_renew, period_end). */
  payMs: number;
  plan: string;
  autoRenew: number;
  periodEnd: number;
  firstPayMs: number;
}
interface ViewState {
  account: string;
  startMs: number;
  firstFrame: boolean;
  playing: number;
  rebuffer: number;
  failed: boolean;
  lastMs: number;
  /**
   * The account-day entry this view's events last updated, and its day (derived, never
   * checkpointed): the view's next event of the same day and account updates it without a lookup
   * (WindowStore.update's `known`; stale once the day closed).
   */
  dayEntry: KeyedEntry<DayAcc> | undefined;
  dayWs: number;
}

export interface ChurnState {
  days: WindowStore<DayAcc>;
  /**
   * Views in the keyed-state store (core/keyed-store.ts), without rows: forgotten a day after
   * their last event (last < watermark − 1 day, i.e. watermark ≥ last + 1 day + 1 ms). lastMs
   * only grows, so the store's queue entry is re-checked when due and re-queued if it moved.
   */
  views: KeyedStore<ViewState>;
}

export interface ChurnOptions {
  graceMs?: number;
  allowedLatenessMs?: number;
  dedupHorizonMs?: number;
  /**
   * While the consumer is live (caught up), an account-day's open row is written at most once per
   * this long (processing time), its latest change at most about this long plus a commit cycle
   * after it happened (default 60 s; 0: at every cycle). The rows feed the daily scoring, and an
   * active account changed its day at every heartbeat. Closed days' rows are never held back.
   */
  dayRowIntervalMs?: number;
}

type ViewTuple = [id: string, account: string, startMs: number, firstFrame: 0 | 1, playing: number, rebuffer: number, failed: 0 | 1, lastMs: number];
const viewToTuple = (id: string, v: ViewState): ViewTuple => [
  id,
  v.account,
  v.startMs,
  v.firstFrame ? 1 : 0,
  v.playing,
  v.rebuffer,
  v.failed ? 1 : 0,
  v.lastMs,
];
const viewFromTuple = (t: ViewTuple): [string, ViewState] => [
  t[0],
  { account: t[1], startMs: t[2], firstFrame: t[3] === 1, playing: t[4], rebuffer: t[5], failed: t[6] === 1, lastMs: t[7], dayEntry: undefined, dayWs: 0 },
];

const newAcc = (): DayAcc => ({
  views: 0,
  playing: 0,
  rebuffer: 0,
  vsf: 0,
  failures: 0,
  startup: [],
  titles: [],
  revenue: 0,
  gift: 0,
  payFailures: 0,
  downgrades: 0,
  lastViewMs: 0,
  lastViewBad: 0,
  payMs: 0,
  plan: '',
  autoRenew: 1,
  periodEnd: 0,
  firstPayMs: 0,
});

export function churnProcessor(opts: ChurnOptions = {}): Processor<ChurnState> {
  const dayRowIntervalMs = opts.dayRowIntervalMs ?? 60_000;
  const day = tumbling(DAY_MS, opts.graceMs ?? 3_600_000) as Extract<ReturnType<typeof tumbling>, { kind: 'tumbling' }>;
  const newState = (): ChurnState => ({ days: new WindowStore(day, newAcc), views: new KeyedStore<ViewState>({ forgetAt: (v) => v.lastMs + DAY_MS + 1 }) });
  const row = (ws: number, account: string, a: DayAcc, final: boolean) => ({
    day: ws / DAY_MS,
    account_id: account,
    views: a.views,
    playing_ms: a.playing,
    rebuffer_ms: a.rebuffer,
    vsf: a.vsf,
    playback_failures: a.failures,
    startup_ms: [...a.startup].sort((x, y) => x - y),
    titles: [...a.titles].sort(),
    revenue_usd_micros: a.revenue,
    gift_usd_micros: a.gift,
    payment_failures: a.payFailures,
    downgrades: a.downgrades,
    last_view_time: a.lastViewMs || null,
    last_view_bad: a.lastViewBad,
    pay_state_time: a.payMs || null,
    plan: a.plan,
    auto_renew: a.autoRenew,
    period_end: a.periodEnd || null,
    first_payment_time: a.firstPayMs || null,
    is_final: final ? 1 : 0,
  });
  const emitAll = (s: ChurnState, out: Emitter, wm: number | null, full = true) => {
    const e = (r: Record<string, unknown>) => out.emit('churn_account_daily', r);
    if (wm === null) s.days.flushDue(full, row, e);
    else s.days.closeUpTo(wm, row, e);
  };
  return {
    name: 'churn',
    kinds: ['payments', 'playback', 'gifts'],
    tables: ['churn_account_daily'],
    jobTables: ['churn_scores', 'churn_score_days'],
    allowedLatenessMs: opts.allowedLatenessMs ?? 5_000,
    dedupHorizonMs: opts.dedupHorizonMs ?? 10 * 60_000,
    // Playback is a merge of cumulative counters (duplicates harmless, except view counting, which is guarded by view state).
    needsDedup: (kind: EventKind) => kind !== 'playback',
    init: newState,
    process(s, ev, rec, ctx) {
      const t = ev.event_time as number;
      if (s.days.isLate(t, ctx.watermarkMs)) return ctx.late('window_closed', s.days.windowStart(t) + DAY_MS);
      if (rec.kind === 'payments') {
        const p = ev as unknown as PaymentEvent;
        // The shared reference rates (contracts/fx-rates.ts), as the business processor uses.
        const usd = toUsdMicros(p.amount_minor, p.currency);
        if (usd === null) return ctx.late('unknown_currency');
        const ok = p.status === 'succeeded';
        const signed = CHARGE_KINDS.has(p.kind) ? usd : p.kind === 'refund' || p.kind === 'chargeback' ? -usd : 0;
        // The day's revenue stays exact, or the payment is refused before any change.
        const overflow = ok ? sumOverflow('churn_account_daily.revenue_usd_micros', s.days.peek(t, p.account_id)?.revenue ?? 0, signed) : null;
        if (overflow) return ctx.reject('value_overflow', overflow);
        s.days.update(t, p.account_id, (a) => {
          if (CHARGE_KINDS.has(p.kind)) {
            if (ok) a.revenue += usd;
            else a.payFailures++;
          } else if (ok && (p.kind === 'refund' || p.kind === 'chargeback')) a.revenue -= usd;
          if (ok && p.kind === 'downgrade') a.downgrades++;
          if (ok && (a.firstPayMs === 0 || t < a.firstPayMs)) a.firstPayMs = t;
          if (t >= a.payMs) {
            a.payMs = t;
            a.plan = p.plan;
            a.autoRenew = p.auto_renew && p.kind !== 'cancel' ? 1 : 0;
            a.periodEnd = p.period_end ?? 0;
          }
        });
      } else if (rec.kind === 'gifts') {
        const g = ev as unknown as GiftEvent;
        const value = g.quantity * g.unit_coins * g.coin_value_usd_micros;
        const overflow = sumOverflow('churn_account_daily.gift_usd_micros', s.days.peek(t, g.sender_account_id)?.gift ?? 0, value);
        if (overflow) return ctx.reject('value_overflow', overflow);
        s.days.update(t, g.sender_account_id, (a) => {
          a.gift += value;
        });
      } else {
        const v = ev as unknown as PlaybackEvent;
        const ve =
          s.views.entry(v.view_id) ??
          s.views.insert(
            v.view_id,
            { account: v.account_id, startMs: 0, firstFrame: false, playing: 0, rebuffer: 0, failed: false, lastMs: t, dayEntry: undefined, dayWs: 0 },
            false,
          );
        const view = ve.value;
        view.lastMs = Math.max(view.lastMs, t);
        // State only (no rows): listed for the next incremental checkpoint.
        s.views.changed(ve);
        const ws = s.days.windowStart(t);
        const known = view.dayEntry !== undefined && view.dayWs === ws && view.dayEntry.key === v.account_id ? view.dayEntry : undefined;
        view.dayWs = ws;
        view.dayEntry = s.days.update(
          t,
          v.account_id,
          (a) => {
            let changed = false;
            if (v.event_type === 'view_start' && view.startMs === 0) {
              view.startMs = t;
              a.views++;
              if (!a.titles.includes(v.content_id) && a.titles.length < CAP) a.titles.push(v.content_id);
              if (t > a.lastViewMs) a.lastViewMs = t;
              changed = true;
            }
            if (v.event_type === 'first_frame' && !view.firstFrame) {
              view.firstFrame = true;
              if (view.startMs > 0 && a.startup.length < CAP) a.startup.push(t - view.startMs);
              changed = true;
            }
            if (v.event_type === 'error' && v.error_severity === 'fatal' && !v.error_business && !view.failed) {
              view.failed = true;
              if (view.firstFrame) a.failures++;
              else a.vsf++;
              changed = true;
            }
            const dp = Math.max(0, (v.cum_playing_ms ?? 0) - view.playing);
            const dr = Math.max(0, (v.cum_rebuffer_ms ?? 0) - view.rebuffer);
            if (dp > 0 || dr > 0) {
              view.playing += dp;
              view.rebuffer += dr;
              a.playing += dp;
              a.rebuffer += dr;
              changed = true;
            }
            if (v.event_type === 'view_end' && view.startMs >= a.lastViewMs - 0 && view.startMs > 0) {
              a.lastViewBad = view.failed || (view.playing + view.rebuffer > 0 && view.rebuffer / (view.playing + view.rebuffer) >= 0.02) ? 1 : 0;
              changed = true;
            }
            return changed;
          },
          known,
        );
      }
    },
    onWatermark(s, wm, out) {
      emitAll(s, out, wm);
      // Forget views idle for a day.
      s.views.advance(wm);
    },
    onFlush: (s, out, full, live) => {
      if (full && live !== undefined && dayRowIntervalMs > 0) s.days.flushAged(live.nowMs, dayRowIntervalMs, row, (r) => out.emit('churn_account_daily', r));
      else emitAll(s, out, null, full);
    },
    // Views as positional tuples (no key names: less than half the bytes).
    serialize: (s) => ({ days: s.days.toJSON(), views: Array.from(s.views.entries(), (e) => viewToTuple(e.key, e.value)) }),
    deserialize(j) {
      const json = j as { days: WindowStoreJSON<DayAcc>; views: Array<ViewTuple | [string, ViewState]> };
      const s = newState();
      s.days.load(json.days);
      for (const x of json.views) {
        // [id, object]: a checkpoint written before views were tuples.
        const [k, v] = x.length === 2 ? [x[0], { ...x[1], dayEntry: undefined, dayWs: 0 }] : viewFromTuple(x);
        s.views.restore(k, v, false, false);
      }
      return s;
    },
    // Incremental checkpoints: the days' changes, views changed or forgotten since the last one.
    serializeDelta: (s) => {
      const ch = s.views.takeChanges();
      if (ch === null) return null;
      return { days: s.days.takeDelta(), views: ch.upserts.map((e) => viewToTuple(e.key, e.value)), gone: ch.deletes };
    },
    applyDelta: (s, d) => {
      const json = d as { days: WindowStoreDeltaJSON<DayAcc>; views: ViewTuple[]; gone: string[] };
      s.days.applyDelta(json.days);
      for (const k of json.gone) s.views.remove(k);
      for (const x of json.views) {
        const [k, v] = viewFromTuple(x);
        s.views.restore(k, v, false, false);
      }
    },
    markSaved: (s) => {
      s.days.markSaved();
      s.views.clearChanges();
    },
  };
}
