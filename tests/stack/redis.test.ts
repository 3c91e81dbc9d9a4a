/** stack/redis.ts: the shared Redis answers; nothing is started for a remote URL. */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { silentLogger } from '../../lib/logger.js';
import { isAlive } from '../../stack/proc.js';
import { ensureRedis, pingRedis, stopRedis } from '../../stack/redis.js';
import { freePort, testEnv } from '../helpers/env.js';

const t = testEnv('redis');
afterAll(() => rmSync(t.dataDir, { recursive: true, force: true }));

describe('redis stack helper', () => {
  it('uses the Redis that already answers and does not stop it', async () => {
    expect(await pingRedis(t.redisUrl)).toBe(true);
    const opts = { url: t.redisUrl, dataDir: `${t.dataDir}/redis`, logger: silentLogger() };
    const h = await ensureRedis(opts);
    expect(h.alreadyRunning).toBe(true);
    expect(await stopRedis(opts)).toBe(false);
    expect(await pingRedis(t.redisUrl)).toBe(true);
  });

  it('refuses to start a server for a non-local URL', async () => {
    expect(await pingRedis('redis://127.0.0.1:1', 300)).toBe(false);
    await expect(ensureRedis({ url: 'redis://10.255.255.1:6379', dataDir: `${t.dataDir}/redis`, logger: silentLogger() })).rejects.toThrow(
      /not a local address/,
    );
  });
});

describe('redis-server started by the stack', () => {
  it('starts one on a free local port, then stops it and leaves no process', async () => {
    const port = await freePort(); // asked of the OS: a random one could be an outgoing socket's port (one red CI run)
    const opts = { url: `redis://127.0.0.1:${port}`, dataDir: `${t.dataDir}/redis-own`, logger: silentLogger() };
    const h = await ensureRedis(opts);
    expect(h.alreadyRunning).toBe(false);
    expect(h.pid).toBeGreaterThan(0);
    expect(await pingRedis(opts.url)).toBe(true);
    expect((await ensureRedis(opts)).alreadyRunning).toBe(true);
    expect(await stopRedis(opts)).toBe(true);
    expect(await pingRedis(opts.url, 300)).toBe(false);
    expect(isAlive(h.pid!)).toBe(false); // gone (or a zombie waiting for init to reap it)
  });

  it('runs with append-only persistence by default: what was written survives a stop and start', async () => {
    const port = await freePort(); // asked of the OS: a random one could be an outgoing socket's port (one red CI run)
    const opts = { url: `redis://127.0.0.1:${port}`, dataDir: `${t.dataDir}/redis-aof`, logger: silentLogger() };
    await ensureRedis(opts);
    const c = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await c.connect();
    try {
      expect(await c.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      await c.set('ckpt', 'survives');
    } finally {
      c.disconnect();
    }
    expect(await stopRedis(opts)).toBe(true);
    await ensureRedis(opts);
    const d = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await d.connect();
    try {
      expect(await d.get('ckpt')).toBe('survives');
    } finally {
      d.disconnect();
      await stopRedis(opts);
    }
  });

  it("persistence: 'none' starts one that forgets everything when it stops", async () => {
    const port = await freePort(); // asked of the OS: a random one could be an outgoing socket's port (one red CI run)
    const opts = { url: `redis://127.0.0.1:${port}`, dataDir: `${t.dataDir}/redis-none`, logger: silentLogger(), persistence: 'none' as const };
    await ensureRedis(opts);
    const c = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await c.connect();
    await c.set('ckpt', 'gone');
    c.disconnect();
    await stopRedis(opts);
    await ensureRedis(opts);
    const d = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await d.connect();
    try {
      expect(await d.get('ckpt')).toBeNull();
    } finally {
      d.disconnect();
      await stopRedis(opts);
    }
  });
});
