/**
 * `POST /v1/webhooks/jira`: Jira Cloud issue webhooks (created, updated, deleted). The
 * `X-Hub-Signature` HMAC of the raw body must match the configured secret (401 otherwise); without
 * a secret every webhook is refused (403 `webhook_not_configured`) unless `insecure` is set
 * explicitly (JIRA_WEBHOOK_INSECURE=true, warned at start). The
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
import { KafkaError, StreamPulseError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { EventProducer } from '../sdk/event-producer.js';
import { normaliseJiraWebhook, verifyJiraSignature, type JiraFieldMap } from './jira-normalise.js';
import { checkJsonBounds } from '../ingest/parse-body.js';
import { RateLimitedRejectLog } from '../ingest/reject-log.js';

export interface JiraWebhookPluginOptions {
  producer: EventProducer;
  /** HMAC secret of the Jira webhook. Empty or absent: every webhook is refused unless `insecure`. */
  secret?: string;
  /** Without a secret, accept unsigned webhooks (JIRA_WEBHOOK_INSECURE=true; warned at start). */
  insecure?: boolean;
  /** Deepest JSON nesting accepted, checked before parsing (default 32). */
  maxDepth?: number;
  /** Longest wait for Kafka's acknowledgement before answering 503 (default 10 s). */
  ackTimeoutMs?: number;
  logger?: Logger;
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

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new KafkaError(`no acknowledgement from Kafka within ${ms} ms`, true));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export const jiraWebhookPlugin: FastifyPluginAsync<JiraWebhookPluginOptions> = async (app, opts) => {
  const { producer, fieldMap, maxBodyBytes, metrics } = opts;
  const secret = opts.secret ?? '';
  const insecure = !secret && opts.insecure === true;
  const maxDepth = opts.maxDepth ?? 32;
  const ackTimeoutMs = opts.ackTimeoutMs ?? 10_000;
  const now = opts.now ?? Date.now;
  const logger = opts.logger ?? (app.log as unknown as Logger);
  const rejectLog = new RateLimitedRejectLog(logger, 10_000);
  const flushTimer = setInterval(() => rejectLog.flush(), rejectLog.intervalMs);
  flushTimer.unref();
  app.addHook('onClose', async () => {
    clearInterval(flushTimer);
    rejectLog.flush();
  });
  const topic = topicSpec(producer.topicPrefix, 'jira').topic;
  const customFieldIds = Object.values(fieldMap);
  if (insecure)
    logger.warn(
      { event: 'jira_webhook_insecure' },
      'JIRA_WEBHOOK_INSECURE=true and no JIRA_WEBHOOK_SECRET: unsigned Jira webhooks are accepted from anyone who can reach this port; set JIRA_WEBHOOK_SECRET in production',
    );
  else if (!secret)
    logger.warn(
      { event: 'jira_webhook_not_configured' },
      'JIRA_WEBHOOK_SECRET is empty: every Jira webhook is refused (403) until it is set (or JIRA_WEBHOOK_INSECURE=true for a local test)',
    );

  function refused(reply: FastifyReply, status: number, reason: string, message: string): FastifyReply {
    metrics?.ingestRejectedRequests.inc({ route: JIRA_WEBHOOK_ROUTE, reason });
    rejectLog.note(reason, { route: JIRA_WEBHOOK_ROUTE, status, message: message.slice(0, 300) }, 'jira webhook refused');
    return errorReply(reply, status, reason, message);
  }

  // The signature covers the exact bytes Jira sent, so keep them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: maxBodyBytes }, (_request, body, done) => done(null, body));

  app.addHook('onResponse', async (request, reply) => {
    metrics?.ingestRequests.inc({ route: JIRA_WEBHOOK_ROUTE, status: String(reply.statusCode) });
  });

  async function deadLetter(request: FastifyRequest, raw: Buffer, errorClass: string, message: string, key: string | null): Promise<void> {
    try {
      await withTimeout(
        producer.sendDeadLetter({ originalTopic: topic, partition: -1, offset: -1, key, value: raw, errorClass, message, stage: 'ingest', kind: 'jira' }),
        ackTimeoutMs,
        () => producer.markBrokersDown(),
      );
    } catch (err) {
      logger.error({ event: 'dead_letter_failed', kind: 'jira', error_class: errorClass, err: (err as Error).message }, 'could not write dead letter');
    }
  }

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return refused(reply, 413, 'oversize', `webhook body is larger than the limit of ${maxBodyBytes} bytes`);
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return refused(reply, 415, 'unsupported_media_type', 'send application/json');
    if (error instanceof StreamPulseError) {
      if (error.retriable) {
        metrics?.ingestRejectedRequests.inc({ route: JIRA_WEBHOOK_ROUTE, reason: 'unavailable_kafka' });
        rejectLog.note('unavailable_kafka', { route: JIRA_WEBHOOK_ROUTE, err: error.message.slice(0, 300) }, 'jira webhook not stored: Kafka unreachable');
        return errorReply(reply.header('retry-after', '5'), 503, 'unavailable', `webhook not stored: ${error.message}; Jira retries`);
      }
      logger.error({ event: 'jira_webhook_failed', code: error.code, err: error.message }, 'jira webhook not stored');
      return errorReply(reply, 500, 'internal', `webhook not stored: ${error.message}`);
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return refused(reply, error.statusCode, 'bad_request', error.message);
    logger.error({ event: 'jira_webhook_error', err: error }, 'unexpected jira webhook error');
    return errorReply(reply, 500, 'internal', 'internal error');
  });

  app.post<{ Body: Buffer | undefined }>(
    JIRA_WEBHOOK_ROUTE,
    {
      bodyLimit: maxBodyBytes,
      schema: {
        summary: 'Jira Cloud issue webhook',
        description:
          'Register this URL as a Jira Cloud webhook for issue created/updated/deleted, with the secret of JIRA_WEBHOOK_SECRET: ' +
          'X-Hub-Signature: sha256=<HMAC-SHA256 of the body> must match (401). Without a secret configured every webhook gets 403 unless JIRA_WEBHOOK_INSECURE=true. X-Atlassian-Webhook-Identifier makes the event_id.',
        tags: ['webhooks'],
        consumes: ['application/json'],
        response: {
          200: JiraWebhookReply,
          202: JiraIgnoredReply,
          400: JiraErrorReply,
          401: JiraErrorReply,
          403: JiraErrorReply,
          413: JiraErrorReply,
          415: JiraErrorReply,
          500: JiraErrorReply,
          503: JiraErrorReply,
        },
      },
    },
    async (request, reply) => {
      const raw = request.body ?? Buffer.alloc(0);
      if (!secret && !insecure) {
        return refused(
          reply,
          403,
          'webhook_not_configured',
          'this webhook is not configured: set JIRA_WEBHOOK_SECRET to the secret of the Jira webhook (Jira then signs each delivery with X-Hub-Signature), or JIRA_WEBHOOK_INSECURE=true to accept unsigned webhooks (local tests only)',
        );
      }
      if (secret && !verifyJiraSignature(raw, headerValue(request, SIGNATURE_HEADER), secret)) {
        return refused(
          reply,
          401,
          'bad_signature',
          `${SIGNATURE_HEADER} is missing or does not match the body (expected sha256=<hex HMAC-SHA256 of the raw body>)`,
        );
      }
      if (producer.brokersDownSince !== null) throw new KafkaError(`no Kafka broker answers since ${new Date(producer.brokersDownSince).toISOString()}`, true);
      const tooDeep = checkJsonBounds(raw, { maxDepth, maxStringBytes: maxBodyBytes });
      if (tooDeep) {
        const message = `webhook body refused before parsing: ${tooDeep.reason}`;
        await deadLetter(request, raw, tooDeep.errorClass, message, null);
        return refused(reply, 400, tooDeep.errorClass, message);
      }
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch (err) {
        const message = `webhook body is not valid JSON: ${(err as Error).message.slice(0, 300)}`;
        await deadLetter(request, raw, 'invalid_json', message, null);
        return refused(reply, 400, 'invalid_json', message);
      }
      const normalised = normaliseJiraWebhook(body, raw, headerValue(request, DELIVERY_ID_HEADER), fieldMap, now());
      if (normalised.outcome === 'ignore') return reply.code(202).send({ ignored: normalised.reason });
      if (normalised.outcome === 'dlq') {
        await deadLetter(request, raw, normalised.errorClass, normalised.reason, null);
        return refused(reply, 400, normalised.errorClass, normalised.reason);
      }
      const fields = (body as { issue?: { fields?: unknown } }).issue?.fields;
      if (customFieldIds.length > 0 && (typeof fields !== 'object' || fields === null || customFieldIds.every((id) => !(id in fields)))) {
        metrics?.jiraUnmappedFields.inc();
        rejectLog.note(
          'jira_fields_unmapped',
          { route: JIRA_WEBHOOK_ROUTE, issue_key: normalised.event.issue_key, field_ids: customFieldIds },
          'none of the custom field ids of JIRA_FIELD_MAP is in this Jira webhook: severity, show, cost and delay are stored empty; check JIRA_FIELD_MAP against the ids of your Jira site',
        );
      }
      const result = await withTimeout(producer.send('jira', [normalised.event]), ackTimeoutMs, () => producer.markBrokersDown());
      metrics?.ingestEvents.inc({ kind: 'jira', result: 'accepted' }, result.accepted);
      metrics?.ingestEvents.inc({ kind: 'jira', result: 'rejected' }, result.rejected);
      logger.debug(
        {
          event: 'jira_webhook',
          issue_key: normalised.event.issue_key,
          webhook_event: normalised.event.webhook_event,
          event_id: normalised.event.event_id,
          accepted: result.accepted,
        },
        'jira webhook',
      );
      return reply
        .code(result.rejected > 0 ? 400 : 200)
        .send(
          result.rejected > 0
            ? { error: 'schema_violation', message: result.errors.map((e) => e.reason).join('; ') }
            : { ...result, event_id: normalised.event.event_id },
        );
    },
  );
};

export default jiraWebhookPlugin;
