/**
 * `runSimulation(opts, deps)`: drives the pure generator through an event sink (the SDK's
 * EventProducer, or an in-memory sink in tests and benchmarks). Time comes from an injected
 * clock, so tests run real-time mode without sleeping.
 *
 * Modes:
 * - backfill (`toMs` set): event time runs from `fromMs` to `toMs` as fast as the sink takes it;
 * - real time (no `toMs`): event time is the clock; each tick emits what happened since the last;
 * - catch-up (`fromMs` in the past, no `toMs`): backfill up to now, then continue in real time.
 * Batches go through `sendValid` with a bounded number in flight (backpressure: the loop waits
 * for the oldest batch when the window is full).
 */
import { EVENT_KINDS, type EventKind } from '../../contracts/topics.js';
import type { EventByKind } from '../../contracts/types.generated.js';
import type { Logger } from '../../lib/logger.js';
import { TrafficGenerator, type SimEvent } from './generator.js';
import { INCIDENTS, type IncidentName, type IncidentSpec } from './incidents.js';

/** The part of EventProducer the simulator needs. */
export interface EventSink {
  sendValid<K extends EventKind>(kind: K, events: readonly EventByKind[K][]): Promise<void>;
  flush(timeoutMs?: number): Promise<void>;
}

export interface SimClock {
  now(): number;
  /** Resolves after `ms` (or early when `signal` aborts). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: SimClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    }),
};

/** An incident as asked for on the command line, before the run's start time is known. */
export interface IncidentRequest {
  name: IncidentName;
  target?: string;
  /** Absolute start (ms), or... */
  startAtMs?: number;
  /** ...start relative to the beginning of event time. Default: see `resolveIncidents`. */
  startOffsetMs?: number;
  durationMs: number;
}

export interface SimulationOptions {
  seed: number;
  /** Events per second of event time (all kinds). */
  ratePerSec: number;
  accounts?: number;
  /** Start of event time (ms). Default: the clock's now. */
  fromMs?: number;
  /** End of event time (exclusive): backfill mode. */
  toMs?: number;
  /** Real-time runs: stop after this much clock time. Default: until aborted. */
  durationMs?: number;
  incidents?: readonly IncidentRequest[];
  diurnal?: boolean;
  /** Overrides of the generator's fixed moderation and Jira rates (per hour). */
  moderationCasesPerHour?: number;
  jiraIssuesPerHour?: number;
  jiraFieldMap?: Readonly<Record<string, string>>;
  /** Events per sendValid call (default 2000). */
  batchSize?: number;
  /** sendValid calls awaiting delivery at once (default 8). */
  maxInFlight?: number;
  /** Real-time tick (default 100 ms). */
  tickMs?: number;
  /** How often onProgress is called, in clock time (default 1000 ms). */
  progressEveryMs?: number;
}

export interface SimulationDeps {
  sink: EventSink;
  clock?: SimClock;
  signal?: AbortSignal;
  logger?: Logger;
  onProgress?: (p: SimProgress) => void;
}

export interface SimProgress {
  phase: 'backfill' | 'realtime' | 'done';
  sentByKind: Record<EventKind, number>;
  total: number;
  /** Events per second of clock time over the last progress interval. */
  recentRatePerSec: number;
  eventTimeMs: number;
  startMs: number;
  /** End of event time, when known (backfill, or real time with a duration). */
  endMs: number | null;
  elapsedMs: number;
  concurrentViews: number;
}

export interface SimulationResult extends SimProgress {
  stopped: 'completed' | 'aborted';
  incidents: IncidentSpec[];
}

/**
 * Absolute incident windows. Without an explicit start, an incident sits in the last part of a
 * bounded run, followed by an equally long recovery (start = max(start, end - 2 x duration)),
 * so a backfill of days ends with history, the incident and its recovery; an unbounded
 * real-time run starts it one minute in.
 */
export function resolveIncidents(requests: readonly IncidentRequest[], startMs: number, endMs: number | null): IncidentSpec[] {
  return requests.map((r) => {
    let s: number;
    if (r.startAtMs !== undefined) s = r.startAtMs;
    else if (r.startOffsetMs !== undefined) s = startMs + r.startOffsetMs;
    else if (endMs !== null) s = Math.max(startMs, endMs - 2 * r.durationMs);
    else s = startMs + 60_000;
    return { name: r.name, startMs: Math.floor(s), durationMs: r.durationMs, ...(r.target ? { target: r.target } : {}) };
  });
}

export function emptyCounts(): Record<EventKind, number> {
  return Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Record<EventKind, number>;
}

export async function runSimulation(opts: SimulationOptions, deps: SimulationDeps): Promise<SimulationResult> {
  const clock = deps.clock ?? systemClock;
  const { sink, signal, logger } = deps;
  const wallStart = clock.now();
  const startMs = Math.floor(opts.fromMs ?? wallStart);
  const backfillEnd = opts.toMs ?? null;
  const realtimeEnd = opts.durationMs !== undefined && backfillEnd === null ? wallStart + opts.durationMs : null;
  const endMs = backfillEnd ?? realtimeEnd;
  const batchSize = opts.batchSize ?? 2000;
  const maxInFlight = opts.maxInFlight ?? 8;
  const tickMs = opts.tickMs ?? 100;
  const progressEveryMs = opts.progressEveryMs ?? 1000;
  const incidents = resolveIncidents(opts.incidents ?? [], startMs, endMs);
  for (const i of incidents) {
    logger?.info(
      {
        event: 'simulate_incident',
        incident: i.name,
        target: i.target,
        start: new Date(i.startMs).toISOString(),
        duration_ms: i.durationMs,
        description: INCIDENTS[i.name].description,
      },
      'incident scheduled',
    );
  }

  const gen = new TrafficGenerator({
    seed: opts.seed,
    startMs,
    ratePerSec: opts.ratePerSec,
    ...(opts.accounts !== undefined ? { accounts: opts.accounts } : {}),
    ...(opts.diurnal !== undefined ? { diurnal: opts.diurnal } : {}),
    ...(opts.moderationCasesPerHour !== undefined ? { moderationCasesPerHour: opts.moderationCasesPerHour } : {}),
    ...(opts.jiraIssuesPerHour !== undefined ? { jiraIssuesPerHour: opts.jiraIssuesPerHour } : {}),
    ...(opts.jiraFieldMap ? { jiraFieldMap: opts.jiraFieldMap } : {}),
    incidents,
  });

  const sent = emptyCounts();
  let total = 0;
  const inFlight: Promise<void>[] = [];
  // The first failed send's rejection, rethrown by the loop as it came (`in`: even a falsy one).
  const failed: { err?: unknown } = {};
  let phase: SimProgress['phase'] = backfillEnd !== null || startMs < wallStart - tickMs ? 'backfill' : 'realtime';
  let lastProgressAt = wallStart;
  let lastProgressTotal = 0;

  const progress = (): SimProgress => {
    const now = clock.now();
    const dt = Math.max(1, now - lastProgressAt);
    const p: SimProgress = {
      phase,
      sentByKind: { ...sent },
      total,
      recentRatePerSec: ((total - lastProgressTotal) * 1000) / dt,
      eventTimeMs: gen.nowMs,
      startMs,
      endMs,
      elapsedMs: now - wallStart,
      concurrentViews: gen.concurrentViews,
    };
    lastProgressAt = now;
    lastProgressTotal = total;
    return p;
  };
  const maybeProgress = () => {
    if (deps.onProgress && clock.now() - lastProgressAt >= progressEveryMs) deps.onProgress(progress());
  };

  const buffers = new Map<EventKind, unknown[]>(EVENT_KINDS.map((k) => [k, []]));
  const track = (p: Promise<void>, kind: EventKind, n: number) => {
    const tracked = p.then(
      () => {
        sent[kind] += n;
        total += n;
      },
      (err: unknown) => {
        if (!('err' in failed)) failed.err = err;
      },
    );
    inFlight.push(tracked);
  };
  const sendBatch = async (kind: EventKind, events: unknown[]) => {
    while (inFlight.length >= maxInFlight) await inFlight.shift();
    if ('err' in failed) throw failed.err;
    track(sink.sendValid(kind, events as EventByKind[typeof kind][]), kind, events.length);
  };
  /** Sends what `events` holds; full batches only unless `all`. */
  const dispatch = async (events: SimEvent[], all: boolean) => {
    for (const e of events) buffers.get(e.kind)!.push(e.event);
    events.length = 0;
    for (const kind of EVENT_KINDS) {
      const buf = buffers.get(kind)!;
      while (buf.length >= batchSize || (all && buf.length > 0)) {
        const batch = buf.splice(0, batchSize);
        await sendBatch(kind, batch);
      }
    }
  };

  const chunk: SimEvent[] = [];
  let stopped: SimulationResult['stopped'] = 'completed';
  try {
    // Backfill: as fast as the sink allows.
    const backfillTarget = backfillEnd ?? (startMs < wallStart - tickMs ? wallStart : null);
    if (backfillTarget !== null) {
      const stepMs = Math.max(1000, Math.round((batchSize / opts.ratePerSec) * 1000));
      while (gen.nowMs < backfillTarget) {
        if (signal?.aborted) {
          stopped = 'aborted';
          break;
        }
        gen.advanceInto(Math.min(backfillTarget, gen.nowMs + stepMs), chunk);
        await dispatch(chunk, false);
        maybeProgress();
        if ('err' in failed) throw failed.err;
      }
      await dispatch(chunk, true);
    }
    // Real time: event time follows the clock.
    if (backfillEnd === null && stopped === 'completed') {
      phase = 'realtime';
      for (;;) {
        if (signal?.aborted) {
          stopped = 'aborted';
          break;
        }
        const now = clock.now();
        const target = realtimeEnd !== null ? Math.min(now, realtimeEnd) : now;
        if (target > gen.nowMs) {
          gen.advanceInto(target, chunk);
          await dispatch(chunk, true);
        }
        maybeProgress();
        if ('err' in failed) throw failed.err;
        if (realtimeEnd !== null && gen.nowMs >= realtimeEnd) break;
        await clock.sleep(tickMs, signal);
      }
    }
    await dispatch(chunk, true);
    await Promise.all(inFlight.splice(0));
    if ('err' in failed) throw failed.err;
    await sink.flush();
  } catch (err) {
    await Promise.allSettled(inFlight.splice(0));
    throw err;
  }
  phase = 'done';
  const final = progress();
  deps.onProgress?.(final);
  return { ...final, stopped, incidents };
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function fmtDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** One line of progress: sent by kind, rate, event-time position, elapsed. */
export function formatProgress(p: SimProgress): string {
  const kinds = EVENT_KINDS.filter((k) => p.sentByKind[k] > 0)
    .map((k) => `${k} ${fmtInt(p.sentByKind[k])}`)
    .join(' ');
  const pos = new Date(p.eventTimeMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const pct = p.endMs !== null && p.endMs > p.startMs ? ` ${Math.min(100, (100 * (p.eventTimeMs - p.startMs)) / (p.endMs - p.startMs)).toFixed(1)}%` : '';
  return `[${p.phase}] sent ${fmtInt(p.total)} (${kinds || 'none yet'}) | ${fmtInt(p.recentRatePerSec)}/s | event time ${pos}${pct} | views ${fmtInt(p.concurrentViews)} | elapsed ${fmtDuration(p.elapsedMs)}`;
}
