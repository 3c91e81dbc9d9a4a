/**
 * The API's AlertsService (alerts-service.ts) on top of the alerting API of alerts/
 * (`createAlertingApi({redis, redisPrefix})`): alert state, silences and acknowledgements live in
 * Redis under `<REDIS_PREFIX>alerts:`, so the `api` role only needs Redis access — the evaluator
 * and delivery run in the `alerts` role.
 *
 * api/ does not import alerts/ (docs/ARCHITECTURE.md): the adapter takes the alerting API by its
 * shape (`AlertingApiLike`), and bin/http-roles.ts wires the real one in.
 *
 * Mapping:
 *   alertId                 = the alert key `<rule>/<sha256(labels)[:16]>`
 *   state filter            none → live alerts (pending + firing); pending | firing → live, filtered;
 *                           resolved → the last resolved instance of each alert group
 *   startsAt / endsAt       event time: firing since (pending since while pending) / resolved at
 *   matchers (Record)       → [{name, value}] exact matchers; the key `rule` means the `alertname` label
 *   durationMs              → endsAt = clock() + durationMs (injected clock)
 *   listSilences            silences that have not ended (expired ones stay in Redis, hidden here)
 *   acknowledge comment     not stored (the alerting store records who and when only)
 *   explanation             set on the alert state when it fires (alerts/explain.ts), as stored
 */
import type { AlertExplanation, AlertsService, AlertView, SilenceView } from './alerts-service.js';

/** Shape of alerts/ AlertingApi that the adapter needs (structural: api/ does not import alerts/). */
export interface AlertingMatcher {
  name: string;
  value: string;
  regex?: boolean;
}
export interface AlertingSilence {
  id: string;
  matchers: AlertingMatcher[];
  startsAtMs: number;
  endsAtMs: number;
  createdBy: string;
  comment: string;
}
export interface AlertingAlert {
  key: string;
  rule: string;
  labels: Record<string, string>;
  status: 'pending' | 'firing' | 'resolved';
  activeAtMs: number;
  firingAtMs: number | null;
  resolvedAtMs: number | null;
  value: number | null;
  baseline: number | null;
  volume: number;
  acknowledgedBy: string | null;
  silencedBy: string | null;
  explanation?: AlertExplanation;
}
export interface AlertingApiLike {
  silence(matchers: AlertingMatcher[], endsAt: Date | number, createdBy: string, comment: string): Promise<AlertingSilence>;
  listSilences(): Promise<AlertingSilence[]>;
  acknowledge(alertKey: string, by: string): Promise<boolean>;
  listAlerts(opts?: { includeResolved?: boolean }): Promise<AlertingAlert[]>;
}

/** Severity and summary of an alert, from its rule (bin/ derives it from the rules file). */
export type DescribeAlert = (a: AlertingAlert) => { severity: string; summary?: string } | null;

export interface AlertsAdapterOptions {
  alerting: AlertingApiLike;
  /** Processing-time clock (ms) for silence end times and hiding ended silences. */
  clock?: () => number;
  describe?: DescribeAlert;
}

const iso = (ms: number) => new Date(ms).toISOString();
/** `rule` in the API means the rule name, which alerts/ matches as the `alertname` label. */
const toLabel = (k: string) => (k === 'rule' ? 'alertname' : k);
const fromLabel = (k: string) => (k === 'alertname' ? 'rule' : k);

export function silenceView(s: AlertingSilence): SilenceView {
  return {
    id: s.id,
    matchers: Object.fromEntries(s.matchers.map((m) => [fromLabel(m.name), m.regex ? `~${m.value}` : m.value])),
    startsAt: iso(s.startsAtMs),
    endsAt: iso(s.endsAtMs),
    createdBy: s.createdBy,
    comment: s.comment,
  };
}

export function createAlertsAdapter(o: AlertsAdapterOptions): AlertsService {
  const clock = o.clock ?? Date.now;
  const view = (a: AlertingAlert): AlertView => {
    const d = o.describe?.(a) ?? null;
    return {
      id: a.key,
      rule: a.rule,
      state: a.status,
      severity: d?.severity ?? a.labels.severity ?? 'unknown',
      labels: a.labels,
      value: a.value,
      startsAt: iso(a.firingAtMs ?? a.activeAtMs),
      endsAt: a.resolvedAtMs === null ? null : iso(a.resolvedAtMs),
      acknowledgedBy: a.acknowledgedBy,
      silenced: a.silencedBy !== null,
      ...(d?.summary !== undefined ? { summary: d.summary } : {}),
      explanation: a.explanation ?? null,
    };
  };
  const rank: Record<string, number> = { firing: 0, pending: 1, resolved: 2 };

  return {
    async listAlerts(filter) {
      const state = filter.state;
      const all = await o.alerting.listAlerts({ includeResolved: state === 'resolved' });
      return all
        .filter((a) => (state ? a.status === state : a.status !== 'resolved'))
        .sort(
          (x, y) =>
            (rank[x.status] ?? 3) - (rank[y.status] ?? 3) || (y.firingAtMs ?? y.activeAtMs) - (x.firingAtMs ?? x.activeAtMs) || x.key.localeCompare(y.key),
        )
        .map(view);
    },
    async acknowledge(alertId, by) {
      return o.alerting.acknowledge(alertId, by);
    },
    async silence(input) {
      const matchers = Object.entries(input.matchers).map(([name, value]) => ({ name: toLabel(name), value }));
      const s = await o.alerting.silence(matchers, clock() + input.durationMs, input.createdBy, input.comment);
      return silenceView(s);
    },
    async listSilences() {
      const now = clock();
      return (await o.alerting.listSilences()).filter((s) => s.endsAtMs > now).map(silenceView);
    },
  };
}
