/**
 * The daily churn scoring job of bin/pipeline.ts on the real services: the pipeline runs
 * in-process (roles registry, raw-store, churn: one fused consumer on the shared Kafka, Redis
 * checkpoints, embedded ClickHouse) and the churn golden input (tests/golden/churn, 31 days of
 * 2024, hand-worked scores for 2024-05-31 in its README) is produced a few days at a time, so the
 * job (every 250 ms here) runs many times while the facts of past days are still arriving.
 *
 * A day must be scored only when it is closed in EVENT time: when the churn processor's
 * checkpointed watermark on every partition of payments, playback and gifts has passed the day's
 * end + grace. The wall clock (2026) is years past every day of the input, so a job that closed
 * days by wall-clock time would score them from partial facts and never fix them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, type Pipeline } from '../../bin/pipeline.js';
import { topicSpec, type EventKind } from '../../contracts/topics.js';
import { topicHighWatermarks } from '../../lib/kafka-admin.js';
import { silentLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { CheckpointStore } from '../../processors/core/checkpoint-store.js';
import { scoreChurnDay } from '../../processors/churn/churn-scores.js';
import { queryRows, type ClickHouse } from '../../sinks/clickhouse/client.js';
import { cleanupTestEnv, pollUntil, testEnv } from '../helpers/env.js';
import { loadGoldenExpected, loadGoldenInput } from '../helpers/golden.js';

const DAY_MS = 86_400_000;
type Expected = {
  graceMs: number;
  allowedLatenessMs: number;
  day: number;
  churn_scores: Array<{ account_id: string; risk: number; level: string; reasons: string[] }>;
};
const expected = loadGoldenExpected<Expected>('churn');
const input = loadGoldenInput('churn').sort((a, b) => (a.event.event_time as number) - (b.event.event_time as number));
const CHURN_KINDS: EventKind[] = ['payments', 'playback', 'gifts'];

const t = testEnv('churn-job', {
  ROLES: 'registry,raw-store,churn',
  SCHEMA_REGISTRY_URL: 'http://127.0.0.1:0',
  WINDOW_GRACE_MS: String(expected.graceMs),
  ALLOWED_LATENESS_MS: String(expected.allowedLatenessMs),
  CHURN_SCORING_INTERVAL_MS: '250',
  CHECKPOINT_INTERVAL_MS: '250',
  BATCH_MAX_MS: '250',
  IDLE_PARTITION_MS: '500',
});
let pipeline: Pipeline;
let ch: ClickHouse;
const progress = () =>
  new CheckpointStore(pipeline.redis, t.config.env.REDIS_PREFIX, 'churn').progress(CHURN_KINDS.map((k) => topicSpec(t.config.topicPrefix, k)));
const scoredDays = async () =>
  (await queryRows<{ d: number }>(ch, `SELECT toInt32(dateDiff('day', toDate('1970-01-01'), day)) AS d FROM ${ch.database}.churn_score_days ORDER BY d`)).map(
    (r) => Number(r.d),
  );
const scores = (day: number) =>
  queryRows<Record<string, unknown>>(
    ch,
    `SELECT * EXCEPT version FROM ${ch.database}.churn_scores FINAL WHERE day = toDate({d:UInt32} * 86400) ORDER BY account_id`,
    { d: day },
  );

/** Sends records and waits until the churn processor's checkpoints cover them, then lets the job run twice more. */
async function send(records: typeof input): Promise<void> {
  for (const kind of new Set(records.map((r) => r.kind)))
    await pipeline.producer!.sendValid(kind, records.filter((r) => r.kind === kind).map((r) => r.event) as never[]);
  await pollUntil(
    async () => {
      const pos = pipeline.runners[0]!.positions().filter((p) => p.processor === 'churn');
      for (const kind of CHURN_KINDS) {
        const { topic } = topicSpec(t.config.topicPrefix, kind);
        for (const w of await topicHighWatermarks(t.kafkaBrokers, topic)) {
          const p = pos.find((x) => x.topic === topic && x.partition === w.partition);
          if (w.high > 0 && (!p || p.checkpointed < w.high)) return false;
        }
      }
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  await new Promise((r) => setTimeout(r, 700));
}

beforeAll(async () => {
  pipeline = await startPipeline(t.config, silentLogger(), createMetrics(), { http: false });
  ch = pipeline.ch!;
}, 120_000);

afterAll(async () => {
  await pipeline?.stop();
  await cleanupTestEnv(t);
});

describe('daily churn scoring closes days in event time', () => {
  it('scores each day once its facts are final, from the final facts; the last day waits for the watermark', async () => {
    expect(await progress()).toBeNull(); // no checkpoint yet
    // The golden month, five days of event time per send.
    const first = Math.floor((input[0]!.event.event_time as number) / DAY_MS);
    for (let d = first; d <= expected.day; d += 5)
      await send(input.filter((r) => Math.floor((r.event.event_time as number) / DAY_MS) >= d && Math.floor((r.event.event_time as number) / DAY_MS) < d + 5));

    // The job (every 250 ms) scores the days the last checkpoints closed: each day is a few queries
    // on the embedded ClickHouse, which on a loaded machine took longer than the 700 ms send() waits
    // (the scored days stopped one or two short of the watermark's, on Node 20 and 24 alike). Wait
    // for the job to reach the watermark's last closed day, reading both in the same round.
    let wm = 0;
    let before: number[] = [];
    const closedBy = (w: number) => Math.floor((w - expected.graceMs) / DAY_MS) - 1;
    await pollUntil(
      async () => {
        wm = (await progress())!;
        before = await scoredDays();
        return before.length > 0 && before.at(-1)! >= closedBy(wm);
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    expect(wm).toBeLessThan((expected.day + 1) * DAY_MS + expected.graceMs); // the last event is at 21:00 on the day
    // Every day whose end + grace the watermark has passed is scored, and only those.
    const closed = closedBy(wm);
    expect(before.length).toBeGreaterThan(20);
    expect(before).toEqual(Array.from({ length: closed - before[0]! + 1 }, (_, i) => before[0]! + i));
    expect(before).not.toContain(expected.day);
    // Each day was scored from its final facts: scoring it again now gives the same rows.
    const sample = [before[0]!, before[Math.floor(before.length / 2)]!, before.at(-1)!];
    const atJob = await Promise.all(sample.map(scores));
    for (const d of sample) await scoreChurnDay(ch, d, Date.now());
    expect(await Promise.all(sample.map(scores))).toEqual(atJob);

    // One payment after the day's end + grace moves the watermark of its partition; the idle rule
    // carries the other partitions along, their progress is saved, and the day closes.
    const tpl = input.find((r) => r.kind === 'payments')!;
    const tickMs = (expected.day + 1) * DAY_MS + expected.graceMs + expected.allowedLatenessMs + 60_000;
    await send([
      {
        kind: 'payments',
        event: {
          ...tpl.event,
          event_id: '00000000-0000-4000-8000-00000000f1c0',
          payment_id: 'pay-tick',
          account_id: 'a-tick',
          event_time: tickMs,
          received_time: tickMs,
        },
      },
    ]);
    await pollUntil(async () => (await scoredDays()).includes(expected.day), { timeoutMs: 30_000, intervalMs: 100 });
    const rows = await scores(expected.day);
    expect(rows.map((r) => r.account_id)).toEqual(expected.churn_scores.map((r) => r.account_id).sort());
    for (const want of expected.churn_scores) {
      const got = rows.find((r) => r.account_id === want.account_id)!;
      expect(Number(got.risk), want.account_id).toBeCloseTo(want.risk, 6);
      expect(got.level, want.account_id).toBe(want.level);
      expect(got.reasons, want.account_id).toEqual(want.reasons);
    }
    // Scored once: later runs of the job do not rescore closed days.
    const [n] = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${ch.database}.churn_scores WHERE day = toDate({d:UInt32} * 86400)`, {
      d: expected.day,
    });
    await new Promise((r) => setTimeout(r, 1_000));
    const [m] = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${ch.database}.churn_scores WHERE day = toDate({d:UInt32} * 86400)`, {
      d: expected.day,
    });
    expect(Number(m!.n)).toBe(Number(n!.n));
  }, 240_000);
});
