/**
 * The evaluation loop, in EVENT time. Per metric the frontier is the end of the newest window
 * with data minus `settle_delay` (metrics on current-state tables use the newest frontier of
 * all). Each rule keeps a cursor (the event time it last evaluated, in Redis) and steps forward
 * one `step` (hourly/daily metrics: one hour/day) at a time to the frontier, so `for` and
 * `keep_firing_for` count event time, identically on a replay. A new rule starts at the frontier
 * (history is not replayed); more than `max_catch_up_steps` behind, it jumps (logged).
 * Each step of a rule, with its notifications, is one atomic Redis commit (store.ts).
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { queryRows, type ClickHouse } from '../sinks/clickhouse/client.js';
import { explainAlert, explainable } from './explain.js';
import { METRICS, alignMs, type MetricDef } from './metrics.js';
import type { Notification } from './notifiers.js';
import type { Rule, RuleSet } from './rules.js';
import { alertKey, alertLabels, conditionHolds, step, type AlertState, type Observation, type Transition } from './state-machine.js';
import { isSilenced, type Ack, type AlertEventRow, type AlertStore, type Silence, type StepWrite } from './store.js';

export interface EvaluatorDeps {
  ruleSet: RuleSet;
  ch: ClickHouse;
  store: AlertStore;
  logger: Logger;
  metrics: Metrics;
  clock: () => number;
}

const iso = (ms: number) => new Date(ms).toISOString();
export const chTime = (ms: number) => iso(ms).replace('T', ' ').replace('Z', '');
const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 32);

export function conditionText(rule: Rule): string {
  const c = rule.condition;
  const vol = rule.minVolume > 0 ? ` with volume ≥ ${rule.minVolume}` : '';
  if (c.kind === 'threshold') return `${rule.metric} over ${rule.windowMs / 60_000}m ${c.op} ${c.threshold}${vol}`;
  return `${rule.metric} over ${rule.windowMs / 60_000}m ${c.pct}% ${c.kind === 'below_baseline_pct' ? 'below' : 'above'} its ${c.baselineDays}-day same-time average${vol}`;
}

export function renderTemplate(tpl: string, a: Pick<AlertState, 'labels' | 'value' | 'baseline' | 'volume'>): string {
  const num = (v: number | null) => (v === null ? 'n/a' : Number.isInteger(v) ? String(v) : v.toFixed(2));
  return tpl.replace(/\{\{\s*([a-z_.]+)\s*\}\}/gi, (_m, name: string) => {
    if (name === 'value') return num(a.value);
    if (name === 'baseline') return num(a.baseline);
    if (name === 'volume') return num(a.volume);
    const l = name.startsWith('labels.') ? name.slice(7) : name;
    return a.labels[l] ?? '';
  });
}

/**
 * The cut of evaluation time t, as an offset after t (s): window rows re-fired by late events are
 * read in their latest revision known before t + this (alerts/metrics.ts asOf). t is evaluated once
 * the newest minute with data ends at or after t + settle_delay, i.e. once some partition has
 * processed an event at or after t + settle_delay − 1 min: every revision known (stream time)
 * before that had been written when the live evaluation read the tables.
 */
export function asOfOffsetS(settleDelayMs: number): number {
  return Math.max(0, Math.floor((settleDelayMs - 60_000) / 1000));
}

export class Evaluator {
  private readonly warned = new Set<string>();
  constructor(private readonly d: EvaluatorDeps) {}

  private async frontierMs(): Promise<Map<string, number | null>> {
    const out = new Map<string, number | null>();
    const byMetric = new Map<string, MetricDef>();
    for (const r of this.d.ruleSet.rules) byMetric.set(r.metric, METRICS[r.metric]!);
    let global: number | null = null;
    for (const m of byMetric.values()) {
      if (!m.frontierSql) continue;
      if (m.requiresTable && !(await this.tableExists(m.requiresTable))) {
        out.set(m.name, null);
        continue;
      }
      const [row] = await queryRows<{ n: string | number; t: string | number }>(this.d.ch, m.frontierSql(this.d.ch.database));
      const f = row && Number(row.n) > 0 ? Number(row.t) * 1000 - this.d.ruleSet.settings.settleDelayMs : null;
      out.set(m.name, f);
      if (f !== null && !m.requiresTable) global = global === null ? f : Math.max(global, f);
    }
    for (const m of byMetric.values()) if (!m.frontierSql) out.set(m.name, global);
    return out;
  }

  private async tableExists(table: string): Promise<boolean> {
    const rows = await queryRows(this.d.ch, 'SELECT 1 FROM system.tables WHERE database = {db:String} AND name = {t:String}', {
      db: this.d.ch.database,
      t: table,
    });
    if (rows.length === 0 && !this.warned.has(table)) {
      this.warned.add(table);
      this.d.logger.warn({ event: 'alert_metric_unavailable', table }, `alert metrics on ${table} are skipped until the table exists`);
    }
    return rows.length > 0;
  }

  /** Observations of one rule at event time tMs, keyed by alert key. */
  async observe(rule: Rule, tMs: number): Promise<Map<string, Observation>> {
    return (await this.observeRange(rule, tMs, tMs, 60_000))[0]!;
  }

  /**
   * Observations of one rule at every evaluation time fromMs, fromMs + stepMs, …, toMs, with ONE
   * query (metrics.ts): element j is the map (alert key → observation) at fromMs + j · stepMs.
   */
  async observeRange(rule: Rule, fromMs: number, toMs: number, stepMs: number): Promise<Map<string, Observation>[]> {
    const m = METRICS[rule.metric]!;
    const days = m.baseline && rule.condition.kind !== 'threshold' ? rule.condition.baselineDays : 0;
    const n = Math.round((toMs - fromMs) / stepMs);
    const rows = await queryRows<Record<string, unknown>>(this.d.ch, m.sql(this.d.ch.database, rule.groupBy), {
      t_first: Math.floor(fromMs / 1000),
      step_s: stepMs / 1000,
      n,
      window_s: rule.windowMs / 1000,
      days,
      asof_s: asOfOffsetS(this.d.ruleSet.settings.settleDelayMs),
    });
    type Group = { labels: Record<string, string>; cur?: { value: number | null; volume: number }; base: number[] };
    const steps = Array.from({ length: n + 1 }, () => new Map<string, Group>());
    for (const r of rows) {
      const i = Number(r.i);
      const groups = steps[i];
      if (!groups) continue;
      const labels = Object.fromEntries(rule.groupBy.map((g) => [g, String(r[g] ?? '')]));
      const key = alertKey(rule.name, labels);
      const g = groups.get(key) ?? { labels, base: [] };
      groups.set(key, g);
      const value = r.value === null || r.value === undefined ? null : Number(r.value);
      const k = Number(r.k);
      if (k === 0) g.cur = { value, volume: Number(r.volume ?? 0) };
      else if (value !== null && k >= 1 && k <= days) g.base.push(value);
    }
    return steps.map((groups) => {
      const out = new Map<string, Observation>();
      for (const [key, g] of groups) {
        if (!g.cur) continue;
        // A baseline needs at least half of its days with data; otherwise the condition cannot hold.
        const baseline = days > 0 && g.base.length >= Math.ceil(days / 2) ? g.base.reduce((s, x) => s + x, 0) / g.base.length : null;
        out.set(key, {
          labels: g.labels,
          value: g.cur.value,
          baseline,
          volume: g.cur.volume,
          active: conditionHolds(rule, g.cur.value, baseline, g.cur.volume),
        });
      }
      return out;
    });
  }

  private notification(rule: Rule, a: AlertState, status: 'firing' | 'resolved', receiver: string, repeat: boolean, nowMs: number, seq: number): Notification {
    const labels = alertLabels(rule, a.labels);
    const annotations = Object.fromEntries(
      Object.entries(rule.annotations)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, renderTemplate(v!, a)]),
    );
    return {
      id: `${hash(`${a.key}|${status}|${a.activeAtMs}|${a.notifications}`)}:${receiver}`,
      receiver,
      status,
      rule: rule.name,
      severity: rule.severity,
      dedupKey: `streampulse/${a.key}`,
      labels,
      annotations,
      value: a.value,
      baseline: a.baseline,
      volume: a.volume,
      condition: conditionText(rule),
      startsAt: iso(a.firingAtMs ?? a.activeAtMs),
      endsAt: a.resolvedAtMs !== null ? iso(a.resolvedAtMs) : null,
      repeat,
      createdAtMs: nowMs,
      seq,
      ...(status === 'firing' && a.explanation ? { explanation: a.explanation } : {}),
    };
  }

  /**
   * What to send for an alert now. Firing: first notice, then repeats every repeat_interval
   * unless acknowledged; nothing while silenced (sent when the silence ends if still firing).
   * Resolved: a notice only if its firing was notified (silences do not hold back a resolve).
   */
  private decide(
    rule: Rule,
    a: AlertState,
    nowMs: number,
    silences: readonly Silence[],
    acks: ReadonlyMap<string, Ack>,
    w: StepWrite,
    onFirst?: (a: AlertState) => void,
  ): AlertState {
    let kind: 'first' | 'repeat' | 'resolved' | null = null;
    if (a.status === 'resolved') kind = a.notifiedStatus === 'firing' ? 'resolved' : null;
    else if (a.status === 'firing') {
      if (a.notifiedStatus !== 'firing') kind = 'first';
      else if (nowMs - (a.notifiedAtMs ?? 0) >= this.d.ruleSet.settings.repeatIntervalMs && !acks.has(a.key)) kind = 'repeat';
      if (kind && isSilenced(alertLabels(rule, a.labels), silences)) kind = null;
    }
    if (!kind) return a;
    const status = kind === 'resolved' ? 'resolved' : 'firing';
    if (kind === 'first') onFirst?.(a);
    const receivers = this.d.ruleSet.receivers.filter((r) => rule.receivers.includes(r.name) && (status === 'firing' || r.sendResolved));
    for (const r of receivers) {
      const n = this.notification(rule, a, status, r.name, kind === 'repeat', nowMs, w.notifications.length);
      w.notifications.push(n);
      w.logs.push({
        id: `${n.id}:enqueued`,
        at: chTime(nowMs),
        notification_id: n.id,
        alert_key: a.key,
        rule: rule.name,
        receiver: r.name,
        status,
        result: 'enqueued',
        attempt: 0,
        http_status: null,
        error: '',
        repeat: kind === 'repeat' ? 1 : 0,
      });
    }
    return { ...a, notifiedStatus: status, notifiedAtMs: nowMs, notifications: a.notifications + 1 };
  }

  private eventRow(rule: Rule, t: Transition, nowMs: number): AlertEventRow {
    return {
      id: hash(`${t.key}|${t.to}|${t.atMs}|${t.alert.activeAtMs}`),
      at: chTime(nowMs),
      event_time: chTime(t.atMs),
      rule: rule.name,
      alert_key: t.key,
      labels: alertLabels(rule, t.alert.labels),
      from_state: t.from,
      to_state: t.to,
      value: t.alert.value,
      baseline: t.alert.baseline,
      volume: t.alert.volume,
      severity: rule.severity,
    };
  }

  /**
   * The explanation of each alert that starts firing in this batch (explain.ts), computed before
   * the commit so it is enqueued with the notice and kept on the alert state (the API shows it).
   * A failure (e.g. a query over max_execution_time) is logged and the notice goes out without it.
   */
  private async explain(
    rule: Rule,
    first: ReadonlyMap<string, AlertState>,
    w: StepWrite,
    mine: Map<string, AlertState>,
    resolved: Map<string, AlertState>,
  ): Promise<void> {
    if (first.size === 0 || !explainable(rule)) return;
    for (const [key, a] of first) {
      if (a.explanation && a.explanation.period.to === iso(a.firingAtMs ?? a.activeAtMs)) continue;
      try {
        const e = await explainAlert(this.d.ch, rule, a, { grafanaUrl: this.d.ruleSet.settings.grafanaUrl });
        this.d.metrics.alertExplainSeconds.observe(e.computed_ms / 1000);
        for (const n of w.notifications) if (n.dedupKey === `streampulse/${key}` && n.status === 'firing') n.explanation = e;
        for (const m of [mine, resolved]) {
          const s = m.get(key);
          if (s && s.firingAtMs === a.firingAtMs) m.set(key, { ...s, explanation: e });
        }
        this.d.logger.info(
          {
            event: 'alert_explained',
            rule: rule.name,
            alert_key: key,
            top: e.top.slice(0, 3).map((t) => `${t.dimension}=${t.value} ${(100 * t.share).toFixed(0)}%`),
            ms: e.computed_ms,
          },
          `${rule.name} explained`,
        );
      } catch (err) {
        this.d.logger.warn({ event: 'alert_explain_failed', rule: rule.name, alert_key: key, err }, 'explanation failed; notifying without it');
      }
    }
  }

  /** One pass: step every rule to its frontier, then re-check notifications of live alerts. */
  async tick(): Promise<{ steps: number }> {
    const s = this.d.ruleSet.settings;
    const frontiers = await this.frontierMs();
    const cursors = await this.d.store.cursors();
    const live = await this.d.store.live();
    const silences = await this.d.store.activeSilences(this.d.clock());
    const acks = await this.d.store.acks();
    let steps = 0;
    for (const rule of this.d.ruleSet.rules) {
      const m = METRICS[rule.metric]!;
      const f = frontiers.get(m.name);
      if (f === null || f === undefined) continue;
      const stepMs = Math.max(s.stepMs, alignMs(m.align));
      const target = Math.floor(f / stepMs) * stepMs;
      let cursor = cursors.get(rule.name) ?? target - stepMs;
      if ((target - cursor) / stepMs > s.maxCatchUpSteps) {
        this.d.logger.warn(
          { event: 'alert_evaluator_jump', rule: rule.name, from: iso(cursor), to: iso(target - s.maxCatchUpSteps * stepMs) },
          'evaluator too far behind, jumping',
        );
        cursor = target - s.maxCatchUpSteps * stepMs;
      }
      let mine = new Map(live.filter((a) => a.rule === rule.name).map((a) => [a.key, a]));
      // Steps are evaluated in batches: one range query per batch, then the state machine step by
      // step, and ONE atomic commit of the batch (states, cursor, notifications, history). A crash
      // before the commit redoes the batch from ClickHouse with the same result.
      for (let from = cursor + stepMs; from <= target; from += s.batchSteps * stepMs) {
        const to = Math.min(target, from + (s.batchSteps - 1) * stepMs);
        const observations = await this.observeRange(rule, from, to, stepMs);
        const now = this.d.clock();
        const w: StepWrite = { rule: rule.name, cursorMs: to, upserts: [], resolved: [], removes: [], notifications: [], events: [], logs: [] };
        const before = new Set(mine.keys());
        const resolved = new Map<string, AlertState>();
        const ruleAcks = new Map(acks);
        const firstNotices = new Map<string, AlertState>();
        observations.forEach((obs, j) => {
          const t = from + j * stepMs;
          const { next, transitions } = step(rule, t, mine, obs);
          for (const tr of transitions) {
            w.events.push(this.eventRow(rule, tr, now));
            this.d.metrics.alertTransitions.inc({ rule: rule.name, state: tr.to });
            this.d.logger.info(
              {
                event: 'alert_transition',
                rule: rule.name,
                alert_key: tr.key,
                labels: tr.alert.labels,
                from: tr.from,
                to: tr.to,
                event_time: iso(t),
                value: tr.alert.value,
                baseline: tr.alert.baseline,
              },
              `${rule.name} ${tr.from} -> ${tr.to}`,
            );
          }
          const kept = new Map<string, AlertState>();
          for (const [key, a0] of next) {
            const a = this.decide(rule, a0, now, silences, ruleAcks, w, (f) => firstNotices.set(f.key, f));
            if (a.status === 'resolved') {
              resolved.set(key, a);
              ruleAcks.delete(key);
            } else kept.set(key, a);
          }
          mine = kept;
          steps++;
        });
        await this.explain(rule, firstNotices, w, mine, resolved);
        w.resolved = [...resolved.values()];
        w.upserts = [...mine.values()];
        w.removes = [...before].filter((k) => !mine.has(k) && !resolved.has(k));
        await this.d.store.commit(w, now);
      }
    }
    // Notifications that do not wait for new data: repeats, silences that ended.
    const now = this.d.clock();
    for (const a of await this.d.store.live()) {
      const rule = this.d.ruleSet.rules.find((r) => r.name === a.rule);
      if (!rule) continue;
      const w: StepWrite = { rule: rule.name, upserts: [], resolved: [], removes: [], notifications: [], events: [], logs: [] };
      const b = this.decide(rule, a, now, silences, acks, w);
      if (b !== a) {
        w.upserts.push(b);
        await this.d.store.commit(w, now);
      }
    }
    return { steps };
  }
}
