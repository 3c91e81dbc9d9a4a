/**
 * Writes tests/golden/qoe/input.jsonl (run: npx tsx tests/golden/qoe/make-input.ts). The file is
 * the fixture; this script only documents how it was made. Times are offsets from T0 in seconds.
 */
import { writeFileSync } from 'node:fs';
import { validateEvent } from '../../../contracts/validate.js';

const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);
let n = 0;
const uuid = (i: number) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
const DIMS: Record<string, Record<string, unknown>> = {
  akamai: { cdn: 'akamai', device_category: 'mobile', country: 'NP', asn: 17501, content_id: 'c1', os: 'android', app_version: '5.1.0' },
  cloudfront: { cdn: 'cloudfront', device_category: 'tv', country: 'NP', asn: 17501, content_id: 'c1', os: 'tizen', app_version: '5.1.0' },
  fastly: { cdn: 'fastly', device_category: 'mobile', country: 'IN', asn: 9829, content_id: 'c2', os: 'ios', app_version: '5.0.2' },
  tail: { cdn: 'fastly', device_category: 'web', country: 'IN', asn: 9829, content_id: 'c3', os: 'macos', app_version: '5.1.0' },
};
const seqs = new Map<string, number>();
const lines: string[] = [];
const byId = new Map<string, Record<string, unknown>>();

function ev(view: string, dims: string, atS: number, type: string, state: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const seq = seqs.get(view) ?? 0;
  seqs.set(view, seq + 1);
  const e = {
    event_id: uuid(++n),
    event_time: T0 + Math.round(atS * 1000),
    view_id: `view-${view}`,
    seq,
    event_type: type,
    player_state: state,
    playhead_ms: 0,
    viewer_id: `viewer-${view}`,
    account_id: `acct-${view}`,
    stream_type: 'vod',
    ...DIMS[dims],
    ...extra,
  };
  byId.set(e.event_id, e);
  return e;
}
const push = (e: Record<string, unknown>) => {
  const v = validateEvent('playback', e);
  if (!v.ok) throw new Error(`${String(e.event_id)}: ${v.reason}`);
  lines.push(JSON.stringify({ kind: 'playback', event: e }));
};
const cum = (playing: number, rebuffer: number, count: number, bitrateMs: number) => ({
  cum_playing_ms: playing,
  cum_rebuffer_ms: rebuffer,
  cum_rebuffer_count: count,
  cum_seek_ms: 0,
  cum_bitrate_ms: bitrateMs,
});

// A: play with two rebuffers; hb30 arrives after hb40 (reordered) and hb20 is delivered twice.
const a: Record<string, unknown>[] = [
  ev('A', 'akamai', 0, 'view_start', 'starting'),
  ev('A', 'akamai', 2, 'first_frame', 'playing', { bitrate_kbps: 2000 }),
  ev('A', 'akamai', 10, 'heartbeat', 'playing', cum(8000, 0, 0, 16_000_000)),
  ev('A', 'akamai', 15, 'rebuffer_start', 'rebuffering'),
  ev('A', 'akamai', 17, 'rebuffer_end', 'playing'),
  ev('A', 'akamai', 20, 'heartbeat', 'playing', cum(16000, 2000, 1, 32_000_000)),
  ev('A', 'akamai', 30, 'rendition_change', 'playing', { bitrate_kbps: 4000 }),
  ev('A', 'akamai', 30, 'heartbeat', 'playing', cum(26000, 2000, 1, 52_000_000)),
  ev('A', 'akamai', 35, 'rebuffer_start', 'rebuffering'),
  ev('A', 'akamai', 38, 'rebuffer_end', 'playing'),
  ev('A', 'akamai', 40, 'heartbeat', 'playing', cum(33000, 5000, 2, 80_000_000)),
  ev('A', 'akamai', 60, 'view_end', 'ended', { ...cum(53000, 5000, 2, 160_000_000), end_reason: 'ended' }),
];
// B: video start failure. C: exit before video start. D: business exception (geo-block).
const b = [
  ev('B', 'akamai', 10, 'view_start', 'starting'),
  ev('B', 'akamai', 14, 'error', 'error', { error_code: 'MEDIA_ERR_SRC_NOT_SUPPORTED', error_severity: 'fatal', error_business: false }),
  ev('B', 'akamai', 15, 'view_end', 'ended', { ...cum(0, 0, 0, 0), end_reason: 'fatal_error' }),
];
const c = [
  ev('C', 'cloudfront', 20, 'view_start', 'starting'),
  ev('C', 'cloudfront', 30, 'heartbeat', 'starting', cum(0, 0, 0, 0)),
  ev('C', 'cloudfront', 33, 'view_end', 'ended', { ...cum(0, 0, 0, 0), end_reason: 'user_exit' }),
];
const d = [
  ev('D', 'akamai', 25, 'view_start', 'starting'),
  ev('D', 'akamai', 26, 'error', 'error', { error_code: 'GEO_BLOCKED', error_severity: 'fatal', error_business: true }),
  ev('D', 'akamai', 26.5, 'view_end', 'ended', { ...cum(0, 0, 0, 0), end_reason: 'fatal_error' }),
];
// E: mid-stream failure; the heartbeat at 60 s is lost (never in the file).
const e = [
  ev('E', 'fastly', 30, 'view_start', 'starting'),
  ev('E', 'fastly', 31.5, 'first_frame', 'playing', { bitrate_kbps: 3000 }),
  ev('E', 'fastly', 40, 'heartbeat', 'playing', cum(8500, 0, 0, 25_500_000)),
  ev('E', 'fastly', 50, 'heartbeat', 'playing', cum(18500, 0, 0, 55_500_000)),
];
seqs.set('E', (seqs.get('E') ?? 0) + 1); // the lost heartbeat took seq 4
e.push(
  ev('E', 'fastly', 65, 'error', 'error', { error_code: 'NETWORK_ERROR', error_severity: 'fatal', error_business: false }),
  ev('E', 'fastly', 66, 'view_end', 'ended', { ...cum(33500, 0, 0, 100_500_000), end_reason: 'fatal_error' }),
);
// F: plays, then the app is killed: no view_end, times out after 60 min (dropped).
const f = [
  ev('F', 'cloudfront', 40, 'view_start', 'starting'),
  ev('F', 'cloudfront', 41, 'first_frame', 'playing', { bitrate_kbps: 1000 }),
  ev('F', 'cloudfront', 50, 'heartbeat', 'playing', cum(9000, 0, 0, 9_000_000)),
  ev('F', 'cloudfront', 60, 'heartbeat', 'playing', cum(19000, 0, 0, 19_000_000)),
  ev('F', 'cloudfront', 70, 'heartbeat', 'playing', cum(29000, 0, 0, 29_000_000)),
];
// G1..G3: short plays 62 min later; they move every partition's watermark past the others.
const g = ['G1', 'G2', 'G3'].map((id, i) => [
  ev(id, 'tail', 3720 + i, 'view_start', 'starting'),
  ev(id, 'tail', 3721 + i, 'first_frame', 'playing', { bitrate_kbps: 2500 }),
  ev(id, 'tail', 3722 + i, 'view_end', 'ended', { ...cum(1000, 0, 0, 2_500_000), end_reason: 'user_exit' }),
]);

// Interleave by event time (stable), then apply the delivery faults to A.
const all = [...a, ...b, ...c, ...d, ...e, ...f].sort((x, y) => (x.event_time as number) - (y.event_time as number));
const hb30 = a[7]!;
const hb40 = a[10]!;
const order = all.filter((x) => x !== hb30);
order.splice(order.indexOf(hb40) + 1, 0, hb30); // hb30 after hb40
order.splice(order.indexOf(hb30) + 1, 0, a[5]!); // hb20 again (same event_id)
for (const x of order) push(x);
for (const x of g.flat()) push(x);
writeFileSync(new URL('./input.jsonl', import.meta.url), lines.join('\n') + '\n');
console.log(`${lines.length} events`);
