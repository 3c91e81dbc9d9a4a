/**
 * API keys: hashed, with roles, expiry and revocation; Redis is the fast shared cache, a compacted
 * log (Kafka `<TOPIC_PREFIX>api_keys` in production) the durable record of admin-created keys.
 * Implements the gateway's ApiKeyStore (producers/ingest/api-keys.ts), so the ingest plugin and
 * the API share one store. A key is never stored or logged in clear: only its SHA-256 digest.
 *
 * Redis: one hash `<prefix>apikeys`, field = sha256 hex of the key, value = the JSON KeyRecord,
 * plus the field `@restored` (ms) written last by every restore. A lookup is one HMGET of the
 * key's digest and that marker, so a Redis that lost its contents (restarted empty, flushed, the
 * hash deleted) is seen on the first miss; a watchdog also checks the marker every few seconds.
 * A restore writes the API_KEYS keys (config is the whole truth for them: config keys no longer
 * listed are removed at start; with a durable log, the API_KEYS of the latest start of any process,
 * recorded there, so that a process started earlier does not bring a removed key back) and then
 * every record of the durable log (HSETNX, so a revocation written meanwhile is never undone), then
 * the marker.
 *
 * Roles: `ingest` (send events), `viewer` (read KPIs, the dashboard), `analyst` (viewer + SQL),
 * `admin` (everything, including alert acknowledgements, silences and key management).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { StateError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import {
  API_KEY_ROLES,
  InMemoryApiKeyStore,
  keyIdOf,
  sha256,
  type ApiKeyStore,
  type KeyLookup,
  type Role,
  type VerifiedKey,
} from '../producers/ingest/api-keys.js';
import { isRedisUnavailable } from '../producers/ingest/redis-errors.js';

export type ApiRole = Role;
export const API_ROLES = API_KEY_ROLES;

/** True when a key with `actual` role may call something that needs `required`. */
export function roleAllows(actual: ApiRole, required: ApiRole): boolean {
  if (actual === 'admin') return true;
  if (required === 'ingest' || actual === 'ingest') return actual === required;
  const rank: Record<ApiRole, number> = { ingest: -1, viewer: 0, analyst: 1, admin: 2 };
  return rank[actual] >= rank[required];
}

/** One key as stored (Redis cache and durable log). Never holds the key itself. */
export interface KeyRecord {
  id: string;
  /** SHA-256 hex of the key. */
  digest: string;
  role: ApiRole;
  source: 'config' | 'admin';
  name: string;
  created_ms: number | null;
  expires_ms: number | null;
  revoked_ms: number | null;
}

/** What the admin endpoints show of a key: no secret, no digest. */
export interface KeyView {
  id: string;
  role: ApiRole;
  name: string;
  source: 'config' | 'admin';
  created_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  status: 'active' | 'expired' | 'revoked';
}

/**
 * A durable, compacted log of records keyed by key id (the shape of stack/registry's
 * RegistryLog, so `KafkaRegistryLog` on `<TOPIC_PREFIX>api_keys` serves as one).
 */
export interface KeyLog {
  /** Delivers every record written since the previous call (all of them on the first call). */
  catchUp(apply: (r: { key: string | null; value: string | null }) => void): Promise<void>;
  /** Resolves once the record is durable. */
  append(r: { key: string | null; value: string | null }): Promise<void>;
  close(): Promise<void>;
}

export class KeyConflictError extends Error {}

const MARKER = '@restored';
/**
 * Record key, in the durable log, of the API_KEYS of the latest start (digests and roles, no
 * secret). A restore writes these, not the ones its own process started with: a process started
 * before a key was removed from API_KEYS must not bring it back after a Redis loss.
 */
const CONFIG_RECORD = '@config';

export interface RedisApiKeyStoreOptions {
  /** Durable record of admin-created keys; without one they live in Redis only (tests). */
  log?: KeyLog | null;
  logger?: Logger | null;
  metrics?: Metrics | null;
  /** How often the watchdog checks that the cache still holds its marker (default 2 s). */
  checkIntervalMs?: number;
  now?: () => number;
}

function toView(r: KeyRecord, now: number): KeyView {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  const status = r.revoked_ms !== null ? 'revoked' : r.expires_ms !== null && now >= r.expires_ms ? 'expired' : 'active';
  return {
    id: r.id,
    role: r.role,
    name: r.name,
    source: r.source,
    created_at: iso(r.created_ms),
    expires_at: iso(r.expires_ms),
    revoked_at: iso(r.revoked_ms),
    status,
  };
}

export class RedisApiKeyStore implements ApiKeyStore {
  private readonly hash: string;
  private readonly log: KeyLog | null;
  private readonly logger: Logger | null;
  private readonly metrics: Metrics | null;
  private readonly now: () => number;
  private readonly checkIntervalMs: number;
  /** API_KEYS entries: digest → role. */
  private config = new Map<string, ApiRole>();
  /** Latest durable record per key id (filled by the log's catchUp). */
  private readonly durable = new Map<string, KeyRecord>();
  /** API_KEYS of the latest start of any process, from the log (null: no log or none yet). */
  private logConfig: Map<string, ApiRole> | null = null;
  private restoring: Promise<void> | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private watchdogFailing = false;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    opts: RedisApiKeyStoreOptions = {},
  ) {
    this.hash = `${prefix}apikeys`;
    this.log = opts.log ?? null;
    this.logger = opts.logger ?? null;
    this.metrics = opts.metrics ?? null;
    this.now = opts.now ?? Date.now;
    this.checkIntervalMs = opts.checkIntervalMs ?? 2000;
  }

  /** Fails fast with a retriable StateError when Redis is not connected (the edge answers 503). */
  private async redisCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready') throw new StateError(`Redis is unreachable (connection ${this.redis.status}); cannot ${what}`, true);
    try {
      return await fn();
    } catch (err) {
      if (isRedisUnavailable(err)) throw new StateError(`Redis is unreachable: cannot ${what}: ${(err as Error).message}`, true, { cause: err });
      throw err;
    }
  }

  /**
   * Makes API_KEYS (`key:role,…`) the whole truth for config keys: the listed ones are written,
   * config keys no longer listed are removed; then restores the durable log into Redis. Returns
   * how many config keys there are. Throws a ConfigError naming each bad entry.
   */
  async seed(spec: string): Promise<number> {
    InMemoryApiKeyStore.fromConfig(spec); // throws a ConfigError naming each bad entry
    const config = new Map<string, ApiRole>();
    for (const entry of spec
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean)) {
      const cut = entry.lastIndexOf(':');
      config.set(sha256(entry.slice(0, cut)).toString('hex'), entry.slice(cut + 1).trim() as ApiRole);
    }
    this.config = config;
    // The whole truth for every process sharing the cache, also for their later restores.
    if (this.log) await this.log.append({ key: CONFIG_RECORD, value: JSON.stringify({ keys: [...config.entries()], seeded_ms: this.now() }) });
    await this.restore('start', true);
    return config.size;
  }

  /** Starts the watchdog that restores a cache found without its marker (every checkIntervalMs). */
  startWatchdog(): void {
    if (this.watchdog) return;
    this.watchdog = setInterval(() => void this.check(), this.checkIntervalMs);
    this.watchdog.unref();
  }

  async close(): Promise<void> {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    await this.restoring?.catch(() => undefined);
  }

  /** One watchdog round: restore when the marker is gone. Errors are logged once per outage. */
  async check(): Promise<void> {
    try {
      const present = await this.redisCall('check the key cache', () => this.redis.hexists(this.hash, MARKER));
      if (!present) await this.restoreOnce('watchdog');
      if (this.watchdogFailing) this.logger?.info({ event: 'api_key_cache_reachable' }, 'API key cache reachable again');
      this.watchdogFailing = false;
    } catch (err) {
      if (!this.watchdogFailing)
        this.logger?.warn({ event: 'api_key_cache_check_failed', err: (err as Error).message }, 'cannot check the API key cache; will retry');
      this.watchdogFailing = true;
    }
  }

  /** Single-flight restore (a watchdog round and many misses at once restore once). */
  private restoreOnce(trigger: 'watchdog' | 'miss'): Promise<void> {
    this.restoring ??= this.restore(trigger, false).finally(() => {
      this.restoring = null;
    });
    return this.restoring;
  }

  private async restore(trigger: 'start' | 'watchdog' | 'miss', prune: boolean): Promise<void> {
    const t0 = this.now();
    let removed = 0;
    // The log first: it holds the latest API_KEYS (see CONFIG_RECORD) and the admin keys.
    if (this.log) {
      await this.log.catchUp((r) => {
        if (r.key === CONFIG_RECORD) {
          this.logConfig = r.value === null ? null : this.parseConfig(r.value);
          return;
        }
        const record = r.value === null ? null : this.parse(r.value);
        if (r.key === null) return;
        if (record) this.durable.set(r.key, record);
        else this.durable.delete(r.key);
      });
    }
    const config = this.logConfig ?? this.config;
    if (prune) {
      const existing = await this.redisCall('read the key cache', () => this.redis.hgetall(this.hash));
      const stale = Object.entries(existing)
        .filter(([field, value]) => field !== MARKER && !config.has(field) && this.parse(value)?.source !== 'admin')
        .map(([field]) => field);
      if (stale.length) await this.redisCall('remove keys no longer in API_KEYS', () => this.redis.hdel(this.hash, ...stale));
      removed = stale.length;
    }
    if (config.size > 0) {
      const fields: Record<string, string> = {};
      for (const [digest, role] of config) {
        const record: KeyRecord = {
          id: keyIdOf(Buffer.from(digest, 'hex')),
          digest,
          role,
          source: 'config',
          name: 'API_KEYS',
          created_ms: null,
          expires_ms: null,
          revoked_ms: null,
        };
        fields[digest] = JSON.stringify(record);
      }
      await this.redisCall('seed API_KEYS', () => this.redis.hset(this.hash, fields));
    }
    if (this.log) {
      const records = [...this.durable.values()];
      if (records.length) {
        await this.redisCall('restore admin keys', async () => {
          const multi = this.redis.multi();
          for (const r of records) {
            if (r.revoked_ms !== null)
              multi.hset(this.hash, r.digest, JSON.stringify(r)); // revocation always wins
            else multi.hsetnx(this.hash, r.digest, JSON.stringify(r));
          }
          await multi.exec();
        });
      }
    }
    await this.redisCall('mark the key cache', () => this.redis.hset(this.hash, MARKER, String(this.now())));
    this.metrics?.apiKeyRestores.inc({ trigger });
    const fields = {
      event: 'api_keys_restored',
      trigger,
      config_keys: config.size,
      admin_keys: this.durable.size,
      removed_config_keys: removed,
      ms: this.now() - t0,
    };
    if (trigger === 'start') this.logger?.info(fields, 'API keys written to the Redis cache');
    else this.logger?.error(fields, 'the API key cache in Redis had lost its contents; restored from API_KEYS and the durable key log');
  }

  private parseConfig(value: string): Map<string, ApiRole> | null {
    try {
      const c = JSON.parse(value) as { keys?: unknown };
      if (!Array.isArray(c.keys)) return null;
      const out = new Map<string, ApiRole>();
      for (const e of c.keys) {
        if (Array.isArray(e) && typeof e[0] === 'string' && /^[0-9a-f]{64}$/.test(e[0]) && (API_ROLES as readonly unknown[]).includes(e[1]))
          out.set(e[0], e[1] as ApiRole);
      }
      return out;
    } catch {
      return null;
    }
  }

  private parse(value: string): KeyRecord | null {
    try {
      const r = JSON.parse(value) as KeyRecord;
      return typeof r === 'object' && r !== null && typeof r.digest === 'string' && (API_ROLES as readonly string[]).includes(r.role) ? r : null;
    } catch {
      return null;
    }
  }

  async lookup(key: string): Promise<KeyLookup> {
    if (!key) return { status: 'unknown' };
    const digest = sha256(key).toString('hex');
    let [value, marker] = await this.redisCall('verify the API key', () => this.redis.hmget(this.hash, digest, MARKER));
    if (value == null && marker == null) {
      // The cache lost its contents (or was never seeded): restore, then look again.
      try {
        await this.restoreOnce('miss');
      } catch (err) {
        throw new StateError(`the API key cache is being restored and could not be yet: ${(err as Error).message}`, true, { cause: err });
      }
      value = await this.redisCall('verify the API key', () => this.redis.hget(this.hash, digest));
    }
    const record = value === null || value === undefined ? null : this.parse(value);
    if (!record) return { status: 'unknown' };
    if (record.revoked_ms !== null) return { status: 'revoked', keyId: record.id };
    if (record.expires_ms !== null && this.now() >= record.expires_ms) return { status: 'expired', keyId: record.id, expiredAtMs: record.expires_ms };
    return { status: 'ok', role: record.role, keyId: record.id };
  }

  async verify(key: string): Promise<VerifiedKey | null> {
    const l = await this.lookup(key);
    return l.status === 'ok' ? { role: l.role, keyId: l.keyId } : null;
  }

  /** Creates a key (crypto-random secret, returned once); durable in the log before it is usable. */
  async create(input: { role: ApiRole; name: string; expiresAtMs: number | null }): Promise<{ secret: string; key: KeyView }> {
    const secret = `sp_${randomBytes(32).toString('base64url')}`;
    const record: KeyRecord = {
      id: `key_${randomBytes(6).toString('hex')}`,
      digest: sha256(secret).toString('hex'),
      role: input.role,
      source: 'admin',
      name: input.name,
      created_ms: this.now(),
      expires_ms: input.expiresAtMs,
      revoked_ms: null,
    };
    await this.persist(record);
    this.logger?.info({ event: 'api_key_created', key_id: record.id, role: record.role, expires_ms: record.expires_ms }, 'API key created');
    return { secret, key: toView(record, this.now()) };
  }

  async list(): Promise<KeyView[]> {
    const all = await this.redisCall('list keys', () => this.redis.hgetall(this.hash));
    const now = this.now();
    return Object.entries(all)
      .filter(([field]) => field !== MARKER)
      .map(([, v]) => this.parse(v))
      .filter((r): r is KeyRecord => r !== null)
      .sort((a, b) => (a.created_ms ?? 0) - (b.created_ms ?? 0) || a.id.localeCompare(b.id))
      .map((r) => toView(r, now));
  }

  /** Revokes an admin-created key; null when no key has this id; KeyConflictError for a config key. */
  async revoke(id: string): Promise<KeyView | null> {
    const all = await this.redisCall('read keys', () => this.redis.hgetall(this.hash));
    const record = Object.entries(all)
      .filter(([field]) => field !== MARKER)
      .map(([, v]) => this.parse(v))
      .find((r) => r?.id === id);
    if (!record) return null;
    if (record.source === 'config')
      throw new KeyConflictError(`key ${id} comes from API_KEYS: remove it there and restart (config is the whole truth for those keys)`);
    if (record.revoked_ms === null) {
      record.revoked_ms = this.now();
      await this.persist(record);
      this.logger?.info({ event: 'api_key_revoked', key_id: id }, 'API key revoked');
    }
    return toView(record, this.now());
  }

  /** Durable first (the log), then the cache; a record that is not durable is never usable. */
  private async persist(record: KeyRecord): Promise<void> {
    if (this.log) {
      await this.log.append({ key: record.id, value: JSON.stringify(record) });
      this.durable.set(record.id, record);
    }
    await this.redisCall('store the key', () => this.redis.hset(this.hash, record.digest, JSON.stringify(record)));
  }
}
