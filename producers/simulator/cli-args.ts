/**
 * Command-line parsing of `npm run simulate -- ...` (pure; the CLI and tests use it).
 */
import { INCIDENTS, INCIDENT_NAMES, isIncidentName } from './incidents.js';
import type { IncidentRequest } from './run.js';
import { CDNS } from './world.js';

export interface CliArgs {
  help: boolean;
  listIncidents: boolean;
  ratePerSec: number;
  durationMs?: number;
  seed: number;
  fromMs?: number;
  toMs?: number;
  /** Undefined: the generator's default for the rate. */
  accounts?: number;
  incidents: IncidentRequest[];
  diurnal: boolean;
  batchSize: number;
  brokers?: string;
  registry?: string;
  topicPrefix?: string;
}

export const DEFAULT_REALTIME_RATE = 200;
export const DEFAULT_BACKFILL_RATE = 50;
export const DEFAULT_INCIDENT_DURATION_MS = 30 * 60_000;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `250ms`, `60s`, `10m`, `2h`, `8d`, `1h30m` or a bare number of seconds. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (matched !== s.length || matched === 0) throw new Error(`bad duration "${text}" (use e.g. 60s, 10m, 2h, 8d)`);
  return Math.round(total);
}

/** Parses an ISO date or date-time (`2026-11-17`, `2026-11-17T06:00:00Z`) or `now`. */
export function parseTime(text: string, nowMs: number): number {
  if (text === 'now') return nowMs;
  const t = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(t)) throw new Error(`bad time "${text}" (use an ISO date such as 2026-11-17 or 2026-11-17T06:00:00Z)`);
  return t;
}

export const USAGE = `npm run simulate -- [options]

  --rate N               events per second of event time, all kinds (default ${DEFAULT_REALTIME_RATE} real time, ${DEFAULT_BACKFILL_RATE} backfill)
  --duration D           real time: stop after D (60s, 10m, 2h); default: until Ctrl-C
  --from T --to T        backfill event time [from, to) as fast as possible (ISO date/time or now);
                         --from alone: backfill from T up to now, then continue in real time
  --seed N               seed of a repeatable stream (default 42)
  --accounts N           accounts in the simulated world (default 5000, or 100 per event/s above 50/s)
  --incident NAME[:TARGET][,NAME...]   inject anomalies (see --list-incidents); e.g. cdn-degradation:fastly
  --incident-start X     offset from the start (10m) or ISO time; default: the last 2 x duration of a
                         bounded run (incident, then recovery), or 1 min into an unbounded one
  --incident-duration D  default 30m
  --no-diurnal           flat traffic instead of the daily curve
  --batch-size N         events per produce call (default 2000)
  --brokers, --registry, --topic-prefix   override KAFKA_BROKERS, SCHEMA_REGISTRY_URL, TOPIC_PREFIX
  --list-incidents       print the incidents and exit
`;

export function incidentList(): string {
  return INCIDENT_NAMES.map((n) => `  ${n.padEnd(20)} ${INCIDENTS[n].description}\n  ${''.padEnd(20)} trips: ${INCIDENTS[n].trips}`).join('\n');
}

export function parseCliArgs(argv: readonly string[], nowMs: number): CliArgs {
  const values = new Map<string, string[]>();
  const flags = new Set<string>();
  const FLAGS = new Set(['help', 'h', 'list-incidents', 'no-diurnal']);
  const KNOWN = new Set([
    'rate',
    'duration',
    'seed',
    'from',
    'to',
    'accounts',
    'incident',
    'incident-start',
    'incident-duration',
    'batch-size',
    'brokers',
    'registry',
    'topic-prefix',
  ]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--') && a !== '-h') throw new Error(`unexpected argument "${a}"`);
    let name = a.replace(/^--?/, '');
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (FLAGS.has(name)) {
      flags.add(name === 'h' ? 'help' : name);
      continue;
    }
    if (!KNOWN.has(name)) throw new Error(`unknown option --${name}\n\n${USAGE}`);
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new Error(`--${name} needs a value`);
    }
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  const one = (k: string) => values.get(k)?.at(-1);
  const num = (k: string, def: number, min: number) => {
    const v = one(k);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${k} must be a number >= ${min}, got "${v}"`);
    return n;
  };

  const fromText = one('from');
  const toText = one('to');
  const fromMs = fromText !== undefined ? parseTime(fromText, nowMs) : undefined;
  const toMs = toText !== undefined ? parseTime(toText, nowMs) : undefined;
  if (toMs !== undefined && fromMs === undefined) throw new Error('--to needs --from');
  if (fromMs !== undefined && toMs !== undefined && toMs <= fromMs) throw new Error('--to must be after --from');
  const backfill = toMs !== undefined;
  const durationText = one('duration');
  const durationMs = durationText !== undefined ? parseDuration(durationText) : undefined;
  if (durationMs !== undefined && backfill) throw new Error('--duration is for real-time runs; a backfill runs from --from to --to');

  const incidentDuration = one('incident-duration') !== undefined ? parseDuration(one('incident-duration')!) : DEFAULT_INCIDENT_DURATION_MS;
  const startText = one('incident-start');
  let start: Pick<IncidentRequest, 'startAtMs' | 'startOffsetMs'> = {};
  if (startText !== undefined) {
    start = /^\d{4}-\d{2}-\d{2}/.test(startText) ? { startAtMs: parseTime(startText, nowMs) } : { startOffsetMs: parseDuration(startText) };
  }
  const incidents: IncidentRequest[] = [];
  for (const list of values.get('incident') ?? []) {
    for (const item of list
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const [name, target] = item.split(':');
      if (!name || !isIncidentName(name)) throw new Error(`unknown incident "${name}"; known:\n${incidentList()}`);
      if (target && name === 'cdn-degradation' && !(CDNS as readonly string[]).includes(target.split('/')[0]!))
        throw new Error(`unknown CDN "${target}" (known: ${CDNS.join(', ')}, optionally /<country>)`);
      incidents.push({ name, durationMs: incidentDuration, ...start, ...(target ? { target } : {}) });
    }
  }

  const args: CliArgs = {
    help: flags.has('help'),
    listIncidents: flags.has('list-incidents'),
    ratePerSec: num('rate', backfill ? DEFAULT_BACKFILL_RATE : DEFAULT_REALTIME_RATE, 0.001),
    seed: Math.floor(num('seed', 42, 0)),
    incidents,
    diurnal: !flags.has('no-diurnal'),
    batchSize: Math.floor(num('batch-size', 2000, 1)),
  };
  if (one('accounts') !== undefined) args.accounts = Math.floor(num('accounts', 5000, 10));
  if (durationMs !== undefined) args.durationMs = durationMs;
  if (fromMs !== undefined) args.fromMs = fromMs;
  if (toMs !== undefined) args.toMs = toMs;
  for (const [k, f] of [
    ['brokers', 'brokers'],
    ['registry', 'registry'],
    ['topic-prefix', 'topicPrefix'],
  ] as const) {
    const v = one(k);
    if (v !== undefined) args[f] = v;
  }
  return args;
}
