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

export interface DeliveryDeps { ruleSet: RuleSet; store: AlertStore; logger: Logger; metrics: Metrics; clock: () => number; secret: string }

export function backoffMs(attempts: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
}

/** Sends what is due; returns how many were delivered. */
export async function deliverDue(d: DeliveryDeps, limit = 50): Promise<number> {
  let delivered = 0;
  const now = d.clock();
  for (const { id, item } of await d.store.due(now, limit)) {
    const n = item.notification;
    const receiver = d.ruleSet.receivers.find((r) => r.name === n.receiver);
    const attempt = item.attempts + 1;
    const log = (result: string, status: number | null, error: string): NotificationLogRow => ({
      id: `${id}:${attempt}:${result}`, at: chTime(d.clock()), notification_id: id, alert_key: n.dedupKey.replace(/^streampulse\//, ''), rule: n.rule,
      receiver: n.receiver, status: n.status, result, attempt, http_status: status, error, repeat: n.repeat ? 1 : 0,
    });
    if (!receiver) {
      d.logger.warn({ event: 'notification_dropped', notification_id: id, receiver: n.receiver }, 'receiver no longer configured; dropping');
      await d.store.delivered(id, log('dropped', null, 'receiver not configured'));
      continue;
    }
    const res = await send(receiver, n, { secret: d.secret, nowMs: d.clock() });
    d.metrics.notifications.inc({ receiver: receiver.type, result: res.ok ? 'ok' : 'error' });
    if (res.ok) {
      await d.store.delivered(id, log('delivered', res.status, ''));
      delivered++;
      d.logger.info({ event: 'notification_delivered', notification_id: id, receiver: n.receiver, rule: n.rule, status: n.status, attempt }, 'notification delivered');
    } else {
      const next: OutboxItem = { ...item, attempts: attempt, lastError: res.error };
      const due = d.clock() + backoffMs(attempt, d.ruleSet.settings.retryBaseMs, d.ruleSet.settings.retryMaxMs);
      await d.store.retryLater(id, next, due, log('failed', res.status, res.error ?? ''));
      d.logger.warn({ event: 'notification_failed', notification_id: id, receiver: n.receiver, attempt, error: res.error, retry_at: new Date(due).toISOString() }, 'notification failed; will retry');
    }
  }
  d.metrics.outboxPending.set(await d.store.pending());
  return delivered;
}
