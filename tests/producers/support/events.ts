/** Valid events for producer tests (fixed ids and times so assertions can compare them). */
import { randomUUID } from 'node:crypto';
import type { GiftEvent, PlaybackEvent } from '../../../contracts/types.generated.js';

export const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);

export function playbackEvent(i: number, overrides: Partial<PlaybackEvent> = {}): PlaybackEvent {
  return {
    event_id: randomUUID(),
    event_time: T0 + i * 10_000,
    view_id: `view-${i % 50}`,
    seq: i,
    event_type: 'heartbeat',
    player_state: 'playing',
    playhead_ms: i * 10_000,
    viewer_id: `viewer-${i % 50}`,
    account_id: `acct-${i % 20}`,
    content_id: 'content-7',
    stream_type: 'vod',
    device_category: 'smart_tv',
    os: 'tizen',
    app_version: '5.2.1',
    cdn: 'akamai',
    country: 'NP',
    asn: 4007,
    bitrate_kbps: 4500,
    cum_playing_ms: i * 10_000,
    cum_rebuffer_ms: 0,
    cum_rebuffer_count: 0,
    cum_seek_ms: 0,
    cum_bitrate_ms: i * 45_000_000,
    ...overrides,
  };
}

export function giftEvent(i: number, overrides: Partial<GiftEvent> = {}): GiftEvent {
  return {
    event_id: randomUUID(),
    event_time: T0 + i * 1000,
    gift_id: `gift-${i}`,
    sender_account_id: `acct-${i % 7}`,
    creator_id: 'creator-3',
    stream_id: `stream-${i % 3}`,
    gift_type: 'rose',
    quantity: 1 + (i % 4),
    unit_coins: 10,
    coin_value_usd_micros: 10_000,
    ...overrides,
  };
}
