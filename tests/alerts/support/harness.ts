/** What the alerting test files share: the default rules sent to a test webhook, and their teardown. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { AlertingHandle } from '../../../alerts/index.js';
import type { ClickHouse } from '../../../sinks/clickhouse/client.js';
import { cleanupTestEnv, type TestEnv } from '../../helpers/env.js';
import type { TestReceiver } from './receiver.js';

/** The shipped default rules file (alerts/rules.default.yaml) as text. */
export function defaultRulesText(): string {
  return readFileSync(join(import.meta.dirname, '../../../alerts/rules.default.yaml'), 'utf8');
}

/** The default rules with one generic webhook receiver, `hook`, at `url`. */
export function defaultRulesWithHook(url: string): string {
  return defaultRulesText().replace('receivers: []', `receivers:\n  - { name: hook, type: webhook, url: "${url}" }`);
}

/**
 * The default rules with the webhook `hook` at `url`, evaluated every 200 ms and retried after
 * 200 ms up to 1 s (tests wait seconds, not the shipped 15 s and minutes).
 */
export function quickRulesWithHook(url: string): string {
  return defaultRulesWithHook(url)
    .replace('evaluation_interval: 15s', 'evaluation_interval: 200ms')
    .replace('retry_base: 1s', 'retry_base: 200ms')
    .replace('retry_max: 5m', 'retry_max: 1s');
}

/** Stops alerting, removes the test's Redis keys, closes ClickHouse and the webhook, and cleans the test env. */
export async function closeAlertTest(o: { t: TestEnv; hook: TestReceiver; redis?: Redis; ch?: ClickHouse; alerting?: AlertingHandle | null }): Promise<void> {
  await o.alerting?.stop();
  if (o.redis) {
    const keys = await o.redis.keys(`${o.t.redisPrefix}*`);
    if (keys.length) await o.redis.del(...keys);
    o.redis.disconnect();
  }
  await o.ch?.close();
  await o.hook.down();
  await cleanupTestEnv(o.t);
}
