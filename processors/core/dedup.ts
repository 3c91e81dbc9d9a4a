/**
 * Bounded de-duplication by event_id. Ids are kept in buckets of event time; a bucket is
 * dropped once it is older than the watermark minus the horizon. So the same event_id twice
 * counts once as long as the second copy arrives within `horizonMs` of event time behind the
 * watermark; an older copy is late anyway and goes to the late-events table, which is itself
 * keyed by event_id. The horizon is documented per processor (docs/processing.md).
 */
export interface DedupState {
  bucketMs: number;
  horizonMs: number;
  /** bucket start -> ids */
  buckets: Map<number, Set<string>>;
}

export function newDedup(horizonMs: number, bucketMs = 60_000): DedupState {
  return { bucketMs, horizonMs, buckets: new Map() };
}

/** Returns true if the id was seen before (a duplicate); otherwise remembers it. */
export function seenBefore(d: DedupState, eventId: string, eventMs: number): boolean {
  const b = Math.floor(eventMs / d.bucketMs) * d.bucketMs;
  // An id belongs to the bucket of its event time; duplicates carry the same event time.
  let set = d.buckets.get(b);
  if (set?.has(eventId)) return true;
  if (!set) {
    set = new Set();
    d.buckets.set(b, set);
  }
  set.add(eventId);
  return false;
}

export function expireDedup(d: DedupState, watermarkMs: number): void {
  const limit = watermarkMs - d.horizonMs;
  for (const b of d.buckets.keys()) if (b + d.bucketMs <= limit) d.buckets.delete(b);
}

export function dedupSize(d: DedupState): number {
  let n = 0;
  for (const s of d.buckets.values()) n += s.size;
  return n;
}

export function serializeDedup(d: DedupState): { bucketMs: number; horizonMs: number; buckets: Array<[number, string]> } {
  // Ids joined by '\n' keep the checkpoint compact (UUIDs never contain a newline).
  return { bucketMs: d.bucketMs, horizonMs: d.horizonMs, buckets: [...d.buckets].map(([b, s]) => [b, [...s].join('\n')]) };
}

export function deserializeDedup(j: ReturnType<typeof serializeDedup>): DedupState {
  return { bucketMs: j.bucketMs, horizonMs: j.horizonMs, buckets: new Map(j.buckets.map(([b, s]) => [b, new Set(s ? s.split('\n') : [])])) };
}
