/**
 * The Confluent Schema Registry REST API (the subset Avro clients use) as a Fastify plugin over a
 * `SchemaRegistry`. One TypeBox schema per route; errors answer `{error_code, message}`.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync, type FastifyReply } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Logger } from '../../lib/logger.js';
import { ERR, RegistryHttpError, type SchemaRegistry } from './registry.js';

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';

const SubjectParams = Type.Object({ subject: Type.String({ minLength: 1 }) });
const VersionParams = Type.Object({ subject: Type.String({ minLength: 1 }), version: Type.String({ minLength: 1 }) });
const IdParams = Type.Object({ id: Type.Integer({ minimum: 0 }) });
const SchemaBody = Type.Object({
  schema: Type.String(),
  schemaType: Type.Optional(Type.String()),
  references: Type.Optional(Type.Array(Type.Unknown())),
});
const DeletedQuery = Type.Object({ deleted: Type.Optional(Type.Boolean()) });
const PermanentQuery = Type.Object({ permanent: Type.Optional(Type.Boolean()) });
const VerboseQuery = Type.Object({ verbose: Type.Optional(Type.Boolean()) });
const DefaultToGlobalQuery = Type.Object({ defaultToGlobal: Type.Optional(Type.Boolean()) });
const ConfigBody = Type.Object({ compatibility: Type.String() });

type SchemaBodyT = Static<typeof SchemaBody>;

function requireAvro(body: SchemaBodyT): void {
  if (body.schemaType !== undefined && body.schemaType.toUpperCase() !== 'AVRO') {
    throw new RegistryHttpError(422, ERR.invalidSchema, `Schema type ${body.schemaType} is not supported by this registry (AVRO only)`);
  }
  if (body.references && body.references.length > 0) {
    throw new RegistryHttpError(422, ERR.invalidSchema, 'Schema references are not supported by this registry');
  }
}

/** Sends a stored schema text as the JSON body. */
function sendRaw(reply: FastifyReply, schema: string) {
  return reply.type(CONTENT_TYPE).send(schema);
}

export function registryRoutes(registry: SchemaRegistry): FastifyPluginAsync {
  return async (app) => {
    // Confluent clients send application/vnd.schemaregistry(.v1)+json; parse it as JSON.
    app.addContentTypeParser(/^application\/vnd\.schemaregistry(\.v1)?\+json/, { parseAs: 'string' }, (_req, body, done) => {
      try {
        done(null, body === '' ? {} : JSON.parse(body as string));
      } catch (err) {
        (err as { statusCode?: number }).statusCode = 400;
        done(err as Error, undefined);
      }
    });
    app.addHook('onSend', async (_req, reply, payload) => {
      const ct = reply.getHeader('content-type');
      if (typeof ct === 'string' && ct.startsWith('application/json')) reply.header('content-type', CONTENT_TYPE);
      return payload;
    });
    app.setErrorHandler((err, req, reply) => {
      if (err instanceof RegistryHttpError) return reply.status(err.status).send({ error_code: err.errorCode, message: err.message });
      const e = err as { validation?: unknown; statusCode?: number; message: string };
      if (e.validation) return reply.status(422).send({ error_code: 422, message: e.message });
      if (e.statusCode && e.statusCode < 500) return reply.status(e.statusCode).send({ error_code: e.statusCode, message: e.message });
      req.log.error({ event: 'registry_request_failed', err }, 'registry request failed');
      return reply.status(500).send({ error_code: ERR.storeError, message: `Error in the backend data store: ${e.message}` });
    });

    app.get('/', async () => ({}));
    app.get('/schemas/types', async () => ['AVRO']);

    app.get<{ Params: Static<typeof IdParams> }>('/schemas/ids/:id', { schema: { params: IdParams } }, async (req) => ({
      schema: registry.getSchemaById(req.params.id),
    }));
    app.get<{ Params: Static<typeof IdParams> }>('/schemas/ids/:id/schema', { schema: { params: IdParams } }, async (req, reply) =>
      sendRaw(reply, registry.getSchemaById(req.params.id)),
    );
    app.get<{ Params: Static<typeof IdParams> }>('/schemas/ids/:id/versions', { schema: { params: IdParams } }, async (req) =>
      registry.versionsOfId(req.params.id),
    );

    app.get<{ Querystring: Static<typeof DeletedQuery> }>('/subjects', { schema: { querystring: DeletedQuery } }, async (req) =>
      registry.listSubjects(req.query.deleted === true),
    );
    app.get<{ Params: Static<typeof SubjectParams>; Querystring: Static<typeof DeletedQuery> }>(
      '/subjects/:subject/versions',
      { schema: { params: SubjectParams, querystring: DeletedQuery } },
      async (req) => registry.listVersions(req.params.subject, req.query.deleted === true),
    );
    app.get<{ Params: Static<typeof VersionParams> }>('/subjects/:subject/versions/:version', { schema: { params: VersionParams } }, async (req) => {
      const v = registry.getVersion(req.params.subject, req.params.version);
      return { subject: v.subject, version: v.version, id: v.id, schema: v.schema };
    });
    app.get<{ Params: Static<typeof VersionParams> }>(
      '/subjects/:subject/versions/:version/schema',
      { schema: { params: VersionParams } },
      async (req, reply) => sendRaw(reply, registry.getVersion(req.params.subject, req.params.version).schema),
    );
    app.post<{ Params: Static<typeof SubjectParams>; Body: SchemaBodyT }>(
      '/subjects/:subject/versions',
      { schema: { params: SubjectParams, body: SchemaBody } },
      async (req) => {
        requireAvro(req.body);
        const r = await registry.register(req.params.subject, req.body.schema);
        if (r.created) req.log.info({ event: 'schema_registered', subject: req.params.subject, id: r.id, version: r.version }, 'schema registered');
        return { id: r.id };
      },
    );
    app.post<{ Params: Static<typeof SubjectParams>; Body: SchemaBodyT }>(
      '/subjects/:subject',
      { schema: { params: SubjectParams, body: SchemaBody } },
      async (req) => {
        requireAvro(req.body);
        const v = registry.lookup(req.params.subject, req.body.schema);
        return { subject: v.subject, id: v.id, version: v.version, schema: v.schema };
      },
    );
    app.delete<{ Params: Static<typeof SubjectParams>; Querystring: Static<typeof PermanentQuery> }>(
      '/subjects/:subject',
      { schema: { params: SubjectParams, querystring: PermanentQuery } },
      async (req) => registry.deleteSubject(req.params.subject, req.query.permanent === true),
    );

    app.post<{ Params: Static<typeof VersionParams>; Body: SchemaBodyT; Querystring: Static<typeof VerboseQuery> }>(
      '/compatibility/subjects/:subject/versions/:version',
      { schema: { params: VersionParams, body: SchemaBody, querystring: VerboseQuery } },
      async (req) => {
        requireAvro(req.body);
        const problems = registry.compatibilityProblems(req.params.subject, req.body.schema, req.params.version);
        return req.query.verbose ? { is_compatible: problems.length === 0, messages: problems } : { is_compatible: problems.length === 0 };
      },
    );
    app.post<{ Params: Static<typeof SubjectParams>; Body: SchemaBodyT; Querystring: Static<typeof VerboseQuery> }>(
      '/compatibility/subjects/:subject/versions',
      { schema: { params: SubjectParams, body: SchemaBody, querystring: VerboseQuery } },
      async (req) => {
        requireAvro(req.body);
        const problems = registry.compatibilityProblems(req.params.subject, req.body.schema, 'level');
        return req.query.verbose ? { is_compatible: problems.length === 0, messages: problems } : { is_compatible: problems.length === 0 };
      },
    );

    app.get('/config', async () => ({ compatibilityLevel: registry.compatibilityLevel() }));
    app.put<{ Body: Static<typeof ConfigBody> }>('/config', { schema: { body: ConfigBody } }, async (req) => ({
      compatibility: await registry.setCompatibility(null, req.body.compatibility),
    }));
    app.get<{ Params: Static<typeof SubjectParams>; Querystring: Static<typeof DefaultToGlobalQuery> }>(
      '/config/:subject',
      { schema: { params: SubjectParams, querystring: DefaultToGlobalQuery } },
      async (req) => {
        const level = registry.subjectLevel(req.params.subject) ?? (req.query.defaultToGlobal ? registry.compatibilityLevel() : undefined);
        if (!level)
          throw new RegistryHttpError(
            404,
            ERR.subjectLevelConfigNotFound,
            `Subject '${req.params.subject}' does not have subject-level compatibility configured`,
          );
        return { compatibilityLevel: level };
      },
    );
    app.put<{ Params: Static<typeof SubjectParams>; Body: Static<typeof ConfigBody> }>(
      '/config/:subject',
      { schema: { params: SubjectParams, body: ConfigBody } },
      async (req) => ({
        compatibility: await registry.setCompatibility(req.params.subject, req.body.compatibility),
      }),
    );
    app.delete<{ Params: Static<typeof SubjectParams> }>('/config/:subject', { schema: { params: SubjectParams } }, async (req) => ({
      compatibilityLevel: await registry.deleteSubjectConfig(req.params.subject),
    }));
  };
}

/** A Fastify instance serving the registry API (not listening yet; tests use `inject()`). */
export function buildRegistryApp(opts: { registry: SchemaRegistry; logger: Logger }): FastifyInstance {
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { coerceTypes: true } },
  });
  app.register(registryRoutes(opts.registry));
  return app as unknown as FastifyInstance;
}
