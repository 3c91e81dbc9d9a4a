/** The Jira webhook route through `app.inject()` on the real Kafka and schema registry. */
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS, dlqTopic, topicSpec } from '../../contracts/topics.js';
import { signJiraBody } from '../../producers/jira/jira-normalise.js';
import { jiraWebhookPlugin } from '../../producers/jira/jira-webhook.plugin.js';
import { consumeMessages, headerMap, setUpProducerTestEnv, type ProducerTestEnv } from './support/stack-env.js';

// After every fixture's webhook timestamp (the latest, jira-issue-deleted, 2026-11-24T11:25):
// an event time more than MAX_FUTURE_SKEW_MS ahead of the producer clock is refused.
const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);
const SECRET = 'jira-webhook-secret';
const FIELD_MAP = { severity: 'customfield_10040', show_name: 'customfield_10041', cost_impact_usd: 'customfield_10042', delay_days: 'customfield_10043' };

let env: ProducerTestEnv;
let signed: FastifyInstance;
let unsigned: FastifyInstance;
let unconfigured: FastifyInstance;

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url));

beforeAll(async () => {
  env = await setUpProducerTestEnv('jira', { now: () => NOW });
  signed = Fastify({ logger: false });
  await signed.register(jiraWebhookPlugin, {
    producer: env.producer,
    secret: SECRET,
    fieldMap: FIELD_MAP,
    maxBodyBytes: 256 * 1024,
    metrics: env.metrics,
    now: () => NOW,
  });
  unsigned = Fastify({ logger: false });
  await unsigned.register(jiraWebhookPlugin, { producer: env.producer, insecure: true, fieldMap: FIELD_MAP, maxBodyBytes: 256 * 1024, now: () => NOW });
  unconfigured = Fastify({ logger: false });
  await unconfigured.register(jiraWebhookPlugin, {
    producer: env.producer,
    fieldMap: FIELD_MAP,
    maxBodyBytes: 256 * 1024,
    metrics: env.metrics,
    now: () => NOW,
  });
});
afterAll(async () => {
  await signed?.close();
  await unsigned?.close();
  await unconfigured?.close();
  await env?.close();
});

const deliver = (app: FastifyInstance, body: Buffer | string, headers: Record<string, string>) =>
  app.inject({ method: 'POST', url: '/v1/webhooks/jira', headers: { 'content-type': 'application/json; charset=utf-8', ...headers }, payload: body });

describe('POST /v1/webhooks/jira', () => {
  it('accepts a correctly signed webhook and stores the normalised issue, keyed by issue key', async () => {
    const raw = fixture('jira-issue-created');
    const res = await deliver(signed, raw, { 'x-hub-signature': signJiraBody(raw, SECRET), 'x-atlassian-webhook-identifier': 'delivery-1' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ accepted: 1, rejected: 0, errors: [] });

    const redelivered = await deliver(signed, raw, { 'x-hub-signature': signJiraBody(raw, SECRET), 'x-atlassian-webhook-identifier': 'delivery-1' });
    expect(redelivered.json().event_id).toBe(body.event_id);

    const messages = await consumeMessages(env.brokers, topicSpec(env.topicPrefix, 'jira').topic, 2);
    expect(messages).toHaveLength(2);
    await env.codec.prepare(messages.map((m) => m.value));
    const decoded = env.codec.decode('jira', messages[0]!.value);
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(messages[0]!.key?.toString()).toBe('PROD-231');
    expect(decoded.value).toMatchObject({
      event_id: body.event_id,
      event_time: 1795169730512,
      received_time: NOW,
      webhook_event: 'issue_created',
      issue_key: 'PROD-231',
      severity: 'critical',
      show_name: 'Everest Diaries',
      cost_impact_usd: 48250.75,
      delay_days: 3,
    });
    expect(JSON.parse(decoded.value.raw_payload as string).issue.key).toBe('PROD-231');
  });

  it('rejects a missing or wrong signature with 401 and stores nothing', async () => {
    const raw = fixture('jira-issue-updated');
    const missing = await deliver(signed, raw, {});
    expect(missing.statusCode).toBe(401);
    expect(missing.json().error).toBe('bad_signature');
    const wrong = await deliver(signed, raw, { 'x-hub-signature': signJiraBody(raw, 'not-the-secret') });
    expect(wrong.statusCode).toBe(401);
    // Signed bytes must be the bytes sent: re-serialising the JSON breaks the signature.
    const reformatted = JSON.stringify(JSON.parse(raw.toString()));
    expect((await deliver(signed, reformatted, { 'x-hub-signature': signJiraBody(raw, SECRET) })).statusCode).toBe(401);
  });

  it('without a secret and without JIRA_WEBHOOK_INSECURE, refuses every webhook with 403 saying how to configure it', async () => {
    const raw = fixture('jira-issue-created');
    const res = await deliver(unconfigured, raw, { 'x-atlassian-webhook-identifier': 'delivery-x' });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({ error: 'webhook_not_configured', message: expect.stringMatching(/set JIRA_WEBHOOK_SECRET .*JIRA_WEBHOOK_INSECURE=true/) });
    // A signature does not help when no secret is configured to check it against.
    expect((await deliver(unconfigured, raw, { 'x-hub-signature': signJiraBody(raw, SECRET) })).statusCode).toBe(403);
    const refused = (await env.metrics.ingestRejectedRequests.get()).values.find((v) => v.labels.reason === 'webhook_not_configured');
    expect(refused?.value).toBe(2);
  });

  it('counts (and logs) a webhook in which none of the configured custom field ids is present', async () => {
    const before = (await env.metrics.jiraUnmappedFields.get()).values[0]?.value ?? 0;
    const mapped = fixture('jira-issue-created');
    expect(
      (await deliver(signed, mapped, { 'x-hub-signature': signJiraBody(mapped, SECRET), 'x-atlassian-webhook-identifier': 'delivery-m1' })).statusCode,
    ).toBe(200);
    expect((await env.metrics.jiraUnmappedFields.get()).values[0]?.value ?? 0).toBe(before);
    const unmapped = Buffer.from(mapped.toString().replace(/customfield_1004[0-3]/g, (id) => id.replace('customfield_', 'customfield_9')));
    const res = await deliver(signed, unmapped, { 'x-hub-signature': signJiraBody(unmapped, SECRET), 'x-atlassian-webhook-identifier': 'delivery-m2' });
    expect(res.statusCode).toBe(200);
    expect((await env.metrics.jiraUnmappedFields.get()).values[0]?.value).toBe(before + 1);
  });

  it('refuses JSON nested deeper than the bound with 400 too_deep, before parsing, and dead-letters it', async () => {
    const raw = Buffer.from(`{"webhookEvent":"jira:issue_created","x":${'['.repeat(50_000)}${']'.repeat(50_000)}}`);
    const res = await deliver(signed, raw, { 'x-hub-signature': signJiraBody(raw, SECRET) });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'too_deep', message: expect.stringContaining('deeper than 32 levels') });
  });

  it('with JIRA_WEBHOOK_INSECURE and no secret, takes unsigned webhooks', async () => {
    const res = await deliver(unsigned, fixture('jira-issue-deleted'), { 'x-atlassian-webhook-identifier': 'delivery-3' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ accepted: 1 });
  });

  it('answers 202 for webhook events it does not track', async () => {
    const res = await deliver(unsigned, fixture('jira-comment-created'), {});
    expect(res.statusCode).toBe(202);
    expect(res.json().ignored).toMatch(/comment_created/);
    // Names of Object.prototype members are events we do not track either: they were looked up on
    // the event map's prototype, taken for tracked, and answered 400 "webhook_event: … got undefined".
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const body = fixture('jira-issue-updated')
        .toString()
        .replace('"webhookEvent": "jira:issue_updated"', `"webhookEvent": ${JSON.stringify(name)}`);
      expect(body).toContain(`"webhookEvent": ${JSON.stringify(name)}`);
      const r = await deliver(unsigned, body, {});
      expect({ name, status: r.statusCode }).toEqual({ name, status: 202 });
      expect(r.json().ignored).toContain(`webhookEvent ${name} is not tracked`);
    }
  });

  it('answers 400 and dead-letters the raw body of a webhook it cannot map', async () => {
    const raw = Buffer.from(fixture('jira-issue-updated').toString().replace('"created": "2026-11-20T10:15:30.000+0000"', '"created": "soon"'));
    const res = await deliver(signed, raw, { 'x-hub-signature': signJiraBody(raw, SECRET) });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'schema_violation', message: expect.stringContaining('issue.fields.created') });
    const all = await consumeMessages(env.brokers, dlqTopic(env.topicPrefix), 2);
    expect(all).toHaveLength(2);
    const deep = all.filter((m) => headerMap(m)[DLQ_HEADERS.errorClass] === 'too_deep');
    expect(deep).toHaveLength(1);
    const dead = all.filter((m) => headerMap(m)[DLQ_HEADERS.errorClass] === 'schema_violation');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.value).toEqual(raw);
    expect(headerMap(dead[0]!)).toMatchObject({
      [DLQ_HEADERS.errorClass]: 'schema_violation',
      [DLQ_HEADERS.kind]: 'jira',
      [DLQ_HEADERS.topic]: `${env.topicPrefix}jira`,
      [DLQ_HEADERS.stage]: 'ingest',
    });
  });
});
