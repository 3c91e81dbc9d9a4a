/**
 * Jira Cloud issue webhooks → `JiraIssueEvent` (contracts/avro/jira.avsc). Pure: no I/O, time
 * passed in. The outcome is a value: an event, a payload to ignore (a webhook event we do not
 * track), or a payload to dead-letter with the reason.
 *
 * Also here: the webhook signature check (`X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw
 * body>`) and the deterministic event id (a UUID v5 of the delivery id), so a redelivered
 * webhook carries the same event_id and is counted once downstream.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { JiraIssueEvent } from '../../contracts/types.generated.js';
import type { RejectClass } from '../../contracts/topics.js';

/** Our field names → Jira custom field ids (config JIRA_FIELD_MAP). Unmapped fields are null. */
export interface JiraFieldMap {
  severity?: string;
  show_name?: string;
  cost_impact_usd?: string;
  delay_days?: string;
}

export const JIRA_MAPPED_FIELDS = ['severity', 'show_name', 'cost_impact_usd', 'delay_days'] as const;

export const JIRA_WEBHOOK_EVENTS = {
  'jira:issue_created': 'issue_created',
  'jira:issue_updated': 'issue_updated',
  'jira:issue_deleted': 'issue_deleted',
} as const satisfies Record<string, JiraIssueEvent['webhook_event']>;

export type JiraNormalised =
  | { outcome: 'ok'; event: JiraIssueEvent }
  /** A well-formed webhook we do not track (comment_created, sprint events, ...). */
  | { outcome: 'ignore'; reason: string }
  | { outcome: 'dlq'; errorClass: RejectClass; reason: string };

/** Namespace of StreamPulse's name-based UUIDs for Jira deliveries (a fixed random UUID). */
export const JIRA_DELIVERY_NAMESPACE = '7d3f4a52-1c0e-4d8b-9f61-2b5e8c7a9d10';

/** RFC 4122 version-5 UUID: SHA-1 of namespace bytes + name, version and variant bits set. */
export function uuidV5(name: string, namespace: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  if (ns.length !== 16) throw new TypeError(`namespace ${namespace} is not a UUID`);
  const hash = createHash('sha1').update(ns).update(name, 'utf8').digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** True when `header` is `sha256=<hex>` of the HMAC-SHA256 of `rawBody` with `secret`. */
export function verifyJiraSignature(rawBody: Buffer, header: string | undefined, secret: string): boolean {
  if (!header) return false;
  const m = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!m) return false;
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(m[1]!, 'hex'));
}

/** The header value Jira would send for `rawBody` (tests and local tools). */
export function signJiraBody(rawBody: Buffer | string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

const JIRA_DATE_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/;

/** Jira date-time (`2026-11-20T10:15:30.000+0000`, also ISO `Z`/`+01:00`) → ms since epoch, or null. */
export function parseJiraDate(value: unknown): number | null {
  if (typeof value !== 'string') return null;
  const m = JIRA_DATE_RE.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const ms = frac ? Number(frac.padEnd(3, '0').slice(0, 3)) : 0;
  let offsetMin = 0;
  if (zone !== 'Z') {
    const digits = zone!.replace(':', '');
    const sign = digits[0] === '-' ? -1 : 1;
    offsetMin = sign * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)));
  }
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms) - offsetMin * 60_000;
  return Number.isFinite(utc) ? utc : null;
}

type Json = Record<string, unknown>;

/** Personal data Jira puts in user objects (those with an `accountId`). */
export const JIRA_PERSONAL_FIELDS = ['displayName', 'emailAddress', 'avatarUrls'] as const;

/**
 * A copy of a webhook body without names, e-mails and avatars of users (DOMAIN §2: identifiers
 * are pseudonymous). The `accountId` stays: it is the pseudonymous id. `redacted` says whether
 * anything was removed.
 */
export function redactJiraPersonalData(value: unknown): { value: unknown; redacted: boolean } {
  let redacted = false;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v !== 'object' || v === null) return v;
    const isUser = typeof (v as Json).accountId === 'string';
    const out: Json = {};
    for (const [k, child] of Object.entries(v as Json)) {
      if (isUser && (JIRA_PERSONAL_FIELDS as readonly string[]).includes(k)) {
        redacted = true;
        continue;
      }
      out[k] = walk(child);
    }
    return out;
  };
  const out = walk(value);
  return { value: out, redacted };
}

function obj(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A custom field as text: a string, a select option `{ value }`, or the first of a multi-select. */
function fieldText(v: unknown): string | null {
  if (typeof v === 'string') return v.trim() === '' ? null : v.trim();
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.length > 0 ? fieldText(v[0]) : null;
  const o = obj(v);
  if (o) return fieldText(o.value ?? o.name ?? null);
  return null;
}

/** A custom field as a number: a number, or a numeric string such as "12500.50" or "12,500". */
function fieldNumber(v: unknown): number | null | 'invalid' {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'number') return Number.isFinite(v) ? v : 'invalid';
  if (typeof v === 'string') {
    const n = Number(v.replace(/[,\s$]/g, ''));
    return Number.isFinite(n) ? n : 'invalid';
  }
  const o = obj(v);
  if (o && 'value' in o) return fieldNumber(o.value);
  return 'invalid';
}

/** The body as received, unless it names people: then its JSON without their names and e-mails. */
function rawPayload(payload: Json, rawBody: Buffer | string): string {
  const { value, redacted } = redactJiraPersonalData(payload);
  if (redacted) return JSON.stringify(value);
  return typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8');
}

/**
 * Maps one Jira Cloud webhook body to a JiraIssueEvent.
 * - event_id: UUID v5 of the delivery id (`X-Atlassian-Webhook-Identifier`); without one, of
 *   `webhookEvent:issue.id:timestamp`, which is also stable across redeliveries.
 * - event_time: the webhook `timestamp`; received_time: `nowMs`.
 * - severity is lower-cased (`Critical` → `critical`) so rules can match it; other texts are kept.
 * - raw_payload is the body as received, except that user names, e-mails and avatars are removed
 *   (then it is the body re-serialised without them).
 */
export function normaliseJiraWebhook(
  body: unknown,
  rawBody: Buffer | string,
  deliveryId: string | undefined,
  fieldMap: JiraFieldMap,
  nowMs: number,
): JiraNormalised {
  const payload = obj(body);
  if (!payload) return { outcome: 'dlq', errorClass: 'schema_violation', reason: 'webhook body must be a JSON object' };
  const webhookEvent = str(payload.webhookEvent);
  if (!webhookEvent) return { outcome: 'dlq', errorClass: 'schema_violation', reason: 'webhookEvent: missing' };
  // Own keys only: `constructor` or `__proto__` must not be found on the map's prototype.
  const mappedEvent = Object.hasOwn(JIRA_WEBHOOK_EVENTS, webhookEvent)
    ? (JIRA_WEBHOOK_EVENTS as Record<string, JiraIssueEvent['webhook_event']>)[webhookEvent]
    : undefined;
  if (!mappedEvent) return { outcome: 'ignore', reason: `webhookEvent ${webhookEvent} is not tracked (only ${Object.keys(JIRA_WEBHOOK_EVENTS).join(', ')})` };

  const problems: string[] = [];
  const issue = obj(payload.issue);
  const fields = obj(issue?.fields);
  if (!issue || !fields) return { outcome: 'dlq', errorClass: 'schema_violation', reason: 'issue.fields: missing' };
  const issueKey = str(issue.key);
  if (!issueKey) problems.push('issue.key: missing');
  const timestamp = payload.timestamp;
  if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) problems.push('timestamp: must be ms since epoch');
  const created = parseJiraDate(fields.created);
  if (created === null) problems.push(`issue.fields.created: not a Jira date (got ${JSON.stringify(fields.created)})`);
  const updated = parseJiraDate(fields.updated) ?? created;
  let resolved: number | null = null;
  if (fields.resolutiondate !== null && fields.resolutiondate !== undefined) {
    resolved = parseJiraDate(fields.resolutiondate);
    if (resolved === null) problems.push(`issue.fields.resolutiondate: not a Jira date (got ${JSON.stringify(fields.resolutiondate)})`);
  }
  const status = obj(fields.status);
  const custom = (our: keyof JiraFieldMap): unknown => (fieldMap[our] ? fields[fieldMap[our]] : undefined);
  const cost = fieldNumber(custom('cost_impact_usd'));
  if (cost === 'invalid') problems.push(`${fieldMap.cost_impact_usd} (cost_impact_usd): not a number (got ${JSON.stringify(custom('cost_impact_usd'))})`);
  const delay = fieldNumber(custom('delay_days'));
  if (delay === 'invalid') problems.push(`${fieldMap.delay_days} (delay_days): not a number (got ${JSON.stringify(custom('delay_days'))})`);
  if (problems.length > 0) return { outcome: 'dlq', errorClass: 'schema_violation', reason: problems.join('; ') };

  const idName = deliveryId?.trim() || `${webhookEvent}:${String(issue.id ?? issueKey)}:${String(timestamp)}`;
  const labels = Array.isArray(fields.labels) ? fields.labels.filter((l): l is string => typeof l === 'string') : [];
  const event: JiraIssueEvent = {
    event_id: uuidV5(idName, JIRA_DELIVERY_NAMESPACE),
    event_time: timestamp as number,
    received_time: nowMs,
    webhook_event: mappedEvent,
    issue_key: issueKey!,
    project_key: str(obj(fields.project)?.key) ?? issueKey!.split('-')[0]!,
    summary: str(fields.summary) ?? '',
    issue_type: str(obj(fields.issuetype)?.name) ?? '',
    status: str(status?.name) ?? '',
    status_category: str(obj(status?.statusCategory)?.key) ?? '',
    priority: str(obj(fields.priority)?.name) ?? '',
    severity: fieldText(custom('severity'))?.toLowerCase() ?? null,
    show_name: fieldText(custom('show_name')),
    cost_impact_usd: cost === 'invalid' ? null : cost,
    delay_days: delay === 'invalid' ? null : delay,
    labels,
    created: created!,
    updated: updated!,
    resolved,
    raw_payload: rawPayload(payload, rawBody),
  };
  return { outcome: 'ok', event };
}
