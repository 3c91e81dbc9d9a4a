/**
 * stack/kafka.ts on its own ports and data directory (not the shared broker): start, idempotent
 * start, clean stop with no process left, and a startup failure that shows the broker's log.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../lib/logger.js';
import { ensureTopics, listTopics } from '../../lib/kafka-admin.js';
import { startKafka, stopKafka, type KafkaStackOptions } from '../../stack/kafka.js';
import { isAlive } from '../../stack/proc.js';
import { cleanupTestEnv, freePort, testEnv } from '../helpers/env.js';

const t = testEnv('kafka-lifecycle');
// A port free right now (a random pick could fall on another process's port); the controller
// listener takes the default, port + 1.
const port = await freePort();
const opts: KafkaStackOptions = { brokers: `127.0.0.1:${port}`, dataDir: join(t.dataDir, 'kafka'), heapMb: 256, logger: silentLogger() };

afterAll(async () => {
  await stopKafka(opts);
  await cleanupTestEnv(t);
});

describe('local Kafka lifecycle', () => {
  it('starts, reports an already running broker, stops without leaving a process', async () => {
    const h = await startKafka(opts);
    expect(h.alreadyRunning).toBe(false);
    expect(h.pid).toBeGreaterThan(0);
    const props = readFileSync(join(opts.dataDir, 'server.properties'), 'utf8');
    expect(props).toContain('process.roles=broker,controller');
    expect(props).toContain(`CONTROLLER://127.0.0.1:${port + 1}`);
    expect(props).toContain('auto.create.topics.enable=false');
    expect(existsSync(join(opts.dataDir, 'logs', 'server.log'))).toBe(true);
    expect(readFileSync(join(opts.dataDir, 'logs', 'kafkaServer.out'), 'utf8')).not.toMatch(/SLF4J|log4j:WARN/);

    await ensureTopics(opts.brokers, [{ topic: 'lifecycle', partitions: 1 }]);
    expect(await listTopics(opts.brokers)).toContain('lifecycle');

    const again = await startKafka(opts);
    expect(again).toMatchObject({ alreadyRunning: true, pid: h.pid });

    expect(await stopKafka(opts)).toBe(true);
    expect(isAlive(h.pid!)).toBe(false);
    expect(existsSync(join(opts.dataDir, 'kafka.pid'))).toBe(false);
    expect(await stopKafka(opts)).toBe(false);
  });

  it('fails with the tail of the broker log when the broker cannot start', async () => {
    // The controller port is taken by the shared broker, so this one exits during startup.
    const [host, sharedPort] = t.kafkaBrokers.split(',')[0]!.split(':');
    const bad: KafkaStackOptions = {
      ...opts,
      brokers: `${host}:${port + 2}`,
      controllerPort: Number(sharedPort),
      dataDir: join(t.dataDir, 'kafka-bad'),
      startTimeoutMs: 60_000,
    };
    await expect(startKafka(bad)).rejects.toThrow(/exited during startup[\s\S]*tail of .*server\.log/);
    expect(existsSync(join(bad.dataDir, 'kafka.pid'))).toBe(false);
  });
});
