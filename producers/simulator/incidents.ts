/**
 * Anomalies the simulator can inject, each aimed at one or more default alert rules
 * (DOMAIN.md §8). Pure: an incident is a time window plus multipliers that the generator reads
 * at each step, and a few one-off events (a critical Jira issue, a critical moderation action)
 * scheduled at its start.
 */

export interface IncidentInfo {
  description: string;
  /** The alert rule(s) of DOMAIN.md §8 it is meant to trip. */
  trips: string;
}

export const INCIDENTS = {
  'cdn-degradation': {
    description:
      'One CDN (default akamai; `cdn-degradation:fastly` picks another, `cdn-degradation:akamai/IN` limits it to the viewers of one country, a regional degradation) rebuffers ~15x more often and ~2.5x longer, and starts up ~2.5x slower; the other CDNs are unchanged.',
    trips: 'QoE rebuffer % > 2 % for 3 min by cdn (and startup p95 for that cdn); with a country, its explanation ranks that country first',
  },
  'payment-outage': {
    description:
      "The payment gateway fails ~40 % of attempts (gateway_timeout, processing_error); succeeded revenue drops accordingly. `payment-outage:google_play` is one payment provider down: ~90 % of that method's attempts fail, the others are unchanged.",
    trips:
      'payment failure rate > 10 % over 15 min; hourly revenue 15 % below its 7-day average when long enough; with a method, its explanation ranks that method first',
  },
  'abuse-spike': {
    description:
      'User reports and automated detections surge ~40x, skewed to high severity, with critical-severity actions (the first about a minute after the start).',
    trips: 'more than 50 reports or actions in an hour; any critical-severity action',
  },
  'engagement-drop': {
    description: 'Fewer views start (-15 %) and sessions end sooner, so playing time falls by about 30 %.',
    trips: 'hourly playing time 15 % below its 7-day average',
  },
  'churn-wave': {
    description:
      'A cohort of ~20 % of paying accounts turns off auto-renew or cancels, a share fails renewal (insufficient funds, expired card), and those accounts watch ~80 % less during the incident.',
    trips: 'accounts entering high churn risk 20 % above the 7-day average',
  },
  'vsf-spike': {
    description: 'Video start failures (fatal errors before the first frame) rise from ~0.8 % to ~15 % of views.',
    trips: 'VSF % over 5 min above 5 %',
  },
  'startup-slow': {
    description: 'Startup time rises ~3.2x on every CDN (p95 ~7 s) and more viewers exit before the first frame.',
    trips: 'startup p95 over 5 min above 4 s',
  },
  'fatal-errors': {
    description: 'Mid-stream fatal playback errors (playback failures after the first frame) rise ~25x: several hundred an hour at the default backfill rate.',
    trips: 'more than 100 fatal playback errors in an hour',
  },
  'production-critical': {
    description:
      'A new critical-severity Jira issue is created 30 s into the incident, a new issue with cost_impact_usd 72,500 after 2 min, and an open issue is re-estimated to $64,000 after 5 min; the three are resolved (Done) when the incident ends (at least 6 min in).',
    trips: 'a new critical Jira issue; an issue cost impact above $50,000',
  },
  'payer-drop': {
    description: 'Only ~35 % of the usual coin buyers pay and top-ups fall ~40 %, new subscriptions fall ~70 %: fewer paying accounts and less revenue.',
    trips: 'payer rate 10 % below its 7-day average (and hourly revenue when long enough)',
  },
  'app-release': {
    description:
      'An app release breaks playback on one device family (default tv; `app-release:tablet` picks another): ~60 % of its views fail before the first frame; other devices are unchanged.',
    trips: 'VSF % over 5 min above 5 %; its explanation ranks that device_category first',
  },
  'show-problem': {
    description:
      'A show has a production problem (default: the most popular VOD show; `show-problem:<show name>`): a critical Jira issue on it 30 s in (resolved when the incident ends), 80 % of its would-be views never start and its viewers leave ~8x sooner, so its playing time collapses.',
    trips: 'hourly playing time 15 % below its 7-day average when the show is big enough; its explanation ranks that show first and names the Jira issue',
  },
  'late-delivery': {
    description:
      'The beacon collector is unreachable from the mobile apps (e.g. a carrier route or certificate problem): ~30 % of mobile devices keep playing from the CDNs but queue their playback beacons on the device, and each uploads its queue at its first retry after the collector is back, 1-5 min after the incident ends. Their events arrive up to the duration + 5 min late (1-25 min for 20 min), far beyond the window grace; the events themselves are exactly those of normal traffic, only their delivery is delayed (so they are out of event-time order).',
    trips:
      'more than 500 late events in 15 min by processor: qoe and business (both read playback); churn only if the queued span crosses midnight (its windows are days)',
  },
} as const satisfies Record<string, IncidentInfo>;

export type IncidentName = keyof typeof INCIDENTS;
export const INCIDENT_NAMES = Object.keys(INCIDENTS) as IncidentName[];

export interface IncidentSpec {
  name: IncidentName;
  startMs: number;
  durationMs: number;
  /** Incident-specific target: the CDN (and country) of cdn-degradation, the method of payment-outage, the device family of app-release, the show of show-problem. */
  target?: string;
}

export function isIncidentName(s: string): s is IncidentName {
  return Object.prototype.hasOwnProperty.call(INCIDENTS, s);
}

/** Multipliers and overrides in force at one moment; `BASELINE` when no incident is active. */
export interface Effects {
  degradedCdn: string | null;
  /** cdn-degradation limited to the viewers of one country (null: everywhere). */
  degradedCountry: string | null;
  /** payment-outage limited to one payment method (null: every method). */
  failingMethod: string | null;
  /** app-release: the device family whose views fail to start, and with what probability. */
  brokenDevice: string | null;
  brokenDeviceVsfProb: number;
  /** show-problem: the show viewers give up on. */
  troubledShow: string | null;
  cdnRebufferHazardMult: number;
  cdnRebufferDurationMult: number;
  cdnStartupMult: number;
  startupMult: number;
  vsfProb: number | null;
  ebvsMult: number;
  midFatalHazardMult: number;
  paymentFailureProb: number | null;
  topupRateMult: number;
  spenderPoolFraction: number;
  subscriptionStartMult: number;
  moderationRateMult: number;
  moderationHighSeverity: boolean;
  viewArrivalMult: number;
  exitHazardMult: number;
  churnWave: boolean;
}

export const BASELINE: Readonly<Effects> = Object.freeze({
  degradedCdn: null,
  degradedCountry: null,
  failingMethod: null,
  brokenDevice: null,
  brokenDeviceVsfProb: 0,
  troubledShow: null,
  cdnRebufferHazardMult: 1,
  cdnRebufferDurationMult: 1,
  cdnStartupMult: 1,
  startupMult: 1,
  vsfProb: null,
  ebvsMult: 1,
  midFatalHazardMult: 1,
  paymentFailureProb: null,
  topupRateMult: 1,
  spenderPoolFraction: 1,
  subscriptionStartMult: 1,
  moderationRateMult: 1,
  moderationHighSeverity: false,
  viewArrivalMult: 1,
  exitHazardMult: 1,
  churnWave: false,
});

function apply(e: Effects, spec: IncidentSpec): void {
  switch (spec.name) {
    case 'cdn-degradation': {
      const [cdn, country] = (spec.target ?? 'akamai').split('/');
      e.degradedCdn = cdn || 'akamai';
      e.degradedCountry = country || null;
      e.cdnRebufferHazardMult = 15;
      e.cdnRebufferDurationMult = 2.5;
      e.cdnStartupMult = 2.5;
      break;
    }
    case 'payment-outage':
      e.paymentFailureProb = spec.target ? 0.9 : 0.4;
      e.failingMethod = spec.target ?? null;
      break;
    case 'app-release':
      e.brokenDevice = spec.target ?? 'tv';
      e.brokenDeviceVsfProb = 0.6;
      break;
    case 'show-problem':
      e.troubledShow = spec.target ?? null;
      break;
    case 'abuse-spike':
      e.moderationRateMult *= 40;
      e.moderationHighSeverity = true;
      break;
    case 'engagement-drop':
      e.viewArrivalMult *= 0.85;
      e.exitHazardMult *= 1.25;
      break;
    case 'churn-wave':
      e.churnWave = true;
      break;
    case 'vsf-spike':
      e.vsfProb = 0.15;
      break;
    case 'startup-slow':
      e.startupMult *= 3.2;
      e.ebvsMult *= 2;
      break;
    case 'fatal-errors':
      e.midFatalHazardMult *= 25;
      break;
    case 'production-critical':
      break; // one-off Jira events, scheduled by the generator
    case 'late-delivery':
      break; // delivery only: the generator queues the beacons of the affected devices
    case 'payer-drop':
      e.spenderPoolFraction *= 0.35;
      e.topupRateMult *= 0.6;
      e.subscriptionStartMult *= 0.3;
      break;
  }
}

/**
 * Effects at `tMs`. Results are cached per set of active incidents, so calling this on every
 * step is cheap.
 */
export class IncidentTimeline {
  private readonly cache = new Map<number, Effects>();

  constructor(readonly specs: readonly IncidentSpec[]) {
    if (specs.length > 30) throw new Error('at most 30 incidents');
  }

  activeMask(tMs: number): number {
    let mask = 0;
    for (let i = 0; i < this.specs.length; i++) {
      const s = this.specs[i]!;
      if (tMs >= s.startMs && tMs < s.startMs + s.durationMs) mask |= 1 << i;
    }
    return mask;
  }

  at(tMs: number): Readonly<Effects> {
    if (this.specs.length === 0) return BASELINE;
    const mask = this.activeMask(tMs);
    if (mask === 0) return BASELINE;
    let e = this.cache.get(mask);
    if (!e) {
      e = { ...BASELINE };
      for (let i = 0; i < this.specs.length; i++) if (mask & (1 << i)) apply(e, this.specs[i]!);
      this.cache.set(mask, e);
    }
    return e;
  }

  isActive(name: IncidentName, tMs: number): boolean {
    return this.specs.some((s) => s.name === name && tMs >= s.startMs && tMs < s.startMs + s.durationMs);
  }
}
