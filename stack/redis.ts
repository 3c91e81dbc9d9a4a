/**
 * Redis for local runs and tests: use the one at REDIS_URL if it answers; otherwise, for a local
 * URL and when `redis-server` is on PATH, start one (daemonized, pid file, log and data in
 * `<DATA_DIR>/redis`). It runs with append-only persistence by default (`appendonly yes`,
 * `appendfsync everysec`): checkpoints, alert state and outbox, API keys survive a restart of it
 * (docs/reliability.md says what losing them costs). `persistence: 'none'` starts one that
 * forgets everything when it stops (the fault-injection tests use it to lose the store).
 * `stopRedis` stops only a server this module started.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import type { Config } from '../lib/config.js';
import { StackError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { delay, livePid, removeFile, stopPid, tailFile } from './proc.js';

export interface RedisStackOptions {
  /** redis://host:port[/db] */
  url: string;
  /** Folder for the pid file and log of a server we start (default `<DATA_DIR>/redis`). */
  dataDir: string;
  logger: Logger;
  /** 'aof' (default): append-only file in dataDir, fsync every second; 'none': nothing on disk. */
  persistence?: 'aof' | 'none';
}

export interface RedisHandle {
  url: string;
  /** Pid of the redis-server we started, or null when one was already answering. */
  pid: number | null;
  alreadyRunning: boolean;
}

export function redisOptionsFromConfig(config: Config, logger: Logger): RedisStackOptions {
  return { url: config.env.REDIS_URL, dataDir: resolve(config.env.DATA_DIR, 'redis'), logger };
}

function paths(opts: RedisStackOptions) {
  const dataDir = resolve(opts.dataDir);
  return { dataDir, pidFile: join(dataDir, 'redis.pid'), logFile: join(dataDir, 'redis.log') };
}

/** PING with a short timeout and no reconnect loop; true on PONG. */
export async function pingRedis(url: string, timeoutMs = 1500): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** Makes sure a Redis answers at `url`, starting a local redis-server if needed and possible. */
export async function ensureRedis(opts: RedisStackOptions): Promise<RedisHandle> {
  const p = paths(opts);
  if (await pingRedis(opts.url)) {
    const pid = livePid(p.pidFile, 'redis-server');
    opts.logger.info({ event: 'redis_already_running', url: opts.url, pid }, 'Redis answers');
    return { url: opts.url, pid, alreadyRunning: true };
  }
  const u = new URL(opts.url);
  if (!LOCAL_HOSTS.has(u.hostname)) throw new StackError(`Redis at ${opts.url} does not answer (not a local address, so it is not started here)`);
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  if (which.status !== 0)
    throw new StackError(`Redis at ${opts.url} does not answer and redis-server is not installed: apt-get install redis-server (or set REDIS_URL)`);
  mkdirSync(p.dataDir, { recursive: true });
  removeFile(p.pidFile);
  const port = u.port || '6379';
  const bind = u.hostname === 'localhost' ? '127.0.0.1' : u.hostname.replace(/^\[|\]$/g, '');
  const persistence = opts.persistence === 'none' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', 'everysec'];
  const r = spawnSync(
    'redis-server',
    ['--port', port, '--bind', bind, '--save', '', ...persistence, '--daemonize', 'yes', '--pidfile', p.pidFile, '--logfile', p.logFile, '--dir', p.dataDir],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new StackError(`redis-server failed to start (exit ${r.status}): ${r.stderr}${r.stdout}`);
  const deadline = Date.now() + 10_000;
  while (!(await pingRedis(opts.url, 500))) {
    if (Date.now() > deadline) throw new StackError(`redis-server started but ${opts.url} does not answer:\n${tailFile(p.logFile, 20)}`);
    await delay(100);
  }
  const pid = livePid(p.pidFile, 'redis-server');
  opts.logger.info({ event: 'redis_started', url: opts.url, pid }, 'started redis-server');
  return { url: opts.url, pid, alreadyRunning: false };
}

/** Stops the redis-server `ensureRedis` started (pid file); any other Redis is left alone. */
export async function stopRedis(opts: RedisStackOptions): Promise<boolean> {
  const p = paths(opts);
  const pid = livePid(p.pidFile, 'redis-server');
  if (pid === null) {
    removeFile(p.pidFile);
    return false;
  }
  const r = await stopPid(pid, 10_000);
  if (!r.stopped) throw new StackError(`redis-server (pid ${pid}) did not stop`);
  removeFile(p.pidFile);
  opts.logger.info({ event: 'redis_stopped', pid }, 'stopped redis-server');
  return true;
}
