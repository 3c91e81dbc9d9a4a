/**
 * A checkpoint beyond the end of its partition (topic recreated, broker data lost) must stop the
 * processor with a message saying how to rebuild, never silently skip the records below it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topicSpec } from '../../contracts/topics.js';
import { ProcessorRunner } from '../../processors/core/runner.js';
import { productionProcessor } from '../../processors/production/production.processor.js';
import { cleanupTestEnv, testEnv } from '../helpers/env.js';
import { loadGoldenInput } from '../helpers/golden.js';
import { produceRecords, runnerDeps, scenario, startServices, type Services } from '../helpers/pipeline-harness.js';

const t = testEnv('stale-checkpoint');
let s: Services;
beforeAll(async () => {
  s = await startServices(t);
});
afterAll(async () => {
  await s?.close();
  await cleanupTestEnv(t);
});

describe('stale checkpoint', () => {
  it('stops the processor, naming the partition and the replay command', async () => {
    const sc = await scenario(t, s, 'stale');
    await produceRecords(sc.producer, loadGoldenInput('production').slice(0, 3));
    const topic = topicSpec(sc.topicPrefix, 'jira').topic;
    // A checkpoint taken on an older, longer log.
    await s.redis.hset(
      `${sc.redisPrefix}ckpt:production:${topic}:0`,
      'owner',
      'old-owner',
      'offset',
      '1000',
      'state',
      JSON.stringify({ state: null, time: { maxEventMs: 0, watermarkMs: 0, lastRecordAtMs: 0 }, dedup: null }),
    );
    const runner = new ProcessorRunner(productionProcessor(), runnerDeps(t, s, sc, 'production'));
    await runner.start();
    await expect(runner.done()).rejects.toThrow(/offset 1000, beyond the end of the log \(3\).*replay -- --processor production --from-beginning/);
    await runner.stop();
    await sc.close();
  });
});
