/**
 * API keys in Redis, hashed: `<prefix>apikey:<sha256 hex>` → role. Implements the gateway's
 * ApiKeyStore (producers/ingest/api-keys.ts), so the ingest plugin and the API share one store.
 * A key is never stored or logged in clear; lookups hash the presented key (a Redis GET by
 * digest, so no comparison of secrets happens in this process).
 *
 * Roles: `ingest` (send events), `viewer` (read KPIs, the dashboard), `analyst` (viewer + SQL),
 * `admin` (everything, including alert acknowledgements and silences).
 */
import type { Redis } from 'ioredis';
import { API_KEY_ROLES, InMemoryApiKeyStore, isApiKeyRole, keyIdOf, sha256, type ApiKeyStore, type Role, type VerifiedKey } from '../producers/ingest/api-keys.js';

export type ApiRole = Role;
export const API_ROLES = API_KEY_ROLES;

/** True when a key with `actual` role may call something that needs `required`. */
export function roleAllows(actual: ApiRole, required: ApiRole): boolean {
  if (actual === 'admin') return true;
  if (required === 'ingest' || actual === 'ingest') return actual === required;
  const rank: Record<ApiRole, number> = { ingest: -1, viewer: 0, analyst: 1, admin: 2 };
  return rank[actual] >= rank[required];
}

export class RedisApiKeyStore implements ApiKeyStore {
  constructor(private readonly redis: Redis, private readonly prefix: string) {}

  private redisKey(digestHex: string): string {
    return `${this.prefix}apikey:${digestHex}`;
  }

  async verify(key: string): Promise<VerifiedKey | null> {
    if (!key) return null;
    const digest = sha256(key);
    const role = await this.redis.get(this.redisKey(digest.toString('hex')));
    return role && isApiKeyRole(role) ? { role, keyId: keyIdOf(digest) } : null;
  }

  async put(key: string, role: ApiRole): Promise<VerifiedKey> {
    const digest = sha256(key);
    await this.redis.set(this.redisKey(digest.toString('hex')), role);
    return { role, keyId: keyIdOf(digest) };
  }

  async remove(key: string): Promise<void> {
    await this.redis.del(this.redisKey(sha256(key).toString('hex')));
  }

  /**
   * Seeds the keys of config API_KEYS (`key:role,…`; parsed and validated by the gateway's
   * parser, which names every bad entry). Idempotent; returns how many keys were written.
   */
  async seed(spec: string): Promise<number> {
    const entries = spec.split(',').map((e) => e.trim()).filter(Boolean);
    InMemoryApiKeyStore.fromConfig(spec); // throws a ConfigError naming each bad entry
    for (const entry of entries) {
      const cut = entry.lastIndexOf(':');
      await this.put(entry.slice(0, cut), entry.slice(cut + 1).trim() as ApiRole);
    }
    return entries.length;
  }
}
