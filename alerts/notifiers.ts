/**
 * Notification formats and sending. A notification is frozen when it is enqueued (outbox);
 * the receiver-specific body is rendered at send time:
 *  - webhook: the notification JSON, signed: `X-StreamPulse-Timestamp: <unix s>` and
 *    `X-StreamPulse-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`;
 *  - slack: incoming-webhook `text` + `blocks`;
 *  - pagerduty: Events API v2 (`routing_key`, `event_action` trigger|resolve, `dedup_key`, payload).
 * Every request carries `Idempotency-Key: <notification id>` (the same on every retry).
 */
import { createHmac } from 'node:crypto';
import { explanationLines, type Explanation } from './explain.js';
import type { Receiver, Severity } from './rules.js';

export interface Notification {
  /** Idempotency key: the same on every retry of this notification to this receiver. */
  id: string;
  receiver: string;
  status: 'firing' | 'resolved';
  rule: string;
  severity: Severity;
  /** PagerDuty dedup_key: stable per rule and group labels. */
  dedupKey: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  value: number | null;
  baseline: number | null;
  volume: number;
  condition: string;
  /** Event time the alert started firing / resolved (ISO). */
  startsAt: string;
  endsAt: string | null;
  /** true for a repeat of an unchanged firing alert (repeat_interval). */
  repeat: boolean;
  createdAtMs: number;
  /** Position among the notifications enqueued by the same commit: with createdAtMs, the order per alert and receiver. */
  seq?: number;
  /** Firing notices of explainable metrics: where the deviation comes from and what else moved (explain.ts). */
  explanation?: Explanation;
}

export function webhookBody(n: Notification): Record<string, unknown> {
  return {
    version: '1',
    notification_id: n.id,
    status: n.status,
    rule: n.rule,
    severity: n.severity,
    dedup_key: n.dedupKey,
    labels: n.labels,
    annotations: n.annotations,
    value: n.value,
    baseline: n.baseline,
    volume: n.volume,
    condition: n.condition,
    starts_at: n.startsAt,
    ends_at: n.endsAt,
    repeat: n.repeat,
    ...(n.explanation ? { explanation: n.explanation } : {}),
  };
}

const fmt = (v: number | null) => (v === null ? 'n/a' : Number.isInteger(v) ? String(v) : v.toFixed(2));

export function slackBody(n: Notification): Record<string, unknown> {
  const icon = n.status === 'resolved' ? ':white_check_mark:' : n.severity === 'critical' ? ':rotating_light:' : ':warning:';
  const head = `${icon} [${n.status.toUpperCase()}${n.repeat ? ' (repeat)' : ''}] ${n.rule} (${n.severity})`;
  const labels = Object.entries(n.labels)
    .filter(([k]) => k !== 'alertname' && k !== 'severity')
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const text = `${head}: ${n.annotations.summary ?? ''}`;
  const fields = [`*Value:* ${fmt(n.value)}${n.baseline !== null ? ` (baseline ${fmt(n.baseline)})` : ''}`, `*Condition:* ${n.condition}`];
  if (labels) fields.push(`*Labels:* ${labels}`);
  const blocks: unknown[] = [
    { type: 'section', text: { type: 'mrkdwn', text: `*${head}*\n${n.annotations.summary ?? ''}` } },
    { type: 'section', fields: fields.map((f) => ({ type: 'mrkdwn', text: f })) },
  ];
  const e = n.explanation;
  if (e) blocks.push(...explanationBlocks(e));
  const links = [...(n.annotations.runbook ? [`<${n.annotations.runbook}|Runbook>`] : []), ...(e ? [`<${e.grafana}|Grafana: this slice>`] : [])];
  if (links.length) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `${links.join(' · ')} · since ${n.startsAt}` }] });
  return { text, blocks };
}

const f1 = (v: number | null, d = 1) => (v === null ? 'n/a' : v.toFixed(d));

/** Slack blocks of an explanation: where the change comes from, who is affected, what else moved. */
function explanationBlocks(e: Explanation): unknown[] {
  const within = Object.entries(e.within)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const base = e.previous_period ? 'the period before' : `the same time on ${e.baseline_days.length} previous day(s)`;
  const head = `*Where it comes from* (${e.metric}${within ? ` on ${within}` : ''}: ${f1(e.baseline, 2)} → ${f1(e.current, 2)} ${e.unit} against ${base})`;
  const lines = explanationLines(e);
  const out: unknown[] = [
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: `${head}\n${lines.length ? lines.map((l) => `• ${l}`).join('\n') : '• no slice stands out: the change is spread over every dimension'}`,
      },
    },
  ];
  const c = e.context;
  const who: string[] = [];
  if (c.slice && c.avg_concurrent_viewers !== null)
    who.push(`${f1(c.avg_concurrent_viewers, 0)} concurrent viewers, ${f1(c.views_started, 0)} views started in ${c.slice.dimension}=${c.slice.value}`);
  if (c.top_shows.length) who.push(`most watched there: ${c.top_shows.map((s) => s.show_name).join(', ')}`);
  for (const l of c.lenses)
    who.push(
      `${l.metric} (${l.scope}) ${f1(l.current, 2)} vs ${f1(l.baseline, 2)} ${l.unit}${l.change_pct !== null ? ` (${l.change_pct >= 0 ? '+' : ''}${l.change_pct.toFixed(0)} %)` : ''}`,
    );
  for (const j of c.jira.slice(0, 3)) who.push(`open Jira ${j.issue_key} (${j.severity}, ${j.status}, ${j.age_hours.toFixed(1)} h old) on ${j.show_name}`);
  if (who.length) out.push({ type: 'section', text: { type: 'mrkdwn', text: `*Who is affected, what else moved*\n${who.map((w) => `• ${w}`).join('\n')}` } });
  return out;
}

const PD_SEVERITY: Record<Severity, string> = { critical: 'critical', warning: 'warning', info: 'info' };

export function pagerDutyBody(n: Notification, routingKey: string): Record<string, unknown> {
  if (n.status === 'resolved') return { routing_key: routingKey, event_action: 'resolve', dedup_key: n.dedupKey };
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: n.dedupKey,
    payload: {
      summary: `${n.rule}: ${n.annotations.summary ?? ''}`.slice(0, 1024),
      severity: PD_SEVERITY[n.severity],
      source: 'streampulse',
      component: n.labels.cdn ?? n.labels.processor ?? n.rule,
      group: n.rule,
      class: n.severity,
      timestamp: n.startsAt,
      custom_details: {
        labels: n.labels,
        value: n.value,
        baseline: n.baseline,
        volume: n.volume,
        condition: n.condition,
        notification_id: n.id,
        ...(n.explanation
          ? { explanation: explanationLines(n.explanation), top_slices: n.explanation.top, context: n.explanation.context, grafana: n.explanation.grafana }
          : {}),
      },
    },
    ...(n.annotations.runbook ? { links: [{ href: n.annotations.runbook, text: 'Runbook' }] } : {}),
  };
}

export function sign(secret: string, timestampS: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestampS}.${body}`).digest('hex')}`;
}

export interface SendResult {
  ok: boolean;
  status: number | null;
  error: string | null;
}

/** One HTTP attempt; 2xx is success, anything else (or a network error) is a failure to retry. */
export async function send(receiver: Receiver, n: Notification, opts: { secret: string; nowMs: number; timeoutMs?: number }): Promise<SendResult> {
  const bodyObj = receiver.type === 'slack' ? slackBody(n) : receiver.type === 'pagerduty' ? pagerDutyBody(n, receiver.routingKey ?? '') : webhookBody(n);
  const body = JSON.stringify(bodyObj);
  const ts = Math.floor(opts.nowMs / 1000);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': n.id, 'user-agent': 'streampulse-alerts/1' };
  if (receiver.type === 'webhook') {
    headers['x-streampulse-timestamp'] = String(ts);
    if (opts.secret) headers['x-streampulse-signature'] = sign(opts.secret, ts, body);
  }
  try {
    const res = await fetch(receiver.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000) });
    await res.arrayBuffer().catch(() => undefined);
    return { ok: res.status >= 200 && res.status < 300, status: res.status, error: res.status >= 200 && res.status < 300 ? null : `HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { ok: false, status: null, error: e.cause?.code ?? e.message };
  }
}
