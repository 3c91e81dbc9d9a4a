/**
 * The simulated world: accounts, viewers, creators, the catalog, CDNs, devices, countries and
 * networks. Built once from a seed (pure); the generator mutates account subscription state as
 * payment events happen, so later events stay consistent with earlier ones.
 */
import type { PaymentEvent } from '../../contracts/types.generated.js';
import type { Prng } from './prng.js';

export type Plan = PaymentEvent['plan'];
export type PaymentMethod = PaymentEvent['method'];
export type Currency = 'USD' | 'NPR' | 'INR' | 'GBP' | 'EUR';

export const CDNS = ['akamai', 'cloudfront', 'fastly'] as const;
export const CDN_WEIGHTS = [0.4, 0.35, 0.25];

export const DEVICE_CATEGORIES = ['mobile', 'desktop', 'tv', 'tablet'] as const;
export type DeviceCategory = (typeof DEVICE_CATEGORIES)[number];
const DEVICE_WEIGHTS = [0.55, 0.2, 0.15, 0.1];
const OS_BY_DEVICE: Record<DeviceCategory, { os: string[]; weights: number[] }> = {
  mobile: { os: ['android', 'ios'], weights: [0.7, 0.3] },
  desktop: { os: ['windows', 'macos', 'linux'], weights: [0.7, 0.25, 0.05] },
  tv: { os: ['tizen', 'webos', 'androidtv', 'roku'], weights: [0.3, 0.25, 0.3, 0.15] },
  tablet: { os: ['ipados', 'android'], weights: [0.6, 0.4] },
};
const APP_VERSIONS = ['5.12.0', '5.12.1', '5.13.0', '5.14.2'];
const APP_VERSION_WEIGHTS = [0.1, 0.25, 0.35, 0.3];

/** Renditions of the bitrate ladder; devices cap the highest rung they play. */
export const LADDER = [
  { kbps: 400, width: 426, height: 240 },
  { kbps: 800, width: 640, height: 360 },
  { kbps: 1400, width: 854, height: 480 },
  { kbps: 2800, width: 1280, height: 720 },
  { kbps: 5000, width: 1920, height: 1080 },
  { kbps: 12000, width: 3840, height: 2160 },
] as const;
const MAX_RUNG: Record<DeviceCategory, number> = { mobile: 3, tablet: 4, desktop: 4, tv: 5 };

export interface CountryInfo {
  code: string;
  weight: number;
  currency: Currency;
  /** [asn, weight] pairs of the big access networks. */
  asns: Array<[number, number]>;
  methods: PaymentMethod[];
  methodWeights: number[];
  /** Multiplier of the baseline rebuffer hazard (last-mile quality). */
  networkQuality: number;
}

export const COUNTRIES: CountryInfo[] = [
  {
    code: 'NP',
    weight: 0.34,
    currency: 'NPR',
    asns: [
      [17501, 0.35],
      [45650, 0.3],
      [23752, 0.2],
      [139922, 0.15],
    ],
    methods: ['esewa', 'khalti', 'card', 'google_play'],
    methodWeights: [0.4, 0.25, 0.15, 0.2],
    networkQuality: 1.5,
  },
  {
    code: 'IN',
    weight: 0.3,
    currency: 'INR',
    asns: [
      [55836, 0.4],
      [24560, 0.3],
      [9829, 0.15],
      [45609, 0.15],
    ],
    methods: ['card', 'google_play', 'paypal', 'apple_iap'],
    methodWeights: [0.45, 0.35, 0.05, 0.15],
    networkQuality: 1.3,
  },
  {
    code: 'US',
    weight: 0.16,
    currency: 'USD',
    asns: [
      [7922, 0.35],
      [7018, 0.25],
      [701, 0.2],
      [20115, 0.2],
    ],
    methods: ['card', 'paypal', 'apple_iap', 'google_play'],
    methodWeights: [0.5, 0.15, 0.2, 0.15],
    networkQuality: 0.8,
  },
  {
    code: 'GB',
    weight: 0.1,
    currency: 'GBP',
    asns: [
      [2856, 0.4],
      [5089, 0.3],
      [5607, 0.3],
    ],
    methods: ['card', 'paypal', 'apple_iap', 'google_play'],
    methodWeights: [0.5, 0.15, 0.2, 0.15],
    networkQuality: 0.8,
  },
  {
    code: 'DE',
    weight: 0.05,
    currency: 'EUR',
    asns: [
      [3320, 0.5],
      [3209, 0.3],
      [6805, 0.2],
    ],
    methods: ['card', 'paypal', 'apple_iap', 'google_play'],
    methodWeights: [0.4, 0.3, 0.15, 0.15],
    networkQuality: 0.8,
  },
  {
    code: 'FR',
    weight: 0.05,
    currency: 'EUR',
    asns: [
      [3215, 0.45],
      [12322, 0.3],
      [5410, 0.25],
    ],
    methods: ['card', 'paypal', 'apple_iap', 'google_play'],
    methodWeights: [0.5, 0.2, 0.15, 0.15],
    networkQuality: 0.8,
  },
];

/** Monthly plan prices in minor units per currency (regional pricing). */
export const PLAN_PRICES_MINOR: Record<Currency, Record<Exclude<Plan, 'free'>, number>> = {
  USD: { basic: 499, standard: 999, premium: 1499 },
  NPR: { basic: 39900, standard: 79900, premium: 119900 },
  INR: { basic: 19900, standard: 39900, premium: 64900 },
  GBP: { basic: 449, standard: 899, premium: 1299 },
  EUR: { basic: 499, standard: 999, premium: 1499 },
};
export const PAID_PLANS = ['basic', 'standard', 'premium'] as const;

/** Coin packs: coins and price in USD cents; other currencies use `USD_PER_UNIT` (rounded). */
export const COIN_PACKS = [
  { coins: 100, usdCents: 99, weight: 0.4 },
  { coins: 550, usdCents: 499, weight: 0.3 },
  { coins: 1200, usdCents: 999, weight: 0.18 },
  { coins: 2500, usdCents: 1999, weight: 0.09 },
  { coins: 6500, usdCents: 4999, weight: 0.03 },
];
/** USD per one major unit of each currency (the simulator's own rates; for pricing only). */
export const USD_PER_UNIT: Record<Currency, number> = { USD: 1, NPR: 0.0075, INR: 0.012, GBP: 1.27, EUR: 1.08 };
/** One coin is worth one US cent. */
export const COIN_VALUE_USD_MICROS = 10_000;

export const GIFT_TYPES = [
  { type: 'rose', coins: 1, weight: 0.45 },
  { type: 'heart', coins: 5, weight: 0.25 },
  { type: 'star', coins: 10, weight: 0.15 },
  { type: 'crown', coins: 100, weight: 0.1 },
  { type: 'rocket', coins: 500, weight: 0.04 },
  { type: 'castle', coins: 1000, weight: 0.01 },
];

export const GENRES = ['drama', 'comedy', 'documentary', 'reality', 'sports', 'kids', 'thriller', 'music'] as const;
const LIVE_GENRES = ['gaming', 'music', 'talk', 'sports', 'cooking'] as const;

export interface Account {
  id: string;
  index: number;
  country: CountryInfo;
  currency: Currency;
  plan: Plan;
  autoRenew: boolean;
  /** End of the current paid period (ms); null on the free plan. */
  periodEndMs: number | null;
  method: PaymentMethod;
  ogTier: number;
  /** Account creation time (ms); tenure = now - createdMs. */
  createdMs: number;
  /** Buys coins (a minority of accounts do). */
  spender: boolean;
  /** Sends gifts while watching live streams. */
  gifter: boolean;
  viewerIds: string[];
  /** Consecutive failed renewal attempts of the current period. */
  renewalFailures: number;
  /** Last successful charge (for refunds and chargebacks). */
  lastCharge: { amountMinor: number; atMs: number; refunded: boolean } | null;
}

export interface Viewer {
  id: string;
  account: Account;
  device: DeviceCategory;
  os: string;
  appVersion: string;
  asn: number;
  /** Relative viewing activity (heavy viewers watch more). */
  activity: number;
  /** A view of this viewer is in progress (one view at a time per viewer). */
  busy: boolean;
  maxRung: number;
}

export interface Title {
  contentId: string;
  title: string;
  showName: string;
  genre: string;
  streamType: 'vod' | 'live';
  durationMs: number | null;
  creatorId: string | null;
  popularity: number;
}

export interface Creator {
  id: string;
  index: number;
  channel: Title;
  popularity: number;
  /** The broadcast in progress, if live. */
  live: LiveStream | null;
}

export interface LiveStream {
  streamId: string;
  creator: Creator;
  startMs: number;
  endMs: number;
}

export interface World {
  accounts: Account[];
  viewers: Viewer[];
  /** Cumulative activity weights of viewers (for weighted picks by binary search). */
  viewerCumWeights: Float64Array;
  creators: Creator[];
  /** Every title: VOD titles first, then one live channel per creator. */
  titles: Title[];
  vodTitles: Title[];
  vodCumWeights: Float64Array;
  showNames: string[];
  /** Shows of the VOD catalog (what production issues are about). */
  vodShowNames: string[];
}

export interface WorldOptions {
  accounts: number;
  /** Creators with live channels; default max(12, accounts / 250). */
  creators?: number;
  /** Event time the world is created at (tenure and period ends are relative to it). */
  nowMs: number;
}

const SHOW_A = [
  'Everest',
  'Kathmandu',
  'Monsoon',
  'Himalayan',
  'Midnight',
  'Silver',
  'Lost',
  'Golden',
  'Hidden',
  'Broken',
  'Wild',
  'Northern',
  'Last',
  'Crimson',
  'Quiet',
  'Electric',
];
const SHOW_B = [
  'Files',
  'Nights',
  'Diaries',
  'Road',
  'Kitchen',
  'Games',
  'Republic',
  'Valley',
  'Signal',
  'Lines',
  'Tides',
  'Circuit',
  'Frontier',
  'Harbour',
  'Academy',
  'Empire',
];
const CREATOR_SHOWS = ['Live', 'Unplugged', 'After Dark', 'Arena', 'Sessions', 'Kitchen Live', 'Talk Hour', 'Speedrun'];
const DAY_MS = 86_400_000;

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function cumulative(weights: number[]): Float64Array {
  const out = new Float64Array(weights.length);
  let acc = 0;
  for (let i = 0; i < weights.length; i++) {
    acc += weights[i]!;
    out[i] = acc;
  }
  return out;
}

/** Index i with cum[i-1] <= x < cum[i] for x uniform in [0, total). */
export function pickCumulative(cum: Float64Array, u: number): number {
  const x = u * cum[cum.length - 1]!;
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function priceMinor(currency: Currency, plan: Plan): number {
  return plan === 'free' ? 0 : PLAN_PRICES_MINOR[currency][plan];
}

/** Price of a coin pack in the account's currency, in minor units (rounded to a price point). */
export function coinPackMinor(currency: Currency, usdCents: number): number {
  if (currency === 'USD') return usdCents;
  const major = usdCents / 100 / USD_PER_UNIT[currency];
  const step = currency === 'NPR' || currency === 'INR' ? 10 : 0.5;
  return Math.round(Math.max(step, Math.round(major / step) * step) * 100);
}

export function createWorld(rng: Prng, opts: WorldOptions): World {
  const accounts: Account[] = [];
  const viewers: Viewer[] = [];
  const viewerWeights: number[] = [];
  const countryWeights = COUNTRIES.map((c) => c.weight);
  for (let i = 0; i < opts.accounts; i++) {
    const country = rng.weighted(COUNTRIES, countryWeights);
    const plan = rng.weighted<Plan>(['free', 'basic', 'standard', 'premium'], [0.35, 0.27, 0.24, 0.14]);
    const tenureDays = Math.floor(rng.exp(320));
    const ogTier = rng.weighted([0, 1, 2, 3, 4, 5], [0.7, 0.12, 0.08, 0.05, 0.03, 0.02]);
    const account: Account = {
      id: `acc-${pad(i + 1, 7)}`,
      index: i,
      country,
      currency: country.currency,
      plan,
      autoRenew: plan !== 'free' && rng.chance(0.88),
      periodEndMs: plan === 'free' ? null : opts.nowMs + Math.floor(rng.float() * 30 * DAY_MS),
      method: rng.weighted(country.methods, country.methodWeights),
      ogTier,
      createdMs: opts.nowMs - tenureDays * DAY_MS - rng.int(DAY_MS),
      spender: rng.chance(ogTier > 0 ? 0.7 : 0.2),
      gifter: rng.chance(ogTier > 0 ? 0.6 : 0.15),
      viewerIds: [],
      renewalFailures: 0,
      lastCharge: null,
    };
    accounts.push(account);
    const nViewers = rng.weighted([1, 2, 3], [0.55, 0.3, 0.15]);
    for (let v = 0; v < nViewers; v++) {
      const device = rng.weighted(DEVICE_CATEGORIES, DEVICE_WEIGHTS);
      const osSpec = OS_BY_DEVICE[device];
      const [asns, asnWeights] = [country.asns.map((a) => a[0]), country.asns.map((a) => a[1])];
      const viewer: Viewer = {
        id: `vwr-${pad(viewers.length + 1, 7)}`,
        account,
        device,
        os: rng.weighted(osSpec.os, osSpec.weights),
        appVersion: rng.weighted(APP_VERSIONS, APP_VERSION_WEIGHTS),
        asn: rng.weighted(asns, asnWeights),
        activity: rng.logNormal(1, 0.6) * (plan === 'free' ? 0.6 : 1),
        busy: false,
        maxRung: MAX_RUNG[device],
      };
      account.viewerIds.push(viewer.id);
      viewers.push(viewer);
      viewerWeights.push(viewer.activity);
    }
  }

  // Catalog: shows with episodes, plus films.
  const vodTitles: Title[] = [];
  const showNames: string[] = [];
  const nShows = 24;
  const usedNames = new Set<string>();
  for (let s = 0; s < nShows; s++) {
    let name: string;
    do name = `${rng.pick(SHOW_A)} ${rng.pick(SHOW_B)}`;
    while (usedNames.has(name));
    usedNames.add(name);
    showNames.push(name);
    const genre = rng.pick(GENRES);
    const popularity = rng.logNormal(1, 0.9);
    const episodeMin = rng.pick([22, 30, 45, 55]);
    const episodes = rng.intBetween(6, 12);
    for (let e = 1; e <= episodes; e++) {
      vodTitles.push({
        contentId: `vod-${pad(vodTitles.length + 1, 5)}`,
        title: `${name} S1E${pad(e, 2)}`,
        showName: name,
        genre,
        streamType: 'vod',
        durationMs: Math.round((episodeMin + rng.range(-3, 5)) * 60_000),
        creatorId: null,
        popularity: popularity * (e === 1 ? 1.6 : 1 / Math.sqrt(e)),
      });
    }
  }
  const nFilms = 30;
  for (let f = 0; f < nFilms; f++) {
    let name: string;
    do name = `The ${rng.pick(SHOW_A)} ${rng.pick(SHOW_B)}`;
    while (usedNames.has(name));
    usedNames.add(name);
    showNames.push(name);
    vodTitles.push({
      contentId: `vod-${pad(vodTitles.length + 1, 5)}`,
      title: name,
      showName: name,
      genre: rng.pick(GENRES),
      streamType: 'vod',
      durationMs: Math.round(rng.range(85, 150) * 60_000),
      creatorId: null,
      popularity: rng.logNormal(0.8, 0.9),
    });
  }

  const nCreators = opts.creators ?? Math.max(12, Math.round(opts.accounts / 250));
  const creators: Creator[] = [];
  for (let c = 0; c < nCreators; c++) {
    const id = `cr-${pad(c + 1, 5)}`;
    const handle = `${rng.pick(SHOW_A)}${rng.pick(['Tara', 'Kiran', 'Aarav', 'Maya', 'Sam', 'Priya', 'Leo', 'Nisha'])}`;
    const showName = `${handle} ${rng.pick(CREATOR_SHOWS)}`;
    showNames.push(showName);
    const channel: Title = {
      contentId: `live-${pad(c + 1, 5)}`,
      title: `${showName} (live channel)`,
      showName,
      genre: rng.pick(LIVE_GENRES),
      streamType: 'live',
      durationMs: null,
      creatorId: id,
      popularity: rng.logNormal(1, 1),
    };
    creators.push({ id, index: c, channel, popularity: channel.popularity, live: null });
  }

  return {
    accounts,
    viewers,
    viewerCumWeights: cumulative(viewerWeights),
    creators,
    titles: [...vodTitles, ...creators.map((c) => c.channel)],
    vodTitles,
    vodCumWeights: cumulative(vodTitles.map((t) => t.popularity)),
    showNames,
    vodShowNames: showNames.filter((n) => vodTitles.some((t) => t.showName === n)),
  };
}

export function rendition(rung: number): { kbps: number; width: number; height: number } {
  return LADDER[Math.max(0, Math.min(LADDER.length - 1, rung))]!;
}
