/**
 * runSimulation and the CLI argument parser, with an in-memory sink and a fake clock whose
 * sleep advances time instantly (no real waiting, no broker).
 */
import { describe, expect, it } from 'vitest';
import type { EventKind } from '../../contracts/topics.js';
import { parseCliArgs, parseDuration, parseTime } from '../../producers/simulator/cli-args.js';
import { TrafficGenerator } from '../../producers/simulator/generator.js';
import { formatProgress, resolveIncidents, runSimulation, type EventSink, type SimClock, type SimProgress } from '../../producers/simulator/run.js';

const T0 = Date.UTC(2026, 10, 20, 12, 0, 0);

class MemorySink implements EventSink {
  readonly events: Array<{ kind: EventKind; event: unknown }> = [];
  calls = 0;
  flushed = 0;
  failAfter = Number.POSITIVE_INFINITY;
  async sendValid<K extends EventKind>(kind: K, events: readonly unknown[]): Promise<void> {
    if (++this.calls > this.failAfter) throw new Error('broker down');
    await Promise.resolve();
    for (const e of events) this.events.push({ kind, event: e });
  }
  async flush(): Promise<void> {
    this.flushed++;
  }
}

function fakeClock(start: number): SimClock & { t: number } {
  const c = {
    t: start,
    now: () => c.t,
    sleep: async (ms: number) => {
      c.t += ms;
    },
  };
  return c;
}

describe('simulator CLI arguments', () => {
  it('parses durations and times', () => {
    expect(parseDuration('60s')).toBe(60_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('8d')).toBe(8 * 86_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('90')).toBe(90_000);
    expect(() => parseDuration('10x')).toThrow(/bad duration/);
    expect(parseTime('2026-11-17', 0)).toBe(Date.UTC(2026, 10, 17));
    expect(parseTime('now', 123)).toBe(123);
  });

  it('parses a real-time run, a backfill and incidents', () => {
    const rt = parseCliArgs(
      [
        '--rate',
        '2000',
        '--duration',
        '60s',
        '--seed',
        '7',
        '--incident',
        'cdn-degradation:fastly,payment-outage',
        '--incident-start',
        '10m',
        '--incident-duration',
        '5m',
      ],
      T0,
    );
    expect(rt).toMatchObject({ ratePerSec: 2000, durationMs: 60_000, seed: 7 });
    expect(rt.incidents).toEqual([
      { name: 'cdn-degradation', target: 'fastly', durationMs: 300_000, startOffsetMs: 600_000 },
      { name: 'payment-outage', durationMs: 300_000, startOffsetMs: 600_000 },
    ]);
    const bf = parseCliArgs(['--from', '2026-11-17', '--to', '2026-11-25', '--topic-prefix', 'x.'], T0);
    expect(bf.ratePerSec).toBe(50);
    expect(bf.fromMs).toBe(Date.UTC(2026, 10, 17));
    expect(bf.toMs).toBe(Date.UTC(2026, 10, 25));
    expect(bf.topicPrefix).toBe('x.');
    expect(() => parseCliArgs(['--incident', 'nope'], T0)).toThrow(/unknown incident/);
    expect(() => parseCliArgs(['--incident', 'cdn-degradation:nocdn'], T0)).toThrow(/unknown CDN/);
    expect(() => parseCliArgs(['--to', '2026-11-25'], T0)).toThrow(/--to needs --from/);
    expect(() => parseCliArgs(['--bogus', '1'], T0)).toThrow(/unknown option/);
  });

  it('places an incident without a start at the end of a bounded run, followed by recovery', () => {
    const [a] = resolveIncidents([{ name: 'payment-outage', durationMs: 3_600_000 }], T0, T0 + 8 * 86_400_000);
    expect(a!.startMs).toBe(T0 + 8 * 86_400_000 - 2 * 3_600_000);
    const [b] = resolveIncidents([{ name: 'payment-outage', durationMs: 3_600_000, startOffsetMs: 60_000 }], T0, null);
    expect(b!.startMs).toBe(T0 + 60_000);
  });
});

describe('runSimulation', () => {
  it('backfills a range through the sink in batches, identical to the pure generator', async () => {
    const sink = new MemorySink();
    const progress: SimProgress[] = [];
    const clock = fakeClock(T0 + 86_400_000);
    const res = await runSimulation(
      { seed: 11, ratePerSec: 40, fromMs: T0, toMs: T0 + 20 * 60_000, batchSize: 500, progressEveryMs: 0 },
      { sink, clock, onProgress: (p) => progress.push(p) },
    );
    expect(res.stopped).toBe('completed');
    expect(sink.flushed).toBe(1);
    const direct = new TrafficGenerator({ seed: 11, startMs: T0, ratePerSec: 40 }).advance(T0 + 20 * 60_000);
    expect(res.total).toBe(direct.length);
    expect(sink.events.length).toBe(direct.length);
    for (const kind of ['playback', 'payments', 'catalog'] as const) {
      const a = sink.events.filter((e) => e.kind === kind).map((e) => e.event);
      const b = direct.filter((e) => e.kind === kind).map((e) => e.event);
      expect(a).toEqual(b);
    }
    expect(res.sentByKind.playback).toBeGreaterThan(0);
    expect(progress.at(-1)!.phase).toBe('done');
    expect(formatProgress(progress.at(-1)!)).toMatch(/sent [\d,]+ \(playback [\d,]+.*event time 2026-11-20T12:20:00Z 100\.0%/);
  });

  it('runs in real time on an injected clock and stops after --duration', async () => {
    const sink = new MemorySink();
    const clock = fakeClock(T0);
    const res = await runSimulation({ seed: 1, ratePerSec: 100, durationMs: 30_000, tickMs: 100, diurnal: false }, { sink, clock });
    expect(res.stopped).toBe('completed');
    expect(res.eventTimeMs).toBe(T0 + 30_000);
    const playback = sink.events.filter((e) => e.kind === 'playback').length;
    expect(playback / 30).toBeGreaterThan(75);
    expect(playback / 30).toBeLessThan(110);
    for (const e of sink.events) expect((e.event as { event_time: number }).event_time).toBeLessThan(T0 + 30_000);
  });

  it('stops cleanly when aborted, flushing what it produced', async () => {
    const sink = new MemorySink();
    const clock = fakeClock(T0);
    const abort = new AbortController();
    const res = await runSimulation(
      { seed: 1, ratePerSec: 100, tickMs: 100, progressEveryMs: 1000 },
      {
        sink,
        clock,
        signal: abort.signal,
        onProgress: (p) => {
          if (p.elapsedMs >= 5_000) abort.abort();
        },
      },
    );
    expect(res.stopped).toBe('aborted');
    expect(sink.flushed).toBe(1);
    expect(res.total).toBe(sink.events.length);
    expect(res.eventTimeMs).toBeGreaterThanOrEqual(T0 + 5_000);
  });

  it('fails with the sink error instead of losing events silently', async () => {
    const sink = new MemorySink();
    sink.failAfter = 3;
    await expect(runSimulation({ seed: 1, ratePerSec: 100, fromMs: T0, toMs: T0 + 600_000, batchSize: 100 }, { sink, clock: fakeClock(T0) })).rejects.toThrow(
      /broker down/,
    );
  });
});
