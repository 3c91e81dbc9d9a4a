/**
 * `POST /v1/webhooks/jira`: Jira Cloud issue webhooks (created, updated, deleted). When a secret
 * is configured, the `X-Hub-Signature` HMAC of the raw body must match (401 otherwise). The
 * mapping is `normaliseJiraWebhook`; the event goes to the jira topic through EventProducer.send
 * (validated like any other event), unusable payloads to the dead-letter topic.
 *
 * Answers: 200 `{ accepted, rejected, errors, event_id }` when stored; 202 `{ ignored }` for a
 * webhook event we do not track (Jira stops retrying on 2xx); 400 when dead-lettered (4xx is not
 * retried by Jira); 503 when Kafka is unavailable (Jira retries 5xx).
 *
 * Encapsulated (not wrapped with fastify-plugin) so its raw-body parser stays on this route.
 */
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type {} from '@fastify/swagger'; // route schema fields summary, tags, consumes
import { Type, type Static } from '@sinclair/typebox';
import { topicSpec } from '../../contracts/topics.js';
import { StreamPulseError } from '../../lib/errors.js';
import type { Metrics } from '../../lib/metrics.js';
import type { EventProducer } from '../sdk/event-producer.js';
import { normaliseJiraWebhook, verifyJiraSignature, type JiraFieldMap } from './jira-normalise.js';

export interface JiraWebhookPluginOptions {
  producer: EventProducer;
  /** HMAC secret of the Jira webhook; empty or absent = signatures are not checked. */
  secret?: string;
  /** Our names → Jira custom field ids (config JIRA_FIELD_MAP). */
  fieldMap: JiraFieldMap;
  maxBodyBytes: number;
  metrics?: Metrics;
  now?: () => number;
}

export const JIRA_WEBHOOK_ROUTE = '/v1/webhooks/jira';
export const SIGNATURE_HEADER = 'x-hub-signature';
export const DELIVERY_ID_HEADER = 'x-atlassian-webhook-identifier';

export const JiraWebhookReply = Type.Object({
  accepted: Type.Integer(),
  rejected: Type.Integer(),
  errors: Type.Array(Type.Object({ index: Type.Integer(), reason: Type.String() })),
  event_id: Type.Optional(Type.String({ description: 'UUID derived from the delivery id: the same on redelivery' })),
});
export type JiraWebhookReply = Static<typeof JiraWebhookReply>;

export const JiraIgnoredReply = Type.Object({ ignored: Type.String({ description: 'why the webhook was not stored' }) });
export const JiraErrorReply = Type.Object({ error: Type.String(), message: Type.String() });
type JiraErrorReply = Static<typeof JiraErrorReply>;

function errorReply(reply: FastifyReply, status: number, error: string, message: string): FastifyReply {
  return reply.code(status).send({ error, message } satisfies JiraErrorReply);
}

function headerValue(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export const jiraWebhookPlugin: FastifyPluginAsync<JiraWebhookPluginOptions> = async (app, opts) => {
  const { producer, fieldMap, maxBodyBytes, metrics } = opts;
  const secret = opts.secret ?? '';
  const now = opts.now ?? Date.now;
  const topic = topicSpec(producer.topicPrefix, 'jira').topic;
  if (!secret) app.log.warn({ event: 'jira_webhook_unsigned' }, 'JIRA_WEBHOOK_SECRET is empty: Jira webhook signatures are not checked');

  // The signature covers the exact bytes Jira sent, so keep them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: maxBodyBytes }, (_request, body, done) => done(null, body));

  app.addHook('onResponse', async (request, reply) => {
    metrics?.ingestRequests.inc({ route: JIRA_WEBHOOK_ROUTE, status: String(reply.statusCode) });
  });

  async function deadLetter(request: FastifyRequest, raw: Buffer, errorClass: string, message: string, key: string | null): Promise<void> {
    try {
      await producer.sendDeadLetter({ originalTopic: topic, partition: -1, offset: -1, key, value: raw, errorClass, message, stage: 'ingest', kind: 'jira' });
    } catch (err) {
      request.log.error({ event: 'dead_letter_failed', kind: 'jira', error_class: errorClass, err: (err as Error).message }, 'could not write dead letter');
    }
  }

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return errorReply(reply, 413, 'oversize', `webhook body is larger than the limit of ${maxBodyBytes} bytes`);
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return errorReply(reply, 415, 'unsupported_media_type', 'send application/json');
    if (error instanceof StreamPulseError) {
      request.log.error({ event: 'jira_webhook_failed', code: error.code, err: error.message }, 'jira webhook not stored');
      return errorReply(reply, error.retriable ? 503 : 500, error.retriable ? 'unavailable' : 'internal', `webhook not stored: ${error.message}`);
    }
    if (error.statusCode && error.statusCode < 500) return errorReply(reply, error.statusCode, 'bad_request', error.message);
    request.log.error({ event: 'jira_webhook_error', err: error }, 'unexpected jira webhook error');
    return errorReply(reply, 500, 'internal', 'internal error');
  });

  app.post<{ Body: Buffer | undefined }>(
    JIRA_WEBHOOK_ROUTE,
    {
      bodyLimit: maxBodyBytes,
      schema: {
        summary: 'Jira Cloud issue webhook',
        description:
          'Register this URL as a Jira Cloud webhook for issue created/updated/deleted. With a secret configured, ' +
          'X-Hub-Signature: sha256=<HMAC-SHA256 of the body> must match. X-Atlassian-Webhook-Identifier makes the event_id.',
        tags: ['webhooks'],
        consumes: ['application/json'],
        response: { 200: JiraWebhookReply, 202: JiraIgnoredReply, 400: JiraErrorReply, 401: JiraErrorReply, 413: JiraErrorReply, 415: JiraErrorReply, 500: JiraErrorReply, 503: JiraErrorReply },
      },
    },
    async (request, reply) => {
      const raw = request.body ?? Buffer.alloc(0);
      if (secret && !verifyJiraSignature(raw, headerValue(request, SIGNATURE_HEADER), secret)) {
        request.log.warn({ event: 'jira_signature_rejected', has_header: headerValue(request, SIGNATURE_HEADER) !== undefined }, 'jira webhook signature missing or wrong');
        return errorReply(reply, 401, 'bad_signature', `${SIGNATURE_HEADER} is missing or does not match the body (expected sha256=<hex HMAC-SHA256 of the raw body>)`);
      }
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch (err) {
        const message = `webhook body is not valid JSON: ${(err as Error).message}`;
        await deadLetter(request, raw, 'invalid_json', message, null);
        return errorReply(reply, 400, 'invalid_json', message);
      }
      const normalised = normaliseJiraWebhook(body, raw, headerValue(request, DELIVERY_ID_HEADER), fieldMap, now());
      if (normalised.outcome === 'ignore') return reply.code(202).send({ ignored: normalised.reason });
      if (normalised.outcome === 'dlq') {
        await deadLetter(request, raw, normalised.errorClass, normalised.reason, null);
        return errorReply(reply, 400, normalised.errorClass, normalised.reason);
      }
      const result = await producer.send('jira', [normalised.event]);
      metrics?.ingestEvents.inc({ kind: 'jira', result: 'accepted' }, result.accepted);
      metrics?.ingestEvents.inc({ kind: 'jira', result: 'rejected' }, result.rejected);
      request.log.info({ event: 'jira_webhook', issue_key: normalised.event.issue_key, webhook_event: normalised.event.webhook_event, event_id: normalised.event.event_id, accepted: result.accepted }, 'jira webhook');
      return reply.code(result.rejected > 0 ? 400 : 200).send(result.rejected > 0 ? { error: 'schema_violation', message: result.errors.map((e) => e.reason).join('; ') } : { ...result, event_id: normalised.event.event_id });
    },
  );
};

export default jiraWebhookPlugin;
