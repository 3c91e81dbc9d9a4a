/**
 * Window math, pure. Vocabulary from Kafka Streams: a window has a size, an advance (hopping),
 * a grace; "window close = window end + grace"; windows are aligned to the epoch.
 * Every function takes times in ms since epoch and never reads a clock.
 */

export type WindowSpec =
  | { kind: 'tumbling'; sizeMs: number; graceMs: number }
  | { kind: 'hopping'; sizeMs: number; advanceMs: number; graceMs: number }
  | { kind: 'session'; gapMs: number; graceMs: number };

export interface TimeWindow {
  /** Inclusive start. */
  startMs: number;
  /** Exclusive end. */
  endMs: number;
}

export function tumbling(sizeMs: number, graceMs = 0): WindowSpec {
  if (!(sizeMs > 0)) throw new RangeError('tumbling window sizeMs must be > 0');
  if (graceMs < 0) throw new RangeError('graceMs must be >= 0');
  return { kind: 'tumbling', sizeMs, graceMs };
}

export function hopping(sizeMs: number, advanceMs: number, graceMs = 0): WindowSpec {
  if (!(sizeMs > 0)) throw new RangeError('hopping window sizeMs must be > 0');
  if (!(advanceMs > 0) || advanceMs > sizeMs) throw new RangeError('hopping window advanceMs must be in (0, sizeMs]');
  if (graceMs < 0) throw new RangeError('graceMs must be >= 0');
  return { kind: 'hopping', sizeMs, advanceMs, graceMs };
}

export function session(gapMs: number, graceMs = 0): WindowSpec {
  if (!(gapMs > 0)) throw new RangeError('session gapMs must be > 0');
  if (graceMs < 0) throw new RangeError('graceMs must be >= 0');
  return { kind: 'session', gapMs, graceMs };
}

/** Floor of ts to a multiple of step, correct for negative times. */
export function alignDown(tsMs: number, stepMs: number): number {
  return Math.floor(tsMs / stepMs) * stepMs;
}

/**
 * The windows an event at tsMs belongs to, oldest first. For a session spec this is the
 * event's own proto-session [ts, ts + gap), to be merged with neighbours by `mergeSessions`.
 */
export function windowsFor(tsMs: number, spec: WindowSpec): TimeWindow[] {
  switch (spec.kind) {
    case 'tumbling': {
      const startMs = alignDown(tsMs, spec.sizeMs);
      return [{ startMs, endMs: startMs + spec.sizeMs }];
    }
    case 'hopping': {
      const out: TimeWindow[] = [];
      // Latest window containing ts starts at alignDown(ts, advance); earlier ones step back by advance.
      const last = alignDown(tsMs, spec.advanceMs);
      for (let start = last; start > tsMs - spec.sizeMs; start -= spec.advanceMs) out.push({ startMs: start, endMs: start + spec.sizeMs });
      return out.reverse();
    }
    case 'session':
      return [{ startMs: tsMs, endMs: tsMs + spec.gapMs }];
  }
}

/** The time at which a window stops accepting events: end + grace. */
export function closeTimeMs(w: TimeWindow, spec: WindowSpec): number {
  return w.endMs + spec.graceMs;
}

/** A window is closed once the watermark has reached its close time. */
export function isClosed(w: TimeWindow, spec: WindowSpec, watermarkMs: number): boolean {
  return watermarkMs >= closeTimeMs(w, spec);
}

/**
 * An event is late when every window it belongs to is already closed at the current watermark.
 * (For hopping windows an event may still count in its newer windows: see `openWindowsFor`.)
 */
export function isLate(tsMs: number, spec: WindowSpec, watermarkMs: number): boolean {
  return openWindowsFor(tsMs, spec, watermarkMs).length === 0;
}

/** The windows of tsMs that are still open at the watermark. */
export function openWindowsFor(tsMs: number, spec: WindowSpec, watermarkMs: number): TimeWindow[] {
  return windowsFor(tsMs, spec).filter((w) => !isClosed(w, spec, watermarkMs));
}

export interface SessionWindow<A> extends TimeWindow {
  /** Time of the last event in the session; endMs = lastEventMs + gap. */
  lastEventMs: number;
  acc: A;
}

/**
 * Adds an event at tsMs to a key's sessions: merges every session whose [start, last + gap]
 * touches the event, as Kafka Streams' session windows do. Returns the new, sorted list.
 */
export function mergeSessions<A>(sessions: readonly SessionWindow<A>[], tsMs: number, gapMs: number, value: A, merge: (a: A, b: A) => A): SessionWindow<A>[] {
  let merged: SessionWindow<A> = { startMs: tsMs, endMs: tsMs + gapMs, lastEventMs: tsMs, acc: value };
  const rest: SessionWindow<A>[] = [];
  for (const s of sessions) {
    const touches = tsMs >= s.startMs - gapMs && tsMs <= s.lastEventMs + gapMs;
    if (touches) {
      const startMs = Math.min(merged.startMs, s.startMs);
      const lastEventMs = Math.max(merged.lastEventMs, s.lastEventMs);
      merged = { startMs, lastEventMs, endMs: lastEventMs + gapMs, acc: merge(s.acc, merged.acc) };
    } else rest.push(s);
  }
  // A merge may now touch further sessions (bridging): repeat until stable.
  let changed = true;
  while (changed) {
    changed = false;
    for (let i = 0; i < rest.length; i++) {
      const s = rest[i]!;
      if (s.startMs <= merged.lastEventMs + gapMs && merged.startMs <= s.lastEventMs + gapMs) {
        const startMs = Math.min(merged.startMs, s.startMs);
        const lastEventMs = Math.max(merged.lastEventMs, s.lastEventMs);
        merged = { startMs, lastEventMs, endMs: lastEventMs + gapMs, acc: merge(s.acc, merged.acc) };
        rest.splice(i, 1);
        changed = true;
        break;
      }
    }
  }
  return [...rest, merged].sort((a, b) => a.startMs - b.startMs);
}

/** Splits windows into those closed at the watermark and those still open. */
export function closeExpired<W extends TimeWindow>(windows: readonly W[], spec: WindowSpec, watermarkMs: number): { closed: W[]; open: W[] } {
  const closed: W[] = [];
  const open: W[] = [];
  for (const w of windows) (isClosed(w, spec, watermarkMs) ? closed : open).push(w);
  return { closed, open };
}
