/**
 * The simulator's generator is pure: these tests drive it with an event-time position only
 * (no sleeps, no broker) and measure what the pipeline would measure from the events.
 */
import { describe, expect, it } from 'vitest';
import { avroType } from '../../contracts/schemas.js';
import { validateEvent } from '../../contracts/validate.js';
import type { EventByKind, PlaybackEvent } from '../../contracts/types.generated.js';
import { normaliseJiraWebhook } from '../../producers/jira/jira-normalise.js';
import { DEFAULT_JIRA_FIELD_MAP, TrafficGenerator, type GeneratorOptions, type SimEvent } from '../../producers/simulator/generator.js';
import { INCIDENTS, INCIDENT_NAMES, type IncidentName, type IncidentSpec } from '../../producers/simulator/incidents.js';
import { Prng } from '../../producers/simulator/prng.js';

const START = Date.UTC(2026, 10, 17, 6, 0, 0);
const MIN = 60_000;
const HOUR = 60 * MIN;

function gen(opts: Partial<GeneratorOptions> & { minutes: number }): SimEvent[] {
  const { minutes, ...rest } = opts;
  return new TrafficGenerator({ seed: 42, startMs: START, ratePerSec: 50, ...rest }).advance(START + minutes * MIN);
}

function ofKind<K extends SimEvent['kind']>(events: SimEvent[], kind: K): EventByKind[K][] {
  return events.filter((e) => e.kind === kind).map((e) => e.event as EventByKind[K]);
}

function incident(name: IncidentName, startMin: number, durationMin: number, target?: string): IncidentSpec {
  return { name, startMs: START + startMin * MIN, durationMs: durationMin * MIN, ...(target ? { target } : {}) };
}

/** Rebuffer % per cdn in [fromMs, toMs) from heartbeat/view_end deltas of cumulative counters. */
function rebufferPctByCdn(events: SimEvent[], fromMs: number, toMs: number): Record<string, number> {
  const last = new Map<string, { play: number; rebuf: number }>();
  const sums: Record<string, { play: number; rebuf: number }> = {};
  for (const e of ofKind(events, 'playback')) {
    if (e.cum_playing_ms == null) continue;
    const prev = last.get(e.view_id) ?? { play: 0, rebuf: 0 };
    const cur = { play: e.cum_playing_ms, rebuf: e.cum_rebuffer_ms ?? 0 };
    last.set(e.view_id, cur);
    if (e.event_time < fromMs || e.event_time >= toMs || prev.play === 0) continue;
    const s = (sums[e.cdn] ??= { play: 0, rebuf: 0 });
    s.play += cur.play - prev.play;
    s.rebuf += cur.rebuf - prev.rebuf;
  }
  return Object.fromEntries(Object.entries(sums).map(([cdn, s]) => [cdn, (100 * s.rebuf) / (s.play + s.rebuf)]));
}

function startupsMs(events: SimEvent[], fromMs: number, toMs: number, cdn?: string): number[] {
  const starts = new Map<string, number>();
  const out: number[] = [];
  for (const e of ofKind(events, 'playback')) {
    if (e.event_type === 'view_start') starts.set(e.view_id, e.event_time);
    else if (e.event_type === 'first_frame' && starts.has(e.view_id) && e.event_time >= fromMs && e.event_time < toMs && (!cdn || e.cdn === cdn))
      out.push(e.event_time - starts.get(e.view_id)!);
  }
  return out.sort((a, b) => a - b);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function paymentFailurePct(events: SimEvent[], fromMs: number, toMs: number): number {
  const p = ofKind(events, 'payments').filter(
    (e) => e.event_time >= fromMs && e.event_time < toMs && e.amount_minor > 0 && e.kind !== 'refund' && e.kind !== 'chargeback',
  );
  return (100 * p.filter((e) => e.status === 'failed').length) / p.length;
}

function vsfPct(events: SimEvent[], fromMs: number, toMs: number): number {
  const views = new Map<string, { ff: boolean; vsf: boolean }>();
  for (const e of ofKind(events, 'playback')) {
    if (e.event_type === 'view_start' && e.event_time >= fromMs && e.event_time < toMs) views.set(e.view_id, { ff: false, vsf: false });
    const v = views.get(e.view_id);
    if (!v) continue;
    if (e.event_type === 'first_frame') v.ff = true;
    if (e.event_type === 'error' && e.error_severity === 'fatal' && !e.error_business && !v.ff) v.vsf = true;
  }
  const all = [...views.values()];
  return (100 * all.filter((v) => v.vsf).length) / all.length;
}

describe('prng', () => {
  it('is deterministic and makes v4 UUIDs', () => {
    const a = new Prng(1);
    const b = new Prng(1);
    const xs = Array.from({ length: 5 }, () => a.uuid());
    expect(xs).toEqual(Array.from({ length: 5 }, () => b.uuid()));
    for (const u of xs) expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const c = new Prng(2);
    expect(c.uuid()).not.toEqual(xs[0]);
  });
});

describe('simulator generator', () => {
  it('gives the same stream for the same seed, in any step size', () => {
    const a = gen({ minutes: 10, seed: 7 });
    const g = new TrafficGenerator({ seed: 7, startMs: START, ratePerSec: 50 });
    const b: SimEvent[] = [];
    for (let t = START; t < START + 10 * MIN; t += 777) g.advanceInto(Math.min(t + 777, START + 10 * MIN), b);
    expect(b.length).toBe(a.length);
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    const c = gen({ minutes: 10, seed: 8 });
    expect(JSON.stringify(c.slice(300, 400))).not.toBe(JSON.stringify(a.slice(300, 400)));
  });

  it('emits events in event-time order, every kind, all valid against the contracts', () => {
    // Every incident at once so their code paths are covered too. The one exception to the order:
    // late-delivery's queued playback beacons (incident at minutes 10-30), delivered after it.
    const events = gen({ minutes: 40, ratePerSec: 40, incidents: INCIDENT_NAMES.map((n) => incident(n, 10, 20)) });
    expect(events.length).toBeGreaterThan(40_000);
    const kinds = new Set(events.map((e) => e.kind));
    expect([...kinds].sort()).toEqual(['catalog', 'gifts', 'jira', 'moderation', 'payments', 'playback']);
    let prev = 0;
    let delayed = 0;
    const ids = new Set<string>();
    for (const e of events) {
      const queued = e.kind === 'playback' && e.event.device_category === 'mobile' && e.event.event_time >= START + 10 * MIN && prev >= START + 31 * MIN;
      if (e.event.event_time < prev && !queued) throw new Error(`out of order: ${JSON.stringify(e.event)}`);
      if (e.event.event_time < prev) delayed++;
      prev = Math.max(prev, e.event.event_time);
      ids.add(e.event.event_id);
      const r = validateEvent(e.kind, e.event);
      if (!r.ok) throw new Error(`${e.kind} invalid: ${r.reason} in ${JSON.stringify(e.event)}`);
      // Every field present (sendValid encodes without defaults).
      if (!avroType(e.kind).isValid(e.event)) throw new Error(`${e.kind} not strictly encodable: ${JSON.stringify(e.event)}`);
    }
    expect(ids.size).toBe(events.length);
    expect(delayed).toBeGreaterThan(500);
    const types = new Set(ofKind(events, 'playback').map((e) => e.event_type));
    expect(types.size).toBe(12);
    const jira = ofKind(events, 'jira');
    for (const j of jira) {
      const body = JSON.parse(j.raw_payload) as { webhookEvent: string; issue: { key: string; fields: Record<string, unknown> } };
      expect(body.webhookEvent).toBe(`jira:${j.webhook_event}`);
      expect(body.issue.key).toBe(j.issue_key);
      expect(body.issue.fields.customfield_10041).toBe(j.show_name);
      expect(['new', 'indeterminate', 'done']).toContain(j.status_category);
    }
  });

  it('writes Jira raw payloads that the webhook normaliser maps to the same event', () => {
    const events = gen({ minutes: 3 * 24 * 60, ratePerSec: 1, incidents: [incident('production-critical', 60, 10)] });
    const jira = ofKind(events, 'jira');
    expect(jira.length).toBeGreaterThan(50);
    expect(new Set(jira.map((j) => j.webhook_event)).size).toBeGreaterThanOrEqual(2);
    expect(jira.some((j) => j.status_category === 'done' && j.resolved !== null)).toBe(true);
    for (const j of jira) {
      const r = normaliseJiraWebhook(JSON.parse(j.raw_payload), j.raw_payload, undefined, { ...DEFAULT_JIRA_FIELD_MAP }, j.event_time);
      if (r.outcome !== 'ok') throw new Error(`${j.issue_key}: ${JSON.stringify(r)}`);
      const { event_id: _a, received_time: _b, ...mine } = j;
      const { event_id: _c, received_time: _d, ...theirs } = r.event;
      expect(theirs).toEqual(mine);
    }
  });

  it('keeps accounts consistent across a day of payments', () => {
    const events = gen({ minutes: 24 * 60, ratePerSec: 4 });
    const payments = ofKind(events, 'payments');
    const kinds = new Set(payments.map((e) => e.kind));
    for (const k of ['renewal', 'coin_topup', 'cancel', 'subscription_start', 'upgrade', 'downgrade', 'refund'] as const) expect(kinds).toContain(k);
    const failed = payments.filter((p) => p.status === 'failed');
    expect(failed.length / payments.length).toBeGreaterThan(0.01);
    expect(failed.length / payments.length).toBeLessThan(0.04);
    for (const f of failed) expect(f.failure_code).toBeTruthy();
    const state = new Map<string, { plan: string; autoRenew: boolean }>();
    for (const p of payments) {
      const before = state.get(p.account_id);
      if (p.status === 'succeeded') {
        if (p.kind === 'renewal' && before) expect(before.plan).not.toBe('free');
        if (p.kind === 'upgrade' || p.kind === 'downgrade' || p.kind === 'cancel') expect(p.plan).not.toBe('free');
        if (p.kind === 'subscription_start') expect(p.auto_renew).toBe(true);
        if (p.kind === 'cancel') expect(p.auto_renew).toBe(false);
        if (p.plan !== 'free') expect(p.period_end).toBeGreaterThan(p.event_time - 86_400_000);
      }
      expect(['USD', 'NPR', 'INR', 'GBP', 'EUR']).toContain(p.currency);
      state.set(p.account_id, { plan: p.plan, autoRenew: p.auto_renew });
    }
  });

  it('keeps each view consistent: seq +1, counters never decrease, first frame after start, 10 s heartbeats', () => {
    const events = gen({ minutes: 30, ratePerSec: 40, warmStart: false });
    const catalog = new Map(ofKind(events, 'catalog').map((c) => [c.content_id, c]));
    const g = new TrafficGenerator({ seed: 42, startMs: START, ratePerSec: 50 });
    const accounts = new Set(g.world.accounts.map((a) => a.id));
    const byView = new Map<string, PlaybackEvent[]>();
    for (const e of ofKind(events, 'playback')) {
      let list = byView.get(e.view_id);
      if (!list) byView.set(e.view_id, (list = []));
      list.push(e);
    }
    expect(byView.size).toBeGreaterThan(400);
    let heartbeatGaps = 0;
    let ended = 0;
    const liveViewers = new Set<string>();
    const streamCreator = new Map<string, string>();
    for (const [, list] of byView) {
      expect(list[0]!.event_type).toBe('view_start');
      expect(accounts.has(list[0]!.account_id)).toBe(true);
      const title = catalog.get(list[0]!.content_id);
      expect(title).toBeDefined();
      expect(list[0]!.stream_type).toBe(title!.stream_type);
      expect(list[0]!.creator_id ?? null).toBe(title!.creator_id ?? null);
      if (title!.stream_type === 'live') liveViewers.add(`${list[0]!.account_id}|${title!.creator_id}`);
      let ff = -1;
      let lastCum = { p: 0, r: 0, c: 0, s: 0, b: 0 };
      let lastHb: number | null = null;
      let pausedSinceHb = false;
      for (let i = 0; i < list.length; i++) {
        const e = list[i]!;
        expect(e.seq).toBe(i);
        for (const f of ['viewer_id', 'account_id', 'content_id', 'cdn', 'device_category', 'country', 'asn'] as const) expect(e[f]).toBe(list[0]![f]);
        if (i > 0) expect(e.event_time).toBeGreaterThanOrEqual(list[i - 1]!.event_time);
        if (e.event_type === 'first_frame') {
          expect(ff).toBe(-1);
          ff = i;
          expect(e.event_time).toBeGreaterThan(list[0]!.event_time);
        }
        if (e.event_type === 'pause') pausedSinceHb = true;
        if (e.event_type === 'heartbeat') {
          expect(ff).toBeGreaterThanOrEqual(0);
          expect(e.player_state).not.toBe('paused');
          if (lastHb !== null && !pausedSinceHb) {
            expect(e.event_time - lastHb).toBe(10_000);
            heartbeatGaps++;
          }
          lastHb = e.event_time;
          pausedSinceHb = false;
        }
        if (e.cum_playing_ms != null) {
          const cur = { p: e.cum_playing_ms, r: e.cum_rebuffer_ms!, c: e.cum_rebuffer_count!, s: e.cum_seek_ms!, b: e.cum_bitrate_ms! };
          expect(cur.p).toBeGreaterThanOrEqual(lastCum.p);
          expect(cur.r).toBeGreaterThanOrEqual(lastCum.r);
          expect(cur.c).toBeGreaterThanOrEqual(lastCum.c);
          expect(cur.s).toBeGreaterThanOrEqual(lastCum.s);
          expect(cur.b).toBeGreaterThanOrEqual(lastCum.b);
          lastCum = cur;
        }
        if (e.event_type === 'view_end') {
          expect(i).toBe(list.length - 1);
          expect(e.end_reason).toBeTruthy();
          ended++;
        }
      }
    }
    expect(heartbeatGaps).toBeGreaterThan(5_000);
    // One view at a time per viewer.
    const spans = new Map<string, Array<[number, number]>>();
    for (const [, list] of byView) {
      if (list.at(-1)!.event_type !== 'view_end') continue;
      const s = spans.get(list[0]!.viewer_id) ?? [];
      s.push([list[0]!.event_time, list.at(-1)!.event_time]);
      spans.set(list[0]!.viewer_id, s);
    }
    for (const [, s] of spans) {
      s.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < s.length; i++) expect(s[i]![0]).toBeGreaterThanOrEqual(s[i - 1]![1]);
    }
    expect(ended).toBeGreaterThan(300);
    // Gifts come from accounts watching that creator's live stream; one creator per stream.
    const gifts = ofKind(events, 'gifts');
    expect(gifts.length).toBeGreaterThan(100);
    for (const gft of gifts) {
      expect(liveViewers.has(`${gft.sender_account_id}|${gft.creator_id}`)).toBe(true);
      const c = streamCreator.get(gft.stream_id);
      if (c) expect(c).toBe(gft.creator_id);
      streamCreator.set(gft.stream_id, gft.creator_id);
    }
  });

  it('emits about --rate events per second, ~90 % playback', () => {
    const g = new TrafficGenerator({ seed: 3, startMs: START, ratePerSec: 200, diurnal: false });
    const first = g.advance(START + 60_000).filter((e) => e.kind !== 'catalog' && e.kind !== 'jira');
    expect(first.length / 60).toBeGreaterThan(170); // warm start: right rate from the first minute
    expect(first.length / 60).toBeLessThan(230);
    const rest = g.advance(START + 30 * MIN);
    const perSec = rest.length / (29 * 60);
    expect(perSec).toBeGreaterThan(185);
    expect(perSec).toBeLessThan(215);
    const playbackShare = rest.filter((e) => e.kind === 'playback').length / rest.length;
    expect(playbackShare).toBeGreaterThan(0.85);
    expect(playbackShare).toBeLessThan(0.93);
  });

  it('normal traffic stays under the absolute alert thresholds', () => {
    const events = gen({ minutes: 120 });
    const hour2 = events.filter((e) => e.event.event_time >= START + HOUR);
    const mod = ofKind(hour2, 'moderation');
    expect(mod.filter((m) => m.event_type === 'report_created' || m.event_type === 'action_taken').length).toBeLessThan(50);
    expect(ofKind(events, 'moderation').some((m) => m.event_type === 'action_taken' && m.severity === 'critical')).toBe(false);
    const jira = ofKind(events, 'jira');
    expect(jira.length).toBeGreaterThan(10);
    expect(jira.some((j) => j.severity === 'critical' || (j.cost_impact_usd ?? 0) > 50_000)).toBe(false);
    const fatal = ofKind(hour2, 'playback').filter((e) => e.event_type === 'error' && e.error_severity === 'fatal' && !e.error_business);
    expect(fatal.length).toBeLessThan(100);
    expect(paymentFailurePct(events, START, START + 2 * HOUR)).toBeLessThan(5);
    const rb = rebufferPctByCdn(events, START + 10 * MIN, START + 2 * HOUR);
    for (const pct of Object.values(rb)) expect(pct).toBeLessThan(1.5);
    expect(vsfPct(events, START, START + 2 * HOUR)).toBeLessThan(3);
    expect(quantile(startupsMs(events, START, START + 2 * HOUR), 0.95)).toBeLessThan(3500);
  });
});

describe('simulator incidents', () => {
  it('lists every incident with a description', () => {
    expect(INCIDENT_NAMES.length).toBeGreaterThanOrEqual(10);
    for (const n of INCIDENT_NAMES) expect(INCIDENTS[n].description.length).toBeGreaterThan(20);
  });

  it('cdn-degradation raises rebuffering and startup on the affected CDN only', () => {
    const events = gen({ minutes: 50, incidents: [incident('cdn-degradation', 20, 20, 'fastly')] });
    const before = rebufferPctByCdn(events, START + 5 * MIN, START + 20 * MIN);
    const during = rebufferPctByCdn(events, START + 23 * MIN, START + 40 * MIN);
    expect(during.fastly!).toBeGreaterThan(5);
    expect(during.fastly!).toBeGreaterThan(5 * before.fastly!);
    for (const cdn of ['akamai', 'cloudfront']) {
      expect(during[cdn]!).toBeLessThan(2);
      expect(Math.abs(during[cdn]! - before[cdn]!)).toBeLessThan(0.6);
    }
    const p95 = quantile(startupsMs(events, START + 20 * MIN, START + 40 * MIN, 'fastly'), 0.95);
    const p95Other = quantile(startupsMs(events, START + 20 * MIN, START + 40 * MIN, 'akamai'), 0.95);
    expect(p95).toBeGreaterThan(1.8 * p95Other);
  });

  it('payment-outage raises the payment failure rate to ~40 %', () => {
    const events = gen({ minutes: 60, incidents: [incident('payment-outage', 20, 20)] });
    expect(paymentFailurePct(events, START, START + 20 * MIN)).toBeLessThan(5);
    const during = paymentFailurePct(events, START + 20 * MIN, START + 40 * MIN);
    expect(during).toBeGreaterThan(30);
    expect(during).toBeLessThan(50);
    expect(paymentFailurePct(events, START + 40 * MIN, START + 60 * MIN)).toBeLessThan(5);
  });

  it('vsf-spike, startup-slow and fatal-errors trip their QoE thresholds', () => {
    const vsf = gen({ minutes: 30, incidents: [incident('vsf-spike', 10, 15)] });
    expect(vsfPct(vsf, START + 10 * MIN, START + 25 * MIN)).toBeGreaterThan(8);
    const slow = gen({ minutes: 30, incidents: [incident('startup-slow', 10, 15)] });
    expect(quantile(startupsMs(slow, START + 10 * MIN, START + 25 * MIN), 0.95)).toBeGreaterThan(4000);
    const fatal = gen({ minutes: 60, incidents: [incident('fatal-errors', 0, 60)] });
    const n = ofKind(fatal, 'playback').filter((e) => e.event_type === 'error' && e.error_severity === 'fatal' && !e.error_business).length;
    expect(n).toBeGreaterThan(100);
  });

  it('abuse-spike and production-critical create their alert conditions', () => {
    const events = gen({ minutes: 40, incidents: [incident('abuse-spike', 5, 20), incident('production-critical', 5, 20)] });
    const mod = ofKind(events, 'moderation').filter((m) => m.event_time >= START + 5 * MIN && m.event_time < START + 35 * MIN);
    expect(mod.filter((m) => m.event_type === 'report_created' || m.event_type === 'action_taken').length).toBeGreaterThan(50);
    expect(mod.some((m) => m.event_type === 'action_taken' && m.severity === 'critical')).toBe(true);
    const jira = ofKind(events, 'jira');
    expect(jira.some((j) => j.webhook_event === 'issue_created' && j.severity === 'critical')).toBe(true);
    expect(jira.some((j) => (j.cost_impact_usd ?? 0) > 50_000)).toBe(true);
  });

  it('engagement-drop cuts playing time by about 30 %', () => {
    const playing = (events: SimEvent[], from: number, to: number) => {
      const last = new Map<string, number>();
      let sum = 0;
      for (const e of ofKind(events, 'playback')) {
        if (e.cum_playing_ms == null) continue;
        const prev = last.get(e.view_id);
        last.set(e.view_id, e.cum_playing_ms);
        if (prev !== undefined && e.event_time >= from && e.event_time < to) sum += e.cum_playing_ms - prev;
      }
      return sum;
    };
    const base = gen({ minutes: 90, diurnal: false, seed: 5 });
    const drop = gen({ minutes: 90, diurnal: false, seed: 5, incidents: [incident('engagement-drop', 20, 70)] });
    const ratio = playing(drop, START + 50 * MIN, START + 90 * MIN) / playing(base, START + 50 * MIN, START + 90 * MIN);
    expect(ratio).toBeGreaterThan(0.6);
    expect(ratio).toBeLessThan(0.8);
  });

  it('late-delivery delays the playback beacons of ~30 % of mobile devices past the incident and changes nothing else', () => {
    const S = START + 10 * MIN;
    const E = S + 20 * MIN;
    const base = gen({ minutes: 45, ratePerSec: 30, seed: 3 });
    const late = gen({ minutes: 45, ratePerSec: 30, seed: 3, incidents: [incident('late-delivery', 10, 20)] });
    // Delivery position: the newest event time emitted so far (the generator's clock).
    let pos = 0;
    const delayed = new Map<string, { e: SimEvent; at: number }>();
    for (const e of late) {
      if (e.event.event_time < pos) delayed.set(e.event.event_id, { e, at: pos });
      pos = Math.max(pos, e.event.event_time);
    }
    // The same events in the same order once the delayed ones are set aside: only delivery moved.
    const rest = (events: SimEvent[]) => JSON.stringify(events.filter((e) => !delayed.has(e.event.event_id)));
    expect(late.length).toBe(base.length);
    expect(rest(late)).toBe(rest(base));
    const baseIds = new Set(base.map((e) => e.event.event_id));
    for (const id of delayed.keys()) expect(baseIds.has(id)).toBe(true);
    // Delayed: playback of mobile devices from the incident, uploaded 1-5 min after its end, mostly
    // far beyond a 1-min window grace.
    const d = [...delayed.values()];
    expect(d.length).toBeGreaterThan(1000);
    const viewers = new Set<string>();
    for (const { e, at } of d) {
      if (e.kind !== 'playback') throw new Error(`delayed ${e.kind}`);
      expect(e.event.device_category).toBe('mobile');
      expect(e.event.event_time).toBeGreaterThanOrEqual(S);
      expect(at).toBeGreaterThanOrEqual(E + MIN);
      expect(at).toBeLessThan(E + 5 * MIN);
      viewers.add(e.event.viewer_id);
    }
    const lateness = d.map(({ e, at }) => at - e.event.event_time).sort((a, b) => a - b);
    expect(lateness.filter((l) => l > 2 * MIN).length / lateness.length).toBeGreaterThan(0.9);
    expect(quantile(lateness, 0.5)).toBeGreaterThan(8 * MIN);
    // About 30 % of the mobile viewers who played during the incident.
    const mobile = new Set(
      ofKind(base, 'playback')
        .filter((e) => e.device_category === 'mobile' && e.event_time >= S && e.event_time < E)
        .map((e) => e.viewer_id),
    );
    expect(viewers.size / mobile.size).toBeGreaterThan(0.2);
    expect(viewers.size / mobile.size).toBeLessThan(0.4);
    // Each view's events stay in order.
    const lastByView = new Map<string, number>();
    for (const e of ofKind(late, 'playback')) {
      expect(e.event_time).toBeGreaterThanOrEqual(lastByView.get(e.view_id) ?? 0);
      lastByView.set(e.view_id, e.event_time);
    }
  });

  it('churn-wave and payer-drop change the payment stream', () => {
    const base = gen({ minutes: 60, seed: 9 });
    const churn = gen({ minutes: 60, seed: 9, incidents: [incident('churn-wave', 10, 40)] });
    const cancels = (ev: SimEvent[]) => ofKind(ev, 'payments').filter((p) => p.kind === 'cancel').length;
    expect(cancels(churn)).toBeGreaterThan(10 * Math.max(1, cancels(base)));
    const payers = (ev: SimEvent[], from: number, to: number) =>
      new Set(
        ofKind(ev, 'payments')
          .filter((p) => p.status === 'succeeded' && p.amount_minor > 0 && p.event_time >= from && p.event_time < to)
          .map((p) => p.account_id),
      ).size;
    const drop = gen({ minutes: 60, seed: 9, incidents: [incident('payer-drop', 20, 40)] });
    expect(payers(drop, START + 30 * MIN, START + 60 * MIN)).toBeLessThan(0.75 * payers(base, START + 30 * MIN, START + 60 * MIN));
  });
});
