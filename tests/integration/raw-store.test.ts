/**
 * The event backbone end to end on the real services: events of every kind, with duplicates and
 * malformed records mixed in, go through Kafka into the raw tables; the malformed ones land in
 * the dead-letter topic with their original bytes and headers. Then a raw-store process is
 * SIGKILLed in the middle of a stream and restarted: no gaps, no duplicates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS, dlqTopic, topicSpec, type EventKind } from '../../contracts/topics.js';
import { queryRows } from '../../sinks/clickhouse/client.js';
import { RegistryError } from '../../lib/errors.js';
import { rawStoreProcessor } from '../../processors/raw-store/raw-store.processor.js';
import { ProcessorRunner } from '../../processors/core/runner.js';
import { runSimulation } from '../../producers/simulator/run.js';
import { cleanupTestEnv, pollUntil, testEnv } from '../helpers/env.js';
import { loadGoldenInput, type GoldenRecord } from '../helpers/golden.js';
import { produceRecords, readTopic, runnerDeps, scenario, spawnRoles, startServices, waitCaughtUp, type Services } from '../helpers/pipeline-harness.js';

const t = testEnv('raw-store', { CHECKPOINT_INTERVAL_MS: '300', BATCH_MAX_MS: '300' });
let s: Services;
const KINDS: EventKind[] = ['playback', 'payments', 'gifts', 'moderation', 'jira', 'catalog'];

const catalog: GoldenRecord[] = [1, 2, 3].map((i) => ({
  kind: 'catalog',
  event: {
    event_id: `5c0a7a3e-0000-4000-8000-00000000000${i}`,
    event_time: 1795168800000 + i,
    received_time: 1795168800100,
    content_id: `content-${i}`,
    title: `Title ${i}`,
    show_name: i === 3 ? 'Everest Live' : 'Kathmandu Nights',
    genre: i === 3 ? 'sports' : 'drama',
    stream_type: i === 3 ? 'live' : 'vod',
    duration_ms: i === 3 ? null : 2_400_000,
    creator_id: i === 3 ? 'c1' : null,
  },
}));

/** `n` heartbeats of `views` views, 10 ms apart from `startMs`, with event ids `<idPrefix>-0000-4000-8000-<i>`. */
function heartbeats(n: number, idPrefix: string, startMs: number, views: number): GoldenRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    kind: 'playback',
    event: {
      event_id: `${idPrefix}-0000-4000-8000-${String(i).padStart(12, '0')}`,
      event_time: startMs + i * 10,
      received_time: startMs + i * 10,
      view_id: `view-${i % views}`,
      seq: i,
      event_type: 'heartbeat',
      player_state: 'playing',
      playhead_ms: i,
      viewer_id: 'v',
      account_id: 'a',
      content_id: 'c',
      stream_type: 'vod',
      creator_id: null,
      device_category: 'tv',
      os: 'tizen',
      app_version: '1.0',
      cdn: 'akamai',
      country: 'NP',
      asn: 1,
      bitrate_kbps: 800,
      width: 640,
      height: 360,
      error_code: null,
      error_severity: null,
      error_business: null,
      end_reason: null,
      cum_playing_ms: i,
      cum_rebuffer_ms: 0,
      cum_rebuffer_count: 0,
      cum_seek_ms: 0,
      cum_bitrate_ms: i * 800,
    },
  }));
}

beforeAll(async () => {
  s = await startServices(t);
});
afterAll(async () => {
  await s?.close();
  await cleanupTestEnv(t);
});

describe('raw event store', () => {
  it('stores exactly the valid events of every kind once, and dead-letters malformed records with their bytes and headers', async () => {
    const sc = await scenario(t, s, 'e2e');
    const valid = [...loadGoldenInput('business'), ...loadGoldenInput('safety'), ...loadGoldenInput('production'), ...catalog];
    await produceRecords(sc.producer, valid);
    // Duplicates: the first record of every kind again (same event_id).
    const firsts = KINDS.map((k) => valid.find((r) => r.kind === k)!);
    await produceRecords(sc.producer, firsts);
    // Malformed records on three topics.
    const garbage = Buffer.from('{"not":"avro"}');
    const badMagic = Buffer.from([1, 0, 0, 0, 1, 2, 3]);
    const unknownId = Buffer.concat([Buffer.from([0, 0, 1, 0x86, 0x9f]), Buffer.from('xyz')]); // schema id 99999
    const truncated = sc.codec.encode('payments', valid.find((r) => r.kind === 'payments')!.event).subarray(0, 20);
    const bad = [
      { topic: topicSpec(sc.topicPrefix, 'payments').topic, value: garbage, cls: 'undecodable' },
      { topic: topicSpec(sc.topicPrefix, 'gifts').topic, value: badMagic, cls: 'undecodable' },
      { topic: topicSpec(sc.topicPrefix, 'moderation').topic, value: unknownId, cls: 'unknown_schema' },
      { topic: topicSpec(sc.topicPrefix, 'payments').topic, value: truncated, cls: 'undecodable' },
    ];
    for (const b of bad) await sc.producer.produceRaw(b.topic, 'bad-key', b.value);

    const runner = new ProcessorRunner(rawStoreProcessor(), runnerDeps(t, s, sc, 'raw-store', { deadLetters: sc.producer }), { checkpointIntervalMs: 200 });
    await runner.start();
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'raw-store', KINDS);
    await runner.stop();

    for (const kind of KINDS) {
      const want = valid
        .filter((r) => r.kind === kind)
        .map((r) => r.event.event_id as string)
        .sort();
      const rows = await queryRows<{ event_id: string }>(s.ch, `SELECT event_id FROM ${sc.database}.raw_${kind} FINAL ORDER BY event_id`);
      expect(
        rows.map((r) => r.event_id),
        kind,
      ).toEqual([...new Set(want)].sort());
    }
    // Row content survives the trip: a payment, field by field.
    const p = valid.find((r) => r.kind === 'payments')!.event;
    const [row] = await queryRows<Record<string, unknown>>(
      s.ch,
      `SELECT payment_id, account_id, kind, status, amount_minor, currency, method, plan, og_tier, auto_renew, failure_code, country, toUnixTimestamp64Milli(event_time) AS event_time FROM ${sc.database}.raw_payments FINAL WHERE event_id = {id:String}`,
      { id: p.event_id as string },
    );
    // Int64 columns come back as strings from a server and as numbers from chdb: compare as numbers.
    expect({ ...row, amount_minor: Number(row!.amount_minor), event_time: Number(row!.event_time) }).toEqual({
      payment_id: p.payment_id,
      account_id: p.account_id,
      kind: p.kind,
      status: p.status,
      amount_minor: p.amount_minor,
      currency: p.currency,
      method: p.method,
      plan: p.plan,
      og_tier: p.og_tier,
      auto_renew: p.auto_renew,
      failure_code: p.failure_code,
      country: p.country,
      event_time: p.event_time,
    });

    const dead = await readTopic(t.kafkaBrokers, dlqTopic(sc.topicPrefix), bad.length);
    expect(dead).toHaveLength(bad.length);
    const byValue = (v: Buffer | null) => bad.find((b) => b.value.equals(v!));
    for (const d of dead) {
      const b = byValue(d.value);
      expect(b, 'dead letter carries the original bytes').toBeDefined();
      expect(d.key?.toString()).toBe('bad-key');
      expect(d.headers[DLQ_HEADERS.topic]).toBe(b!.topic);
      expect(d.headers[DLQ_HEADERS.errorClass]).toBe(b!.cls);
      expect(Number(d.headers[DLQ_HEADERS.partition])).toBeGreaterThanOrEqual(0);
      expect(Number(d.headers[DLQ_HEADERS.offset])).toBeGreaterThanOrEqual(0);
      expect(d.headers[DLQ_HEADERS.errorMessage]!.length).toBeGreaterThan(10);
      expect(d.headers[DLQ_HEADERS.stage]).toBe('raw-store');
    }
    expect(new Set(dead.map((d) => `${d.headers[DLQ_HEADERS.topic]}/${d.headers[DLQ_HEADERS.partition]}/${d.headers[DLQ_HEADERS.offset]}`)).size).toBe(
      bad.length,
    );
    await sc.close();
  });

  it('a batch whose preparation fails retriably (registry unreachable) is handled again, not skipped', async () => {
    const sc = await scenario(t, s, 'flaky');
    const valid = loadGoldenInput('business');
    await produceRecords(sc.producer, valid);
    // The first two attempts to prepare a batch fail as an unreachable registry does.
    let failures = 2;
    const flaky = Object.create(sc.codec) as typeof sc.codec;
    flaky.prepare = async (buffers) => {
      if (failures-- > 0) throw new RegistryError('schema registry at http://127.0.0.1:1 unreachable: connect ECONNREFUSED', undefined, true);
      return sc.codec.prepare(buffers);
    };
    const runner = new ProcessorRunner(rawStoreProcessor(), runnerDeps(t, s, sc, 'raw-store', { codec: flaky, deadLetters: sc.producer }), {
      checkpointIntervalMs: 200,
      consumeBatch: 50,
    });
    await runner.start();
    // Skipped records would never reach a task (their partitions would not catch up) or be
    // jumped over: either way rows are missing below.
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'raw-store', KINDS, 30_000).catch(() => undefined);
    await runner.stop();
    expect(failures).toBeLessThan(0);
    for (const kind of ['payments', 'gifts', 'playback'] as const) {
      const want = [...new Set(valid.filter((r) => r.kind === kind).map((r) => r.event.event_id as string))].sort();
      const rows = await queryRows<{ event_id: string; n: number }>(
        s.ch,
        `SELECT event_id, count() AS n FROM ${sc.database}.raw_${kind} FINAL GROUP BY event_id ORDER BY event_id`,
      );
      expect(
        rows.map((r) => r.event_id),
        kind,
      ).toEqual(want);
    }
  });

  it('two members of one group, one joining and then one leaving while records stream in, store every record', async () => {
    const sc = await scenario(t, s, 'rebalance');
    const records = heartbeats(6_000, '30000000', Date.UTC(2026, 10, 20, 9), 97);
    // Small batches and frequent checkpoints: many fetches in flight when the group rebalances.
    const member = (id: string) =>
      new ProcessorRunner(rawStoreProcessor(), runnerDeps(t, s, sc, 'raw-store', { deadLetters: sc.producer }), {
        checkpointIntervalMs: 100,
        consumeBatch: 20,
        instanceId: id,
      });
    const a = member('member-a');
    await a.start();
    const b = member('member-b');
    for (let i = 0; i < records.length; i += 200) {
      await produceRecords(sc.producer, records.slice(i, i + 200));
      if (i === 1_600) await b.start(); // b joins: every partition is revoked and assigned again
      if (i === 3_800) await a.stop(); // a leaves: b takes its partitions from their checkpoints
      await new Promise((r) => setTimeout(r, 25));
    }
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'raw-store', ['playback'], 60_000).catch(() => undefined);
    await b.stop();
    const rows = await queryRows<{ n: number; ids: number }>(s.ch, `SELECT count() AS n, uniqExact(event_id) AS ids FROM ${sc.database}.raw_playback FINAL`);
    expect(rows.map((r) => [Number(r.n), Number(r.ids)])).toEqual([[records.length, records.length]]);
  });

  it('a commit cycle that fails while the next one waits behind it stops the processor before the next checkpoint lands, so a restart writes the failed rows', async () => {
    const sc = await scenario(t, s, 'failedcycle');
    const records = heartbeats(3_000, '40000000', Date.UTC(2026, 10, 20, 11), 89);
    // Fault injection on the real ClickHouse: the first INSERT into raw_playback is held for 1.5 s
    // (records keep coming; the loop consumes on and freezes the next cycle behind it) and then sent to a
    // table that does not exist, so ClickHouse itself rejects it (UNKNOWN_TABLE, not retriable).
    const target = `INSERT INTO ${sc.database}.raw_playback `;
    let injected = 0;
    const client = new Proxy(s.ch.client, {
      get(c, prop, receiver) {
        if (prop !== 'command') return Reflect.get(c, prop, receiver);
        return async (params: { query: string }) => {
          if (injected === 0 && params.query.startsWith(target)) {
            injected++;
            await new Promise((r) => setTimeout(r, 1_500));
            return c.command({ ...params, query: params.query.replace(target, `INSERT INTO ${sc.database}.raw_playback_missing `) });
          }
          return c.command(params);
        };
      },
    });
    const deps = (ch: typeof s.ch) => runnerDeps(t, s, sc, 'raw-store', { ch: { ...ch, database: sc.database }, deadLetters: sc.producer });
    const failing = new ProcessorRunner(rawStoreProcessor(), deps({ ...s.ch, client }), { checkpointIntervalMs: 100, consumeBatch: 50 });
    await failing.start();
    for (let i = 0; i < records.length; i += 200) {
      await produceRecords(sc.producer, records.slice(i, i + 200));
      await new Promise((r) => setTimeout(r, 50));
    }
    await expect(failing.done()).rejects.toThrow(/raw_playback_missing|UNKNOWN_TABLE/);
    await failing.stop();
    expect(injected).toBe(1);
    // Whatever checkpoint landed covers only rows that were written: a new instance resumes from
    // it and every record ends up stored exactly once.
    const again = new ProcessorRunner(rawStoreProcessor(), deps(s.ch), { checkpointIntervalMs: 100, consumeBatch: 50 });
    await again.start();
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'raw-store', ['playback'], 60_000);
    await again.stop();
    const rows = await queryRows<{ n: number; ids: number }>(s.ch, `SELECT count() AS n, uniqExact(event_id) AS ids FROM ${sc.database}.raw_playback FINAL`);
    expect(rows.map((r) => [Number(r.n), Number(r.ids)])).toEqual([[records.length, records.length]]);
    await sc.close();
  });

  it('a raw-store process SIGKILLed in the middle of a stream and restarted leaves no gaps and no duplicates', async () => {
    const sc = await scenario(t, s, 'restart');
    const from = Date.UTC(2026, 10, 20, 10);
    const produce = (offsetS: number, seconds: number) =>
      runSimulation({ seed: 7 + offsetS, ratePerSec: 400, fromMs: from + offsetS * 1000, toMs: from + (offsetS + seconds) * 1000 }, { sink: sc.producer });
    const part1 = await produce(0, 30);
    const proc = spawnRoles(t, sc.childEnv({ BATCH_MAX_ROWS: '500' }), 'raw-store', 'restart-1');
    const part2 = produce(30, 60);
    // Kill once the first checkpoints are in and the stream is still flowing.
    await pollUntil(async () => (await s.redis.keys(`${sc.redisPrefix}ckpt:raw-store:*`)).length > 0, { timeoutMs: 60_000 });
    expect(await proc.kill('SIGKILL')).toBe(-1);
    const r2 = await part2;
    const again = spawnRoles(t, sc.childEnv({ BATCH_MAX_ROWS: '500' }), 'raw-store', 'restart-2');
    await waitCaughtUp(s.redis, t.kafkaBrokers, sc, 'raw-store', KINDS, 120_000);
    expect(await again.kill('SIGTERM')).toBe(0);

    const total = part1.total + r2.total;
    let stored = 0;
    for (const kind of KINDS) {
      const [c] = await queryRows<{ rows: string; ids: string; dup: string }>(
        s.ch,
        `SELECT count() AS rows, uniqExact(event_id) AS ids, (SELECT count() FROM (SELECT event_id FROM ${sc.database}.raw_${kind} FINAL GROUP BY event_id HAVING count() > 1)) AS dup FROM ${sc.database}.raw_${kind} FINAL`,
      );
      expect(Number(c!.dup), `${kind} duplicates`).toBe(0);
      expect(Number(c!.rows), `${kind} rows = distinct ids`).toBe(Number(c!.ids));
      stored += Number(c!.rows);
    }
    // Every produced event is there (the simulator's event ids are unique): no gaps.
    expect(stored).toBe(total);
    await sc.close();
  });
});
