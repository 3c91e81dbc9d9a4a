/** The registry API on an in-memory log: Confluent semantics without a broker. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { silentLogger } from '../../lib/logger.js';
import { buildRegistryApp } from '../../stack/registry/app.js';
import { MemoryRegistryLog } from '../../stack/registry/log.js';
import { SchemaRegistry } from '../../stack/registry/registry.js';

const V1 = JSON.stringify({ type: 'record', name: 'Thing', namespace: 't', fields: [{ name: 'id', type: 'string' }] });
const V2 = JSON.stringify({
  type: 'record',
  name: 'Thing',
  namespace: 't',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'n', type: 'long', default: 0 },
  ],
});
/** Adds a field without a default: cannot read v2 data, so BACKWARD refuses it. */
const BAD = JSON.stringify({
  type: 'record',
  name: 'Thing',
  namespace: 't',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'n', type: 'long', default: 0 },
    { name: 'must', type: 'string' },
  ],
});
const CT = { 'content-type': 'application/vnd.schemaregistry.v1+json' };

async function makeApp(log = new MemoryRegistryLog()) {
  const registry = new SchemaRegistry(log);
  await registry.load();
  const app = buildRegistryApp({ registry, logger: silentLogger() });
  await app.ready();
  return { app, log, registry };
}

describe('schema registry API (in-memory log)', () => {
  it('registers, dedupes, versions and looks up schemas', async () => {
    const { app } = await makeApp();
    const r1 = await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: V1 } });
    expect(r1.statusCode).toBe(200);
    expect(r1.headers['content-type']).toContain('application/vnd.schemaregistry.v1+json');
    expect(r1.json()).toEqual({ id: 1 });
    // The same schema again (even reformatted) gives the same id and no new version.
    const again = await app.inject({ method: 'POST', url: '/subjects/a-value/versions', payload: { schema: JSON.stringify(JSON.parse(V1), null, 2) } });
    expect(again.json()).toEqual({ id: 1 });
    const r2 = await app.inject({
      method: 'POST',
      url: '/subjects/a-value/versions',
      headers: { 'content-type': 'application/json' },
      payload: { schema: V2 },
    });
    expect(r2.json()).toEqual({ id: 2 });
    // A schema known under another subject keeps its global id.
    expect((await app.inject({ method: 'POST', url: '/subjects/b-value/versions', headers: CT, payload: { schema: V1 } })).json()).toEqual({ id: 1 });

    expect((await app.inject({ method: 'GET', url: '/subjects' })).json()).toEqual(['a-value', 'b-value']);
    expect((await app.inject({ method: 'GET', url: '/subjects/a-value/versions' })).json()).toEqual([1, 2]);
    const latest = (await app.inject({ method: 'GET', url: '/subjects/a-value/versions/latest' })).json();
    expect(latest).toMatchObject({ subject: 'a-value', version: 2, id: 2 });
    expect(JSON.parse(latest.schema)).toEqual(JSON.parse(V2));
    expect((await app.inject({ method: 'GET', url: '/subjects/a-value/versions/1' })).json()).toMatchObject({ version: 1, id: 1 });
    expect(JSON.parse((await app.inject({ method: 'GET', url: '/schemas/ids/2' })).json().schema)).toEqual(JSON.parse(V2));
    expect((await app.inject({ method: 'GET', url: '/schemas/ids/2/schema' })).json()).toEqual(JSON.parse(V2));
    expect((await app.inject({ method: 'GET', url: '/schemas/ids/1/versions' })).json()).toEqual([
      { subject: 'a-value', version: 1 },
      { subject: 'b-value', version: 1 },
    ]);
    expect((await app.inject({ method: 'POST', url: '/subjects/a-value', headers: CT, payload: { schema: V1 } })).json()).toMatchObject({
      subject: 'a-value',
      id: 1,
      version: 1,
    });
  });

  it('answers Confluent error codes', async () => {
    const { app } = await makeApp();
    await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: V1 } });
    const cases: [string, string, object | undefined, number, number][] = [
      ['GET', '/subjects/nope/versions', undefined, 404, 40401],
      ['GET', '/subjects/nope/versions/latest', undefined, 404, 40401],
      ['GET', '/subjects/a-value/versions/9', undefined, 404, 40402],
      ['GET', '/subjects/a-value/versions/x', undefined, 422, 42202],
      ['GET', '/schemas/ids/99', undefined, 404, 40403],
      ['POST', '/subjects/nope', { schema: V1 }, 404, 40401],
      ['POST', '/subjects/a-value', { schema: V2 }, 404, 40403],
      ['POST', '/subjects/a-value/versions', { schema: '{"type":"record"' }, 422, 42201],
      ['POST', '/subjects/a-value/versions', { schema: '{"type":"recurd","name":"x","fields":[]}' }, 422, 42201],
      ['POST', '/subjects/a-value/versions', { schema: V1, schemaType: 'PROTOBUF' }, 422, 42201],
      ['PUT', '/config', { compatibility: 'SIDEWAYS' }, 422, 42203],
    ];
    for (const [method, url, payload, status, code] of cases) {
      const r = await app.inject({ method: method as 'GET', url, headers: CT, ...(payload ? { payload } : {}) });
      expect({ url, status: r.statusCode, code: r.json().error_code }).toEqual({ url, status, code });
      expect(typeof r.json().message).toBe('string');
    }
  });

  it('refuses a BACKWARD-incompatible schema with 409 and checks compatibility on demand', async () => {
    const { app } = await makeApp();
    await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: V1 } });
    await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: V2 } });
    const compat = await app.inject({ method: 'POST', url: '/compatibility/subjects/a-value/versions/latest', headers: CT, payload: { schema: BAD } });
    expect(compat.json()).toEqual({ is_compatible: false });
    const ok = await app.inject({ method: 'POST', url: '/compatibility/subjects/a-value/versions/latest?verbose=true', headers: CT, payload: { schema: V2 } });
    expect(ok.json()).toEqual({ is_compatible: true, messages: [] });
    const refused = await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: BAD } });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error_code).toBe(409);
    expect(refused.json().message).toMatch(/incompatible/);
    expect((await app.inject({ method: 'GET', url: '/subjects/a-value/versions' })).json()).toEqual([1, 2]);
    // NONE on the subject lets it through; the global level stays BACKWARD.
    expect((await app.inject({ method: 'PUT', url: '/config/a-value', headers: CT, payload: { compatibility: 'NONE' } })).json()).toEqual({
      compatibility: 'NONE',
    });
    expect((await app.inject({ method: 'GET', url: '/config' })).json()).toEqual({ compatibilityLevel: 'BACKWARD' });
    expect((await app.inject({ method: 'GET', url: '/config/a-value' })).json()).toEqual({ compatibilityLevel: 'NONE' });
    expect((await app.inject({ method: 'GET', url: '/config/other' })).json().error_code).toBe(40408);
    expect((await app.inject({ method: 'GET', url: '/config/other?defaultToGlobal=true' })).json()).toEqual({ compatibilityLevel: 'BACKWARD' });
    expect((await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: BAD } })).json()).toEqual({ id: 3 });
  });

  it('FORWARD and FULL levels check the other direction', async () => {
    const { app } = await makeApp();
    await app.inject({ method: 'PUT', url: '/config', headers: CT, payload: { compatibility: 'FULL' } });
    await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: V2 } });
    // Removing a field with a default is fine both ways; a new required field is not.
    expect((await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: V1 } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: BAD } })).statusCode).toBe(409);
  });

  it('rebuilds the same state from the log (restart), soft-deletes subjects', async () => {
    const { app, log } = await makeApp();
    await app.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: V1 } });
    await app.inject({ method: 'POST', url: '/subjects/b-value/versions', headers: CT, payload: { schema: V2 } });
    await app.inject({ method: 'PUT', url: '/config/b-value', headers: CT, payload: { compatibility: 'NONE' } });
    expect((await app.inject({ method: 'DELETE', url: '/subjects/a-value' })).json()).toEqual([1]);
    await app.close();
    const { app: app2 } = await makeApp(new MemoryRegistryLog(log.records));
    expect((await app2.inject({ method: 'GET', url: '/subjects' })).json()).toEqual(['b-value']);
    expect((await app2.inject({ method: 'GET', url: '/subjects?deleted=true' })).json()).toEqual(['a-value', 'b-value']);
    expect((await app2.inject({ method: 'GET', url: '/schemas/ids/1' })).statusCode).toBe(200);
    expect((await app2.inject({ method: 'GET', url: '/config/b-value' })).json()).toEqual({ compatibilityLevel: 'NONE' });
    // Ids keep increasing after a restart.
    const V3 = JSON.stringify({ type: 'record', name: 'Other', fields: [{ name: 'x', type: 'int' }] });
    expect((await app2.inject({ method: 'POST', url: '/subjects/c-value/versions', headers: CT, payload: { schema: V3 } })).json()).toEqual({ id: 3 });
    // Re-registering after a soft delete continues the version numbers.
    await app2.inject({ method: 'POST', url: '/subjects/a-value/versions', headers: CT, payload: { schema: V1 } });
    expect((await app2.inject({ method: 'GET', url: '/subjects/a-value/versions' })).json()).toEqual([2]);
  });

  it('accepts every event schema of contracts/avro', async () => {
    const { app } = await makeApp();
    for (const kind of ['playback', 'payments', 'gifts', 'moderation', 'jira', 'catalog']) {
      const schema = readFileSync(new URL(`../../contracts/avro/${kind}.avsc`, import.meta.url), 'utf8');
      const r = await app.inject({ method: 'POST', url: `/subjects/sp.${kind}-value/versions`, headers: CT, payload: { schema } });
      expect({ kind, status: r.statusCode }).toEqual({ kind, status: 200 });
    }
  });
});
