/**
 * The traffic generator: a pure, deterministic discrete-event simulation of a video and
 * live-streaming platform. Given a seed, a start time and a rate, `advance(untilMs)` returns
 * every event whose event time falls before `untilMs`, in event-time order (one exception: the
 * late-delivery incident, whose queued playback beacons are emitted when they are delivered,
 * after newer events; each view's events stay in order). There is no I/O and
 * no wall clock here: the caller owns time (real time, a backfill range or a test clock).
 * Calling `advance` in small or large steps yields the same stream.
 *
 * What it emits (DOMAIN.md §2):
 * - playback: views with full lifecycles (view_start, first_frame after a startup delay,
 *   heartbeats every 10 s while not paused with cumulative counters, rebuffers, seeks, pauses,
 *   rendition changes, warnings, VSF / business errors / EBVS, mid-stream fatal failures,
 *   view_end; ~3 % of views are dropped without view_end). `seq` is +1 per event of a view.
 * - payments: renewals at each account's period end, subscription starts, upgrades, downgrades,
 *   cancels, coin top-ups, refunds and chargebacks of earlier charges; ~2.5 % of charges fail.
 *   Every payment event carries the account's state *after* the event (plan, auto_renew,
 *   period_end, og_tier).
 * - gifts: sent by gifting accounts while they watch a live stream, to that stream's creator.
 * - moderation: user reports followed by actions, automated and staff actions without a report,
 *   appeals and their decisions. In normal traffic critical reports are re-assessed to high at
 *   action time, so critical-severity *actions* only come with the abuse-spike incident.
 * - jira: a backlog snapshot at start, then issues created, progressed, resolved (and a few
 *   deleted) over days, with a realistic Jira Cloud webhook body in raw_payload. Normal issues
 *   are never critical and cost less than $50,000 (both are alert conditions).
 * - catalog: every title (VOD episodes and films, one live channel per creator) at start.
 *
 * Rate: `ratePerSec` is the mean number of events per second of event time over a day
 * (a mild diurnal curve that repeats every day multiplies it by 0.7-1.3); playback is ~90 %,
 * gifts ~6.5 %, payments ~2.5 %; moderation (~8 cases an hour) and Jira (~1 issue an hour) are
 * absolute rates because their alert thresholds are absolute.
 */
import type { EventKind } from '../../contracts/topics.js';
import type { CatalogEntry, EventByKind, GiftEvent, JiraIssueEvent, ModerationEvent, PaymentEvent, PlaybackEvent } from '../../contracts/types.generated.js';
import { ActionHeap } from './heap.js';
import { IncidentTimeline, type Effects, type IncidentSpec } from './incidents.js';
import { Prng } from './prng.js';
import {
  CDNS,
  CDN_WEIGHTS,
  COIN_PACKS,
  COIN_VALUE_USD_MICROS,
  GIFT_TYPES,
  PAID_PLANS,
  coinPackMinor,
  createWorld,
  pickCumulative,
  priceMinor,
  rendition,
  type Account,
  type Creator,
  type LiveStream,
  type Plan,
  type Title,
  type Viewer,
  type World,
} from './world.js';

export type SimEvent = { [K in EventKind]: { kind: K; event: EventByKind[K] } }[EventKind];

export const DEFAULT_JIRA_FIELD_MAP: Readonly<Record<string, string>> = {
  severity: 'customfield_10040',
  show_name: 'customfield_10041',
  cost_impact_usd: 'customfield_10042',
  delay_days: 'customfield_10043',
};

export interface GeneratorOptions {
  seed: number;
  /** Event time (ms) the stream starts at. */
  startMs: number;
  /** Mean events per second of event time, all kinds together. */
  ratePerSec: number;
  /** Accounts in the world (default `defaultAccounts(ratePerSec)`: 5000, or 100 per event/s above 50/s). */
  accounts?: number;
  creators?: number;
  incidents?: readonly IncidentSpec[];
  /** Daily traffic curve (default true). */
  diurnal?: boolean;
  /** Start with views, live streams and a Jira backlog already in progress (default true). */
  warmStart?: boolean;
  /**
   * Moderation cases and Jira issues per hour (defaults MODEL: 8 and 1, fixed because the alert
   * thresholds are fixed numbers). A demo raises them so every kind shows up within a minute.
   */
  moderationCasesPerHour?: number;
  jiraIssuesPerHour?: number;
  /** Emit a catalog entry for every title at start (default true). */
  emitCatalog?: boolean;
  /**
   * Heartbeat interval of playing views (default MODEL.heartbeatMs, 10 s). The audience (views
   * per second, concurrent viewers) follows `ratePerSec` as with 10 s heartbeats, so a longer
   * interval gives the same audience and QoE volumes with fewer playback events (~0.45x the
   * events at 30 s): cheaper multi-day backfills.
   */
  heartbeatMs?: number;
  /** Our Jira field names → custom field ids used in raw_payload (config JIRA_FIELD_MAP). */
  jiraFieldMap?: Readonly<Record<string, string>>;
}

/** Model constants; rates are per second of event time unless named otherwise. */
/** The VOD show whose titles are the most popular together (show-problem's default target). */
export function mostPopularShow(world: World): string {
  const by = new Map<string, number>();
  for (const t of world.vodTitles) by.set(t.showName, (by.get(t.showName) ?? 0) + t.popularity);
  return [...by.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]![0];
}

/** cdn-degradation hits this view: its CDN, and its country when the incident names one (`akamai/IN`). */
function cdnDegraded(fx: Readonly<Effects>, v: { cdn: string; viewer: { account: { country: { code: string } } } }): boolean {
  return fx.degradedCdn === v.cdn && (fx.degradedCountry === null || fx.degradedCountry === v.viewer.account.country.code);
}

export const MODEL = {
  heartbeatMs: 10_000,
  playbackShare: 0.91,
  /** Measured mean playback events per view and view lifetime (tests keep these honest). */
  eventsPerView: 85,
  viewLifetimeSec: 750,
  liveShare: 0.35,
  startupMedianMs: 900,
  startupSigma: 0.55,
  patienceMedianMs: 9_000,
  vsfProb: 0.008,
  /** show-problem: share of the troubled show's would-be views that never start, and its exit hazard multiplier. */
  troubledShowSkipProb: 0.8,
  troubledShowExitMult: 8,
  businessErrorProbFree: 0.03,
  businessErrorProbPaid: 0.005,
  ebvsProb: 0.015,
  dropProb: 0.03,
  rebufferHazard: 1 / 600,
  rebufferMedianMs: 1_500,
  pauseHazard: 1 / 900,
  pauseMedianMs: 25_000,
  pauseExitProb: 0.2,
  seekHazard: 1 / 600,
  renditionHazard: 1 / 120,
  warningHazard: 1 / 7_200,
  midFatalHazard: 1 / (20 * 3_600),
  /** late-delivery: share of mobile devices whose beacons are queued; upload 1-5 min after the end. */
  lateDeliveryMobileShare: 0.3,
  lateUploadMinMs: 60_000,
  lateUploadMaxMs: 300_000,
  exitMeanSecVod: 20 * 60,
  exitMeanSecLive: 15 * 60,
  /** Gifts per second of live playing time of a gifting account. */
  giftHazard: 1 / 12,
  topupShare: 0.023,
  chargeFailureProb: 0.025,
  refundProb: 0.008,
  chargebackProb: 0.0015,
  /** Subscription lifecycle actions per account per day. */
  lifecyclePerAccountDay: 0.012,
  billingPeriodDays: 30,
  moderationCasesPerHour: 8,
  jiraIssuesPerHour: 1,
  jiraBacklog: 12,
  diurnalAmplitude: 0.3,
  diurnalPeakUtcHour: 15,
} as const;

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

type PlayerState = PlaybackEvent['player_state'];

interface View {
  id: string;
  viewer: Viewer;
  title: Title;
  stream: LiveStream | null;
  cdn: string;
  countryQuality: number;
  seq: number;
  state: PlayerState;
  lastMs: number;
  playheadMs: number;
  cumPlaying: number;
  cumRebuffer: number;
  cumRebufferCount: number;
  cumSeek: number;
  cumBitrate: number;
  rung: number;
  nextHbMs: number;
  hbRemainingMs: number;
  /** End of the current rebuffer / seek / pause. */
  phaseEndMs: number;
  exitAfterPause: boolean;
  seekTargetMs: number;
}

interface JiraIssue {
  key: string;
  id: number;
  project: string;
  summary: string;
  issueType: string;
  status: string;
  statusCategory: 'new' | 'indeterminate' | 'done';
  priority: string;
  severity: string;
  showName: string;
  costUsd: number | null;
  delayDays: number | null;
  labels: string[];
  created: number;
  updated: number;
  resolved: number | null;
  deleted: boolean;
  reporter: string;
}

const VSF_CODES = ['MEDIA_ERR_NETWORK', 'MANIFEST_LOAD_FAILED', 'DRM_LICENSE_FAILED', 'MEDIA_ERR_SRC_NOT_SUPPORTED', 'CDN_HTTP_5XX'];
const BUSINESS_CODES = ['ENTITLEMENT_REQUIRED', 'GEO_BLOCKED', 'CONCURRENT_STREAM_LIMIT'];
const MID_FATAL_CODES = ['MEDIA_ERR_DECODE', 'MEDIA_ERR_NETWORK', 'SEGMENT_LOAD_FAILED', 'DRM_SESSION_EXPIRED'];
const WARNING_CODES = ['SEGMENT_RETRY', 'BUFFER_STALL_RECOVERED', 'DROPPED_FRAMES'];
const FAILURE_CODES = ['card_declined', 'insufficient_funds', 'expired_card', 'do_not_honor', 'authentication_required'];
const OUTAGE_CODES = ['gateway_timeout', 'processing_error', 'issuer_unavailable'];
const POLICIES: ModerationEvent['policy'][] = ['spam', 'harassment', 'hate', 'nudity', 'violence', 'self_harm', 'fraud', 'copyright', 'other'];
const POLICY_WEIGHTS = [0.3, 0.2, 0.08, 0.08, 0.06, 0.02, 0.08, 0.12, 0.06];
const SEVERITIES: ModerationEvent['severity'][] = ['low', 'medium', 'high', 'critical'];
const JIRA_PROJECTS = [
  { key: 'PROD', name: 'Production' },
  { key: 'POST', name: 'Post-production' },
  { key: 'LIVE', name: 'Live Operations' },
];
const JIRA_SUMMARIES = [
  'Audio desync in {show} episode master',
  'Subtitle timing off in {show}',
  'Colour grading rework requested for {show}',
  'Location permit delayed for {show} shoot',
  'Talent scheduling conflict on {show}',
  'VFX shot rework for {show}',
  'Vendor deliverables missing for {show}',
  'Encoding artefacts in {show} 4K master',
  'Music licence clearance pending for {show}',
  'Camera equipment failure on {show} set',
];
const JIRA_LABELS = ['post-production', 'vendor', 'audio', 'vfx', 'schedule', 'legal', 'encoding', 'on-set'];
const JIRA_PEOPLE = ['5f1a2b3c4d5e6f7a8b9c0d1e', '60a1b2c3d4e5f6a7b8c9d0e1', '61b2c3d4e5f6a7b8c9d0e1f2', '62c3d4e5f6a7b8c9d0e1f2a3'];
const PRIORITY_BY_SEVERITY: Record<string, string> = { low: 'Low', medium: 'Medium', high: 'High', critical: 'Highest' };
const STATUS_CATEGORY_NAME = { new: 'To Do', indeterminate: 'In Progress', done: 'Done' } as const;

export class TrafficGenerator {
  readonly world: World;
  readonly timeline: IncidentTimeline;
  private readonly rng: Prng;
  private readonly heap = new ActionHeap();
  private readonly out: SimEvent[] = [];
  private readonly opts: Required<Omit<GeneratorOptions, 'creators' | 'incidents'>> & { creators?: number };
  private now: number;
  private readonly viewsPerSec: number;
  private readonly liveCreators: Creator[] = [];
  private readonly spenders: Account[];
  private readonly churnCohort = new Set<Account>();
  private readonly renewalTokens = new Map<Account, number>();
  /** late-delivery: playback events queued on a device (by viewer id) until its upload. */
  private readonly beaconQueues = new Map<string, SimEvent[]>();
  private readonly jiraIssues: JiraIssue[] = [];
  private nextIssueNumber = new Map<string, number>();
  private nextJiraId = 10_000;
  private caseCounter = 0;
  private activeViews = 0;
  private readonly packDeck: number[] = [];

  constructor(options: GeneratorOptions) {
    if (!(options.ratePerSec > 0)) throw new Error('ratePerSec must be > 0');
    if (options.heartbeatMs !== undefined && !(options.heartbeatMs >= 1000 && options.heartbeatMs <= 60_000))
      throw new Error('heartbeatMs must be between 1000 and 60000');
    this.opts = {
      seed: options.seed,
      startMs: Math.floor(options.startMs),
      ratePerSec: options.ratePerSec,
      accounts: options.accounts ?? defaultAccounts(options.ratePerSec),
      diurnal: options.diurnal ?? true,
      warmStart: options.warmStart ?? true,
      emitCatalog: options.emitCatalog ?? true,
      heartbeatMs: options.heartbeatMs ?? MODEL.heartbeatMs,
      jiraFieldMap: options.jiraFieldMap ?? DEFAULT_JIRA_FIELD_MAP,
      moderationCasesPerHour: options.moderationCasesPerHour ?? MODEL.moderationCasesPerHour,
      jiraIssuesPerHour: options.jiraIssuesPerHour ?? MODEL.jiraIssuesPerHour,
      ...(options.creators !== undefined ? { creators: options.creators } : {}),
    };
    this.now = this.opts.startMs;
    this.rng = new Prng(options.seed);
    this.world = createWorld(this.rng.fork(), { accounts: this.opts.accounts, creators: options.creators, nowMs: this.now });
    // show-problem without a target: the VOD show with the most popular titles.
    this.timeline = new IncidentTimeline(
      (options.incidents ?? []).map((i) => (i.name === 'show-problem' && !i.target ? { ...i, target: mostPopularShow(this.world) } : i)),
    );
    this.spenders = this.world.accounts.filter((a) => a.spender);
    this.viewsPerSec = (this.opts.ratePerSec * MODEL.playbackShare) / MODEL.eventsPerView;
    this.bootstrap();
  }

  /** Current event-time position (everything before it has been emitted). */
  get nowMs(): number {
    return this.now;
  }

  /** Views in progress (started and not yet ended or dropped). */
  get concurrentViews(): number {
    return this.activeViews;
  }

  /** Emits, in event-time order, every event with event_time < untilMs. */
  advance(untilMs: number): SimEvent[] {
    const result: SimEvent[] = [];
    this.advanceInto(untilMs, result);
    return result;
  }

  /** Like `advance`, appending to `sink` (no intermediate arrays in hot loops). */
  advanceInto(untilMs: number, sink: SimEvent[]): void {
    const limit = Math.floor(untilMs);
    while (this.heap.peekTime() < limit) {
      const item = this.heap.pop()!;
      this.now = item.t;
      item.run();
      if (this.out.length > 0) {
        for (const e of this.out) sink.push(e);
        this.out.length = 0;
      }
    }
    if (limit > this.now) this.now = limit;
  }

  // ───────────────────────────── scheduling helpers ─────────────────────────────

  private at(t: number, run: () => void): void {
    this.heap.push(Math.max(this.now, Math.round(t)), run);
  }

  private emit<K extends EventKind>(kind: K, event: EventByKind[K]): void {
    if (kind === 'playback' && this.beaconQueues.size > 0) {
      const q = this.beaconQueues.get((event as PlaybackEvent).viewer_id);
      if (q) {
        q.push({ kind, event } as SimEvent);
        return;
      }
    }
    this.out.push({ kind, event } as SimEvent);
  }

  private diurnal(t: number): number {
    if (!this.opts.diurnal) return 1;
    const hour = (((t % DAY) + DAY) % DAY) / HOUR;
    return 1 + MODEL.diurnalAmplitude * Math.cos((2 * Math.PI * (hour - MODEL.diurnalPeakUtcHour)) / 24);
  }

  private fx(): Readonly<Effects> {
    return this.timeline.at(this.now);
  }

  private bootstrap(): void {
    const start = this.now;
    if (this.opts.emitCatalog) this.at(start, () => this.emitCatalog());
    // Live schedules: each creator streams in two fixed daily slots (like real creators), so
    // the live audience at a given hour repeats from day to day.
    const dayStart = Math.floor(start / DAY) * DAY;
    for (const c of this.world.creators) {
      const d1 = this.rng.range(2 * HOUR, 5 * HOUR);
      const d2 = this.rng.range(2 * HOUR, 5 * HOUR);
      const o1 = this.rng.range(0, DAY);
      const o2 = o1 + d1 + this.rng.range(2 * HOUR, DAY - d1 - d2 - 2 * HOUR);
      for (const [offset, duration] of [
        [o1, d1],
        [o2, d2],
      ] as const) {
        let base = dayStart + (offset % DAY) - DAY;
        while (base + duration <= start) base += DAY;
        if (base <= start && !this.opts.warmStart) base += DAY;
        this.scheduleStream(c, Math.round(base), Math.round(duration));
      }
    }
    // Renewals at each subscriber's period end.
    for (const a of this.world.accounts) if (a.periodEndMs !== null) this.scheduleRenewal(a, a.periodEndMs);
    if (this.opts.warmStart) {
      this.at(start, () => this.jiraBacklog());
      const warm = Math.round(this.viewsPerSec * MODEL.viewLifetimeSec * this.diurnal(start));
      this.at(start, () => {
        for (let i = 0; i < warm; i++) this.startWarmView();
      });
    }
    // Arrival processes.
    this.at(start + this.rng.exp(1 / this.viewRate()) * SEC, () => this.viewArrival());
    this.at(start + this.rng.range(0, 1) * this.topupGapMs(), () => this.topupArrival());
    this.at(start + this.rng.exp(this.lifecycleGapMs()), () => this.lifecycleArrival());
    this.at(start + this.rng.exp(this.moderationGapMs()), () => this.moderationArrival());
    this.at(start + this.rng.exp(HOUR / this.opts.jiraIssuesPerHour), () => this.jiraArrival());
    // One-off incident events.
    for (const spec of this.timeline.specs) {
      if (spec.name === 'abuse-spike') {
        this.at(spec.startMs + MIN, () => this.moderationCase({ forceCritical: true }));
        this.at(spec.startMs + 7 * MIN, () => this.moderationCase({ forceCritical: true }));
      } else if (spec.name === 'production-critical') {
        // The incident's issues are worked on during the incident and resolved when it ends (at
        // least 6 min in, after the re-estimate), like every other incident recovers at its end.
        const touched: JiraIssue[] = [];
        this.at(spec.startMs + 30 * SEC, () =>
          touched.push(
            this.jiraCreate({ severity: 'critical', issueType: 'Incident', summary: 'Master files corrupted for {show}: release at risk', costUsd: 18_000 }),
          ),
        );
        this.at(spec.startMs + 2 * MIN, () =>
          touched.push(this.jiraCreate({ severity: 'high', issueType: 'Bug', summary: 'Reshoot required for {show} after footage loss', costUsd: 72_500 })),
        );
        this.at(spec.startMs + 5 * MIN, () => touched.push(this.jiraReestimate(64_000, touched)));
        this.at(spec.startMs + Math.max(spec.durationMs, 6 * MIN), () => {
          for (const issue of touched) this.jiraResolve(issue);
        });
      } else if (spec.name === 'show-problem') {
        // A critical production issue on the show 30 s in, resolved when the incident ends.
        const show = this.timeline.at(spec.startMs).troubledShow!;
        let issue: JiraIssue | null = null;
        this.at(
          spec.startMs + 30 * SEC,
          () =>
            (issue = this.jiraCreate({
              severity: 'critical',
              issueType: 'Incident',
              summary: 'Audio out of sync in every episode of {show}: viewers leave',
              costUsd: 9_500,
              show,
            })),
        );
        this.at(spec.startMs + Math.max(spec.durationMs, MIN), () => issue && this.jiraResolve(issue));
      } else if (spec.name === 'churn-wave') {
        this.at(spec.startMs, () => this.churnWave(spec.startMs, spec.durationMs));
      } else if (spec.name === 'late-delivery') {
        const index = this.timeline.specs.indexOf(spec);
        this.at(spec.startMs, () => this.lateDelivery(spec, index));
      }
    }
  }

  /**
   * late-delivery: from the incident's start, the playback beacons of ~30 % of mobile devices are
   * queued on the device; each device uploads its queue (in order, at once) 1-5 min after the
   * incident ends, then sends live again. The devices and upload times come from a PRNG of their
   * own, so the events (and everything else in the stream) are exactly those without the
   * incident: only the delivery of the queued ones moves.
   */
  private lateDelivery(spec: IncidentSpec, index: number): void {
    const rng = new Prng((this.opts.seed ^ Math.imul(index + 1, 0x9e3779b1) ^ 0x1a7ede11) >>> 0);
    const end = spec.startMs + spec.durationMs;
    for (const v of this.world.viewers) {
      if (v.device !== 'mobile' || !rng.chance(MODEL.lateDeliveryMobileShare) || this.beaconQueues.has(v.id)) continue;
      const queue: SimEvent[] = [];
      this.beaconQueues.set(v.id, queue);
      this.at(end + rng.range(MODEL.lateUploadMinMs, MODEL.lateUploadMaxMs), () => {
        this.beaconQueues.delete(v.id);
        for (const e of queue) this.out.push(e);
      });
    }
  }

  // ───────────────────────────────── catalog ─────────────────────────────────

  private emitCatalog(): void {
    for (const t of this.world.titles) {
      const e: CatalogEntry = {
        event_id: this.rng.uuid(),
        event_time: this.now,
        received_time: 0,
        content_id: t.contentId,
        title: t.title,
        show_name: t.showName,
        genre: t.genre,
        stream_type: t.streamType,
        duration_ms: t.durationMs,
        creator_id: t.creatorId,
      };
      this.emit('catalog', e);
    }
  }

  // ─────────────────────────────── live streams ───────────────────────────────

  /** A broadcast of slot [baseMs, baseMs + durationMs) (a few minutes of jitter), then the next day's. */
  private scheduleStream(c: Creator, baseMs: number, durationMs: number): void {
    const begin = Math.max(this.now, baseMs + this.rng.range(0, 5 * MIN));
    const end = baseMs + durationMs + this.rng.range(0, 5 * MIN);
    this.at(begin, () => {
      const stream: LiveStream = { streamId: `st-${this.rng.uuid()}`, creator: c, startMs: Math.round(begin), endMs: Math.round(end) };
      c.live = stream;
      this.liveCreators.push(c);
      this.at(stream.endMs, () => {
        if (c.live === stream) c.live = null;
        const i = this.liveCreators.indexOf(c);
        if (i >= 0) this.liveCreators.splice(i, 1);
        this.scheduleStream(c, baseMs + DAY, durationMs);
      });
    });
  }

  private pickLiveCreator(): Creator | null {
    const n = this.liveCreators.length;
    if (n === 0) return null;
    let total = 0;
    for (const c of this.liveCreators) total += c.popularity;
    let x = this.rng.float() * total;
    for (const c of this.liveCreators) {
      x -= c.popularity;
      if (x < 0) return c;
    }
    return this.liveCreators[n - 1]!;
  }

  // ───────────────────────────────── playback ─────────────────────────────────

  private viewRate(): number {
    return this.viewsPerSec * this.diurnal(this.now) * this.fx().viewArrivalMult;
  }

  /** Views arrive almost regularly (jittered gaps): hourly engagement varies little day to day. */
  private viewArrival(): void {
    this.startView();
    this.at(this.now + Math.max(1, (SEC / this.viewRate()) * this.rng.range(0.5, 1.5)), () => this.viewArrival());
  }

  /** A viewer not watching anything right now (null when a few tries find only busy ones). */
  private pickViewer(): Viewer | null {
    for (let i = 0; i < 4; i++) {
      const v = this.world.viewers[pickCumulative(this.world.viewerCumWeights, this.rng.float())]!;
      if (!v.busy) return v;
    }
    return null;
  }

  private newView(viewer: Viewer): View {
    let title: Title;
    let stream: LiveStream | null = null;
    const creator = this.rng.chance(MODEL.liveShare) ? this.pickLiveCreator() : null;
    if (creator && creator.live) {
      title = creator.channel;
      stream = creator.live;
    } else {
      title = this.world.vodTitles[pickCumulative(this.world.vodCumWeights, this.rng.float())]!;
    }
    const device = viewer.device;
    const startRung = Math.min(viewer.maxRung, this.rng.weighted([1, 2, 3, 4], [0.15, 0.35, 0.35, 0.15]));
    return {
      id: this.rng.uuid(),
      viewer,
      title,
      stream,
      cdn: this.rng.weighted(CDNS, CDN_WEIGHTS),
      countryQuality: viewer.account.country.networkQuality * (device === 'mobile' ? 1.2 : device === 'tv' ? 0.8 : 1),
      seq: 0,
      state: 'starting',
      lastMs: this.now,
      playheadMs: 0,
      cumPlaying: 0,
      cumRebuffer: 0,
      cumRebufferCount: 0,
      cumSeek: 0,
      cumBitrate: 0,
      rung: startRung,
      nextHbMs: 0,
      hbRemainingMs: 0,
      phaseEndMs: 0,
      exitAfterPause: false,
      seekTargetMs: 0,
    };
  }

  private startView(): void {
    const viewer = this.pickViewer();
    if (!viewer) return;
    const fx = this.fx();
    if (fx.churnWave && this.churnCohort.has(viewer.account) && this.rng.chance(0.8)) return;
    const v = this.newView(viewer);
    // show-problem: most viewers of the troubled show give up before starting a view.
    if (fx.troubledShow === v.title.showName && this.rng.chance(MODEL.troubledShowSkipProb)) return;
    viewer.busy = true;
    this.activeViews++;
    if (v.stream) v.playheadMs = this.now - v.stream.startMs;
    else if (this.rng.chance(0.4)) v.playheadMs = Math.round((v.title.durationMs ?? 0) * this.rng.range(0.1, 0.8));
    this.emit('playback', this.pb(v, 'view_start', 'starting'));

    const cdnHit = cdnDegraded(fx, v);
    const account = viewer.account;
    const businessProb = account.plan === 'free' ? MODEL.businessErrorProbFree : MODEL.businessErrorProbPaid;
    const vsfProb = fx.brokenDevice === viewer.device ? fx.brokenDeviceVsfProb : (fx.vsfProb ?? MODEL.vsfProb * (cdnHit ? 2 : 1));
    const u = this.rng.float();
    if (u < businessProb) {
      this.at(this.now + this.rng.range(200, 1500), () => this.failView(v, this.rng.pick(BUSINESS_CODES), true, 'business_error'));
      return;
    }
    if (u < businessProb + vsfProb) {
      this.at(this.now + this.rng.range(1000, 8000), () => this.failView(v, this.rng.pick(VSF_CODES), false, 'fatal_error'));
      return;
    }
    if (u < businessProb + vsfProb + MODEL.ebvsProb * fx.ebvsMult) {
      this.at(this.now + this.rng.range(500, 6000), () => this.endView(v, 'user_exit', 'ended'));
      return;
    }
    const deviceFactor = viewer.device === 'tv' ? 1.3 : viewer.device === 'mobile' ? 1.1 : 1;
    let startupMs =
      this.rng.logNormal(MODEL.startupMedianMs, MODEL.startupSigma) *
      deviceFactor *
      Math.sqrt(v.countryQuality) *
      fx.startupMult *
      (cdnHit ? fx.cdnStartupMult : 1);
    startupMs = Math.min(30_000, Math.max(250, startupMs));
    const patienceMs = this.rng.logNormal(MODEL.patienceMedianMs, 0.5);
    if (startupMs > patienceMs) {
      this.at(this.now + patienceMs, () => this.endView(v, 'user_exit', 'ended'));
      return;
    }
    this.at(this.now + startupMs, () => this.firstFrame(v));
  }

  /** A view already playing when the simulation starts (no view_start in this stream). */
  private startWarmView(): void {
    const viewer = this.pickViewer();
    if (!viewer) return;
    const v = this.newView(viewer);
    viewer.busy = true;
    this.activeViews++;
    const maxAge = v.stream ? this.now - v.stream.startMs : Math.max(0, (v.title.durationMs ?? 0) - 2 * MIN);
    const ageMs = Math.min(maxAge * this.rng.float(), this.rng.exp((v.stream ? MODEL.exitMeanSecLive : MODEL.exitMeanSecVod) * SEC));
    const rebuffers = this.rng.poisson((ageMs / SEC) * MODEL.rebufferHazard * v.countryQuality);
    v.cumRebufferCount = rebuffers;
    v.cumRebuffer = Math.round(rebuffers * MODEL.rebufferMedianMs * 1.3);
    v.cumSeek = v.stream ? 0 : this.rng.poisson((ageMs / SEC) * MODEL.seekHazard) * 700;
    v.cumPlaying = Math.max(0, Math.round(ageMs - v.cumRebuffer - v.cumSeek));
    v.cumBitrate = v.cumPlaying * rendition(v.rung).kbps;
    v.playheadMs = v.stream ? this.now - v.stream.startMs : Math.round(this.rng.range(0, Math.max(0, (v.title.durationMs ?? 0) - ageMs - MIN)) + ageMs);
    v.seq = 2 + Math.floor(ageMs / this.opts.heartbeatMs) + 2 * rebuffers + Math.floor(ageMs / (120 * SEC));
    v.state = 'playing';
    v.lastMs = this.now;
    v.nextHbMs = this.now + Math.round(this.rng.range(0, this.opts.heartbeatMs));
    this.schedulePlaying(v);
  }

  private pb(v: View, type: PlaybackEvent['event_type'], state: PlayerState): PlaybackEvent {
    const viewer = v.viewer;
    return {
      event_id: this.rng.uuid(),
      event_time: this.now,
      received_time: 0,
      view_id: v.id,
      seq: v.seq++,
      event_type: type,
      player_state: state,
      playhead_ms: Math.max(0, Math.round(v.playheadMs)),
      viewer_id: viewer.id,
      account_id: viewer.account.id,
      content_id: v.title.contentId,
      stream_type: v.title.streamType,
      creator_id: v.title.creatorId,
      device_category: viewer.device,
      os: viewer.os,
      app_version: viewer.appVersion,
      cdn: v.cdn,
      country: viewer.account.country.code,
      asn: viewer.asn,
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
    };
  }

  private withRendition(e: PlaybackEvent, v: View): PlaybackEvent {
    const r = rendition(v.rung);
    e.bitrate_kbps = r.kbps;
    e.width = r.width;
    e.height = r.height;
    return e;
  }

  private withCounters(e: PlaybackEvent, v: View): PlaybackEvent {
    e.cum_playing_ms = v.cumPlaying;
    e.cum_rebuffer_ms = v.cumRebuffer;
    e.cum_rebuffer_count = v.cumRebufferCount;
    e.cum_seek_ms = v.cumSeek;
    e.cum_bitrate_ms = v.cumBitrate;
    return e;
  }

  /** Attributes the time since the last step to the state the view was in. */
  private accrue(v: View): void {
    const dt = this.now - v.lastMs;
    if (dt > 0) {
      switch (v.state) {
        case 'playing':
          v.cumPlaying += dt;
          v.cumBitrate += dt * rendition(v.rung).kbps;
          v.playheadMs += dt;
          break;
        case 'rebuffering':
          v.cumRebuffer += dt;
          break;
        case 'seeking':
          v.cumSeek += dt;
          break;
        default:
          break;
      }
    }
    v.lastMs = this.now;
  }

  private failView(v: View, code: string, business: boolean, reason: string): void {
    this.accrue(v);
    const e = this.pb(v, 'error', 'error');
    e.error_code = code;
    e.error_severity = 'fatal';
    e.error_business = business;
    this.emit('playback', e);
    v.state = 'error';
    this.at(this.now + this.rng.range(100, 1500), () => this.endView(v, reason, 'error'));
  }

  private endView(v: View, reason: string, state: PlayerState): void {
    this.accrue(v);
    const e = this.withCounters(this.pb(v, 'view_end', state), v);
    e.end_reason = reason;
    this.emit('playback', e);
    v.state = 'ended';
    v.viewer.busy = false;
    this.activeViews--;
  }

  private dropView(v: View): void {
    v.state = 'ended';
    v.viewer.busy = false;
    this.activeViews--;
  }

  private firstFrame(v: View): void {
    v.lastMs = this.now;
    v.state = 'playing';
    if (v.stream) v.playheadMs = this.now - v.stream.startMs;
    this.emit('playback', this.withRendition(this.pb(v, 'first_frame', 'playing'), v));
    v.nextHbMs = this.now + this.opts.heartbeatMs;
    this.schedulePlaying(v);
  }

  private behaviourHazards(v: View, fx: Readonly<Effects>): number[] {
    const cdnHit = cdnDegraded(fx, v);
    const live = v.stream !== null;
    const gifter = live && v.viewer.account.gifter;
    return [
      MODEL.rebufferHazard * v.countryQuality * (cdnHit ? fx.cdnRebufferHazardMult : 1),
      MODEL.pauseHazard * (live ? 0.3 : 1),
      live ? 0 : MODEL.seekHazard,
      MODEL.renditionHazard,
      MODEL.warningHazard,
      MODEL.midFatalHazard * fx.midFatalHazardMult,
      (fx.exitHazardMult * (fx.troubledShow === v.title.showName ? MODEL.troubledShowExitMult : 1) * SEC) /
        ((live ? MODEL.exitMeanSecLive : MODEL.exitMeanSecVod) * SEC),
      gifter ? MODEL.giftHazard : 0,
    ];
  }

  /** Schedules the next step of a playing view: a heartbeat, content end or a behaviour. */
  private schedulePlaying(v: View): void {
    const fx = this.fx();
    const hz = this.behaviourHazards(v, fx);
    let total = 0;
    for (const h of hz) total += h;
    const tBehaviour = this.now + Math.max(1, Math.round(this.rng.exp(1 / total) * SEC));
    let tEnd = Number.POSITIVE_INFINITY;
    if (v.stream) tEnd = v.stream.endMs;
    else if (v.title.durationMs !== null) tEnd = this.now + Math.max(1, v.title.durationMs - v.playheadMs);
    const t = Math.min(v.nextHbMs, tEnd, tBehaviour);
    if (t === v.nextHbMs) this.at(t, () => this.heartbeat(v, () => this.schedulePlaying(v)));
    else if (t === tEnd) this.at(t, () => this.endView(v, v.stream ? 'stream_ended' : 'ended', 'ended'));
    else {
      const which = this.rng.weighted([0, 1, 2, 3, 4, 5, 6, 7], hz);
      this.at(t, () => this.behave(v, which, fx));
    }
  }

  private heartbeat(v: View, next: () => void): void {
    this.accrue(v);
    this.emit('playback', this.withCounters(this.withRendition(this.pb(v, 'heartbeat', v.state), v), v));
    v.nextHbMs = this.now + this.opts.heartbeatMs;
    next();
  }

  private behave(v: View, which: number, fx: Readonly<Effects>): void {
    this.accrue(v);
    switch (which) {
      case 0: {
        // rebuffer
        v.cumRebufferCount++;
        v.state = 'rebuffering';
        this.emit('playback', this.pb(v, 'rebuffer_start', 'rebuffering'));
        const mult = cdnDegraded(fx, v) ? fx.cdnRebufferDurationMult : 1;
        v.phaseEndMs = this.now + Math.round(Math.min(60_000, Math.max(200, this.rng.logNormal(MODEL.rebufferMedianMs, 0.7) * mult)));
        if (mult > 1 && v.rung > 0 && this.rng.chance(0.5)) v.rung--;
        this.scheduleTimedPhase(v, () => {
          v.state = 'playing';
          this.emit('playback', this.pb(v, 'rebuffer_end', 'playing'));
        });
        return;
      }
      case 1: {
        // pause (heartbeats stop while paused)
        v.state = 'paused';
        this.emit('playback', this.pb(v, 'pause', 'paused'));
        v.hbRemainingMs = Math.max(1, v.nextHbMs - this.now);
        v.exitAfterPause = this.rng.chance(MODEL.pauseExitProb);
        const resumeAt = this.now + Math.round(Math.min(30 * MIN, this.rng.logNormal(MODEL.pauseMedianMs, 1)));
        const endAt = v.stream ? Math.min(resumeAt, v.stream.endMs) : resumeAt;
        this.at(endAt, () => {
          this.accrue(v);
          if (v.exitAfterPause || (v.stream && this.now >= v.stream.endMs)) {
            this.endView(v, v.stream && this.now >= v.stream.endMs ? 'stream_ended' : 'user_exit', 'ended');
            return;
          }
          v.state = 'playing';
          this.emit('playback', this.pb(v, 'resume', 'playing'));
          v.nextHbMs = this.now + v.hbRemainingMs;
          this.schedulePlaying(v);
        });
        return;
      }
      case 2: {
        // seek (VOD only)
        const duration = v.title.durationMs ?? 0;
        v.state = 'seeking';
        this.emit('playback', this.pb(v, 'seek_start', 'seeking'));
        const forward = this.rng.chance(0.7);
        v.seekTargetMs = forward
          ? Math.min(duration - 2 * MIN, v.playheadMs + this.rng.range(10 * SEC, 10 * MIN))
          : Math.max(0, v.playheadMs - this.rng.range(10 * SEC, 5 * MIN));
        v.seekTargetMs = Math.max(0, Math.round(v.seekTargetMs));
        v.phaseEndMs = this.now + Math.round(Math.min(15_000, this.rng.logNormal(600, 0.6) * (cdnDegraded(fx, v) ? 3 : 1)));
        this.scheduleTimedPhase(v, () => {
          v.state = 'playing';
          v.playheadMs = v.seekTargetMs;
          this.emit('playback', this.pb(v, 'seek_end', 'playing'));
        });
        return;
      }
      case 3: {
        // ABR rendition change
        const down = cdnDegraded(fx, v) ? 0.75 : 0.45;
        const next = this.rng.chance(down) ? v.rung - 1 : v.rung + 1;
        if (next >= 0 && next <= v.viewer.maxRung) {
          v.rung = next;
          this.emit('playback', this.withRendition(this.pb(v, 'rendition_change', 'playing'), v));
        }
        break;
      }
      case 4: {
        const e = this.pb(v, 'error', v.state);
        e.error_code = this.rng.pick(WARNING_CODES);
        e.error_severity = 'warning';
        e.error_business = false;
        this.emit('playback', e);
        break;
      }
      case 5:
        this.failView(v, this.rng.pick(MID_FATAL_CODES), false, 'fatal_error');
        return;
      case 6:
        if (this.rng.chance(MODEL.dropProb)) this.dropView(v);
        else this.endView(v, this.rng.chance(0.9) ? 'user_exit' : 'video_change', 'ended');
        return;
      case 7:
        this.gift(v);
        break;
    }
    this.schedulePlaying(v);
  }

  /** Rebuffer or seek: heartbeats continue until the phase ends; a live stream may end first. */
  private scheduleTimedPhase(v: View, onEnd: () => void): void {
    const endLive = v.stream ? v.stream.endMs : Number.POSITIVE_INFINITY;
    const t = Math.min(v.phaseEndMs, v.nextHbMs, endLive);
    if (t === v.phaseEndMs) {
      this.at(t, () => {
        this.accrue(v);
        onEnd();
        this.schedulePlaying(v);
      });
    } else if (t === v.nextHbMs) {
      this.at(t, () => this.heartbeat(v, () => this.scheduleTimedPhase(v, onEnd)));
    } else {
      this.at(t, () => this.endView(v, 'stream_ended', 'ended'));
    }
  }

  // ─────────────────────────────────── gifts ───────────────────────────────────

  private gift(v: View): void {
    const stream = v.stream;
    if (!stream) return;
    const g = this.rng.weighted(
      GIFT_TYPES,
      GIFT_TYPES.map((x) => x.weight),
    );
    const e: GiftEvent = {
      event_id: this.rng.uuid(),
      event_time: this.now,
      received_time: 0,
      gift_id: this.rng.uuid(),
      sender_account_id: v.viewer.account.id,
      creator_id: stream.creator.id,
      stream_id: stream.streamId,
      gift_type: g.type,
      quantity: this.rng.weighted([1, 2, 3, 5, 10], [0.7, 0.12, 0.08, 0.06, 0.04]),
      unit_coins: g.coins,
      coin_value_usd_micros: COIN_VALUE_USD_MICROS,
    };
    this.emit('gifts', e);
  }

  // ────────────────────────────────── payments ──────────────────────────────────

  private payment(a: Account, kind: PaymentEvent['kind'], amountMinor: number, failed: string | null): PaymentEvent {
    return {
      event_id: this.rng.uuid(),
      event_time: this.now,
      received_time: 0,
      payment_id: `pay_${this.rng.uuid()}`,
      account_id: a.id,
      kind,
      status: failed ? 'failed' : 'succeeded',
      amount_minor: amountMinor,
      currency: a.currency,
      method: a.method,
      plan: a.plan,
      og_tier: a.ogTier,
      auto_renew: a.autoRenew,
      period_end: a.periodEndMs,
      failure_code: failed,
      country: a.country.code,
    };
  }

  /** Decides whether a charge fails and with which code. */
  private chargeFailure(a: Account, extraProb = 0): string | null {
    const fx = this.fx();
    const outage = fx.paymentFailureProb;
    if (outage !== null && (fx.failingMethod === null || fx.failingMethod === a.method) && this.rng.chance(outage)) return this.rng.pick(OUTAGE_CODES);
    if (this.rng.chance(MODEL.chargeFailureProb + extraProb)) return this.rng.pick(FAILURE_CODES);
    return null;
  }

  private recordCharge(a: Account, amountMinor: number): void {
    a.lastCharge = { amountMinor, atMs: this.now, refunded: false };
    const charge = a.lastCharge;
    if (this.rng.chance(MODEL.refundProb)) {
      this.at(this.now + this.rng.range(1 * HOUR, 72 * HOUR), () => this.reverseCharge(a, charge, 'refund'));
    } else if (this.rng.chance(MODEL.chargebackProb)) {
      this.at(this.now + this.rng.range(3 * DAY, 30 * DAY), () => this.reverseCharge(a, charge, 'chargeback'));
    }
  }

  private reverseCharge(a: Account, charge: NonNullable<Account['lastCharge']>, kind: 'refund' | 'chargeback'): void {
    if (charge.refunded) return;
    charge.refunded = true;
    this.emit('payments', this.payment(a, kind, charge.amountMinor, null));
  }

  private scheduleRenewal(a: Account, atMs: number): void {
    const token = (this.renewalTokens.get(a) ?? 0) + 1;
    this.renewalTokens.set(a, token);
    this.at(Math.max(this.now, atMs), () => {
      if (this.renewalTokens.get(a) === token) this.renew(a);
    });
  }

  private renew(a: Account): void {
    if (a.plan === 'free' || a.periodEndMs === null) return;
    if (!a.autoRenew) {
      // Period ran out after a cancel: the account silently falls back to free.
      a.plan = 'free';
      a.periodEndMs = null;
      return;
    }
    const amount = priceMinor(a.currency, a.plan);
    const failed = this.chargeFailure(a, this.fx().churnWave && this.churnCohort.has(a) ? 0.3 : 0);
    if (!failed) {
      a.renewalFailures = 0;
      a.periodEndMs = Math.max(a.periodEndMs, this.now) + MODEL.billingPeriodDays * DAY;
      this.emit('payments', this.payment(a, 'renewal', amount, null));
      this.recordCharge(a, amount);
      this.scheduleRenewal(a, a.periodEndMs);
      return;
    }
    a.renewalFailures++;
    if (a.renewalFailures < 3) {
      this.emit('payments', this.payment(a, 'renewal', amount, failed));
      this.scheduleRenewal(a, this.now + DAY);
      return;
    }
    // Dunning exhausted: the renewal fails for the last time and the subscription ends.
    a.plan = 'free';
    a.autoRenew = false;
    a.periodEndMs = null;
    a.renewalFailures = 0;
    this.emit('payments', this.payment(a, 'renewal', amount, failed));
  }

  private topupGapMs(): number {
    const fx = this.fx();
    const rate = this.opts.ratePerSec * MODEL.topupShare * this.diurnal(this.now) * fx.topupRateMult;
    return SEC / rate;
  }

  /** Coin top-ups arrive almost regularly (jittered), which keeps hourly revenue steady. */
  private topupArrival(): void {
    if (this.spenders.length > 0) {
      const pool = Math.max(1, Math.floor(this.spenders.length * this.fx().spenderPoolFraction));
      const a = this.spenders[this.rng.int(pool)]!;
      const pack = COIN_PACKS[this.drawPack()]!;
      const amount = coinPackMinor(a.currency, pack.usdCents);
      const failed = this.chargeFailure(a);
      this.emit('payments', this.payment(a, 'coin_topup', amount, failed));
      if (!failed) this.recordCharge(a, amount);
    }
    this.at(this.now + Math.max(1, this.topupGapMs() * this.rng.range(0.5, 1.5)), () => this.topupArrival());
  }

  /**
   * Coin packs are dealt from a shuffled deck with the exact pack mix (sampling without
   * replacement), so an hour's revenue does not swing with a few large packs more or less.
   */
  private drawPack(): number {
    if (this.packDeck.length === 0) {
      for (let i = 0; i < COIN_PACKS.length; i++) for (let n = Math.round(COIN_PACKS[i]!.weight * 100); n > 0; n--) this.packDeck.push(i);
      for (let i = this.packDeck.length - 1; i > 0; i--) {
        const j = this.rng.int(i + 1);
        [this.packDeck[i], this.packDeck[j]] = [this.packDeck[j]!, this.packDeck[i]!];
      }
    }
    return this.packDeck.pop()!;
  }

  private lifecycleGapMs(): number {
    return DAY / (this.world.accounts.length * MODEL.lifecyclePerAccountDay);
  }

  private lifecycleArrival(): void {
    const a = this.world.accounts[this.rng.int(this.world.accounts.length)]!;
    const fx = this.fx();
    if (a.plan === 'free') {
      if (this.rng.chance(fx.subscriptionStartMult)) this.subscribe(a);
    } else if (a.autoRenew) {
      const what = this.rng.weighted(['cancel', 'upgrade', 'downgrade'] as const, [0.45, 0.3, 0.25]);
      if (what === 'cancel') this.cancel(a);
      else this.changePlan(a, what);
    }
    this.at(this.now + this.rng.exp(this.lifecycleGapMs()), () => this.lifecycleArrival());
  }

  private subscribe(a: Account): void {
    const plan = this.rng.weighted(PAID_PLANS, [0.45, 0.35, 0.2]);
    const amount = priceMinor(a.currency, plan);
    const failed = this.chargeFailure(a);
    if (failed) {
      const e = this.payment(a, 'subscription_start', amount, failed);
      e.plan = plan; // the plan the account tried to buy
      this.emit('payments', e);
      return;
    }
    a.plan = plan;
    a.autoRenew = true;
    a.periodEndMs = this.now + MODEL.billingPeriodDays * DAY;
    a.renewalFailures = 0;
    this.emit('payments', this.payment(a, 'subscription_start', amount, null));
    this.recordCharge(a, amount);
    this.scheduleRenewal(a, a.periodEndMs);
  }

  private cancel(a: Account): void {
    a.autoRenew = false;
    this.emit('payments', this.payment(a, 'cancel', 0, null));
  }

  private changePlan(a: Account, direction: 'upgrade' | 'downgrade'): void {
    const i = PAID_PLANS.indexOf(a.plan as (typeof PAID_PLANS)[number]);
    const j = direction === 'upgrade' ? i + 1 : i - 1;
    if (j < 0 || j >= PAID_PLANS.length) return;
    const target: Plan = PAID_PLANS[j]!;
    if (direction === 'downgrade') {
      a.plan = target;
      this.emit('payments', this.payment(a, 'downgrade', 0, null));
      return;
    }
    const amount = priceMinor(a.currency, target) - priceMinor(a.currency, a.plan);
    const failed = this.chargeFailure(a);
    if (failed) {
      const e = this.payment(a, 'upgrade', amount, failed);
      e.plan = target;
      this.emit('payments', e);
      return;
    }
    a.plan = target;
    this.emit('payments', this.payment(a, 'upgrade', amount, null));
    this.recordCharge(a, amount);
  }

  private churnWave(startMs: number, durationMs: number): void {
    const paid = this.world.accounts.filter((a) => a.plan !== 'free' && a.autoRenew);
    for (const a of paid) {
      if (!this.rng.chance(0.2)) continue;
      this.churnCohort.add(a);
      const t = startMs + this.rng.range(0, durationMs * 0.9);
      const what = this.rng.weighted(['cancel', 'fail', 'downgrade'] as const, [0.55, 0.25, 0.2]);
      this.at(t, () => {
        if (a.plan === 'free') return;
        if (what === 'cancel' && a.autoRenew) this.cancel(a);
        else if (what === 'downgrade') {
          if (a.plan === 'basic') this.cancel(a);
          else this.changePlan(a, 'downgrade');
        } else if (what === 'fail' && a.autoRenew) {
          // An early renewal attempt (card updater / retry) that fails.
          a.renewalFailures++;
          this.emit('payments', this.payment(a, 'renewal', priceMinor(a.currency, a.plan), this.rng.pick(['insufficient_funds', 'expired_card'])));
        }
      });
    }
  }

  // ───────────────────────────────── moderation ─────────────────────────────────

  private moderationGapMs(): number {
    const fx = this.fx();
    return HOUR / (this.opts.moderationCasesPerHour * fx.moderationRateMult * this.diurnal(this.now));
  }

  private moderationArrival(): void {
    this.moderationCase({});
    this.at(this.now + this.rng.exp(this.moderationGapMs()), () => this.moderationArrival());
  }

  private moderationCase(opts: { forceCritical?: boolean }): void {
    const fx = this.fx();
    const caseId = `case-${String(++this.caseCounter).padStart(7, '0')}-${this.rng.uuid().slice(0, 8)}`;
    const live = this.pickLiveCreator();
    let targetType = this.rng.weighted(['stream', 'message', 'account', 'content'] as const, [0.25, 0.35, 0.25, 0.15]);
    if ((targetType === 'stream' || targetType === 'message') && !live) targetType = 'content';
    let targetId: string;
    let creatorId: string | null = null;
    if (targetType === 'stream') {
      targetId = live!.live!.streamId;
      creatorId = live!.id;
    } else if (targetType === 'message') {
      targetId = `msg-${this.rng.uuid()}`;
      creatorId = live!.id;
    } else if (targetType === 'account') {
      targetId = this.rng.pick(this.world.accounts).id;
    } else {
      const t = this.rng.pick(this.world.titles);
      targetId = t.contentId;
      creatorId = t.creatorId;
    }
    const policy = this.rng.weighted(POLICIES, POLICY_WEIGHTS);
    const high = fx.moderationHighSeverity;
    let severity = this.rng.weighted(SEVERITIES, high ? [0.15, 0.35, 0.42, 0.08] : [0.45, 0.35, 0.18, 0.02]);
    if (opts.forceCritical) severity = 'critical';
    const source = opts.forceCritical ? 'automated' : this.rng.weighted(['user_report', 'automated', 'staff'] as const, [0.65, 0.28, 0.07]);
    const base = { case_id: caseId, target_type: targetType, target_id: targetId, creator_id: creatorId, policy };
    const mk = (
      event_type: ModerationEvent['event_type'],
      sev: ModerationEvent['severity'],
      action: ModerationEvent['action_type'],
      outcome: ModerationEvent['outcome'],
    ): ModerationEvent => ({
      event_id: this.rng.uuid(),
      event_time: this.now,
      received_time: 0,
      ...base,
      event_type,
      severity: sev,
      detection_source: source,
      action_type: action,
      outcome,
    });
    // Reviewers re-assess: outside an abuse spike, a critical report is actioned as high.
    const actionSeverity: ModerationEvent['severity'] = severity === 'critical' && !high && !opts.forceCritical ? 'high' : severity;
    const actionType = this.pickAction(actionSeverity, targetType);
    const act = () => {
      this.emit('moderation', mk('action_taken', actionSeverity, actionType, null));
      if (actionType !== 'none' && this.rng.chance(0.12)) {
        this.at(this.now + this.rng.logNormal(3 * HOUR, 0.8), () => {
          this.emit('moderation', mk('appeal_created', actionSeverity, actionType, null));
          this.at(this.now + this.rng.logNormal(10 * HOUR, 0.7), () => {
            this.emit('moderation', mk('appeal_decided', actionSeverity, actionType, this.rng.chance(0.25) ? 'reversed' : 'upheld'));
          });
        });
      }
    };
    if (source === 'user_report') {
      this.emit('moderation', mk('report_created', severity, null, null));
      const delay = this.rng.logNormal(25 * MIN, 1.0) * (severity === 'critical' || severity === 'high' ? 0.5 : 1);
      const extra = this.rng.poisson(0.3);
      for (let i = 0; i < extra; i++) this.at(this.now + this.rng.range(0, delay), () => this.emit('moderation', mk('report_created', severity, null, null)));
      this.at(this.now + delay, act);
    } else {
      act();
    }
  }

  private pickAction(severity: ModerationEvent['severity'], target: ModerationEvent['target_type']): NonNullable<ModerationEvent['action_type']> {
    const streamy = target === 'stream';
    switch (severity) {
      case 'low':
        return this.rng.weighted(['none', 'warn', 'remove'] as const, [0.35, 0.45, 0.2]);
      case 'medium':
        return this.rng.weighted(['none', 'warn', 'remove', 'mute'] as const, [0.15, 0.35, 0.35, 0.15]);
      case 'high':
        return this.rng.weighted(['remove', 'mute', streamy ? 'suspend_stream' : 'ban_account'] as const, [0.5, 0.2, 0.3]);
      case 'critical':
        return streamy ? 'suspend_stream' : 'ban_account';
    }
  }

  // ──────────────────────────────────── jira ────────────────────────────────────

  private jiraArrival(): void {
    this.jiraCreate({});
    this.at(this.now + this.rng.exp(HOUR / this.opts.jiraIssuesPerHour), () => this.jiraArrival());
  }

  private jiraBacklog(): void {
    for (let i = 0; i < MODEL.jiraBacklog; i++) {
      const issue = this.newIssue({});
      issue.created = this.now - Math.round(this.rng.range(1 * HOUR, 20 * DAY));
      const advanced = this.rng.chance(0.6);
      if (advanced) {
        issue.status = this.rng.pick(['In Progress', 'In Review']);
        issue.statusCategory = 'indeterminate';
      }
      issue.updated = this.now;
      this.jiraEmit(issue, 'issue_updated', null);
      this.scheduleJiraProgress(issue);
    }
  }

  private newIssue(o: { severity?: string; issueType?: string; summary?: string; costUsd?: number; show?: string }): JiraIssue {
    const project = this.rng.pick(JIRA_PROJECTS);
    const n = (this.nextIssueNumber.get(project.key) ?? 100 + this.rng.int(400)) + 1;
    this.nextIssueNumber.set(project.key, n);
    const showName = o.show ?? this.rng.pick(this.world.vodShowNames);
    const severity = o.severity ?? this.rng.weighted(['low', 'medium', 'high'], [0.4, 0.4, 0.2]);
    const cost = o.costUsd ?? (this.rng.chance(0.75) ? Math.round(Math.min(45_000, this.rng.logNormal(2500, 1.0)) * 100) / 100 : null);
    const issue: JiraIssue = {
      key: `${project.key}-${n}`,
      id: this.nextJiraId++,
      project: project.key,
      summary: (o.summary ?? this.rng.pick(JIRA_SUMMARIES)).replace('{show}', showName),
      issueType: o.issueType ?? this.rng.weighted(['Bug', 'Task', 'Incident', 'Story'], [0.45, 0.3, 0.15, 0.1]),
      status: 'To Do',
      statusCategory: 'new',
      priority: PRIORITY_BY_SEVERITY[severity] ?? 'Medium',
      severity,
      showName,
      costUsd: cost,
      delayDays: this.rng.chance(0.7) ? Math.round(this.rng.logNormal(1.5, 0.8) * 2) / 2 : null,
      labels: [this.rng.pick(JIRA_LABELS), ...(this.rng.chance(0.3) ? [this.rng.pick(JIRA_LABELS)] : [])].filter((l, i, a) => a.indexOf(l) === i),
      created: this.now,
      updated: this.now,
      resolved: null,
      deleted: false,
      reporter: this.rng.pick(JIRA_PEOPLE),
    };
    this.jiraIssues.push(issue);
    if (this.jiraIssues.length > 2000) this.jiraIssues.splice(0, this.jiraIssues.length - 2000);
    return issue;
  }

  private jiraCreate(o: { severity?: string; issueType?: string; summary?: string; costUsd?: number; show?: string }): JiraIssue {
    const issue = this.newIssue(o);
    this.jiraEmit(issue, 'issue_created', null);
    this.scheduleJiraProgress(issue);
    return issue;
  }

  /** Moves an open issue to Done now (the end of a production incident). */
  private jiraResolve(issue: JiraIssue): void {
    if (issue.deleted || issue.statusCategory === 'done') return;
    const from = issue.status;
    issue.status = 'Done';
    issue.statusCategory = 'done';
    issue.resolved = this.now;
    issue.updated = this.now;
    this.jiraEmit(issue, 'issue_updated', { from, to: issue.status, cost: null });
  }

  /** Moves an issue through its workflow over hours to days. */
  private scheduleJiraProgress(issue: JiraIssue): void {
    if (issue.deleted || issue.statusCategory === 'done') return;
    const urgent = issue.severity === 'critical' || issue.severity === 'high';
    const delay =
      issue.statusCategory === 'new' ? this.rng.logNormal(urgent ? 1 * HOUR : 5 * HOUR, 0.8) : this.rng.logNormal(urgent ? 10 * HOUR : 30 * HOUR, 0.8);
    this.at(this.now + delay, () => {
      if (issue.deleted || issue.statusCategory === 'done') return; // resolved meanwhile (end of an incident)
      const from = issue.status;
      if (issue.statusCategory === 'new' && this.rng.chance(0.02)) {
        issue.deleted = true;
        issue.updated = this.now;
        this.jiraEmit(issue, 'issue_deleted', null);
        return;
      }
      if (issue.statusCategory === 'new') {
        issue.status = 'In Progress';
        issue.statusCategory = 'indeterminate';
      } else if (issue.status === 'In Progress' && this.rng.chance(0.6)) {
        issue.status = 'In Review';
      } else {
        issue.status = 'Done';
        issue.statusCategory = 'done';
        issue.resolved = this.now;
      }
      let costChange: [number | null, number | null] | null = null;
      if (issue.statusCategory !== 'done' && issue.costUsd !== null && this.rng.chance(0.2)) {
        const before = issue.costUsd;
        const estimate = Math.round(Math.min(45_000, before * this.rng.range(1.05, 1.6)) * 100) / 100;
        // Routine re-estimates only raise costs (capped at $45,000 in normal traffic); an incident's
        // issue above that keeps its cost instead of silently dropping below the alert threshold.
        if (estimate > before) {
          issue.costUsd = estimate;
          costChange = [before, estimate];
        }
      }
      issue.updated = this.now;
      this.jiraEmit(issue, 'issue_updated', { from, to: issue.status, cost: costChange });
      this.scheduleJiraProgress(issue);
    });
  }

  /** Re-estimates an open issue (not one of `exclude`) to `costUsd`; returns it. */
  private jiraReestimate(costUsd: number, exclude: readonly JiraIssue[] = []): JiraIssue {
    const open = this.jiraIssues.filter((i) => !i.deleted && i.statusCategory !== 'done' && !exclude.includes(i));
    const issue = open.length > 0 ? this.rng.pick(open) : this.newIssue({});
    const before = issue.costUsd;
    issue.costUsd = costUsd;
    issue.updated = this.now;
    this.jiraEmit(issue, 'issue_updated', { from: issue.status, to: issue.status, cost: [before, costUsd] });
    return issue;
  }

  private jiraEmit(
    issue: JiraIssue,
    webhookEvent: JiraIssueEvent['webhook_event'],
    change: { from: string; to: string; cost: [number | null, number | null] | null } | null,
  ): void {
    const e: JiraIssueEvent = {
      event_id: this.rng.uuid(),
      event_time: this.now,
      received_time: 0,
      webhook_event: webhookEvent,
      issue_key: issue.key,
      project_key: issue.project,
      summary: issue.summary,
      issue_type: issue.issueType,
      status: issue.status,
      status_category: issue.statusCategory,
      priority: issue.priority,
      severity: issue.severity,
      show_name: issue.showName,
      cost_impact_usd: issue.costUsd,
      delay_days: issue.delayDays,
      labels: [...issue.labels],
      created: issue.created,
      updated: issue.updated,
      resolved: issue.resolved,
      raw_payload: this.jiraPayload(issue, webhookEvent, change),
    };
    this.emit('jira', e);
  }

  private jiraPayload(
    issue: JiraIssue,
    webhookEvent: JiraIssueEvent['webhook_event'],
    change: { from: string; to: string; cost: [number | null, number | null] | null } | null,
  ): string {
    const fm = this.opts.jiraFieldMap;
    const site = 'https://streampulse.atlassian.net';
    const fields: Record<string, unknown> = {
      summary: issue.summary,
      issuetype: { id: String(10_001 + ['Bug', 'Task', 'Incident', 'Story'].indexOf(issue.issueType)), name: issue.issueType, subtask: false },
      project: {
        id: String(10_000 + JIRA_PROJECTS.findIndex((p) => p.key === issue.project)),
        key: issue.project,
        name: JIRA_PROJECTS.find((p) => p.key === issue.project)?.name ?? issue.project,
      },
      status: { name: issue.status, statusCategory: { key: issue.statusCategory, name: STATUS_CATEGORY_NAME[issue.statusCategory] } },
      priority: { name: issue.priority },
      labels: issue.labels,
      created: jiraTime(issue.created),
      updated: jiraTime(issue.updated),
      resolutiondate: issue.resolved === null ? null : jiraTime(issue.resolved),
      resolution: issue.resolved === null ? null : { name: 'Done' },
      reporter: { accountId: issue.reporter, accountType: 'atlassian' },
    };
    if (fm.severity) fields[fm.severity] = { value: issue.severity.charAt(0).toUpperCase() + issue.severity.slice(1) };
    if (fm.show_name) fields[fm.show_name] = issue.showName;
    if (fm.cost_impact_usd) fields[fm.cost_impact_usd] = issue.costUsd;
    if (fm.delay_days) fields[fm.delay_days] = issue.delayDays;
    const body: Record<string, unknown> = {
      timestamp: this.now,
      webhookEvent: `jira:${webhookEvent}`,
      issue_event_type_name: webhookEvent === 'issue_updated' ? (change && change.from !== change.to ? 'issue_generic' : 'issue_updated') : webhookEvent,
      user: { accountId: issue.reporter, accountType: 'atlassian', active: true },
      issue: { id: String(issue.id), self: `${site}/rest/api/2/${issue.id}`, key: issue.key, fields },
    };
    if (change) {
      const items: Array<Record<string, unknown>> = [];
      if (change.from !== change.to) items.push({ field: 'status', fieldtype: 'jira', fromString: change.from, toString: change.to });
      if (change.cost && fm.cost_impact_usd)
        items.push({
          field: 'Cost impact (USD)',
          fieldtype: 'custom',
          fieldId: fm.cost_impact_usd,
          fromString: change.cost[0] === null ? null : String(change.cost[0]),
          toString: change.cost[1] === null ? null : String(change.cost[1]),
        });
      body.changelog = { id: String(this.rng.int(1_000_000) + 100_000), items };
    }
    return JSON.stringify(body);
  }
}

/** Enough accounts that viewers watch a realistic few views a day: 5000, or 100 per event/s. */
export function defaultAccounts(ratePerSec: number): number {
  return Math.max(5000, Math.round(ratePerSec * 100));
}

function jiraTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

/** Convenience: generate everything in [startMs, endMs) at once (tests, small tools). */
export function generateRange(options: GeneratorOptions, endMs: number): SimEvent[] {
  return new TrafficGenerator(options).advance(endMs);
}
