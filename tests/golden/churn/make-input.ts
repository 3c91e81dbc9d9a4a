/**
 * Writes tests/golden/churn/input.jsonl (run: npx tsx tests/golden/churn/make-input.ts). The file
 * is the fixture; this script documents how it was made (README.md has the accounts and the hand
 * calculation). D0 = 2024-05-01 (day 19844); the score day is D = D0 + 30 = 2024-05-31.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateEvent } from '../../../contracts/validate.js';

const DAY = 86_400_000;
const D0 = Date.UTC(2024, 4, 1);
const at = (day: number, h: number, m = 0) => D0 + day * DAY + (h * 60 + m) * 60_000;
let n = 0;
const uuid = () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, '0')}`;
type Rec = { kind: 'payments' | 'playback' | 'gifts' | 'catalog'; event: Record<string, unknown> };
const out: Rec[] = [];

const genres: Record<string, string> = {
  'c-drama-1': 'drama',
  'c-drama-2': 'drama',
  'c-doc-1': 'documentary',
  'c-kids-1': 'kids',
  'c-kids-2': 'kids',
  'c-sports-1': 'sports',
};
for (const [id, genre] of Object.entries(genres)) {
  out.push({
    kind: 'catalog',
    event: {
      event_id: uuid(),
      event_time: D0,
      received_time: D0,
      content_id: id,
      title: `Title ${id}`,
      show_name: `Show ${id}`,
      genre,
      stream_type: 'vod',
      duration_ms: 7_200_000,
      creator_id: null,
    },
  });
}

function pay(
  account: string,
  t: number,
  kind: string,
  status: string,
  amountMinor: number,
  currency: string,
  plan: string,
  autoRenew: boolean,
  periodEnd: number | null,
) {
  out.push({
    kind: 'payments',
    event: {
      event_id: uuid(),
      event_time: t,
      received_time: t,
      payment_id: `pay-${n}`,
      account_id: account,
      kind,
      status,
      amount_minor: amountMinor,
      currency,
      method: currency === 'NPR' ? 'esewa' : 'card',
      plan,
      og_tier: 0,
      auto_renew: autoRenew,
      period_end: periodEnd,
      failure_code: status === 'failed' ? 'insufficient_funds' : null,
      country: 'NP',
    },
  });
}

/** A view: start, first frame after startupMs, a heartbeat half-way, the end; or a start failure (vsf). */
function view(account: string, t: number, content: string, o: { playingMs?: number; rebufferMs?: number; startupMs?: number; vsf?: boolean } = {}) {
  const viewId = `view-${account}-${t}`;
  let seq = 0;
  const base = (time: number, type: string, f: Record<string, unknown> = {}) =>
    out.push({
      kind: 'playback',
      event: {
        event_id: uuid(),
        event_time: time,
        received_time: time,
        view_id: viewId,
        seq: seq++,
        event_type: type,
        player_state: 'playing',
        playhead_ms: 0,
        viewer_id: `viewer-${account}`,
        account_id: account,
        content_id: content,
        stream_type: 'vod',
        creator_id: null,
        device_category: 'tv',
        os: 'tizen',
        app_version: '5.2.0',
        cdn: 'akamai',
        country: 'NP',
        asn: 17501,
        bitrate_kbps: null,
        width: null,
        height: null,
        error_code: null,
        error_severity: null,
        error_business: null,
        end_reason: null,
        cum_playing_ms: null,
        cum_rebuffer_ms: null,
        cum_rebuffer_count: null,
        cum_seek_ms: null,
        cum_bitrate_ms: null,
        ...f,
      },
    });
  base(t, 'view_start', { player_state: 'starting' });
  if (o.vsf) {
    base(t + 5_000, 'error', { player_state: 'error', error_code: 'MEDIA_ERR_NETWORK', error_severity: 'fatal', error_business: false });
    base(t + 6_000, 'view_end', { player_state: 'error', end_reason: 'error', cum_playing_ms: 0, cum_rebuffer_ms: 0, cum_rebuffer_count: 0 });
    return;
  }
  const startup = o.startupMs ?? 1_000,
    playing = o.playingMs ?? 3_600_000,
    rebuffer = o.rebufferMs ?? 0;
  const t1 = t + startup;
  base(t1, 'first_frame', { bitrate_kbps: 3000 });
  base(t1 + (playing + rebuffer) / 2, 'heartbeat', {
    cum_playing_ms: playing / 2,
    cum_rebuffer_ms: rebuffer / 2,
    cum_rebuffer_count: rebuffer > 0 ? 1 : 0,
    cum_seek_ms: 0,
    cum_bitrate_ms: 0,
  });
  base(t1 + playing + rebuffer, 'view_end', {
    player_state: 'ended',
    end_reason: 'completed',
    cum_playing_ms: playing,
    cum_rebuffer_ms: rebuffer,
    cum_rebuffer_count: rebuffer > 0 ? 2 : 0,
    cum_seek_ms: 0,
    cum_bitrate_ms: 0,
  });
}

// a-steady: standard, USD; watches an hour every evening; renews on day 30.
pay('a-steady', at(0, 9), 'subscription_start', 'succeeded', 999, 'USD', 'standard', true, at(30, 0));
pay('a-steady', at(30, 9), 'renewal', 'succeeded', 999, 'USD', 'standard', true, at(60, 0));
for (let d = 0; d <= 30; d++) view('a-steady', at(d, 20), d % 2 === 0 ? 'c-drama-1' : 'c-drama-2');

// a-falling: premium, USD; an hour every evening to day 23, then one bad half-hour on day 25; renewal fails twice on day 30.
pay('a-falling', at(0, 9), 'subscription_start', 'succeeded', 1499, 'USD', 'premium', true, at(30, 0));
for (let d = 0; d <= 23; d++) view('a-falling', at(d, 20), 'c-drama-1');
view('a-falling', at(25, 20), 'c-doc-1', { playingMs: 1_800_000, rebufferMs: 60_000 });
pay('a-falling', at(30, 8), 'renewal', 'failed', 1499, 'USD', 'premium', true, at(30, 0));
pay('a-falling', at(30, 12), 'renewal', 'failed', 1499, 'USD', 'premium', true, at(30, 0));

// a-new: basic, USD, from day 25; an hour a day with 4 s startup, one start failure on day 28; a gift.
pay('a-new', at(25, 9), 'subscription_start', 'succeeded', 499, 'USD', 'basic', true, at(55, 0));
for (let d = 25; d <= 30; d++) view('a-new', at(d, 20), 'c-kids-1', { startupMs: 4_000 });
view('a-new', at(28, 21, 30), 'c-kids-2', { vsf: true });
out.push({
  kind: 'gifts',
  event: {
    event_id: uuid(),
    event_time: at(27, 21),
    received_time: at(27, 21),
    gift_id: 'gift-1',
    sender_account_id: 'a-new',
    creator_id: 'creator-1',
    stream_id: 'stream-1',
    gift_type: 'star',
    quantity: 1,
    unit_coins: 50,
    coin_value_usd_micros: 10_000,
  },
});

// a-down: premium in NPR, downgrades to basic on day 20, turns auto-renew off (cancel) on day 28; watches every other evening.
pay('a-down', at(0, 9), 'subscription_start', 'succeeded', 199_900, 'NPR', 'premium', true, at(30, 0));
pay('a-down', at(20, 9), 'downgrade', 'succeeded', 66_500, 'NPR', 'basic', true, at(50, 0));
pay('a-down', at(28, 9), 'cancel', 'succeeded', 0, 'NPR', 'basic', false, at(50, 0));
for (let d = 0; d <= 30; d += 2) view('a-down', at(d, 20), 'c-sports-1');

const sorted = out
  .map((r, i) => ({ r, i }))
  .sort((a, b) => (a.r.event.event_time as number) - (b.r.event.event_time as number) || a.i - b.i)
  .map((x) => x.r);
for (const r of sorted) {
  const v = validateEvent(r.kind, r.event);
  if (!v.ok) throw new Error(`invalid ${r.kind}: ${JSON.stringify(v)}`);
}
writeFileSync(join(fileURLToPath(new URL('.', import.meta.url)), 'input.jsonl'), sorted.map((r) => JSON.stringify(r)).join('\n') + '\n');
console.log(`${sorted.length} records`);
