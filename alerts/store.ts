/**
 * Live alert state, the durable outbox, silences and acknowledgements in Redis, under
 * `<REDIS_PREFIX>alerts:`. Every evaluation step of a rule is ONE MULTI/EXEC: the alert states,
 * the rule's event-time cursor, the notifications it enqueues and the history rows it produces
 * are written together or not at all, so a crash never loses a notification nor enqueues one twice.
 *
 *   live            HASH  alertKey → AlertState JSON (pending/firing)
 *   resolved        HASH  alertKey → last resolved AlertState JSON
 *   cursor          HASH  rule → event time (ms) of its last evaluation
 *   outbox          ZSET  deliveryId → due time (ms);  outbox:items HASH deliveryId → OutboxItem JSON
 *   silences        HASH  id → Silence JSON;           acks HASH alertKey → Ack JSON
 *   history:events, history:notifications  LISTs of rows waiting to be copied to ClickHouse
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { AlertState } from './state-machine.js';
import type { Notification } from './notifiers.js';

export interface Matcher {
  name: string;
  value: string;
  regex?: boolean;
}
export interface Silence {
  id: string;
  matchers: Matcher[];
  startsAtMs: number;
  endsAtMs: number;
  createdBy: string;
  comment: string;
}
export interface Ack {
  alertKey: string;
  by: string;
  atMs: number;
}
export interface OutboxItem {
  notification: Notification;
  attempts: number;
  lastError: string | null;
}

export interface AlertEventRow {
  id: string;
  at: string;
  event_time: string;
  rule: string;
  alert_key: string;
  labels: Record<string, string>;
  from_state: string;
  to_state: string;
  value: number | null;
  baseline: number | null;
  volume: number;
  severity: string;
}
export interface NotificationLogRow {
  id: string;
  at: string;
  notification_id: string;
  alert_key: string;
  rule: string;
  receiver: string;
  status: string;
  result: string;
  attempt: number;
  http_status: number | null;
  error: string;
  repeat: number;
}

export interface StepWrite {
  rule: string;
  cursorMs?: number;
  upserts: AlertState[];
  resolved: AlertState[];
  removes: string[];
  notifications: Notification[];
  events: AlertEventRow[];
  logs: NotificationLogRow[];
}

export function matches(m: Matcher, labels: Record<string, string>): boolean {
  const v = labels[m.name] ?? '';
  if (!m.regex) return v === m.value;
  try {
    return new RegExp(`^(?:${m.value})$`).test(v);
  } catch {
    return false;
  }
}

export class AlertStore {
  readonly p: string;
  constructor(
    readonly redis: Redis,
    redisPrefix: string,
  ) {
    this.p = `${redisPrefix}alerts:`;
  }

  async live(): Promise<AlertState[]> {
    return Object.values(await this.redis.hgetall(`${this.p}live`)).map((s) => JSON.parse(s) as AlertState);
  }
  async resolvedAlerts(): Promise<AlertState[]> {
    return Object.values(await this.redis.hgetall(`${this.p}resolved`)).map((s) => JSON.parse(s) as AlertState);
  }
  async cursors(): Promise<Map<string, number>> {
    return new Map(Object.entries(await this.redis.hgetall(`${this.p}cursor`)).map(([k, v]) => [k, Number(v)]));
  }

  /** Atomically applies one evaluation step (or one notification decision). */
  async commit(w: StepWrite, nowMs: number): Promise<void> {
    const m = this.redis.multi();
    // Resolves and removals first, upserts last: in a batch of steps an alert can resolve and a
    // new instance of the same group start pending; the new instance is what stays live.
    for (const a of w.resolved) m.hdel(`${this.p}live`, a.key).hset(`${this.p}resolved`, a.key, JSON.stringify(a)).hdel(`${this.p}acks`, a.key);
    if (w.removes.length) m.hdel(`${this.p}live`, ...w.removes);
    for (const a of w.upserts) m.hset(`${this.p}live`, a.key, JSON.stringify(a));
    if (w.cursorMs !== undefined) m.hset(`${this.p}cursor`, w.rule, String(w.cursorMs));
    for (const n of w.notifications) {
      const item: OutboxItem = { notification: n, attempts: 0, lastError: null };
      m.hsetnx(`${this.p}outbox:items`, n.id, JSON.stringify(item)).zadd(`${this.p}outbox`, 'NX', nowMs, n.id);
    }
    if (w.events.length) m.rpush(`${this.p}history:events`, ...w.events.map((e) => JSON.stringify(e)));
    if (w.logs.length) m.rpush(`${this.p}history:notifications`, ...w.logs.map((e) => JSON.stringify(e)));
    const res = await m.exec();
    const failed = res?.find(([err]) => err);
    if (!res || failed) throw new Error(`alert state commit failed: ${failed?.[0]?.message ?? 'transaction aborted'}`);
  }

  // ---- outbox ----
  /** Every pending notification with its due time (the delivery worker orders them per alert and receiver). */
  async outbox(): Promise<{ id: string; item: OutboxItem; dueMs: number }[]> {
    const flat = await this.redis.zrange(`${this.p}outbox`, 0, -1, 'WITHSCORES');
    if (flat.length === 0) return [];
    const ids = flat.filter((_, i) => i % 2 === 0);
    const items = await this.redis.hmget(`${this.p}outbox:items`, ...ids);
    return ids.flatMap((id, i) => (items[i] ? [{ id, item: JSON.parse(items[i]) as OutboxItem, dueMs: Number(flat[2 * i + 1]) }] : []));
  }
  async delivered(id: string, log: NotificationLogRow): Promise<void> {
    await this.redis.multi().zrem(`${this.p}outbox`, id).hdel(`${this.p}outbox:items`, id).rpush(`${this.p}history:notifications`, JSON.stringify(log)).exec();
  }
  async retryLater(id: string, item: OutboxItem, dueMs: number, log: NotificationLogRow): Promise<void> {
    await this.redis
      .multi()
      .hset(`${this.p}outbox:items`, id, JSON.stringify(item))
      .zadd(`${this.p}outbox`, 'XX', dueMs, id)
      .rpush(`${this.p}history:notifications`, JSON.stringify(log))
      .exec();
  }
  async pending(): Promise<number> {
    return this.redis.zcard(`${this.p}outbox`);
  }

  // ---- history to ClickHouse ----
  async peekHistory(list: 'events' | 'notifications', n: number): Promise<string[]> {
    return this.redis.lrange(`${this.p}history:${list}`, 0, n - 1);
  }
  async dropHistory(list: 'events' | 'notifications', n: number): Promise<void> {
    await this.redis.ltrim(`${this.p}history:${list}`, n, -1);
  }

  // ---- silences and acknowledgements (the API calls these) ----
  async silence(matchers: Matcher[], endsAtMs: number, createdBy: string, comment: string, nowMs: number): Promise<Silence> {
    if (!Array.isArray(matchers) || matchers.length === 0) throw new Error('a silence needs at least one matcher');
    for (const mt of matchers) if (!mt.name || typeof mt.value !== 'string') throw new Error('a matcher needs a name and a value');
    if (!(endsAtMs > nowMs)) throw new Error('endsAt must be in the future');
    const s: Silence = { id: randomUUID(), matchers, startsAtMs: nowMs, endsAtMs, createdBy, comment };
    await this.redis.hset(`${this.p}silences`, s.id, JSON.stringify(s));
    return s;
  }
  async listSilences(): Promise<Silence[]> {
    return Object.values(await this.redis.hgetall(`${this.p}silences`))
      .map((s) => JSON.parse(s) as Silence)
      .sort((a, b) => a.startsAtMs - b.startsAtMs);
  }
  async expireSilence(id: string, nowMs: number): Promise<boolean> {
    const raw = await this.redis.hget(`${this.p}silences`, id);
    if (!raw) return false;
    const s = JSON.parse(raw) as Silence;
    s.endsAtMs = Math.min(s.endsAtMs, nowMs);
    await this.redis.hset(`${this.p}silences`, id, JSON.stringify(s));
    return true;
  }
  async activeSilences(nowMs: number): Promise<Silence[]> {
    return (await this.listSilences()).filter((s) => s.startsAtMs <= nowMs && s.endsAtMs > nowMs);
  }
  async acknowledge(alertKey: string, by: string, nowMs: number): Promise<boolean> {
    const live = await this.redis.hget(`${this.p}live`, alertKey);
    if (!live) return false;
    await this.redis.hset(`${this.p}acks`, alertKey, JSON.stringify({ alertKey, by, atMs: nowMs } satisfies Ack));
    return true;
  }
  async acks(): Promise<Map<string, Ack>> {
    return new Map(Object.entries(await this.redis.hgetall(`${this.p}acks`)).map(([k, v]) => [k, JSON.parse(v) as Ack]));
  }
}

export function isSilenced(labels: Record<string, string>, silences: readonly Silence[]): Silence | null {
  return silences.find((s) => s.matchers.every((m) => matches(m, labels))) ?? null;
}
