/**
 * API key management (role admin): create (the secret is in the answer once, never again), list
 * (no secrets, no digests) and revoke. Keys of API_KEYS are listed with source `config` and cannot
 * be revoked here (remove them from API_KEYS). See docs/api.md "API keys" for rotation.
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { KeyConflictError, type RedisApiKeyStore } from '../api-keys.js';
import type { ApiContext } from '../context.js';
import { ApiError, ErrorBody } from '../params.js';

const RoleSchema = Type.Union([Type.Literal('ingest'), Type.Literal('viewer'), Type.Literal('analyst'), Type.Literal('admin')]);
const KeyView = Type.Object({
  id: Type.String({ description: 'Non-secret key id (used in logs, metrics and to revoke)' }),
  role: RoleSchema,
  name: Type.String(),
  source: Type.Union([Type.Literal('config'), Type.Literal('admin')], { description: 'config: from API_KEYS; admin: created through this API' }),
  created_at: Type.Union([Type.String(), Type.Null()]),
  expires_at: Type.Union([Type.String(), Type.Null()]),
  revoked_at: Type.Union([Type.String(), Type.Null()]),
  status: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked')]),
});
const CreateBody = Type.Object({
  role: RoleSchema,
  name: Type.String({ minLength: 1, maxLength: 200, description: 'Who or what uses the key, e.g. "player-backend eu-1"' }),
  expires_at: Type.Optional(Type.String({ format: 'date-time', description: 'ISO 8601 time after which the key is refused with 401 (default: never)' })),
});
const Created = Type.Object({ key: Type.String({ description: 'The secret: shown only in this answer. Store it now.' }), ...KeyView.properties });

export type KeyAdmin = Pick<RedisApiKeyStore, 'create' | 'list' | 'revoke'>;

export function keyRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = (): KeyAdmin => {
    if (!ctx.keyAdmin) throw new ApiError(503, 'unavailable', 'key management is not available in this process');
    return ctx.keyAdmin;
  };

  app.post<{ Body: Static<typeof CreateBody> }>(
    '/v1/admin/keys',
    {
      config: { role: 'admin' },
      schema: {
        summary: 'Create an API key (the secret is shown once)',
        tags: ['keys'],
        body: CreateBody,
        response: { 201: Created, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 503: ErrorBody },
      },
    },
    async (req, reply) => {
      let expiresAtMs: number | null = null;
      if (req.body.expires_at !== undefined) {
        expiresAtMs = Date.parse(req.body.expires_at);
        if (!Number.isFinite(expiresAtMs))
          throw new ApiError(400, 'bad_request', `expires_at: not a time: ${JSON.stringify(req.body.expires_at)}`, 'expires_at');
        if (expiresAtMs <= ctx.now()) throw new ApiError(400, 'bad_request', 'expires_at: must be in the future', 'expires_at');
      }
      const { secret, key } = await admin().create({ role: req.body.role, name: req.body.name, expiresAtMs });
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({ key: secret, ...key });
    },
  );

  app.get(
    '/v1/admin/keys',
    {
      config: { role: 'admin' },
      schema: {
        summary: 'List API keys (no secrets)',
        tags: ['keys'],
        response: { 200: Type.Object({ keys: Type.Array(KeyView) }), 401: ErrorBody, 403: ErrorBody, 503: ErrorBody },
      },
    },
    async () => ({ keys: await admin().list() }),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/admin/keys/:id',
    {
      config: { role: 'admin' },
      schema: {
        summary: 'Revoke an API key created through this API',
        tags: ['keys'],
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) }),
        response: { 200: KeyView, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody },
      },
    },
    async (req) => {
      try {
        const view = await admin().revoke(req.params.id);
        if (!view) throw new ApiError(404, 'not_found', `no API key ${req.params.id}`, 'id');
        return view;
      } catch (err) {
        if (err instanceof KeyConflictError) throw new ApiError(409, 'conflict', err.message, 'id');
        throw err;
      }
    },
  );
}
