/**
 * Pure alert state machine, one instance of state per (rule, group labels), driven by event time.
 *   inactive --cond true--> pending --true for `for`--> firing --false for `keep_firing_for`--> resolved
 *   pending --cond false--> inactive (never notified: one noisy minute does not page)
 * With `for: 0` a true condition fires at once. The evaluation time `t` is the event-time
 * window end the observation was computed for; nothing here reads a clock.
 */
import { createHash } from 'node:crypto';
import type { Rule } from './rules.js';

export type AlertStatus = 'pending' | 'firing' | 'resolved';

export interface Observation {
  labels: Record<string, string>;
  value: number | null;
  baseline: number | null;
  volume: number;
  active: boolean;
}

export interface AlertState {
  key: string;
  rule: string;
  labels: Record<string, string>;
  status: AlertStatus;
  /** Event time the condition first held (pending since). */
  activeAtMs: number;
  firingAtMs: number | null;
  resolvedAtMs: number | null;
  /** Event time the condition last held. */
  lastTrueMs: number;
  value: number | null;
  baseline: number | null;
  volume: number;
  /** Delivery bookkeeping (processing time), owned by the evaluator. */
  notifiedStatus: 'firing' | 'resolved' | null;
  notifiedAtMs: number | null;
  notifications: number;
  /** Set when the alert fires, for explainable metrics (alerts/explain.ts); carried by later states. */
  explanation?: import('./explain.js').Explanation;
}

export interface Transition {
  key: string;
  from: AlertStatus | 'inactive';
  to: AlertStatus | 'inactive';
  atMs: number;
  alert: AlertState;
}

/** Canonical labels: the rule's group labels plus `alertname` and `severity`, sorted. */
export function alertLabels(rule: Rule, groupLabels: Record<string, string>): Record<string, string> {
  const all: Record<string, string> = { ...rule.labels, ...groupLabels, alertname: rule.name, severity: rule.severity };
  return Object.fromEntries(
    Object.keys(all)
      .sort()
      .map((k) => [k, all[k]!]),
  );
}

/** Stable per rule and group: also the PagerDuty dedup_key. */
export function alertKey(rule: string, groupLabels: Record<string, string>): string {
  const canon = Object.keys(groupLabels)
    .sort()
    .map((k) => `${k}=${groupLabels[k]}`)
    .join(',');
  return `${rule}/${createHash('sha256').update(canon).digest('hex').slice(0, 16)}`;
}

export function conditionHolds(rule: Rule, value: number | null, baseline: number | null, volume: number): boolean {
  if (value === null || !Number.isFinite(value)) return false;
  if (volume < rule.minVolume) return false;
  const c = rule.condition;
  switch (c.kind) {
    case 'threshold':
      return c.op === '>' ? value > c.threshold : c.op === '>=' ? value >= c.threshold : c.op === '<' ? value < c.threshold : value <= c.threshold;
    case 'below_baseline_pct':
      return baseline !== null && baseline > 0 && value < baseline * (1 - c.pct / 100);
    case 'above_baseline_pct':
      return baseline !== null && baseline > 0 && value > baseline * (1 + c.pct / 100);
  }
}

/**
 * One evaluation step of one rule at event time `tMs`. `prev` are the rule's live alerts (not
 * resolved); `obs` maps the group key to this step's observation (a group without a row is a
 * false condition). Returns the new states (an alert resolved at this step is included once, then dropped by the
 * caller; a pending alert whose condition ends just disappears) and the transitions.
 */
export function step(
  rule: Rule,
  tMs: number,
  prev: ReadonlyMap<string, AlertState>,
  obs: ReadonlyMap<string, Observation>,
): { next: Map<string, AlertState>; transitions: Transition[] } {
  const next = new Map<string, AlertState>();
  const transitions: Transition[] = [];
  const keys = new Set([...prev.keys(), ...obs.keys()]);
  for (const key of keys) {
    const p = prev.get(key);
    const o = obs.get(key);
    const live = p && p.status !== 'resolved' ? p : undefined;
    if (o?.active) {
      let a: AlertState = live
        ? { ...live, value: o.value, baseline: o.baseline, volume: o.volume, lastTrueMs: tMs }
        : {
            key,
            rule: rule.name,
            labels: o.labels,
            status: 'pending',
            activeAtMs: tMs,
            firingAtMs: null,
            resolvedAtMs: null,
            lastTrueMs: tMs,
            value: o.value,
            baseline: o.baseline,
            volume: o.volume,
            notifiedStatus: null,
            notifiedAtMs: null,
            notifications: 0,
          };
      if (!live) transitions.push({ key, from: 'inactive', to: 'pending', atMs: tMs, alert: a });
      if (a.status === 'pending' && tMs - a.activeAtMs >= rule.forMs) {
        a = { ...a, status: 'firing', firingAtMs: tMs };
        transitions.push({ key, from: 'pending', to: 'firing', atMs: tMs, alert: a });
      }
      next.set(key, a);
    } else if (live) {
      const upd = o ? { ...live, value: o.value, baseline: o.baseline, volume: o.volume } : live;
      if (live.status === 'pending') {
        transitions.push({ key, from: 'pending', to: 'inactive', atMs: tMs, alert: upd });
      } else if (tMs - live.lastTrueMs >= rule.keepFiringForMs) {
        const r: AlertState = { ...upd, status: 'resolved', resolvedAtMs: tMs };
        transitions.push({ key, from: 'firing', to: 'resolved', atMs: tMs, alert: r });
        next.set(key, r);
      } else next.set(key, upd);
    }
  }
  return { next, transitions };
}
