/**
 * Event time per partition. The watermark of a partition is the largest event time seen minus
 * the allowed lateness (out-of-orderness bound): "no event older than this is expected".
 * It never goes backwards. Pure: processing time is passed in by the caller's injected clock.
 *
 * Idle-partition rule: a partition that has seen no record for `idleAfterMs` of processing time
 * stops holding windows open: its watermark is advanced to the smallest watermark among the
 * active partitions of the same processor instance (as Flink's `withIdleness`). This is the only
 * place where processing time influences results; on a steady log it never fires.
 */
export interface PartitionTime {
  maxEventMs: number;
  watermarkMs: number;
  lastRecordAtMs: number;
}

export const NO_TIME = -Number.MAX_SAFE_INTEGER;

export function newPartitionTime(nowMs: number): PartitionTime {
  return { maxEventMs: NO_TIME, watermarkMs: NO_TIME, lastRecordAtMs: nowMs };
}

/** Observes one event; returns the (possibly advanced) watermark. */
export function observe(t: PartitionTime, eventMs: number, allowedLatenessMs: number, nowMs: number): number {
  t.lastRecordAtMs = nowMs;
  if (eventMs > t.maxEventMs) t.maxEventMs = eventMs;
  const wm = t.maxEventMs - allowedLatenessMs;
  if (wm > t.watermarkMs) t.watermarkMs = wm;
  return t.watermarkMs;
}

export function isIdle(t: PartitionTime, nowMs: number, idleAfterMs: number): boolean {
  return nowMs - t.lastRecordAtMs >= idleAfterMs;
}

/**
 * Applies the idle rule to a set of partitions: each idle partition's watermark is raised to the
 * minimum watermark of the active ones (if there are any). Returns the partitions it advanced.
 */
export function advanceIdle<K>(parts: Map<K, PartitionTime>, nowMs: number, idleAfterMs: number): K[] {
  let minActive = Number.POSITIVE_INFINITY;
  for (const t of parts.values()) if (!isIdle(t, nowMs, idleAfterMs) && t.watermarkMs > NO_TIME) minActive = Math.min(minActive, t.watermarkMs);
  if (!Number.isFinite(minActive)) return [];
  const advanced: K[] = [];
  for (const [k, t] of parts) {
    if (isIdle(t, nowMs, idleAfterMs) && t.watermarkMs < minActive) {
      t.watermarkMs = minActive;
      advanced.push(k);
    }
  }
  return advanced;
}
