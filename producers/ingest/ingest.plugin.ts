/**
 * The HTTP ingest gateway: `POST /v1/events/:kind` takes a JSON array (or one JSON object) or
 * NDJSON, validates each event, produces the valid ones and answers
 * `{ accepted, rejected, errors: [{ index, reason }] }`. Rejected events go to the dead-letter
 * topic with the reason. Auth is an API key with role ingest or admin.
 *
 * The plugin is encapsulated on purpose (not wrapped with fastify-plugin): its raw-body content
 * type parsers, auth hook and error handler apply to its own routes only, never to the host app.
 */
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type {} from '@fastify/swagger'; // route schema fields summary, tags, consumes
import { Type, type Static } from '@sinclair/typebox';
import { EVENT_KINDS, isEventKind, topicSpec, type EventKind } from '../../contracts/topics.js';
import { StreamPulseError } from '../../lib/errors.js';
import type { Metrics } from '../../lib/metrics.js';
import type { EventProducer } from '../sdk/event-producer.js';
import { presentedApiKey, type ApiKeyStore, type Role, type VerifiedKey } from './api-keys.js';
import { parseEventsBody, type BodyEntry, type BodyFormat } from './parse-body.js';

export interface IngestPluginOptions {
  producer: EventProducer;
  apiKeys: ApiKeyStore;
  /** Largest request body accepted; larger ones get 413. */
  maxBodyBytes: number;
  /** Most events in one request; more get 400. */
  maxEvents: number;
  metrics?: Metrics;
}

export const INGEST_ROUTE = '/v1/events/:kind';
export const INGEST_ROLES: ReadonlySet<Role> = new Set<Role>(['ingest', 'admin']);
export const NDJSON_CONTENT_TYPES = ['application/x-ndjson', 'application/ndjson'] as const;

export const IngestParams = Type.Object({
  kind: Type.String({ description: `Event kind: one of ${EVENT_KINDS.join(', ')}`, examples: ['playback'] }),
});

export const IngestErrorItem = Type.Object({
  index: Type.Integer({ description: '0-based position of the event in the array, or 0-based line number in NDJSON' }),
  reason: Type.String({ description: '`<error class>: <what is wrong>`, e.g. `schema_violation: seq: expected int, got "x"`' }),
});

export const IngestReply = Type.Object({
  accepted: Type.Integer({ description: 'events acknowledged by Kafka' }),
  rejected: Type.Integer({ description: 'events rejected (each is in the dead-letter topic)' }),
  errors: Type.Array(IngestErrorItem),
});
export type IngestReply = Static<typeof IngestReply>;

export const ErrorReply = Type.Object({
  error: Type.String({ description: 'stable error code, e.g. unauthorized, oversize, invalid_json, too_many_events, unknown_kind' }),
  message: Type.String(),
  kinds: Type.Optional(Type.Array(Type.String(), { description: 'the known event kinds (on unknown_kind)' })),
});
export type ErrorReply = Static<typeof ErrorReply>;

function errorReply(reply: FastifyReply, status: number, error: string, message: string, extra: Partial<ErrorReply> = {}): FastifyReply {
  return reply.code(status).send({ error, message, ...extra } satisfies ErrorReply);
}

function bodyFormat(contentType: string | undefined): BodyFormat {
  const mediaType = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return (NDJSON_CONTENT_TYPES as readonly string[]).includes(mediaType) ? 'ndjson' : 'json';
}

export const ingestPlugin: FastifyPluginAsync<IngestPluginOptions> = async (app, opts) => {
  const { producer, apiKeys, maxBodyBytes, maxEvents, metrics } = opts;
  const callers = new WeakMap<FastifyRequest, VerifiedKey>();
  const topicOf = (kind: string) => `${producer.topicPrefix}${kind}`;

  // Keep the raw bytes: NDJSON is split here, and dead letters carry what was sent.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(['application/json', ...NDJSON_CONTENT_TYPES], { parseAs: 'buffer', bodyLimit: maxBodyBytes }, (_request, body, done) => done(null, body));

  app.addHook('onRequest', async (request, reply) => {
    const key = presentedApiKey(request.headers);
    if (key === null) {
      return errorReply(reply.header('www-authenticate', 'Bearer'), 401, 'unauthorized', 'missing API key: send it in the x-api-key header or as authorization: Bearer <key>');
    }
    const verified = await apiKeys.verify(key);
    if (verified === null) return errorReply(reply.header('www-authenticate', 'Bearer'), 401, 'unauthorized', 'unknown API key');
    if (!INGEST_ROLES.has(verified.role)) {
      return errorReply(reply, 403, 'forbidden', `API key ${verified.keyId} has role ${verified.role}; ingest needs role ingest or admin`);
    }
    callers.set(request, verified);
  });

  app.addHook('onResponse', async (request, reply) => {
    metrics?.ingestRequests.inc({ route: INGEST_ROUTE, status: String(reply.statusCode) });
  });

  /** Dead letter for a whole request (unknown kind, unparseable or oversize body); failures are logged, not thrown. */
  async function deadLetterRequest(request: FastifyRequest, kind: string, errorClass: string, message: string, value: Buffer | null): Promise<void> {
    try {
      await producer.sendDeadLetter({ originalTopic: topicOf(kind), partition: -1, offset: -1, key: null, value, errorClass, message, stage: 'ingest', kind });
    } catch (err) {
      request.log.error({ event: 'dead_letter_failed', kind, error_class: errorClass, err: (err as Error).message }, 'could not write dead letter');
    }
  }

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const kind = String((request.params as { kind?: string } | undefined)?.kind ?? '').slice(0, 100);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const declared = request.headers['content-length'];
      const message = `request body${declared ? ` of ${declared} bytes` : ''} is larger than the limit of ${maxBodyBytes} bytes; send fewer events per request`;
      await deadLetterRequest(request, kind, 'oversize', message, null);
      return errorReply(reply, 413, 'oversize', message);
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return errorReply(reply, 415, 'unsupported_media_type', `content-type ${request.headers['content-type'] ?? '(none)'} is not accepted; send application/json (an array or one event) or application/x-ndjson`);
    }
    if (error.validation) return errorReply(reply, 400, 'bad_request', error.message);
    if (error instanceof StreamPulseError) {
      request.log.error({ event: 'ingest_failed', code: error.code, retriable: error.retriable, err: error.message }, 'ingest could not produce');
      if (error.retriable) reply.header('retry-after', '1');
      return errorReply(reply, error.retriable ? 503 : 500, error.retriable ? 'unavailable' : 'internal', `events were not stored: ${error.message}; retry the request (event_id makes retries safe)`);
    }
    if (error.statusCode && error.statusCode < 500) return errorReply(reply, error.statusCode, 'bad_request', error.message);
    request.log.error({ event: 'ingest_error', err: error }, 'unexpected ingest error');
    return errorReply(reply, 500, 'internal', 'internal error');
  });

  app.post<{ Params: Static<typeof IngestParams>; Body: Buffer | undefined; Reply: IngestReply | ErrorReply }>(
    INGEST_ROUTE,
    {
      bodyLimit: maxBodyBytes,
      schema: {
        summary: 'Ingest events of one kind',
        description:
          `Body: a JSON array of events or one event (application/json), or one event per line (application/x-ndjson). ` +
          `At most ${maxEvents} events and ${maxBodyBytes} bytes per request. Each event is validated against its Avro contract; ` +
          `valid ones are stored, invalid ones are reported by index and kept in the dead-letter topic. ` +
          `Auth: x-api-key header or Authorization: Bearer <key>, role ingest or admin.`,
        tags: ['ingest'],
        consumes: ['application/json', ...NDJSON_CONTENT_TYPES],
        params: IngestParams,
        response: { 200: IngestReply, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 413: ErrorReply, 415: ErrorReply, 500: ErrorReply, 503: ErrorReply },
      },
    },
    async (request, reply) => {
      const { kind } = request.params;
      const raw = request.body ?? Buffer.alloc(0);
      if (!isEventKind(kind)) {
        const message = `unknown event kind "${kind.slice(0, 100)}"; known kinds: ${EVENT_KINDS.join(', ')}`;
        if (raw.length > 0) await deadLetterRequest(request, kind, 'unknown_kind', message, raw);
        return errorReply(reply, 404, 'unknown_kind', message, { kinds: [...EVENT_KINDS] });
      }
      const parsed = parseEventsBody(raw, bodyFormat(request.headers['content-type']));
      if (!parsed.ok) {
        if (raw.length > 0) await deadLetterRequest(request, kind, 'invalid_json', parsed.reason, raw);
        return errorReply(reply, 400, 'invalid_json', parsed.reason);
      }
      if (parsed.entries.length > maxEvents) {
        return errorReply(reply, 400, 'too_many_events', `${parsed.entries.length} events in one request; the limit is ${maxEvents}: split the batch`);
      }
      const result = await ingestEntries(kind, parsed.entries);
      metrics?.ingestEvents.inc({ kind, result: 'accepted' }, result.accepted);
      metrics?.ingestEvents.inc({ kind, result: 'rejected' }, result.rejected);
      request.log.info({ event: 'ingest_batch', kind, key_id: callers.get(request)?.keyId, accepted: result.accepted, rejected: result.rejected }, 'ingest batch');
      return reply.code(200).send(result);
    },
  );

  /** Produces the parsed events, dead-letters the unparseable lines and merges both answers by index. */
  async function ingestEntries(kind: EventKind, entries: readonly BodyEntry[]): Promise<IngestReply> {
    const indexes: number[] = [];
    const events: unknown[] = [];
    const errors: IngestReply['errors'] = [];
    const lineDeadLetters: Promise<void>[] = [];
    const topic = topicSpec(producer.topicPrefix, kind).topic;
    for (const entry of entries) {
      if (entry.ok) {
        indexes.push(entry.index);
        events.push(entry.event);
      } else {
        errors.push({ index: entry.index, reason: `invalid_json: ${entry.reason}` });
        lineDeadLetters.push(producer.sendDeadLetter({ originalTopic: topic, partition: -1, offset: -1, key: null, value: entry.raw, errorClass: 'invalid_json', message: entry.reason, stage: 'ingest', kind }));
      }
    }
    const [sent] = await Promise.all([events.length > 0 ? producer.send(kind, events) : Promise.resolve({ accepted: 0, rejected: 0, errors: [] }), ...lineDeadLetters]);
    for (const e of sent.errors) errors.push({ index: indexes[e.index]!, reason: e.reason });
    errors.sort((a, b) => a.index - b.index);
    return { accepted: sent.accepted, rejected: sent.rejected + lineDeadLetters.length, errors };
  }
};

export default ingestPlugin;
