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
import rateLimit from '@fastify/rate-limit';
import type { Redis } from 'ioredis';
import { Type, type Static } from '@sinclair/typebox';
import { EVENT_KINDS, isEventKind, topicSpec, type EventKind } from '../../contracts/topics.js';
import { KafkaError, StreamPulseError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { EventProducer, SendResult } from '../sdk/event-producer.js';
import { keyRefusalMessage, lookupApiKey, presentedApiKey, type ApiKeyStore, type Role, type VerifiedKey } from './api-keys.js';
import { EventRateLimiter } from './event-rate-limit.js';
import { parseEventsBody, type BodyEntry, type BodyFormat, type JsonBounds } from './parse-body.js';
import { RateLimitedRejectLog } from './reject-log.js';
import { isRedisUnavailable } from './redis-errors.js';

export interface IngestRateLimits {
  /** Redis shared by every gateway process (counters live under `prefix`). */
  redis: Redis;
  prefix: string;
  /** Requests per second per API key (checked before the body is read). */
  requestsPerSecond: number;
  /** Events per second per API key (checked after parsing, before validation). */
  eventsPerSecond: number;
  /** Clock of the events/s windows (default Date.now; tests inject one). */
  now?: () => number;
}

export interface IngestPluginOptions {
  producer: EventProducer;
  apiKeys: ApiKeyStore;
  /** Largest request body accepted; larger ones get 413. */
  maxBodyBytes: number;
  /** Most events in one request; more get 400. */
  maxEvents: number;
  /** Nesting depth and string length checked on the raw bytes before parsing (default 32 and 64 KiB). */
  bounds?: JsonBounds;
  /** Per-key rate limits (429 + Retry-After); none when absent. */
  rateLimits?: IngestRateLimits;
  /** Longest wait for Kafka's acknowledgement before answering 503 (default 10 s). */
  ackTimeoutMs?: number;
  metrics?: Metrics;
  /** Logger for refusals and failures (default: the Fastify instance's). */
  logger?: Logger;
  /** Refusals are logged once per reason per this interval, with a count (default 10 s). */
  rejectLogIntervalMs?: number;
}

export const DEFAULT_JSON_BOUNDS: JsonBounds = { maxDepth: 32, maxStringBytes: 64 * 1024 };
export const DEFAULT_ACK_TIMEOUT_MS = 10_000;
/** Retry-After (s) when Kafka or Redis cannot be reached. */
export const UNAVAILABLE_RETRY_AFTER_S = 5;

/** A request refused with a 4xx: the error handler answers, counts, logs and dead-letters it. */
export class IngestRefusal extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    /** Dead-letter this (Buffer, or null for a body that was not read); undefined: no dead letter. */
    readonly deadLetter?: Buffer | null,
    readonly extra: Partial<ErrorReply> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
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
  error: Type.String({ description: 'stable error code: unauthorized, forbidden, rate_limited, oversize, invalid_json, too_deep, string_too_long, too_many_events, unknown_kind, unsupported_media_type, bad_request, unavailable' }),
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

function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new KafkaError(`${what}: no acknowledgement from Kafka within ${ms} ms`, true));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export const ingestPlugin: FastifyPluginAsync<IngestPluginOptions> = async (app, opts) => {
  const { producer, apiKeys, maxBodyBytes, maxEvents, metrics } = opts;
  const bounds = opts.bounds ?? DEFAULT_JSON_BOUNDS;
  const ackTimeoutMs = opts.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
  const logger = opts.logger ?? (app.log as unknown as Logger);
  const rejectLog = new RateLimitedRejectLog(logger, opts.rejectLogIntervalMs ?? 10_000);
  const flushTimer = setInterval(() => rejectLog.flush(), rejectLog.intervalMs);
  flushTimer.unref();
  app.addHook('onClose', async () => {
    clearInterval(flushTimer);
    rejectLog.flush();
  });
  const eventLimiter = opts.rateLimits ? new EventRateLimiter(opts.rateLimits.redis, opts.rateLimits.prefix, opts.rateLimits.eventsPerSecond, opts.rateLimits.now) : null;
  const callers = new WeakMap<FastifyRequest, VerifiedKey>();
  const topicOf = (kind: string) => `${producer.topicPrefix}${kind}`;
  const kindOf = (request: FastifyRequest) => String((request.params as { kind?: string } | undefined)?.kind ?? '').slice(0, 100);

  // Keep the raw bytes: NDJSON is split here, and dead letters carry what was sent.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(['application/json', ...NDJSON_CONTENT_TYPES], { parseAs: 'buffer', bodyLimit: maxBodyBytes }, (_request, body, done) => done(null, body));

  app.addHook('onRequest', async (request) => {
    const key = presentedApiKey(request.headers);
    if (key === null) {
      throw new IngestRefusal(401, 'unauthorized', 'missing API key: send it in the x-api-key header or as authorization: Bearer <key>', undefined, {}, { 'www-authenticate': 'Bearer' });
    }
    const found = await lookupApiKey(apiKeys, key);
    if (found.status !== 'ok') throw new IngestRefusal(401, 'unauthorized', keyRefusalMessage(found), undefined, {}, { 'www-authenticate': 'Bearer' });
    if (!INGEST_ROLES.has(found.role)) {
      throw new IngestRefusal(403, 'forbidden', `API key ${found.keyId} has role ${found.role}; ingest needs role ingest or admin`);
    }
    callers.set(request, { role: found.role, keyId: found.keyId });
  });

  // Requests per second per key, before the body is read: a route-level onRequest hook, so it runs
  // after the auth hook above and counts by key id. Counters in Redis hold across processes.
  if (opts.rateLimits) {
    const limits = opts.rateLimits;
    await app.register(rateLimit, {
      global: true,
      max: limits.requestsPerSecond,
      timeWindow: 1000,
      redis: limits.redis,
      nameSpace: `${limits.prefix}ingest-rps:`,
      skipOnError: false,
      keyGenerator: (request) => callers.get(request)?.keyId ?? request.ip,
      errorResponseBuilder: (_request, context) =>
        new IngestRefusal(429, 'rate_limited', `more than ${context.max} requests per second for this API key; retry in ${context.after}`, undefined, {}, { 'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))) }),
    });
  }

  app.addHook('onResponse', async (request, reply) => {
    metrics?.ingestRequests.inc({ route: INGEST_ROUTE, status: String(reply.statusCode) });
  });

  /** Dead letter for a whole request (bounded by sendDeadLetter); failures are logged, not thrown. */
  async function deadLetterRequest(kind: string, errorClass: string, message: string, value: Buffer | null): Promise<void> {
    try {
      await withTimeout(producer.sendDeadLetter({ originalTopic: topicOf(kind), partition: -1, offset: -1, key: null, value, errorClass, message, stage: 'ingest', kind }), ackTimeoutMs, 'dead letter', () => producer.markBrokersDown());
    } catch (err) {
      logger.error({ event: 'dead_letter_failed', kind, error_class: errorClass, err: (err as Error).message }, 'could not write dead letter');
    }
  }

  /** Every 4xx goes through here: counted by reason, logged (rate-limited), dead-lettered when it carried events. */
  async function refuse(request: FastifyRequest, reply: FastifyReply, r: IngestRefusal): Promise<FastifyReply> {
    const kind = kindOf(request);
    metrics?.ingestRejectedRequests.inc({ route: INGEST_ROUTE, reason: r.reason });
    rejectLog.note(r.reason, { status: r.status, kind, key_id: callers.get(request)?.keyId, ip: request.ip, message: r.message.slice(0, 300) });
    if (r.deadLetter !== undefined) await deadLetterRequest(kind, r.reason, r.message, r.deadLetter);
    for (const [k, v] of Object.entries(r.headers)) reply.header(k, v);
    return errorReply(reply, r.status, r.reason, r.message, r.extra);
  }

  function unavailable(request: FastifyRequest, reply: FastifyReply, dependency: string, detail: string): FastifyReply {
    metrics?.ingestRejectedRequests.inc({ route: INGEST_ROUTE, reason: `unavailable_${dependency}` });
    rejectLog.note(`unavailable_${dependency}`, { status: 503, kind: kindOf(request), err: detail.slice(0, 300) }, `ingest unavailable: ${dependency}`);
    reply.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_S));
    return errorReply(reply, 503, 'unavailable', `${dependency} is unreachable (${detail}); nothing of this request was stored: retry after ${UNAVAILABLE_RETRY_AFTER_S} s (event_id makes retries safe)`);
  }

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    if (error instanceof IngestRefusal) return refuse(request, reply, error);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const declared = request.headers['content-length'];
      const message = `request body${declared ? ` of ${declared} bytes` : ''} is larger than the limit of ${maxBodyBytes} bytes; send fewer events per request`;
      return refuse(request, reply, new IngestRefusal(413, 'oversize', message, null));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return refuse(request, reply, new IngestRefusal(415, 'unsupported_media_type', `content-type ${String(request.headers['content-type'] ?? '(none)').slice(0, 100)} is not accepted; send application/json (an array or one event) or application/x-ndjson`));
    }
    if (error.validation) return refuse(request, reply, new IngestRefusal(400, 'bad_request', error.message));
    if (error instanceof StreamPulseError) {
      if (error.retriable) return unavailable(request, reply, error.code === 'STATE_STORE' ? 'redis' : 'kafka', error.message);
      logger.error({ event: 'ingest_failed', code: error.code, err: error.message }, 'ingest could not produce');
      return errorReply(reply, 500, 'internal', `events were not stored: ${error.message}`);
    }
    if (isRedisUnavailable(error)) return unavailable(request, reply, 'redis', error.message);
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return refuse(request, reply, new IngestRefusal(error.statusCode, 'bad_request', error.message));
    logger.error({ event: 'ingest_error', err: error }, 'unexpected ingest error');
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
          `At most ${maxEvents} events and ${maxBodyBytes} bytes per request, JSON nested at most ${bounds.maxDepth} deep, strings at most ${bounds.maxStringBytes} bytes` +
          (opts.rateLimits ? `, at most ${opts.rateLimits.requestsPerSecond} requests and ${opts.rateLimits.eventsPerSecond} events per second per API key (429 with Retry-After beyond)` : '') +
          `. Each event is validated against its Avro contract; valid ones are stored, invalid ones are reported by index and kept in the dead-letter topic. ` +
          `Auth: x-api-key header or Authorization: Bearer <key>, role ingest or admin.`,
        tags: ['ingest'],
        consumes: ['application/json', ...NDJSON_CONTENT_TYPES],
        params: IngestParams,
        response: { 200: IngestReply, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 413: ErrorReply, 415: ErrorReply, 429: ErrorReply, 500: ErrorReply, 503: ErrorReply },
      },
    },
    async (request, reply) => {
      const { kind } = request.params;
      const raw = request.body ?? Buffer.alloc(0);
      if (!isEventKind(kind)) {
        const message = `unknown event kind "${kind.slice(0, 100)}"; known kinds: ${EVENT_KINDS.join(', ')}`;
        throw new IngestRefusal(404, 'unknown_kind', message, raw.length > 0 ? raw : undefined, { kinds: [...EVENT_KINDS] });
      }
      if (producer.brokersDownSince !== null) {
        throw new KafkaError(`no Kafka broker answers since ${new Date(producer.brokersDownSince).toISOString()}`, true);
      }
      const parsed = parseEventsBody(raw, bodyFormat(request.headers['content-type']), bounds);
      if (!parsed.ok) throw new IngestRefusal(400, parsed.errorClass, parsed.reason, raw.length > 0 ? raw : undefined);
      if (parsed.entries.length > maxEvents) {
        throw new IngestRefusal(400, 'too_many_events', `${parsed.entries.length} events in one request; the limit is ${maxEvents}: split the batch`, raw);
      }
      const caller = callers.get(request);
      if (eventLimiter && caller && parsed.entries.length > 0) {
        const d = await eventLimiter.take(caller.keyId, parsed.entries.length);
        if (!d.allowed) {
          throw new IngestRefusal(429, 'rate_limited', `${parsed.entries.length} more events would exceed ${d.limit} events per second for this API key (${d.used} counted this second); retry in ${d.retryAfterSeconds} s or send smaller batches`, undefined, {}, { 'retry-after': String(d.retryAfterSeconds) });
        }
      }
      const result = await ingestEntries(kind, parsed.entries);
      metrics?.ingestEvents.inc({ kind, result: 'accepted' }, result.accepted);
      metrics?.ingestEvents.inc({ kind, result: 'rejected' }, result.rejected);
      request.log.debug({ event: 'ingest_batch', kind, key_id: caller?.keyId, accepted: result.accepted, rejected: result.rejected }, 'ingest batch');
      return reply.code(200).send(result);
    },
  );

  /** Produces the parsed events, dead-letters the lines refused before parsing and merges both answers by index. */
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
        errors.push({ index: entry.index, reason: `${entry.errorClass}: ${entry.reason}` });
        lineDeadLetters.push(producer.sendDeadLetter({ originalTopic: topic, partition: -1, offset: -1, key: null, value: entry.raw, errorClass: entry.errorClass, message: entry.reason, stage: 'ingest', kind }));
      }
    }
    const none: Promise<SendResult> = Promise.resolve({ accepted: 0, rejected: 0, errors: [] });
    const [sent] = await withTimeout(Promise.all([events.length > 0 ? producer.send(kind, events) : none, ...lineDeadLetters]), ackTimeoutMs, `${kind} events`, () => producer.markBrokersDown());
    for (const e of sent.errors) errors.push({ index: indexes[e.index]!, reason: e.reason });
    errors.sort((a, b) => a.index - b.index);
    return { accepted: sent.accepted, rejected: sent.rejected + lineDeadLetters.length, errors };
  }
};

export default ingestPlugin;
