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
  /**
   * Ids added since the last checkpoint, with their buckets (incremental checkpoints); null: too
   * many to track, the next checkpoint is full. Not checkpointed.
   */
  fresh?: { buckets: number[]; ids: string[] } | null;
}

/** Ids tracked for a delta at most; beyond, the next checkpoint is a full one. */
const MAX_FRESH = 262_144;

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
  const f = d.fresh;
  if (f === undefined) d.fresh = { buckets: [b], ids: [eventId] };
  else if (f !== null) {
    f.buckets.push(b);
    if (f.ids.push(eventId) > MAX_FRESH) d.fresh = null;
  }
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

/** Ids added since the last checkpoint (null: too many, write a full one), per bucket; and a new chain from here. */
export interface DedupDelta {
  /** Buckets kept now (the others expired). */
  kept: number[];
  added: Array<[number, string]>;
}

export function takeDedupDelta(d: DedupState): DedupDelta | null {
  const f = d.fresh;
  d.fresh = undefined;
  if (f === null) return null;
  const byBucket = new Map<number, string[]>();
  if (f) {
    for (let i = 0; i < f.ids.length; i++) {
      const b = f.buckets[i]!;
      // Expired since: nothing to keep.
      if (!d.buckets.has(b)) continue;
      let l = byBucket.get(b);
      if (!l) byBucket.set(b, (l = []));
      l.push(f.ids[i]!);
    }
  }
  return { kept: [...d.buckets.keys()], added: [...byBucket].map(([b, ids]) => [b, ids.join('\n')]) };
}

/** Forgets the ids tracked: the state was checkpointed in full (or restored). */
export function clearDedupDelta(d: DedupState): void {
  d.fresh = undefined;
}

export function applyDedupDelta(d: DedupState, delta: DedupDelta): void {
  const kept = new Set(delta.kept);
  for (const b of [...d.buckets.keys()]) if (!kept.has(b)) d.buckets.delete(b);
  for (const [b, ids] of delta.added) {
    let set = d.buckets.get(b);
    if (!set) d.buckets.set(b, (set = new Set()));
    for (const id of ids.split('\n')) set.add(id);
  }
}
