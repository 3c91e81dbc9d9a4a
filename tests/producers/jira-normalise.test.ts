/** Pure tests of the Jira webhook mapping, the signature check and the delivery-id UUIDs. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { validateEvent } from '../../contracts/validate.js';
import {
  normaliseJiraWebhook,
  parseJiraDate,
  redactJiraPersonalData,
  signJiraBody,
  uuidV5,
  verifyJiraSignature,
  type JiraFieldMap,
} from '../../producers/jira/jira-normalise.js';

const FIELD_MAP: JiraFieldMap = {
  severity: 'customfield_10040',
  show_name: 'customfield_10041',
  cost_impact_usd: 'customfield_10042',
  delay_days: 'customfield_10043',
};
const NOW = Date.UTC(2026, 10, 23, 6, 0, 0);

function fixture(name: string): { raw: Buffer; body: Record<string, any> } {
  const raw = readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url));
  return { raw, body: JSON.parse(raw.toString('utf8')) };
}

function normalised(name: string, deliveryId: string | undefined = 'a8c2e1f0-0d44-4b6e-9c57-3d1f0a9b2e61', fieldMap = FIELD_MAP) {
  const { raw, body } = fixture(name);
  const result = normaliseJiraWebhook(body, raw, deliveryId, fieldMap, NOW);
  if (result.outcome !== 'ok') throw new Error(`expected an event, got ${JSON.stringify(result)}`);
  return result.event;
}

describe('parseJiraDate', () => {
  it('reads Jira offsets without a colon, with one, and Z', () => {
    expect(parseJiraDate('2026-11-20T10:15:30.000+0000')).toBe(Date.UTC(2026, 10, 20, 10, 15, 30));
    expect(parseJiraDate('2026-11-23T11:25:12.866+0545')).toBe(Date.UTC(2026, 10, 23, 5, 40, 12, 866));
    expect(parseJiraDate('2026-11-20T05:15:30.5-05:00')).toBe(Date.UTC(2026, 10, 20, 10, 15, 30, 500));
    expect(parseJiraDate('2026-11-20T10:15:30Z')).toBe(Date.UTC(2026, 10, 20, 10, 15, 30));
  });
  it('gives null for anything else', () => {
    expect(parseJiraDate('2026-11-27')).toBeNull();
    expect(parseJiraDate(null)).toBeNull();
    expect(parseJiraDate('yesterday')).toBeNull();
  });
});

describe('uuidV5', () => {
  it('matches the RFC 4122 / Python uuid5 reference value', () => {
    // python3 -c "import uuid; print(uuid.uuid5(uuid.NAMESPACE_DNS, 'www.example.com'))"
    expect(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });
});

describe('normaliseJiraWebhook', () => {
  it('maps an issue_created webhook with option custom fields', () => {
    const e = normalised('jira-issue-created');
    expect(e).toMatchObject({
      event_time: 1795169730512,
      received_time: NOW,
      webhook_event: 'issue_created',
      issue_key: 'PROD-231',
      project_key: 'PROD',
      summary: 'Episode 12: audio out of sync after 12:40',
      issue_type: 'Bug',
      status: 'To Do',
      status_category: 'new',
      priority: 'Highest',
      severity: 'critical',
      show_name: 'Everest Diaries',
      cost_impact_usd: 48250.75,
      delay_days: 3,
      labels: ['audio-sync', 'episode-12'],
      created: Date.UTC(2026, 10, 20, 10, 15, 30),
      updated: Date.UTC(2026, 10, 20, 10, 15, 30),
      resolved: null,
    });
    expect(validateEvent('jira', e).ok).toBe(true);
  });

  it('maps an issue_updated webhook: resolution date, multi-select severity, string show and numeric-string cost', () => {
    const e = normalised('jira-issue-updated');
    expect(e).toMatchObject({
      webhook_event: 'issue_updated',
      status: 'Done',
      status_category: 'done',
      severity: 'high',
      show_name: 'Everest Diaries',
      cost_impact_usd: 52000,
      delay_days: 4.5,
      labels: ['audio-sync'],
      updated: Date.UTC(2026, 10, 23, 5, 40, 12, 870),
      resolved: Date.UTC(2026, 10, 23, 5, 40, 12, 866),
    });
    expect(validateEvent('jira', e).ok).toBe(true);
  });

  it('maps an issue_deleted webhook with empty custom fields and no priority', () => {
    const e = normalised('jira-issue-deleted');
    expect(e).toMatchObject({
      webhook_event: 'issue_deleted',
      issue_key: 'PROD-232',
      priority: '',
      severity: null,
      show_name: null,
      cost_impact_usd: null,
      delay_days: null,
      labels: [],
    });
    expect(validateEvent('jira', e).ok).toBe(true);
  });

  it('leaves custom fields that the configuration does not map as null', () => {
    const e = normalised('jira-issue-created', undefined, { severity: 'customfield_10040' });
    expect(e).toMatchObject({ severity: 'critical', show_name: null, cost_impact_usd: null, delay_days: null });
  });

  it('derives the same event_id for a redelivery and a different one for another delivery', () => {
    const first = normalised('jira-issue-updated', 'a8c2e1f0-0d44-4b6e-9c57-3d1f0a9b2e61');
    const again = normalised('jira-issue-updated', 'a8c2e1f0-0d44-4b6e-9c57-3d1f0a9b2e61');
    const other = normalised('jira-issue-updated', '0b3d2c10-77aa-4e1b-8f00-c2d4e6f80a12');
    expect(first.event_id).toBe(again.event_id);
    expect(first.event_id).not.toBe(other.event_id);
    expect(first.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // Without the header the id still stays stable across redeliveries (event, issue id, timestamp).
    expect(normalised('jira-issue-updated', undefined).event_id).toBe(normalised('jira-issue-updated', undefined).event_id);
  });

  it('keeps the raw payload without user names, e-mails and avatars', () => {
    const e = normalised('jira-issue-created');
    const raw = JSON.parse(e.raw_payload);
    expect(raw.issue.fields.assignee.accountId).toBe('61a2f3c4d5e6f70069a1b2c3');
    expect(e.raw_payload).not.toMatch(/Priya|Sanjay|editor@example\.com|gravatar/);
    const { raw: rawBytes, body } = fixture('jira-issue-created');
    expect(raw).toEqual(redactJiraPersonalData(body).value);
    expect(rawBytes.toString()).toContain('Priya Rai');
  });

  it('keeps the body byte for byte when it names no one', () => {
    const { raw, body } = fixture('jira-issue-deleted');
    delete body.user;
    delete body.issue.fields.creator;
    delete body.issue.fields.reporter;
    const text = JSON.stringify(body, null, 1);
    const result = normaliseJiraWebhook(body, text, 'd1', FIELD_MAP, NOW);
    expect(result.outcome === 'ok' && result.event.raw_payload).toBe(text);
    expect(raw.length).toBeGreaterThan(0);
  });

  it('ignores webhook events it does not track', () => {
    const { raw, body } = fixture('jira-comment-created');
    expect(normaliseJiraWebhook(body, raw, 'x', FIELD_MAP, NOW)).toEqual({ outcome: 'ignore', reason: expect.stringContaining('comment_created') });
  });

  it('dead-letters payloads it cannot map, naming every problem', () => {
    const { raw, body } = fixture('jira-issue-created');
    body.issue.fields.created = 'last tuesday';
    body.issue.fields.customfield_10042 = 'a lot';
    delete body.timestamp;
    const result = normaliseJiraWebhook(body, raw, 'x', FIELD_MAP, NOW);
    expect(result.outcome).toBe('dlq');
    if (result.outcome !== 'dlq') return;
    expect(result.errorClass).toBe('schema_violation');
    expect(result.reason).toContain('timestamp');
    expect(result.reason).toContain('issue.fields.created');
    expect(result.reason).toContain('customfield_10042 (cost_impact_usd)');
    expect(normaliseJiraWebhook([], raw, 'x', FIELD_MAP, NOW).outcome).toBe('dlq');
    expect(normaliseJiraWebhook({ webhookEvent: 'jira:issue_created' }, raw, 'x', FIELD_MAP, NOW)).toMatchObject({
      outcome: 'dlq',
      reason: 'issue.fields: missing',
    });
  });
});

describe('verifyJiraSignature', () => {
  const secret = 'It1s-a-s3cret';
  const { raw } = fixture('jira-issue-created');

  it('accepts the HMAC-SHA256 of the raw body', () => {
    expect(verifyJiraSignature(raw, signJiraBody(raw, secret), secret)).toBe(true);
  });
  it('rejects a missing, malformed or wrong signature, or a changed body', () => {
    expect(verifyJiraSignature(raw, undefined, secret)).toBe(false);
    expect(verifyJiraSignature(raw, 'sha256=abc', secret)).toBe(false);
    expect(verifyJiraSignature(raw, signJiraBody(raw, 'other-secret'), secret)).toBe(false);
    expect(verifyJiraSignature(Buffer.concat([raw, Buffer.from(' ')]), signJiraBody(raw, secret), secret)).toBe(false);
    expect(verifyJiraSignature(raw, signJiraBody(raw, secret).replace('sha256=', 'sha1='), secret)).toBe(false);
  });
});
