/**
 * API keys for the HTTP edge. A store answers "which role does this key have?" and never keeps a
 * key in clear: only its SHA-256 digest. The in-memory store is seeded from config
 * (API_KEYS=`key1:ingest,key2:admin`); a Redis-backed store implements the same interface.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../../lib/errors.js';

export const API_KEY_ROLES = ['ingest', 'viewer', 'analyst', 'admin'] as const;
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];
/** Alias kept short for callers: the role an API key grants. */
export type Role = ApiKeyRole;

export interface VerifiedKey {
  role: Role;
  /** Non-secret id of the key for logs and metrics (`key_` + first 12 hex digits of its digest). */
  keyId: string;
}

/** What a store knows about a presented key: usable, or why not. */
export type KeyLookup =
  | ({ status: 'ok' } & VerifiedKey)
  | { status: 'unknown' }
  | { status: 'expired'; keyId: string; expiredAtMs: number }
  | { status: 'revoked'; keyId: string };

export interface ApiKeyStore {
  /** The role and id of `key`, or null when it is not a usable key (unknown, expired, revoked). */
  verify(key: string): Promise<VerifiedKey | null>;
  /** Like verify, and says why a key is refused (stores with expiry and revocation implement it). */
  lookup?(key: string): Promise<KeyLookup>;
}

/** The store's lookup when it has one, else its verify (known or unknown). */
export async function lookupApiKey(store: ApiKeyStore, key: string): Promise<KeyLookup> {
  if (store.lookup) return store.lookup(key);
  const v = await store.verify(key);
  return v ? { status: 'ok', ...v } : { status: 'unknown' };
}

/** The 401 message for a key that is not usable. */
export function keyRefusalMessage(l: Exclude<KeyLookup, { status: 'ok' }>): string {
  if (l.status === 'expired') return `API key ${l.keyId} expired at ${new Date(l.expiredAtMs).toISOString()}; ask an admin for a new key (POST /v1/admin/keys)`;
  if (l.status === 'revoked') return `API key ${l.keyId} was revoked; ask an admin for a new key (POST /v1/admin/keys)`;
  return 'unknown API key';
}

export function isApiKeyRole(s: string): s is ApiKeyRole {
  return (API_KEY_ROLES as readonly string[]).includes(s);
}

export function sha256(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export function keyIdOf(digest: Buffer): string {
  return `key_${digest.toString('hex').slice(0, 12)}`;
}

interface StoredKey {
  digest: Buffer;
  role: Role;
  keyId: string;
}

export class InMemoryApiKeyStore implements ApiKeyStore {
  private readonly keys: StoredKey[] = [];

  /**
   * Parses `key1:ingest,key2:admin` (whitespace around entries is ignored; a key may itself
   * contain `:`, the role is after the last one). Every bad entry is named in one ConfigError.
   */
  static fromConfig(spec: string): InMemoryApiKeyStore {
    const store = new InMemoryApiKeyStore();
    const problems: string[] = [];
    spec
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean)
      .forEach((entry, position) => {
        const cut = entry.lastIndexOf(':');
        const key = cut > 0 ? entry.slice(0, cut) : '';
        const role = cut > 0 ? entry.slice(cut + 1).trim() : '';
        if (!key) problems.push(`API_KEYS entry ${position + 1}: expected key:role`);
        else if (!isApiKeyRole(role)) problems.push(`API_KEYS entry ${position + 1}: unknown role "${role}" (known: ${API_KEY_ROLES.join(', ')})`);
        else store.add(key, role);
      });
    if (problems.length > 0) throw new ConfigError(problems);
    return store;
  }

  /** Adds a key (kept only as its SHA-256 digest). Adding the same key again replaces its role. */
  add(key: string, role: Role): VerifiedKey {
    const digest = sha256(key);
    const existing = this.keys.findIndex((k) => k.digest.equals(digest));
    const stored = { digest, role, keyId: keyIdOf(digest) };
    if (existing >= 0) this.keys[existing] = stored;
    else this.keys.push(stored);
    return { role, keyId: stored.keyId };
  }

  get size(): number {
    return this.keys.length;
  }

  async verify(key: string): Promise<VerifiedKey | null> {
    if (!key) return null;
    const digest = sha256(key);
    let found: StoredKey | null = null;
    // Compare against every stored digest, without stopping early, in constant time each.
    for (const stored of this.keys) {
      if (timingSafeEqual(stored.digest, digest) && found === null) found = stored;
    }
    return found ? { role: found.role, keyId: found.keyId } : null;
  }
}

/** The key a request presents: `x-api-key: <key>` or `authorization: Bearer <key>`. */
export function presentedApiKey(headers: Record<string, string | string[] | undefined>): string | null {
  const direct = headers['x-api-key'];
  const value = Array.isArray(direct) ? direct[0] : direct;
  if (value && value.trim()) return value.trim();
  const auth = headers.authorization;
  const authValue = Array.isArray(auth) ? auth[0] : auth;
  const m = authValue ? /^Bearer\s+(\S+)\s*$/i.exec(authValue) : null;
  return m ? m[1]! : null;
}
