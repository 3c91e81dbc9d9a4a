/**
 * Outbox worker: sends due notifications and removes each only after a 2xx. A failure (refused
 * connection, timeout, non-2xx) reschedules it with exponential backoff (retry_base · 2^attempts,
 * capped at retry_max), forever: a receiver that comes back gets every pending notification, each
 * with its own stable Idempotency-Key. A crash between the send and the removal re-sends the same
 * notification with the same key (at least once; receivers dedupe on the key / PagerDuty dedup_key).
 */
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { chTime } from './evaluator.js';
import { send } from './notifiers.js';
import type { RuleSet } from './rules.js';
import type { AlertStore, NotificationLogRow, OutboxItem } from './store.js';

export interface DeliveryDeps {
  ruleSet: RuleSet;
  store: AlertStore;
  logger: Logger;
  metrics: Metrics;
  clock: () => number;
  secret: string;
}

export function backoffMs(attempts: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
}

/** Order of the notifications of one alert to one receiver: enqueue time, then position in the commit. */
function before(a: OutboxItem, b: OutboxItem): number {
  return a.notification.createdAtMs - b.notification.createdAtMs || (a.notification.seq ?? 0) - (b.notification.seq ?? 0);
}

/**
 * Sends what is due, in order per alert and receiver: a notification waits while an earlier one
 * of the same alert (dedup key) to the same receiver is still pending, so a receiver that was down
 * gets the firing notice before the resolve (PagerDuty would otherwise keep an incident open).
 * A failure holds back the rest of its queue until the retry. Returns how many were delivered.
 */
export async function deliverDue(d: DeliveryDeps, limit = 50): Promise<number> {
  const now = d.clock();
  const queues = new Map<string, { id: string; item: OutboxItem; dueMs: number }[]>();
  for (const e of await d.store.outbox()) {
    const k = `${e.item.notification.dedupKey}\u0000${e.item.notification.receiver}`;
    const q = queues.get(k);
    if (q) q.push(e);
    else queues.set(k, [e]);
  }
  const due = [...queues.values()]
    .map((q) => q.sort((a, b) => before(a.item, b.item)))
    .filter((q) => q[0]!.dueMs <= now)
    .sort((a, b) => a[0]!.dueMs - b[0]!.dueMs);
  let delivered = 0;
  let attempts = 0;
  for (const q of due) {
    for (const e of q) {
      if (e.dueMs > now || attempts >= limit) break;
      attempts++;
      if (!(await deliverOne(d, e.id, e.item))) break;
      delivered++;
    }
  }
  d.metrics.outboxPending.set(await d.store.pending());
  return delivered;
}

/** Sends one notification; true once it is off the outbox (delivered, or dropped for a receiver no longer configured). */
async function deliverOne(d: DeliveryDeps, id: string, item: OutboxItem): Promise<boolean> {
  const n = item.notification;
  const receiver = d.ruleSet.receivers.find((r) => r.name === n.receiver);
  const attempt = item.attempts + 1;
  const log = (result: string, status: number | null, error: string): NotificationLogRow => ({
    id: `${id}:${attempt}:${result}`,
    at: chTime(d.clock()),
    notification_id: id,
    alert_key: n.dedupKey.replace(/^streampulse\//, ''),
    rule: n.rule,
    receiver: n.receiver,
    status: n.status,
    result,
    attempt,
    http_status: status,
    error,
    repeat: n.repeat ? 1 : 0,
  });
  if (!receiver) {
    d.logger.warn({ event: 'notification_dropped', notification_id: id, receiver: n.receiver }, 'receiver no longer configured; dropping');
    await d.store.delivered(id, log('dropped', null, 'receiver not configured'));
    return true;
  }
  const res = await send(receiver, n, { secret: d.secret, nowMs: d.clock() });
  d.metrics.notifications.inc({ receiver: receiver.type, result: res.ok ? 'ok' : 'error' });
  if (res.ok) {
    await d.store.delivered(id, log('delivered', res.status, ''));
    d.logger.info(
      { event: 'notification_delivered', notification_id: id, receiver: n.receiver, rule: n.rule, status: n.status, attempt },
      'notification delivered',
    );
    return true;
  }
  const next: OutboxItem = { ...item, attempts: attempt, lastError: res.error };
  const dueMs = d.clock() + backoffMs(attempt, d.ruleSet.settings.retryBaseMs, d.ruleSet.settings.retryMaxMs);
  await d.store.retryLater(id, next, dueMs, log('failed', res.status, res.error ?? ''));
  d.logger.warn(
    { event: 'notification_failed', notification_id: id, receiver: n.receiver, attempt, error: res.error, retry_at: new Date(dueMs).toISOString() },
    'notification failed; will retry',
  );
  return false;
}
