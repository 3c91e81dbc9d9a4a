/**
 * Alert rules file (YAML), validated at start. Every problem names the rule (by name and index)
 * and the field, e.g. `rules[3] (qoe_vsf_high).for: "5 minutes" is not a duration (use 30s, 5m, 1h)`.
 * Pure: no I/O except `loadRulesFile`, which only reads the file.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { StreamPulseError } from '../lib/errors.js';
import { METRICS } from './metrics.js';

export class RulesError extends StreamPulseError {
  constructor(
    readonly problems: string[],
    source: string,
  ) {
    super('ALERT_RULES_INVALID', `invalid alert rules in ${source}:\n  - ${problems.join('\n  - ')}`, false);
  }
}

export type Severity = 'critical' | 'warning' | 'info';
export const SEVERITIES: readonly Severity[] = ['critical', 'warning', 'info'];
export type Op = '>' | '>=' | '<' | '<=';

export type Condition =
  | { kind: 'threshold'; op: Op; threshold: number }
  | { kind: 'below_baseline_pct'; pct: number; baselineDays: number }
  | { kind: 'above_baseline_pct'; pct: number; baselineDays: number };

export interface Rule {
  name: string;
  metric: string;
  groupBy: string[];
  /** Event-time window the metric is computed over (ends at the evaluation time). */
  windowMs: number;
  condition: Condition;
  forMs: number;
  keepFiringForMs: number;
  minVolume: number;
  severity: Severity;
  /** Static labels added to every alert of the rule (e.g. team). */
  labels: Record<string, string>;
  annotations: { summary: string; runbook?: string; [k: string]: string | undefined };
  receivers: string[];
}

export type ReceiverType = 'webhook' | 'slack' | 'pagerduty';
export interface Receiver {
  name: string;
  type: ReceiverType;
  url: string;
  /** PagerDuty integration key (32 chars). */
  routingKey?: string;
  sendResolved: boolean;
}

export interface Settings {
  evaluationIntervalMs: number;
  /** Frontier = newest window with data + its size − settleDelay. */
  settleDelayMs: number;
  /** Event-time step between evaluations. */
  stepMs: number;
  /** At most this many steps per loop tick; further behind, the evaluator jumps (documented). */
  maxCatchUpSteps: number;
  /** Steps evaluated by one range query and committed together (one Redis transaction). */
  batchSteps: number;
  repeatIntervalMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Base URL of Grafana for the explanation's dashboard link ('' = the link is a path). */
  grafanaUrl: string;
}

export interface RuleSet {
  settings: Settings;
  receivers: Receiver[];
  defaultReceivers: string[];
  rules: Rule[];
}

const DUR = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
export function parseDuration(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v * 1000;
  if (typeof v !== 'string') return null;
  const m = DUR.exec(v.trim());
  return m ? Math.round(Number(m[1]) * UNIT[m[2]!]!) : null;
}

const NAME = /^[a-zA-Z][a-zA-Z0-9_-]{0,99}$/;
const RULE_KEYS = new Set([
  'name',
  'metric',
  'group_by',
  'window',
  'condition',
  'below_baseline_pct',
  'above_baseline_pct',
  'baseline_days',
  'for',
  'keep_firing_for',
  'min_volume',
  'severity',
  'labels',
  'annotations',
  'receivers',
]);

export function parseRules(text: string, source = 'rules'): RuleSet {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new RulesError([`not valid YAML: ${(err as Error).message}`], source);
  }
  const p: string[] = [];
  if (!isObj(doc)) throw new RulesError(['the file must be a mapping with `rules:` (and optional `settings:`, `receivers:`, `route:`)'], source);
  const s = isObj(doc.settings) ? doc.settings : {};
  const dur = (key: string, def: string): number => {
    const v = parseDuration(s[key] ?? def);
    if (v === null) {
      p.push(`settings.${key}: ${JSON.stringify(s[key])} is not a duration (use 30s, 5m, 1h)`);
      return 0;
    }
    return v;
  };
  const settings: Settings = {
    evaluationIntervalMs: dur('evaluation_interval', '15s'),
    settleDelayMs: dur('settle_delay', '2m'),
    stepMs: dur('step', '1m'),
    maxCatchUpSteps: typeof s.max_catch_up_steps === 'number' ? s.max_catch_up_steps : 180,
    batchSteps: typeof s.batch_steps === 'number' ? s.batch_steps : 60,
    repeatIntervalMs: dur('repeat_interval', '4h'),
    retryBaseMs: dur('retry_base', '1s'),
    retryMaxMs: dur('retry_max', '5m'),
    grafanaUrl: typeof s.grafana_url === 'string' ? s.grafana_url.replace(/\/+$/, '') : '',
  };
  if (s.grafana_url !== undefined && (typeof s.grafana_url !== 'string' || !/^https?:\/\//.test(s.grafana_url)))
    p.push(`settings.grafana_url: must be an http(s) URL (got ${JSON.stringify(s.grafana_url)})`);
  for (const k of ['max_catch_up_steps', 'batch_steps'] as const) {
    const v = s[k];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= 1))
      p.push(`settings.${k}: must be a whole number ≥ 1 (got ${JSON.stringify(v)})`);
  }
  if (settings.stepMs < 1000 || settings.stepMs % 60_000 !== 0) p.push('settings.step: must be a whole number of minutes (windows are minute-aligned)');

  const receivers: Receiver[] = [];
  const rawReceivers = doc.receivers ?? [];
  if (!Array.isArray(rawReceivers)) p.push('receivers: must be a list');
  else
    rawReceivers.forEach((r, i) => {
      const at = `receivers[${i}]${isObj(r) && typeof r.name === 'string' ? ` (${r.name})` : ''}`;
      if (!isObj(r)) {
        p.push(`${at}: must be a mapping`);
        return;
      }
      if (typeof r.name !== 'string' || !NAME.test(r.name)) p.push(`${at}.name: required, letters, digits, _ or -`);
      if (!['webhook', 'slack', 'pagerduty'].includes(r.type as string))
        p.push(`${at}.type: must be webhook, slack or pagerduty (got ${JSON.stringify(r.type)})`);
      if (typeof r.url !== 'string' || !/^https?:\/\//.test(r.url)) p.push(`${at}.url: required http(s) URL`);
      if (r.type === 'pagerduty' && (typeof r.routing_key !== 'string' || r.routing_key.length === 0)) p.push(`${at}.routing_key: required for pagerduty`);
      receivers.push({
        name: String(r.name),
        type: r.type as ReceiverType,
        url: String(r.url),
        routingKey: r.routing_key as string | undefined,
        sendResolved: r.send_resolved !== false,
      });
    });
  const receiverNames = new Set(receivers.map((r) => r.name));
  const route = isObj(doc.route) ? doc.route : {};
  const defaultReceivers = toStrList(route.receivers ?? (route.receiver !== undefined ? [route.receiver] : receivers.map((r) => r.name)));
  for (const r of defaultReceivers) if (!receiverNames.has(r)) p.push(`route.receivers: unknown receiver "${r}"`);

  const rules: Rule[] = [];
  if (!Array.isArray(doc.rules)) p.push('rules: required, a list of rules');
  else {
    const seen = new Set<string>();
    doc.rules.forEach((r, i) => {
      const at = `rules[${i}]${isObj(r) && typeof r.name === 'string' ? ` (${r.name})` : ''}`;
      if (!isObj(r)) {
        p.push(`${at}: must be a mapping`);
        return;
      }
      for (const k of Object.keys(r)) if (!RULE_KEYS.has(k)) p.push(`${at}.${k}: unknown field`);
      if (typeof r.name !== 'string' || !NAME.test(r.name)) p.push(`${at}.name: required, letters, digits, _ or -`);
      else if (seen.has(r.name)) p.push(`${at}.name: duplicate rule name`);
      else seen.add(r.name);
      const metric = METRICS[r.metric as string];
      if (!metric) p.push(`${at}.metric: unknown metric ${JSON.stringify(r.metric)} (known: ${Object.keys(METRICS).join(', ')})`);
      const groupBy = r.group_by === undefined ? [] : toStrList(r.group_by);
      if (r.group_by !== undefined && !Array.isArray(r.group_by)) p.push(`${at}.group_by: must be a list of labels`);
      if (metric)
        for (const g of groupBy)
          if (!metric.labels.includes(g)) p.push(`${at}.group_by: metric ${metric.name} has no label "${g}" (has: ${metric.labels.join(', ') || 'none'})`);
      const windowMs = r.window === undefined ? (metric?.defaultWindowMs ?? 60_000) : parseDuration(r.window);
      if (windowMs === null) p.push(`${at}.window: ${JSON.stringify(r.window)} is not a duration`);
      else if (windowMs % 60_000 !== 0 || windowMs <= 0 || windowMs > 86_400_000) p.push(`${at}.window: must be whole minutes between 1m and 24h`);
      else if (metric?.align === 'hour' && windowMs % 3_600_000 !== 0) p.push(`${at}.window: metric ${metric.name} is hourly; use whole hours`);
      let condition: Condition | null = null;
      const forms = ['condition', 'below_baseline_pct', 'above_baseline_pct'].filter((k) => r[k] !== undefined);
      if (forms.length !== 1) p.push(`${at}.condition: give exactly one of condition ("> 2"), below_baseline_pct or above_baseline_pct`);
      else if (forms[0] === 'condition') {
        const m = typeof r.condition === 'string' ? /^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(r.condition) : null;
        if (!m) p.push(`${at}.condition: ${JSON.stringify(r.condition)} is not "<op> <number>" with op one of > >= < <=`);
        else condition = { kind: 'threshold', op: m[1] as Op, threshold: Number(m[2]) };
      } else {
        const k = forms[0] as 'below_baseline_pct' | 'above_baseline_pct';
        const pct = r[k];
        const days = r.baseline_days ?? 7;
        if (typeof pct !== 'number' || pct <= 0 || pct >= 1000) p.push(`${at}.${k}: must be a number in (0, 1000)`);
        if (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > 28) p.push(`${at}.baseline_days: must be an integer 1..28`);
        if (metric && !metric.baseline) p.push(`${at}.${k}: metric ${metric.name} has no baseline (state metric)`);
        condition = { kind: k, pct: Number(pct), baselineDays: Number(days) };
      }
      const forMs = parseDuration(r.for ?? '0s');
      if (forMs === null) p.push(`${at}.for: ${JSON.stringify(r.for)} is not a duration (use 30s, 5m, 1h)`);
      const keep = parseDuration(r.keep_firing_for ?? '0s');
      if (keep === null) p.push(`${at}.keep_firing_for: ${JSON.stringify(r.keep_firing_for)} is not a duration`);
      const minVolume = r.min_volume ?? 0;
      if (typeof minVolume !== 'number' || minVolume < 0) p.push(`${at}.min_volume: must be a number ≥ 0`);
      if (!SEVERITIES.includes(r.severity as Severity)) p.push(`${at}.severity: must be one of ${SEVERITIES.join(', ')} (got ${JSON.stringify(r.severity)})`);
      const ann = isObj(r.annotations) ? r.annotations : null;
      if (!ann || typeof ann.summary !== 'string' || ann.summary === '') p.push(`${at}.annotations.summary: required`);
      const labels = isObj(r.labels) ? Object.fromEntries(Object.entries(r.labels).map(([k, v]) => [k, String(v)])) : {};
      const recv = r.receivers === undefined ? defaultReceivers : toStrList(r.receivers);
      for (const x of recv) if (!receiverNames.has(x)) p.push(`${at}.receivers: unknown receiver "${x}"`);
      rules.push({
        name: String(r.name),
        metric: String(r.metric),
        groupBy,
        windowMs: windowMs ?? 60_000,
        condition: condition ?? { kind: 'threshold', op: '>', threshold: 0 },
        forMs: forMs ?? 0,
        keepFiringForMs: keep ?? 0,
        minVolume: Number(minVolume) || 0,
        severity: r.severity as Severity,
        labels,
        annotations: Object.fromEntries(Object.entries(ann ?? {}).map(([k, v]) => [k, String(v)])) as Rule['annotations'],
        receivers: recv,
      });
    });
  }
  if (p.length > 0) throw new RulesError(p, source);
  return { settings, receivers, defaultReceivers, rules };
}

export function loadRulesFile(path: string): RuleSet {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RulesError([`cannot read the file: ${(err as Error).message}`], path);
  }
  return parseRules(text, path);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function toStrList(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)];
}
