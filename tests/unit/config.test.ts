import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { ConfigError } from '../../lib/errors.js';

describe('config', () => {
  it('defaults every key', () => {
    const c = loadConfig({});
    expect(c.kafkaBrokers).toBe('127.0.0.1:9092');
    expect(c.topicPrefix).toBe('sp.');
    expect(c.clickhouse).toMatchObject({ url: null, database: 'streampulse', chdbPath: '.data/chdb' });
    expect(c.roles.size).toBeGreaterThan(8);
    expect(c.env.WINDOW_GRACE_MS).toBe(60_000);
  });

  it('names every bad key in one error', () => {
    let err: unknown;
    try {
      loadConfig({ HTTP_PORT: 'eighty', BATCH_MAX_ROWS: '0', LOG_LEVEL: 'loud', ROLES: 'business,nonsense', CLICKHOUSE_DATABASE: 'bad-name' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const key of ['HTTP_PORT', 'BATCH_MAX_ROWS', 'LOG_LEVEL', 'CLICKHOUSE_DATABASE']) expect(msg).toContain(key);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
  });

  it('reads CAUGHT_UP_RECORD_AGE_MS (10 s by default, 0 for the offsets alone) and refuses a negative one', () => {
    expect(loadConfig({}).env.CAUGHT_UP_RECORD_AGE_MS).toBe(10_000);
    expect(loadConfig({ CAUGHT_UP_RECORD_AGE_MS: '0' }).env.CAUGHT_UP_RECORD_AGE_MS).toBe(0);
    expect(() => loadConfig({ CAUGHT_UP_RECORD_AGE_MS: '-1' })).toThrow(/CAUGHT_UP_RECORD_AGE_MS/);
  });

  it('rejects unknown roles and a bad Jira field map, naming them', () => {
    expect(() => loadConfig({ ROLES: 'business,nonsense' })).toThrow(/ROLES: unknown role "nonsense"/);
    expect(() => loadConfig({ JIRA_FIELD_MAP: '[1,2]' })).toThrow(/JIRA_FIELD_MAP/);
  });

  it('reads INGEST_CORS_ORIGINS as a list of origins and names one that is not an origin', () => {
    expect(loadConfig({}).ingestCorsOrigins).toEqual([]);
    expect(loadConfig({ INGEST_CORS_ORIGINS: 'https://player.example.com, http://localhost:5173' }).ingestCorsOrigins).toEqual([
      'https://player.example.com',
      'http://localhost:5173',
    ]);
    expect(loadConfig({ INGEST_CORS_ORIGINS: '*' }).ingestCorsOrigins).toEqual(['*']);
    expect(() => loadConfig({ INGEST_CORS_ORIGINS: 'https://player.example.com/app' })).toThrow(
      /INGEST_CORS_ORIGINS: "https:\/\/player.example.com\/app" is not an origin/,
    );
    expect(() => loadConfig({ INGEST_CORS_ORIGINS: 'player.example.com' })).toThrow(/INGEST_CORS_ORIGINS/);
  });

  it('reads booleans and rejects a bad one', () => {
    expect(loadConfig({ EMIT_WINDOW_UPDATES: 'false' }).env.EMIT_WINDOW_UPDATES).toBe(false);
    expect(loadConfig({}).env.EMIT_WINDOW_UPDATES).toBe(true);
    expect(() => loadConfig({ EMIT_WINDOW_UPDATES: 'sometimes' })).toThrow(/EMIT_WINDOW_UPDATES/);
  });

  it('selects roles and reads numbers', () => {
    const c = loadConfig({ ROLES: 'business, qoe', BATCH_MAX_ROWS: '500', CLICKHOUSE_URL: 'http://ch:8123' });
    expect([...c.roles]).toEqual(['business', 'qoe']);
    expect(c.env.BATCH_MAX_ROWS).toBe(500);
    expect(c.clickhouse.url).toBe('http://ch:8123');
    expect(c.clickhouse.cluster).toBeNull();
  });

  it('CLICKHOUSE_CLUSTER: a plain name, with a server URL only', () => {
    expect(loadConfig({ CLICKHOUSE_URL: 'http://ch:8123', CLICKHOUSE_CLUSTER: 'sp_cluster' }).clickhouse.cluster).toBe('sp_cluster');
    expect(() => loadConfig({ CLICKHOUSE_CLUSTER: 'sp_cluster' })).toThrow(/CLICKHOUSE_CLUSTER: needs CLICKHOUSE_URL/);
    expect(() => loadConfig({ CLICKHOUSE_URL: 'http://ch:8123', CLICKHOUSE_CLUSTER: 'sp cluster; DROP' })).toThrow(/CLICKHOUSE_CLUSTER/);
  });
});
