/**
 * The StreamPulse API as one Fastify plugin (fastify/demo style): a TypeBox schema per route,
 * OpenAPI at /docs, API keys with roles (hashed in Redis), a Redis rate limit per key, errors that
 * name the bad parameter, /healthz, /readyz, /metrics and the live dashboard at /.
 *
 *   await app.register(apiPlugin, { logger, metrics, redis, ch, keys, limiter, alerts, readiness });
 *
 * Routes declare the role they need in `config.role`; routes without one are public (/, /healthz,
 * /readyz, /metrics, /docs). Keys come in `X-API-Key`, `Authorization: Bearer <key>` or, for
 * EventSource clients that cannot set headers, the `api_key` query parameter (GET only).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { keyRefusalMessage, lookupApiKey, presentedApiKey } from '../producers/ingest/api-keys.js';
import { isRedisUnavailable } from '../producers/ingest/redis-errors.js';
import { StreamPulseError } from '../lib/errors.js';
import { RedisApiKeyStore, roleAllows, type ApiRole } from './api-keys.js';
import type { ApiContext, ApiOptions } from './context.js';
import { ApiError } from './params.js';
import { healthRoutes } from './routes/health.js';
import { httpCacheHook } from './http-cache.js';
import { qoeRoutes } from './routes/qoe.js';
import { businessRoutes } from './routes/business.js';
import { creatorRoutes } from './routes/creators.js';
import { safetyRoutes } from './routes/safety.js';
import { productionRoutes } from './routes/production.js';
import { churnRoutes } from './routes/churn.js';
import { alertRoutes } from './routes/alerts.js';
import { sqlRoutes } from './routes/sql.js';
import { DEFAULT_ANALYST_LIMITS, openAnalyst } from '../sinks/clickhouse/analyst.js';
import { liveRoutes } from './routes/live.js';
import { keyRoutes } from './routes/keys.js';

export type { ApiOptions } from './context.js';

const DEFAULT_RATE_LIMITS: Record<ApiRole, number> = { ingest: 6000, viewer: 600, analyst: 600, admin: 1200 };

/**
 * The key of a request: X-API-Key or Bearer, or `api_key` in the URL on GET only (EventSource
 * cannot send headers). URLs end up in proxy logs, browser history and Referer headers, so a
 * request that changes something or runs SQL (POST, DELETE) must carry its key in a header.
 */
function presentedKey(req: FastifyRequest): string | null {
  const h = presentedApiKey(req.headers);
  if (h) return h;
  const q = (req.query as Record<string, unknown> | undefined)?.api_key;
  if (typeof q !== 'string' || !q) return null;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new ApiError(
      401,
      'unauthorized',
      `the api_key query parameter is accepted on GET only (for EventSource); send the key of a ${req.method} in the X-API-Key header or as Authorization: Bearer <key>`,
    );
  }
  return q;
}

/** Turns a Fastify validation error into `{error, message, param}` with the parameter's name. */
function validationParam(err: FastifyError): string | undefined {
  const v = err.validation?.[0];
  if (!v) return undefined;
  const missing = (v.params as { missingProperty?: string } | undefined)?.missingProperty;
  if (missing) return missing;
  const path = v.instancePath?.replace(/^\//, '').split('/')[0];
  return path || undefined;
}

export async function apiPlugin(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  let analyst = opts.analyst;
  if (!analyst) {
    const own = await openAnalyst(opts.ch, { limits: opts.sqlLimits ?? DEFAULT_ANALYST_LIMITS, user: opts.analystUser ?? null });
    app.addHook('onClose', async () => own.close());
    analyst = own;
  }
  const ctx: ApiContext = {
    logger: opts.logger,
    metrics: opts.metrics,
    redis: opts.redis,
    ch: opts.ch,
    keys: opts.keys,
    keyAdmin: opts.keyAdmin !== undefined ? opts.keyAdmin : opts.keys instanceof RedisApiKeyStore ? opts.keys : null,
    limiter: opts.limiter,
    rateLimits: { ...DEFAULT_RATE_LIMITS, ...opts.rateLimits },
    sqlCost: opts.sqlCost ?? 10,
    alerts: opts.alerts ?? null,
    readiness: opts.readiness ?? {},
    analyst,
    liveIntervalMs: opts.liveIntervalMs ?? 5000,
    now: opts.now ?? Date.now,
    docs: opts.docs ?? true,
    db: opts.ch.database,
  };

  if (ctx.docs) {
    await app.register(swagger, {
      openapi: {
        info: {
          title: 'StreamPulse API',
          version: '1',
          description: 'QoE, business, creators, safety, production, churn and alerts over the StreamPulse tables. See docs/api.md.',
        },
        components: { securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } } },
        security: [{ apiKey: [] }],
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  }

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof ApiError) {
      return reply.code(err.statusCode).send({ error: err.error, message: err.message, ...(err.param ? { param: err.param } : {}) });
    }
    if (err.validation) {
      const param = validationParam(err);
      return reply.code(400).send({ error: 'bad_request', message: err.message, ...(param ? { param } : {}) });
    }
    if ((err instanceof StreamPulseError && err.retriable && err.code === 'STATE_STORE') || isRedisUnavailable(err)) {
      ctx.logger.warn(
        { event: 'api_unavailable', dependency: 'redis', route: req.routeOptions.url, err: err.message },
        'API request refused: Redis unreachable',
      );
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({ error: 'unavailable', message: `Redis (API keys, rate limits) is unreachable; retry after 5 s (${err.message})` });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) ctx.logger.error({ event: 'api_error', route: req.routeOptions.url, err: err.message }, 'API request failed');
    return reply
      .code(status)
      .send({ error: status === 500 ? 'internal_error' : 'bad_request', message: status === 500 ? 'internal error (logged)' : err.message });
  });

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const role = req.routeOptions.config?.role;
    if (!role) return;
    const key = presentedKey(req);
    if (!key) throw new ApiError(401, 'unauthorized', 'missing API key (X-API-Key header, Authorization: Bearer, or api_key query parameter)');
    const verified = await lookupApiKey(ctx.keys, key);
    if (verified.status !== 'ok') throw new ApiError(401, 'unauthorized', keyRefusalMessage(verified));
    const actual = verified.role;
    if (!roleAllows(actual, role)) throw new ApiError(403, 'forbidden', `this endpoint needs the ${role} role; the key has ${actual}`);
    req.apiRole = actual;
    req.apiKeyId = verified.keyId;
    const d = await ctx.limiter.take(verified.keyId, ctx.rateLimits[actual], req.routeOptions.config?.cost ?? 1);
    reply.header('x-ratelimit-limit', d.limit).header('x-ratelimit-remaining', d.remaining).header('x-ratelimit-reset', d.resetSeconds);
    if (!d.allowed) {
      reply.header('retry-after', d.resetSeconds);
      throw new ApiError(429, 'rate_limited', `rate limit of ${d.limit} per ${ctx.limiter.windowMs / 1000} s exceeded; retry after ${d.resetSeconds} s`);
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    ctx.metrics.httpSeconds.observe({ route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  httpCacheHook(app);
  healthRoutes(app, ctx);
  qoeRoutes(app, ctx);
  businessRoutes(app, ctx);
  creatorRoutes(app, ctx);
  safetyRoutes(app, ctx);
  productionRoutes(app, ctx);
  churnRoutes(app, ctx);
  alertRoutes(app, ctx);
  sqlRoutes(app, ctx);
  liveRoutes(app, ctx);
  keyRoutes(app, ctx);
}
