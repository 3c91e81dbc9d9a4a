import { describe, expect, it } from 'vitest';
import { InMemoryApiKeyStore, presentedApiKey } from '../../producers/ingest/api-keys.js';
import { ConfigError } from '../../lib/errors.js';

describe('InMemoryApiKeyStore', () => {
  it('parses key:role pairs and verifies keys to their role and a stable key id', async () => {
    const store = InMemoryApiKeyStore.fromConfig(' key1:ingest, key2:admin ,with:colon:viewer,');
    expect(store.size).toBe(3);
    const one = await store.verify('key1');
    expect(one).toEqual({ role: 'ingest', keyId: expect.stringMatching(/^key_[0-9a-f]{12}$/) });
    expect(await store.verify('key2')).toMatchObject({ role: 'admin' });
    expect(await store.verify('with:colon')).toMatchObject({ role: 'viewer' });
    expect((await store.verify('key1'))!.keyId).toBe(one!.keyId);
    expect(await store.verify('key3')).toBeNull();
    expect(await store.verify('')).toBeNull();
    expect(await InMemoryApiKeyStore.fromConfig('').verify('key1')).toBeNull();
  });

  it('keeps only digests, never the keys', () => {
    const store = InMemoryApiKeyStore.fromConfig('super-secret-key:admin');
    expect(JSON.stringify(store)).not.toContain('super-secret-key');
    expect(JSON.stringify(store)).toMatch(/"digest"/);
  });

  it('names every bad entry in one ConfigError', () => {
    try {
      InMemoryApiKeyStore.fromConfig('a:root,b,:ingest');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toEqual([
        'API_KEYS entry 1: unknown role "root" (known: ingest, viewer, analyst, admin)',
        'API_KEYS entry 2: expected key:role',
        'API_KEYS entry 3: expected key:role',
      ]);
    }
  });
});

describe('presentedApiKey', () => {
  it('reads x-api-key or a Bearer authorization header', () => {
    expect(presentedApiKey({ 'x-api-key': 'k1' })).toBe('k1');
    expect(presentedApiKey({ authorization: 'Bearer k2' })).toBe('k2');
    expect(presentedApiKey({ authorization: 'bearer   k3 ' })).toBe('k3');
    expect(presentedApiKey({ authorization: 'Basic dXNlcjpwdw==' })).toBeNull();
    expect(presentedApiKey({})).toBeNull();
  });
});
