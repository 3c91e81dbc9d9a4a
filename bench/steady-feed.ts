/**
 * The steady traffic of the freshness benchmark (bench/pipeline.bench.ts, steadyFreshness), in a
 * process of its own: the simulator at BENCH_FEED_RATE events/s in real time for BENCH_FEED_MS,
 * produced through an SDK producer without waiting for each batch's acknowledgement before the
 * next (as many clients would; at most BENCH_FEED_MAX_PENDING_S seconds of events unacknowledged,
 * then it waits: backpressure). Started with an IPC channel: it sends `{ type: 'started', startMs }`
 * when its clock starts (before the generator is built, so a slow start shows as a first burst
 * within the warm-up, as before) and `{ type: 'done', events, stalls }` once every event is
 * acknowledged.
 *
 * Why a process of its own: the generator holds about 1 GB of simulated world (accounts, views,
 * schedules) and leaves about 25 KB of garbage per event, so its process runs major collections
 * of a 1.5 GB heap (seconds of marking, a 0.3 s final pause, measured with --trace-gc). In the
 * bench process they stalled the probes and the poller that times them, and the feed loop
 * awaited every batch's acknowledgement before generating the next, so any stall of the broker
 * or of this process stopped the traffic. The probes are now sent and timed in the bench process.
 */
import { loadConfig } from '../lib/config.js';
import { AvroCodec } from '../lib/avro-codec.js';
import { createLogger } from '../lib/logger.js';
import { createMetrics } from '../lib/metrics.js';
import type { EventKind } from '../contracts/topics.js';
import { EventProducer } from '../producers/sdk/event-producer.js';
import { TrafficGenerator, type SimEvent } from '../producers/simulator/generator.js';

const rate = Number(process.env.BENCH_FEED_RATE);
const durationMs = Number(process.env.BENCH_FEED_MS);
const maxPendingEvents = rate * Number(process.env.BENCH_FEED_MAX_PENDING_S ?? 2);

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.env.LOG_LEVEL);
  const codec = await AvroCodec.connect(process.env.SCHEMA_REGISTRY_URL!, config.topicPrefix);
  const producer = await EventProducer.connect({
    brokers: config.kafkaBrokers,
    clientId: `bench-feed-${process.pid}`,
    topicPrefix: config.topicPrefix,
    codec,
    logger,
    metrics: createMetrics(),
    lingerMs: 20,
  });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  const start = Date.now();
  process.send!({ type: 'started', startMs: start });
  // No diurnal curve: the simulator's rate is a daily mean that its curve multiplies by 0.7-1.3
  // with the hour (UTC), so a run at 03:40 sent 7,190 events/s when asked for 10,000 and one at
  // 15:00 about 13,000. The feed sends the rate it is given, whatever the hour.
  const gen = new TrafficGenerator({ seed: 5, startMs: start, ratePerSec: rate, diurnal: false });
  // Loops that started over 250 ms after the previous one ended, or that waited for
  // acknowledgements (backpressure): second since the feed started: events/ms late/ms waited.
  const stalls: string[] = [];
  const pending: Array<{ events: number; done: Promise<void>; acked: boolean }> = [];
  let pendingEvents = 0;
  const failure: { err: Error | null } = { err: null };
  let events = 0;
  let lastEnd = Date.now();
  while (Date.now() - start < durationMs) {
    if (failure.err) throw failure.err;
    const now = Date.now();
    const late = now - lastEnd - 20;
    const batch: SimEvent[] = [];
    gen.advanceInto(now, batch);
    const byKind = new Map<EventKind, unknown[]>();
    for (const e of batch) (byKind.get(e.kind) ?? byKind.set(e.kind, []).get(e.kind)!).push({ ...e.event, received_time: now });
    for (const [kind, list] of byKind) {
      const sent = { events: list.length, done: producer.sendValid(kind, list as never), acked: false };
      sent.done.then(
        () => (sent.acked = true),
        (err: Error) => (failure.err ??= err),
      );
      pending.push(sent);
      pendingEvents += list.length;
    }
    events += batch.length;
    const tWait = Date.now();
    while (pendingEvents > maxPendingEvents) {
      const oldest = pending.shift()!;
      await oldest.done;
      pendingEvents -= oldest.events;
    }
    // Forget what is acknowledged already, oldest first.
    while (pending[0]?.acked) pendingEvents -= pending.shift()!.events;
    lastEnd = Date.now();
    if (late > 250 || lastEnd - tWait > 250) stalls.push(`${((now - start) / 1000).toFixed(1)}s:${batch.length}ev/${late}/${lastEnd - tWait}ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await Promise.all(pending.map((p) => p.done));
  await producer.close();
  process.send!({ type: 'done', events, stalls });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
