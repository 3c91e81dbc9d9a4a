/**
 * The HTTP ingest gateway: `POST /v1/events/:kind` takes a JSON array (or one JSON object) or
 * NDJSON (also as `text/plain`, what navigator.sendBeacon sends, and gzip-encoded), validates each
 * event, produces the valid ones and answers
 * `{ accepted, rejected, errors: [{ index, reason }] }`. Rejected events go to the dead-letter
 * topic with the reason. Auth is an API key with role ingest or admin.
 *
 * The plugin is encapsulated on purpose (not wrapped with fastify-plugin): its raw-body content
 * type parsers, auth hook and error handler apply to its own routes only, never to the host app.
 */
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { errorCodes, type FastifyError, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import type {} from '@fastify/swagger'; // route schema fields summary, tags, consumes
import rateLimit from '@fastify/rate-limit';
import type { Redis } from 'ioredis';
import { Type, type Static } from '@sinclair/typebox';
import { EVENT_KINDS, isEventKind, type EventKind } from '../../contracts/topics.js';
import { KafkaError, StreamPulseError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { EventProducer } from '../sdk/event-producer.js';
import { BodyPool, readBody, type BodyErrors, type Lease } from './body-pool.js';
import { keyRefusalMessage, lookupApiKey, presentedApiKey, type ApiKeyStore, type Role, type VerifiedKey } from './api-keys.js';
import { EventRateLimiter } from './event-rate-limit.js';
import { countNdjsonEntries, NdjsonCursor, parseJsonBody, type BodyEntry, type BodyFormat, type JsonBounds } from './parse-body.js';
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
  /** Origins whose pages may call the route (CORS; `*`: any); none: no CORS headers, no preflight route. */
  corsOrigins?: readonly string[];
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
/** navigator.sendBeacon with a string sends text/plain (a "simple" type: no CORS preflight). */
export const BEACON_CONTENT_TYPE = 'text/plain';
/** Content-Encoding values taken; `gzip` is inflated with the body limit as the bound of the inflated bytes. */
export const GZIP_ENCODINGS: ReadonlySet<string> = new Set(['gzip', 'x-gzip']);
/** Request headers a page may send (the preflight's Access-Control-Allow-Headers). */
export const CORS_ALLOWED_HEADERS = 'content-type, content-encoding, x-api-key, authorization';
export const CORS_MAX_AGE_S = 600;

const gunzipAsync = promisify(gunzip);

/** Largest request body whose buffer is reused (producers/ingest/body-pool.ts); larger ones get their own. */
export const MAX_POOLED_BODY_BYTES = 8 * 1024 * 1024;
/** Most bytes of free body buffers kept for reuse. */
export const MAX_POOLED_BYTES = 32 * 1024 * 1024;

/** Fastify's own errors for a body over the limit or not of its content-length (the error handler answers them). */
const BODY_ERRORS: BodyErrors = {
  tooLarge: () => new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(),
  invalidContentLength: () => new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH(),
};

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
  error: Type.String({
    description:
      'stable error code: unauthorized, forbidden, rate_limited, oversize, invalid_json, too_deep, string_too_long, too_many_events, unknown_kind, unsupported_media_type, unsupported_encoding, bad_encoding, bad_request, unavailable',
  }),
  message: Type.String(),
  kinds: Type.Optional(Type.Array(Type.String(), { description: 'the known event kinds (on unknown_kind)' })),
});
export type ErrorReply = Static<typeof ErrorReply>;

function errorReply(reply: FastifyReply, status: number, error: string, message: string, extra: Partial<ErrorReply> = {}): FastifyReply {
  return reply.code(status).send({ error, message, ...extra } satisfies ErrorReply);
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * NDJSON types are NDJSON, application/json is JSON; text/plain (a beacon) is JSON when its first
 * character that is not white space is `[` (an array of events), else NDJSON (one event per line,
 * which also covers one event on one line).
 */
function bodyFormat(contentType: string | undefined, body: Buffer): BodyFormat {
  const mediaType = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if ((NDJSON_CONTENT_TYPES as readonly string[]).includes(mediaType)) return 'ndjson';
  if (mediaType !== BEACON_CONTENT_TYPE) return 'json';
  let i = 0;
  while (i < body.length && WHITESPACE.has(body[i]!)) i++;
  return body[i] === 0x5b ? 'json' : 'ndjson';
}

function contentEncoding(request: FastifyRequest): string {
  const v = request.headers['content-encoding'];
  return (Array.isArray(v) ? v.join(',') : (v ?? '')).trim().toLowerCase();
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

/**
 * The key of a beacon: navigator.sendBeacon cannot set headers, so a page puts its key in the URL
 * (`?api_key=`). Only keys of role ingest are taken there (checked after the lookup): such a key is
 * public anyway, it ships in the page's JavaScript; an admin key in a URL (proxy logs, history) is not.
 */
function beaconKey(request: FastifyRequest): string | null {
  const q = (request.query as Record<string, unknown> | undefined)?.api_key;
  const v: unknown = Array.isArray(q) ? q[0] : q;
  return typeof v === 'string' && v.trim() ? v.trim() : null;
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
  const eventLimiter = opts.rateLimits
    ? new EventRateLimiter(opts.rateLimits.redis, opts.rateLimits.prefix, opts.rateLimits.eventsPerSecond, opts.rateLimits.now)
    : null;
  const callers = new WeakMap<FastifyRequest, VerifiedKey>();
  const topicOf = (kind: string) => `${producer.topicPrefix}${kind}`;
  const kindOf = (request: FastifyRequest) => String((request.params as { kind?: string } | undefined)?.kind ?? '').slice(0, 100);

  // Keep the raw bytes: NDJSON is split here, and dead letters carry what was sent. The bytes are
  // read into a reused buffer (body-pool.ts: a new 1.2 MB Buffer per request drove V8's
  // external-memory limit and a full mark about every second), with the limits and errors of
  // Fastify's buffer parser; the buffer goes back when the answer is sent and no send reads it.
  const bodies = new BodyPool(Math.min(maxBodyBytes, MAX_POOLED_BODY_BYTES), MAX_POOLED_BYTES);
  const leases = new WeakMap<FastifyRequest, Lease>();
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(['application/json', ...NDJSON_CONTENT_TYPES, BEACON_CONTENT_TYPE], (request, payload, done) => {
    readBody(request.headers['content-length'], payload, maxBodyBytes, bodies, BODY_ERRORS, (err, body, lease) => {
      if (lease) leases.set(request, lease);
      if (err) done(err, undefined);
      else done(null, body);
    });
  });

  // CORS for pages of the configured origins: the headers go on every answer (refusals too, so a
  // page can read a 401 or 429), and the preflight of a fetch with x-api-key or NDJSON is answered
  // without a key. Beacons (text/plain, key in the URL) need no preflight.
  const corsOrigins = new Set(opts.corsOrigins ?? []);
  if (corsOrigins.size > 0) {
    const anyOrigin = corsOrigins.has('*');
    app.addHook('onRequest', async (request, reply) => {
      const origin = request.headers.origin;
      if (!origin || !(anyOrigin || corsOrigins.has(origin))) return;
      reply.header('access-control-allow-origin', anyOrigin ? '*' : origin);
      if (!anyOrigin) reply.header('vary', 'origin');
      reply.header('access-control-expose-headers', 'retry-after');
    });
    app.options(INGEST_ROUTE, { config: { rateLimit: false }, schema: { hide: true } }, async (_request, reply) => {
      if (reply.hasHeader('access-control-allow-origin')) {
        reply.header('access-control-allow-methods', 'POST');
        reply.header('access-control-allow-headers', CORS_ALLOWED_HEADERS);
        reply.header('access-control-max-age', String(CORS_MAX_AGE_S));
      }
      return reply.code(204).send();
    });
  }

  app.addHook('onRequest', async (request) => {
    if (request.method === 'OPTIONS') return; // the CORS preflight: no key, no body
    const fromHeader = presentedApiKey(request.headers);
    const viaUrl = fromHeader === null ? beaconKey(request) : null;
    const key = fromHeader ?? viaUrl;
    if (key === null) {
      throw new IngestRefusal(
        401,
        'unauthorized',
        'missing API key: send it in the x-api-key header or as authorization: Bearer <key> (beacons, which cannot set headers: an ingest key as ?api_key=)',
        undefined,
        {},
        { 'www-authenticate': 'Bearer' },
      );
    }
    const found = await lookupApiKey(apiKeys, key);
    if (found.status !== 'ok') throw new IngestRefusal(401, 'unauthorized', keyRefusalMessage(found), undefined, {}, { 'www-authenticate': 'Bearer' });
    if (!INGEST_ROLES.has(found.role)) {
      throw new IngestRefusal(403, 'forbidden', `API key ${found.keyId} has role ${found.role}; ingest needs role ingest or admin`);
    }
    if (viaUrl !== null && found.role !== 'ingest') {
      throw new IngestRefusal(
        401,
        'unauthorized',
        `API key ${found.keyId} has role ${found.role}: only keys of role ingest are taken from the URL (api_key, for beacons); send this one in the x-api-key header`,
        undefined,
        {},
        { 'www-authenticate': 'Bearer' },
      );
    }
    callers.set(request, { role: found.role, keyId: found.keyId });
    // Refused before the body is read, like an unsupported media type.
    const encoding = contentEncoding(request);
    if (encoding !== '' && encoding !== 'identity' && !GZIP_ENCODINGS.has(encoding)) {
      throw new IngestRefusal(
        415,
        'unsupported_encoding',
        `content-encoding ${encoding.slice(0, 100)} is not accepted; send the body as it is or gzip-encoded (content-encoding: gzip)`,
      );
    }
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
        new IngestRefusal(
          429,
          'rate_limited',
          `more than ${context.max} requests per second for this API key; retry in ${context.after}`,
          undefined,
          {},
          { 'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))) },
        ),
    });
  }

  app.addHook('onResponse', async (request, reply) => {
    leases.get(request)?.release();
    leases.delete(request);
    metrics?.ingestRequests.inc({ route: INGEST_ROUTE, status: String(reply.statusCode) });
  });

  /** Dead letter for a whole request (bounded by sendDeadLetter); failures are logged, not thrown. */
  async function deadLetterRequest(kind: string, errorClass: string, message: string, value: Buffer | null): Promise<void> {
    try {
      await withTimeout(
        producer.sendDeadLetter({ originalTopic: topicOf(kind), partition: -1, offset: -1, key: null, value, errorClass, message, stage: 'ingest', kind }),
        ackTimeoutMs,
        'dead letter',
        () => producer.markBrokersDown(),
      );
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
    return errorReply(
      reply,
      503,
      'unavailable',
      `${dependency} is unreachable (${detail}); nothing of this request was stored: retry after ${UNAVAILABLE_RETRY_AFTER_S} s (event_id makes retries safe)`,
    );
  }

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    if (error instanceof IngestRefusal) return refuse(request, reply, error);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const declared = request.headers['content-length'];
      const message = `request body${declared ? ` of ${declared} bytes` : ''} is larger than the limit of ${maxBodyBytes} bytes; send fewer events per request`;
      return refuse(request, reply, new IngestRefusal(413, 'oversize', message, null));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return refuse(
        request,
        reply,
        new IngestRefusal(
          415,
          'unsupported_media_type',
          `content-type ${String(request.headers['content-type'] ?? '(none)').slice(0, 100)} is not accepted; send application/json (an array or one event) or application/x-ndjson`,
        ),
      );
    }
    if (error.validation) return refuse(request, reply, new IngestRefusal(400, 'bad_request', error.message));
    if (error instanceof StreamPulseError) {
      if (error.retriable) return unavailable(request, reply, error.code === 'STATE_STORE' ? 'redis' : 'kafka', error.message);
      logger.error({ event: 'ingest_failed', code: error.code, err: error.message }, 'ingest could not produce');
      return errorReply(reply, 500, 'internal', `events were not stored: ${error.message}`);
    }
    if (isRedisUnavailable(error)) return unavailable(request, reply, 'redis', error.message);
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500)
      return refuse(request, reply, new IngestRefusal(error.statusCode, 'bad_request', error.message));
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
          `Body: a JSON array of events or one event (application/json), or one event per line (application/x-ndjson); ` +
          `text/plain (navigator.sendBeacon) is read as a JSON array when it starts with [, else as NDJSON; content-encoding: gzip is inflated (the byte limit applies to both sides). ` +
          `At most ${maxEvents} events and ${maxBodyBytes} bytes per request, JSON nested at most ${bounds.maxDepth} deep, strings at most ${bounds.maxStringBytes} bytes` +
          (opts.rateLimits
            ? `, at most ${opts.rateLimits.requestsPerSecond} requests and ${opts.rateLimits.eventsPerSecond} events per second per API key (429 with Retry-After beyond)`
            : '') +
          `. Each event is validated against its Avro contract; valid ones are stored, invalid ones are reported by index and kept in the dead-letter topic. ` +
          `Auth: x-api-key header or Authorization: Bearer <key>, role ingest or admin; beacons, which cannot set headers, may put a key of role ingest in the URL (?api_key=).`,
        tags: ['ingest'],
        consumes: ['application/json', ...NDJSON_CONTENT_TYPES, BEACON_CONTENT_TYPE],
        params: IngestParams,
        response: {
          200: IngestReply,
          400: ErrorReply,
          401: ErrorReply,
          403: ErrorReply,
          404: ErrorReply,
          413: ErrorReply,
          415: ErrorReply,
          429: ErrorReply,
          500: ErrorReply,
          503: ErrorReply,
        },
      },
    },
    async (request, reply) => {
      const { kind } = request.params;
      const raw = await inflated(request.body ?? Buffer.alloc(0), contentEncoding(request));
      if (!isEventKind(kind)) {
        const message = `unknown event kind "${kind.slice(0, 100)}"; known kinds: ${EVENT_KINDS.join(', ')}`;
        throw new IngestRefusal(404, 'unknown_kind', message, raw.length > 0 ? raw : undefined, { kinds: [...EVENT_KINDS] });
      }
      if (producer.brokersDownSince !== null) {
        throw new KafkaError(`no Kafka broker answers since ${new Date(producer.brokersDownSince).toISOString()}`, true);
      }
      // NDJSON (the bulk path) is counted first and parsed line by line while producing, so no
      // request's worth of parsed events lives through the events/s check and Kafka's answer.
      const format = bodyFormat(request.headers['content-type'], raw);
      let entries: readonly BodyEntry[] | null = null;
      let count: number;
      if (format === 'ndjson') count = countNdjsonEntries(raw);
      else {
        const parsed = parseJsonBody(raw, bounds);
        if (!parsed.ok) throw new IngestRefusal(400, parsed.errorClass, parsed.reason, raw.length > 0 ? raw : undefined);
        entries = parsed.entries;
        count = entries.length;
      }
      if (count > maxEvents) {
        throw new IngestRefusal(400, 'too_many_events', `${count} events in one request; the limit is ${maxEvents}: split the batch`, raw);
      }
      const caller = callers.get(request);
      if (eventLimiter && caller && count > 0) {
        const d = await eventLimiter.take(caller.keyId, count);
        if (!d.allowed) {
          throw new IngestRefusal(
            429,
            'rate_limited',
            `${count} more events would exceed ${d.limit} events per second for this API key (${d.used} counted this second); retry in ${d.retryAfterSeconds} s or send smaller batches`,
            undefined,
            {},
            { 'retry-after': String(d.retryAfterSeconds) },
          );
        }
      }
      // A send that outlives the answer (503 on the acknowledgement timeout while it waits for room
      // in librdkafka's queue) still reads the body's lines: it holds the body's buffer until it ends.
      const lease = raw === request.body ? leases.get(request) : undefined;
      lease?.hold();
      const sending = entries !== null ? ingestEntries(kind, entries) : ingestNdjson(kind, raw);
      if (lease)
        void sending.then(
          () => lease.release(),
          () => lease.release(),
        );
      // Drop the parsed events' reference while the batch is acknowledged: they can be collected young.
      // eslint-disable-next-line no-useless-assignment -- the assignment releases memory, it is not a value read later
      entries = null;
      const result = await withTimeout(sending, ackTimeoutMs, `${kind} events`, () => producer.markBrokersDown());
      metrics?.ingestEvents.inc({ kind, result: 'accepted' }, result.accepted);
      metrics?.ingestEvents.inc({ kind, result: 'rejected' }, result.rejected);
      request.log.debug({ event: 'ingest_batch', kind, key_id: caller?.keyId, accepted: result.accepted, rejected: result.rejected }, 'ingest batch');
      return reply.code(200).send(result);
    },
  );

  /**
   * The body as sent, or inflated when gzip-encoded: at most maxBodyBytes come out (zlib stops
   * there), so a small body that inflates to gigabytes costs the gateway maxBodyBytes of memory
   * and the time to inflate them, in zlib's thread pool, not the event loop.
   */
  async function inflated(body: Buffer, encoding: string): Promise<Buffer> {
    if (!GZIP_ENCODINGS.has(encoding)) return body;
    try {
      return await gunzipAsync(body, { maxOutputLength: maxBodyBytes });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_BUFFER_TOO_LARGE') {
        // Not dead-lettered whole: the bytes of a bomb are no evidence worth keeping (the reason is).
        throw new IngestRefusal(
          413,
          'oversize',
          `gzip body of ${body.length} bytes inflates to more than the limit of ${maxBodyBytes} bytes; send fewer events per request`,
          null,
        );
      }
      throw new IngestRefusal(
        400,
        'bad_encoding',
        `body is not valid gzip (content-encoding: gzip): ${e.message.slice(0, 200)}`,
        body.length > 0 ? body : undefined,
      );
    }
  }

  /** Produces the events of a JSON body (invalid ones are dead-lettered by the producer). */
  async function ingestEntries(kind: EventKind, entries: readonly BodyEntry[]): Promise<IngestReply> {
    const open = producer.openSend(kind);
    try {
      for (const entry of entries) {
        const queued = entry.ok ? open.add(entry.event, entry.index) : open.reject(entry.index, entry.raw, entry.errorClass, entry.reason);
        if (queued) await queued;
      }
    } catch (err) {
      open.abandon();
      throw err;
    }
    return open.finish();
  }

  /**
   * One pass over an NDJSON body: each line is checked, encoded and produced before the next is
   * read. A line within bounds goes first to the JSON line reader (contracts/json-line.ts:
   * straight from the bytes, no JSON.parse); a line it does not take is parsed and validated
   * the generic way, which gives the reason when it is refused. A line refused before parsing
   * (bounds, not JSON) is dead-lettered as sent. Answers in line order.
   */
  async function ingestNdjson(kind: EventKind, raw: Buffer): Promise<IngestReply> {
    const open = producer.openSend(kind);
    const lines = new NdjsonCursor(raw, bounds, true);
    try {
      while (lines.next()) {
        if (lines.ok) {
          const taken = open.addJson(raw, lines.lineStart, lines.lineStop);
          if (taken === true) continue;
          if (taken !== false) {
            await taken;
            continue;
          }
          lines.parse();
        }
        const queued = lines.ok ? open.add(lines.event, lines.index) : open.reject(lines.index, lines.rawLine(), lines.errorClass, lines.reason);
        if (queued) await queued;
      }
    } catch (err) {
      open.abandon();
      throw err;
    }
    return open.finish();
  }
};

export default ingestPlugin;
