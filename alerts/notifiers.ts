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
}

export function webhookBody(n: Notification): Record<string, unknown> {
  return {
    version: '1', notification_id: n.id, status: n.status, rule: n.rule, severity: n.severity, dedup_key: n.dedupKey,
    labels: n.labels, annotations: n.annotations, value: n.value, baseline: n.baseline, volume: n.volume, condition: n.condition,
    starts_at: n.startsAt, ends_at: n.endsAt, repeat: n.repeat,
  };
}

const fmt = (v: number | null) => (v === null ? 'n/a' : Number.isInteger(v) ? String(v) : v.toFixed(2));

export function slackBody(n: Notification): Record<string, unknown> {
  const icon = n.status === 'resolved' ? ':white_check_mark:' : n.severity === 'critical' ? ':rotating_light:' : ':warning:';
  const head = `${icon} [${n.status.toUpperCase()}${n.repeat ? ' (repeat)' : ''}] ${n.rule} (${n.severity})`;
  const labels = Object.entries(n.labels).filter(([k]) => k !== 'alertname' && k !== 'severity').map(([k, v]) => `${k}=${v}`).join(', ');
  const text = `${head}: ${n.annotations.summary ?? ''}`;
  const fields = [`*Value:* ${fmt(n.value)}${n.baseline !== null ? ` (baseline ${fmt(n.baseline)})` : ''}`, `*Condition:* ${n.condition}`];
  if (labels) fields.push(`*Labels:* ${labels}`);
  const blocks: unknown[] = [
    { type: 'section', text: { type: 'mrkdwn', text: `*${head}*\n${n.annotations.summary ?? ''}` } },
    { type: 'section', fields: fields.map((f) => ({ type: 'mrkdwn', text: f })) },
  ];
  if (n.annotations.runbook) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `<${n.annotations.runbook}|Runbook> · since ${n.startsAt}` }] });
  return { text, blocks };
}

const PD_SEVERITY: Record<Severity, string> = { critical: 'critical', warning: 'warning', info: 'info' };

export function pagerDutyBody(n: Notification, routingKey: string): Record<string, unknown> {
  if (n.status === 'resolved') return { routing_key: routingKey, event_action: 'resolve', dedup_key: n.dedupKey };
  return {
    routing_key: routingKey, event_action: 'trigger', dedup_key: n.dedupKey,
    payload: {
      summary: `${n.rule}: ${n.annotations.summary ?? ''}`.slice(0, 1024), severity: PD_SEVERITY[n.severity], source: 'streampulse',
      component: n.labels.cdn ?? n.labels.processor ?? n.rule, group: n.rule, class: n.severity, timestamp: n.startsAt,
      custom_details: { labels: n.labels, value: n.value, baseline: n.baseline, volume: n.volume, condition: n.condition, notification_id: n.id },
    },
    ...(n.annotations.runbook ? { links: [{ href: n.annotations.runbook, text: 'Runbook' }] } : {}),
  };
}

export function sign(secret: string, timestampS: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestampS}.${body}`).digest('hex')}`;
}

export interface SendResult { ok: boolean; status: number | null; error: string | null }

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
