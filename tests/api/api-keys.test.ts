/**
 * API keys on the real Redis and Kafka: API_KEYS is the whole truth for config keys, the admin
 * endpoints create (secret shown once), list (no secrets) and revoke keys with expiry, admin keys
 * are durable in a compacted Kafka topic and come back after the Redis cache lost them (watchdog
 * and first miss, without a restart, within 10 s), and an unreachable Redis gives 503, not 500
 * (on a redis-server this test starts and stops itself, never the shared one).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisApiKeyStore } from '../../api/api-keys.js';
import { apiPlugin } from '../../api/app.js';
import { RedisRateLimiter } from '../../api/rate-limit.js';
import { apiKeysTopic } from '../../bin/http-roles.js';
import { silentLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { sha256 } from '../../producers/ingest/api-keys.js';
import { ingestPlugin } from '../../producers/ingest/ingest.plugin.js';
import { openClickHouse, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { ensureRedis, stopRedis } from '../../stack/redis.js';
import { KafkaRegistryLog } from '../../stack/registry/log.js';
import { freePort, pollUntil } from '../helpers/env.js';
import { setUpProducerTestEnv, type ProducerTestEnv } from '../producers/support/stack-env.js';
import { giftEvent } from '../producers/support/events.js';

const ADMIN = 'admin-key-for-the-keys-test-0123456789';
const VIEWER = 'viewer-key-for-the-keys-test-0123456789';
let env: ProducerTestEnv;
let ch: ClickHouse;
let redis: Redis;
let keyLog: KafkaRegistryLog;
let store: RedisApiKeyStore;
let app: FastifyInstance;
let clock = Date.now();
const now = () => clock;
const metrics = createMetrics();

async function apiApp(keys: RedisApiKeyStore, r: Redis, prefix: string): Promise<FastifyInstance> {
  const a = Fastify({ logger: false });
  await a.register(apiPlugin, {
    logger: silentLogger(),
    metrics,
    redis: r,
    ch,
    keys,
    limiter: new RedisRateLimiter(r, prefix, 60_000),
    alerts: null,
    docs: true,
    now,
  });
  await a.ready();
  return a;
}

beforeAll(async () => {
  env = await setUpProducerTestEnv('api-keys');
  ch = await openClickHouse({ ...env.t.config.clickhouse, url: null });
  redis = new Redis(env.t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  await redis.connect();
  keyLog = await KafkaRegistryLog.open({ brokers: env.brokers, topic: apiKeysTopic(env.topicPrefix), logger: silentLogger() });
  store = new RedisApiKeyStore(redis, env.t.redisPrefix, { log: keyLog, metrics, checkIntervalMs: 200, now });
  await store.seed(`${ADMIN}:admin,${VIEWER}:viewer`);
  store.startWatchdog();
  app = await apiApp(store, redis, env.t.redisPrefix);
}, 120_000);

afterAll(async () => {
  await app?.close();
  await store?.close();
  await keyLog?.close();
  await redis?.quit();
  await ch?.close();
  await env?.close();
});

const call = (method: 'GET' | 'POST' | 'DELETE', url: string, key: string, payload?: object) =>
  app.inject({ method, url, headers: { 'x-api-key': key }, ...(payload ? { payload } : {}) });

describe('config keys (API_KEYS)', () => {
  it('a key removed from API_KEYS stops working at the next start; the listed ones keep working', async () => {
    const prefix = `${env.t.redisPrefix}cfg:`;
    const first = new RedisApiKeyStore(redis, prefix);
    expect(await first.seed('old-key-0123456789:ingest,kept-key-0123456789:viewer')).toBe(2);
    expect(await first.verify('old-key-0123456789')).toMatchObject({ role: 'ingest' });
    const restarted = new RedisApiKeyStore(redis, prefix); // the next start, with old-key removed from API_KEYS
    await restarted.seed('kept-key-0123456789:analyst');
    expect(await restarted.verify('old-key-0123456789')).toBeNull();
    expect(await first.verify('old-key-0123456789')).toBeNull(); // gone for every process sharing the Redis
    expect(await restarted.verify('kept-key-0123456789')).toMatchObject({ role: 'analyst' });
    expect((await restarted.list()).map((k) => [k.source, k.role])).toEqual([['config', 'analyst']]);
  });
});

describe('config keys with the durable key log', () => {
  it('a key removed from API_KEYS stays removed when Redis later loses its contents while a process started earlier still runs', async () => {
    // Before: every process restored the cache from the API_KEYS it was started with, so an older
    // process that still listed the key wrote it back after a Redis loss, and the removed key worked again.
    const prefix = `${env.t.redisPrefix}cfglog:`;
    const topic = `${env.topicPrefix}cfglog_api_keys`;
    const logs = [
      await KafkaRegistryLog.open({ brokers: env.brokers, topic, logger: silentLogger() }),
      await KafkaRegistryLog.open({ brokers: env.brokers, topic, logger: silentLogger() }),
    ];
    try {
      const older = new RedisApiKeyStore(redis, prefix, { log: logs[0]! });
      await older.seed('removed-key-0123456789:admin,kept-key-0123456789:viewer');
      const restarted = new RedisApiKeyStore(redis, prefix, { log: logs[1]! }); // the next start, without removed-key
      await restarted.seed('kept-key-0123456789:viewer');
      expect(await older.verify('removed-key-0123456789')).toBeNull();
      await redis.del(`${prefix}apikeys`); // Redis lost its contents
      await older.check(); // the older process's watchdog restores the cache
      expect(await redis.hexists(`${prefix}apikeys`, '@restored')).toBe(1);
      expect(await older.verify('removed-key-0123456789')).toBeNull();
      expect(await restarted.verify('removed-key-0123456789')).toBeNull();
      expect(await older.verify('kept-key-0123456789')).toMatchObject({ role: 'viewer' });
      await redis.del(`${prefix}apikeys`);
      expect(await older.lookup('removed-key-0123456789')).toEqual({ status: 'unknown' }); // the miss path restores too
      expect(await older.verify('kept-key-0123456789')).toMatchObject({ role: 'viewer' });
    } finally {
      for (const l of logs) await l.close();
    }
  });
});

describe('admin endpoints', () => {
  let created: { key: string; id: string };

  it('create: 201 with the secret once, a random id, and the key works at once', async () => {
    const res = await call('POST', '/v1/admin/keys', ADMIN, { role: 'ingest', name: 'player backend eu-1' });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({
      key: expect.stringMatching(/^sp_[A-Za-z0-9_-]{43}$/),
      id: expect.stringMatching(/^key_[0-9a-f]{12}$/),
      role: 'ingest',
      name: 'player backend eu-1',
      source: 'admin',
      status: 'active',
      expires_at: null,
      revoked_at: null,
    });
    expect(res.headers['cache-control']).toBe('no-store');
    created = body;
    expect(await store.verify(body.key)).toEqual({ role: 'ingest', keyId: body.id });
  });

  it('list: ids, roles, names, sources, times; never a secret or its digest', async () => {
    const res = await call('GET', '/v1/admin/keys', ADMIN);
    expect(res.statusCode).toBe(200);
    const { keys } = res.json<{ keys: Array<Record<string, unknown>> }>();
    expect(keys.map((k) => k.source).sort()).toEqual(['admin', 'config', 'config']);
    const mine = keys.find((k) => k.id === created.id)!;
    expect(Object.keys(mine).sort()).toEqual(['created_at', 'expires_at', 'id', 'name', 'revoked_at', 'role', 'source', 'status']);
    const text = res.body;
    for (const secret of [created.key, ADMIN, VIEWER]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(sha256(secret).toString('hex'));
    }
    // Redis holds digests only.
    const raw = JSON.stringify(await redis.hgetall(`${env.t.redisPrefix}apikeys`));
    for (const secret of [created.key, ADMIN, VIEWER]) expect(raw).not.toContain(secret);
  });

  it('only admins manage keys; bad bodies name the parameter', async () => {
    expect((await call('GET', '/v1/admin/keys', VIEWER)).statusCode).toBe(403);
    expect((await call('POST', '/v1/admin/keys', created.key, { role: 'admin', name: 'x' })).statusCode).toBe(403);
    const badRole = await call('POST', '/v1/admin/keys', ADMIN, { role: 'root', name: 'x' });
    expect(badRole.statusCode).toBe(400);
    expect(badRole.json().param).toBe('role');
    const past = await call('POST', '/v1/admin/keys', ADMIN, { role: 'viewer', name: 'x', expires_at: new Date(clock - 1000).toISOString() });
    expect(past.statusCode).toBe(400);
    expect(past.json()).toMatchObject({ param: 'expires_at', message: 'expires_at: must be in the future' });
  });

  it('an expired key is refused with 401 saying when it expired', async () => {
    const expiresAt = new Date(clock + 60_000).toISOString();
    const res = await call('POST', '/v1/admin/keys', ADMIN, { role: 'viewer', name: 'short-lived', expires_at: expiresAt });
    const k = res.json();
    expect(k.expires_at).toBe(expiresAt);
    expect((await call('GET', '/v1/admin/keys', k.key)).statusCode).toBe(403); // works (viewer), not admin
    clock += 61_000;
    const refused = await call('GET', '/v1/tables', k.key);
    expect(refused.statusCode).toBe(401);
    expect(refused.json().message).toBe(`API key ${k.id} expired at ${expiresAt}; ask an admin for a new key (POST /v1/admin/keys)`);
    const listed = (await call('GET', '/v1/admin/keys', ADMIN)).json().keys.find((x: { id: string }) => x.id === k.id);
    expect(listed.status).toBe('expired');
  });

  it('revoke: the key is refused with 401 "revoked" at once; config keys are 409, unknown ids 404', async () => {
    const res = await call('DELETE', `/v1/admin/keys/${created.id}`, ADMIN);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: created.id, status: 'revoked', revoked_at: expect.any(String) });
    const refused = await app.inject({ method: 'GET', url: '/v1/tables', headers: { 'x-api-key': created.key } });
    expect(refused.statusCode).toBe(401);
    expect(refused.json().message).toMatch(/was revoked/);
    const configId = (await store.list()).find((k) => k.source === 'config' && k.role === 'viewer')!.id;
    const conflict = await call('DELETE', `/v1/admin/keys/${configId}`, ADMIN);
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json().message).toMatch(/remove it there and restart/);
    expect((await call('DELETE', '/v1/admin/keys/key_000000000000', ADMIN)).statusCode).toBe(404);
  });

  it('a key in the URL (api_key, for EventSource) is taken on GET only: never for SQL, key management or acks', async () => {
    // URLs end up in proxy logs and browser history; a write or an admin action must carry its key in a header.
    const create = await app.inject({ method: 'POST', url: `/v1/admin/keys?api_key=${ADMIN}`, payload: { role: 'admin', name: 'from-a-url' } });
    expect(create.statusCode).toBe(401);
    expect(create.json()).toMatchObject({ error: 'unauthorized', message: expect.stringMatching(/api_key query parameter is accepted on GET only/) });
    const revoke = await app.inject({ method: 'DELETE', url: `/v1/admin/keys/key_000000000000?api_key=${ADMIN}` });
    expect(revoke.statusCode).toBe(401);
    const sql = await app.inject({ method: 'POST', url: `/v1/sql?api_key=${ADMIN}`, payload: { query: 'SELECT 1' } });
    expect(sql.statusCode).toBe(401);
    expect((await store.list()).some((k) => k.name === 'from-a-url')).toBe(false);
    // An ingest key in a header is still refused on admin routes (403), and GET with api_key works.
    const ingest = (await call('POST', '/v1/admin/keys', ADMIN, { role: 'ingest', name: 'ingest-on-admin' })).json();
    expect((await call('GET', '/v1/admin/keys', ingest.key)).statusCode).toBe(403);
    expect((await call('POST', '/v1/admin/keys', ingest.key, { role: 'admin', name: 'escalate' })).statusCode).toBe(403);
    expect((await call('GET', '/v1/tables', ingest.key)).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: `/v1/tables?api_key=${VIEWER}` })).statusCode).toBe(200);
  });

  it('is in the OpenAPI spec', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
    expect(Object.keys(spec.paths['/v1/admin/keys']!).sort()).toEqual(['get', 'post']);
    expect(Object.keys(spec.paths['/v1/admin/keys/{id}']!)).toEqual(['delete']);
  });
});

describe('keys survive a Redis that lost its contents', () => {
  async function wipePrefix(): Promise<number> {
    // Never FLUSHALL: the Redis is shared. Delete this test's keys only.
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${env.t.redisPrefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) n += await redis.del(...keys);
    } while (cursor !== '0');
    return n;
  }

  it('the watchdog restores config and admin keys (revocations kept) within 10 s, without a request and without a restart', async () => {
    const fresh = (await call('POST', '/v1/admin/keys', ADMIN, { role: 'analyst', name: 'survivor' })).json();
    const before = (await metrics.apiKeyRestores.get()).values.find((v) => v.labels.trigger === 'watchdog')?.value ?? 0;
    expect(await wipePrefix()).toBeGreaterThan(0);
    const t0 = Date.now();
    const watchdogRestores = async () => (await metrics.apiKeyRestores.get()).values.find((v) => v.labels.trigger === 'watchdog')?.value ?? 0;
    await pollUntil(async () => (await watchdogRestores()) === before + 1, {
      timeoutMs: 10_000,
      intervalMs: 50,
      description: 'key cache restored by the watchdog',
    });
    const restoredMs = Date.now() - t0;
    expect(restoredMs).toBeLessThan(10_000);
    expect(await redis.hexists(`${env.t.redisPrefix}apikeys`, '@restored')).toBe(1);
    expect((await call('GET', '/v1/tables', fresh.key)).statusCode).toBe(200);
    expect((await call('GET', '/v1/tables', VIEWER)).statusCode).toBe(200);
    const revoked = (await store.list()).filter((k) => k.status === 'revoked');
    expect(revoked).toHaveLength(1);
  });

  it('the first request after the loss restores the cache itself (no 401 in between)', async () => {
    const k = (await call('POST', '/v1/admin/keys', ADMIN, { role: 'viewer', name: 'first-miss' })).json();
    await store.close(); // no watchdog: only the miss path can restore
    await wipePrefix();
    expect((await call('GET', '/v1/tables', k.key)).statusCode).toBe(200);
    expect((await call('GET', '/v1/tables', ADMIN)).statusCode).toBe(200);
    store.startWatchdog();
  });

  it('after its redis-server restarts empty (no persistence), keys work again within 10 s, no request and no restart needed', async () => {
    // A redis-server of this test's own (never the shared one), without persistence: a restart
    // loses everything. The store is one API process's: its own durable key log (a topic of its
    // own, so the other tests' API_KEYS record is untouched) and the default watchdog interval.
    const port = await freePort(); // asked of the OS: a random one could be an outgoing socket's port (one red CI run)
    const opts = { url: `redis://127.0.0.1:${port}`, dataDir: `${env.t.dataDir}/redis-empty`, logger: silentLogger(), persistence: 'none' as const };
    await ensureRedis(opts);
    const own = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 3 });
    own.on('error', () => {});
    await own.connect();
    const ownLog = await KafkaRegistryLog.open({ brokers: env.brokers, topic: apiKeysTopic(`${env.topicPrefix}empty.`), logger: silentLogger() });
    const ownMetrics = createMetrics();
    const keys = new RedisApiKeyStore(own, 'empty:', { log: ownLog, metrics: ownMetrics, checkIntervalMs: 2_000, now });
    await keys.seed(`${ADMIN}:admin,${VIEWER}:viewer`);
    keys.startWatchdog();
    const api = await apiApp(keys, own, 'empty:');
    const get = (key: string) => api.inject({ method: 'GET', url: '/v1/tables', headers: { 'x-api-key': key } });
    try {
      const created = await api.inject({
        method: 'POST',
        url: '/v1/admin/keys',
        headers: { 'x-api-key': ADMIN },
        payload: { role: 'analyst', name: 'survives-a-restart' },
      });
      expect(created.statusCode).toBe(201);
      const survivor = created.json().key as string;
      expect((await get(survivor)).statusCode).toBe(200);
      expect((await get(VIEWER)).statusCode).toBe(200);
      const watchdogRestores = async () => (await ownMetrics.apiKeyRestores.get()).values.find((v) => v.labels.trigger === 'watchdog')?.value ?? 0;
      expect(await watchdogRestores()).toBe(0);
      await stopRedis(opts);
      await ensureRedis(opts);
      const back = Date.now();
      await pollUntil(() => own.status === 'ready', { timeoutMs: 10_000, intervalMs: 50, description: 'client reconnected' });
      // No request in between: the watchdog alone restores the cache, within 10 s of Redis being back.
      await pollUntil(async () => (await watchdogRestores()) === 1 && (await own.hexists('empty:apikeys', '@restored')) === 1, {
        timeoutMs: 10_000,
        intervalMs: 100,
        description: 'key cache restored by the watchdog after the empty restart',
      });
      const restoredMs = Date.now() - back;
      expect(restoredMs).toBeLessThan(10_000);
      process.stderr.write(`[api-keys] keys restored ${restoredMs} ms after the empty Redis answered\n`);
      expect((await get(VIEWER)).statusCode).toBe(200);
      expect((await get(survivor)).statusCode).toBe(200);
      expect((await get(ADMIN)).statusCode).toBe(200);
    } finally {
      await api.close();
      await keys.close();
      await ownLog.close();
      own.disconnect();
      await stopRedis(opts);
    }
  });

  it('a new process on an empty Redis gets the admin keys back from the Kafka topic', async () => {
    const prefix = `${env.t.redisPrefix}new-process:`;
    const log2 = await KafkaRegistryLog.open({ brokers: env.brokers, topic: apiKeysTopic(env.topicPrefix), logger: silentLogger() });
    try {
      const other = new RedisApiKeyStore(redis, prefix, { log: log2, now });
      await other.seed(`${ADMIN}:admin`);
      const listed = await other.list();
      expect(
        listed
          .filter((k) => k.source === 'admin')
          .map((k) => k.name)
          .sort(),
      ).toEqual(['first-miss', 'ingest-on-admin', 'player backend eu-1', 'short-lived', 'survivor']);
      expect(listed.find((k) => k.name === 'player backend eu-1')!.status).toBe('revoked');
    } finally {
      await log2.close();
    }
  });
});

describe('Redis unreachable: 503 with Retry-After, not 500', () => {
  it('API and ingest answer 503 while their Redis is down, and work again when it is back', async () => {
    const port = await freePort(); // asked of the OS: a random one could be an outgoing socket's port (one red CI run)
    // No persistence: it comes back empty, and the first request restores the key cache.
    const opts = { url: `redis://127.0.0.1:${port}`, dataDir: `${env.t.dataDir}/redis-own`, logger: silentLogger(), persistence: 'none' as const };
    await ensureRedis(opts);
    const own = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 3 });
    own.on('error', () => {});
    await own.connect();
    const keys = new RedisApiKeyStore(own, 'own:');
    await keys.seed(`${ADMIN}:admin`);
    const api = await apiApp(keys, own, 'own:');
    const ingest = Fastify({ logger: false });
    await ingest.register(ingestPlugin, {
      producer: env.producer,
      apiKeys: keys,
      maxBodyBytes: 1 << 20,
      maxEvents: 100,
      metrics,
      rateLimits: { redis: own, prefix: 'own:', requestsPerSecond: 100, eventsPerSecond: 10_000 },
    });
    const post = () =>
      ingest.inject({
        method: 'POST',
        url: '/v1/events/gifts',
        headers: { 'content-type': 'application/json', 'x-api-key': ADMIN },
        payload: JSON.stringify([giftEvent(9001)]),
      });
    try {
      expect((await api.inject({ method: 'GET', url: '/v1/admin/keys', headers: { 'x-api-key': ADMIN } })).statusCode).toBe(200);
      expect((await post()).statusCode).toBe(200);
      await stopRedis(opts);
      const down = await api.inject({ method: 'GET', url: '/v1/admin/keys', headers: { 'x-api-key': ADMIN } });
      expect(down.statusCode).toBe(503);
      expect(down.headers['retry-after']).toBe('5');
      expect(down.json()).toMatchObject({ error: 'unavailable', message: expect.stringMatching(/^Redis \(API keys, rate limits\) is unreachable/) });
      const ingestDown = await post();
      expect(ingestDown.statusCode).toBe(503);
      expect(ingestDown.headers['retry-after']).toBe('5');
      expect(ingestDown.json()).toMatchObject({ error: 'unavailable', message: expect.stringMatching(/^redis is unreachable/) });
      await ensureRedis(opts); // back, empty: the first request restores the key cache
      await pollUntil(() => own.status === 'ready', { timeoutMs: 20_000, description: 'client reconnected' });
      expect((await post()).statusCode).toBe(200);
    } finally {
      await api.close();
      await ingest.close();
      own.disconnect();
      await stopRedis(opts);
    }
  });
});
