/**
 * The README's entry points, in order, as a newcomer runs them: `npm run stack:up` (which starts a
 * schema registry among the rest) and then `npm start` with the default ROLES=all. `npm start`
 * used to die at once with `listen EADDRINUSE 127.0.0.1:8081` (issue 21): it now uses the registry
 * that answers, and the pipeline processes records. The shared Kafka and Redis stand in for the
 * ones stack:up would start (it finds them running); the registry is stack:up's own, on a free
 * port, with this test's topics and data directory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { AvroCodec } from '../../lib/avro-codec.js';
import { silentLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { EventProducer } from '../../producers/sdk/event-producer.js';
import { REPO_ROOT, cleanupTestEnv, freePort, pollUntil, testEnv } from '../helpers/env.js';
import { loadGoldenInput } from '../helpers/golden.js';
import { produceRecords, waitCaughtUp } from '../helpers/pipeline-harness.js';

const t = testEnv('clean-start', { LOG_LEVEL: 'info', CLICKHOUSE_HTTP_PORT: '0' });
let env: Record<string, string | undefined> = {};
let start: ChildProcess | null = null;
let stackUp = false;

afterAll(async () => {
  if (start?.pid) {
    try {
      process.kill(-start.pid, 'SIGKILL'); // its process group: npm and the node it runs, if left
    } catch {
      /* the group is gone already */
    }
  }
  if (stackUp) spawnSync('npm', ['run', 'stack:down'], { cwd: REPO_ROOT, env, encoding: 'utf8' });
  await cleanupTestEnv(t);
});

describe('npm run stack:up && npm start', () => {
  it('runs the pipeline: the registry stack:up started is used, records reach the processors', async () => {
    const registryPort = await freePort();
    env = { ...t.env, REGISTRY_PORT: String(registryPort), SCHEMA_REGISTRY_URL: `http://127.0.0.1:${registryPort}`, ROLES: undefined };
    delete env.ROLES; // the default: every role, the registry included
    const up = spawnSync('npm', ['run', 'stack:up'], { cwd: REPO_ROOT, env, encoding: 'utf8', timeout: 180_000 });
    stackUp = true;
    expect(up.status, `${up.stdout}${up.stderr}`).toBe(0);
    expect(up.stdout).toContain(`registry  http://127.0.0.1:${registryPort}`);
    expect(up.stdout).toContain('npm start');

    const logFile = join(t.dataDir, 'npm-start.log');
    const out = createWriteStream(logFile);
    start = spawn('npm', ['start'], { cwd: REPO_ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    start.stdout!.pipe(out, { end: false });
    start.stderr!.pipe(out, { end: false });
    const exited = new Promise<string>((r) => start!.on('exit', (code, signal) => r(code === null ? String(signal) : String(code))));
    const log = () => readFileSync(logFile, 'utf8');
    await pollUntil(
      () => {
        if (start!.exitCode !== null) throw new Error(`npm start exited ${start!.exitCode}:\n${log().slice(-3000)}`);
        return /"event":"streampulse_started"/.test(log());
      },
      { timeoutMs: 180_000, intervalMs: 250, description: 'npm start: StreamPulse started' },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${log().slice(-3000)}`);
    });
    expect(log()).not.toMatch(/EADDRINUSE/);
    expect(log()).toMatch(/"event":"roles_adapted".*registry role left out/);
    const url = /"event":"http_listening","url":"([^"]+)"/.exec(log())![1]!;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    // Records produced now are processed: the raw store checkpoints past them.
    const codec = await AvroCodec.connect(`http://127.0.0.1:${registryPort}`, t.config.topicPrefix);
    const producer = await EventProducer.connect({
      brokers: t.kafkaBrokers,
      clientId: 'clean-start',
      topicPrefix: t.config.topicPrefix,
      codec,
      logger: silentLogger(),
      metrics: createMetrics(),
    });
    const input = loadGoldenInput('business').slice(0, 200);
    await produceRecords(producer, input);
    await producer.close();
    const redis = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
    await redis.connect();
    try {
      await waitCaughtUp(
        redis,
        t.kafkaBrokers,
        { topicPrefix: t.config.topicPrefix, redisPrefix: t.redisPrefix },
        'raw-store',
        [...new Set(input.map((r) => r.kind))],
        120_000,
      );
    } finally {
      redis.disconnect();
    }

    // Ctrl-C (SIGINT to the group, as a terminal sends it) stops it cleanly: npm passes the
    // signal on and ends by it; the pipeline finishes its last commit cycle and leaves the group.
    process.kill(-start.pid!, 'SIGINT');
    expect(['0', 'SIGINT']).toContain(await exited);
    await pollUntil(() => /"event":"processor_stopped"/.test(log()), { timeoutMs: 60_000, intervalMs: 200, description: 'the processors stopped' });
    expect(log()).toMatch(/"event":"streampulse_stopping","signal":"SIGINT"/);
    expect(log()).not.toMatch(/"level":50/); // no error logged
  }, 480_000);
});
