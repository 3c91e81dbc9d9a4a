/** Alerts: list, acknowledge, silence, through the AlertsService of alerts/ (503 when none is wired). */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { AlertsService } from '../alerts-service.js';
import type { ApiContext } from '../context.js';
import { ApiError, ErrorBody } from '../params.js';

const Alert = Type.Object({
  id: Type.String(),
  rule: Type.String(),
  state: Type.String(),
  severity: Type.String(),
  labels: Type.Record(Type.String(), Type.String()),
  value: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  startsAt: Type.String(),
  endsAt: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  acknowledgedBy: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  silenced: Type.Optional(Type.Boolean()),
  summary: Type.Optional(Type.String()),
});
const Slice = Type.Object(
  {
    dimension: Type.String(),
    value: Type.String(),
    share: Type.Number(),
    weight: Type.Number(),
    current: Type.Union([Type.Number(), Type.Null()]),
    baseline: Type.Union([Type.Number(), Type.Null()]),
  },
  { additionalProperties: true },
);
const Explanation = Type.Object(
  { top: Type.Array(Slice) },
  { additionalProperties: true, description: 'Why it fired: the slices that explain the deviation and context (docs/alerting.md "Explanations")' },
);
const AlertDetail = Type.Intersect([Alert, Type.Object({ explanation: Type.Union([Explanation, Type.Null()]) })]);
const Silence = Type.Object({
  id: Type.String(),
  matchers: Type.Record(Type.String(), Type.String()),
  startsAt: Type.String(),
  endsAt: Type.String(),
  createdBy: Type.String(),
  comment: Type.String(),
});
const ListQuery = Type.Object({ state: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('firing'), Type.Literal('resolved')])) });
const AckBody = Type.Object({ comment: Type.Optional(Type.String({ maxLength: 1000 })) });
const SilenceBody = Type.Object({
  matchers: Type.Record(Type.String({ pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' }), Type.String(), {
    minProperties: 1,
    description: 'Labels an alert must have (exact match), e.g. {"rule":"qoe_rebuffer","cdn":"akamai"}',
  }),
  duration_minutes: Type.Integer({ minimum: 1, maximum: 7 * 24 * 60 }),
  comment: Type.String({ minLength: 1, maxLength: 1000 }),
});

export function alertRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const svc = (): AlertsService => {
    if (!ctx.alerts) throw new ApiError(503, 'unavailable', 'alerting is not running in this process');
    return ctx.alerts;
  };
  /** Who did it: the key's id (keys carry no user name). */
  const actor = (keyId: string | undefined) => keyId ?? 'unknown';

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/v1/alerts',
    {
      config: { role: 'viewer' },
      schema: { tags: ['alerts'], querystring: ListQuery, response: { 200: Type.Object({ alerts: Type.Array(Alert) }), 400: ErrorBody, 503: ErrorBody } },
    },
    async (req) => ({ alerts: await svc().listAlerts({ state: req.query.state }) }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/alerts/:id',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['alerts'],
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) }),
        response: { 200: AlertDetail, 404: ErrorBody, 503: ErrorBody },
      },
    },
    async (req) => {
      // A live alert (pending or firing), else the last resolved instance of the group.
      const a =
        (await svc().listAlerts({})).find((x) => x.id === req.params.id) ?? (await svc().listAlerts({ state: 'resolved' })).find((x) => x.id === req.params.id);
      if (!a) throw new ApiError(404, 'not_found', `no alert ${req.params.id}`);
      return { ...a, explanation: a.explanation ?? null };
    },
  );

  app.post<{ Params: { id: string }; Body: Static<typeof AckBody> }>(
    '/v1/alerts/:id/ack',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['alerts'],
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) }),
        body: AckBody,
        response: { 200: Type.Object({ acknowledged: Type.Boolean(), id: Type.String() }), 404: ErrorBody, 503: ErrorBody },
      },
    },
    async (req) => {
      const ok = await svc().acknowledge(req.params.id, actor(req.apiKeyId), req.body?.comment);
      if (!ok) throw new ApiError(404, 'not_found', `no alert ${req.params.id}`);
      return { acknowledged: true, id: req.params.id };
    },
  );

  app.get(
    '/v1/silences',
    {
      config: { role: 'viewer' },
      schema: { tags: ['alerts'], response: { 200: Type.Object({ silences: Type.Array(Silence) }), 503: ErrorBody } },
    },
    async () => ({ silences: await svc().listSilences() }),
  );

  app.post<{ Body: Static<typeof SilenceBody> }>(
    '/v1/silences',
    {
      config: { role: 'admin' },
      schema: { tags: ['alerts'], body: SilenceBody, response: { 201: Silence, 400: ErrorBody, 503: ErrorBody } },
    },
    async (req, reply) => {
      const s = await svc().silence({
        matchers: req.body.matchers,
        durationMs: req.body.duration_minutes * 60_000,
        createdBy: actor(req.apiKeyId),
        comment: req.body.comment,
      });
      return reply.code(201).send(s);
    },
  );
}
