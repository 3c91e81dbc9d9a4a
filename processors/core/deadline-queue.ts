/**
 * A min-heap of (timeMs, item): the event-time schedule of per-key state (a view's finalisation,
 * a finalised view's expiry, an idle entry's eviction). Processors pop the entries due at the
 * watermark instead of scanning all their state after every batch, so a watermark pass costs
 * O(due · log n), not O(state).
 *
 * Entries are hints, checked when they fire: a processor whose deadline only moves later (a new
 * event pushes an idle timeout back) leaves the old entry in place and, when it fires, re-checks
 * the state and schedules the real deadline (lazy rescheduling); a deadline that moves earlier
 * must be pushed at once. The queue is derived state: it is never checkpointed, but rebuilt from
 * the state on restore. Pure: no clock.
 */
export class DeadlineQueue<T> {
  private readonly times: number[] = [];
  private readonly items: T[] = [];

  get size(): number {
    return this.times.length;
  }

  /** Time of the earliest entry (+Infinity when empty). */
  peekTime(): number {
    return this.times.length > 0 ? this.times[0]! : Number.POSITIVE_INFINITY;
  }

  push(timeMs: number, item: T): void {
    const times = this.times;
    const items = this.items;
    let i = times.length;
    times.push(timeMs);
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent]! <= timeMs) break;
      times[i] = times[parent]!;
      items[i] = items[parent]!;
      i = parent;
    }
    times[i] = timeMs;
    items[i] = item;
  }

  /** Removes and returns the earliest entry whose time is ≤ maxTimeMs (undefined if none). */
  popDue(maxTimeMs: number): T | undefined {
    if (this.times.length === 0 || this.times[0]! > maxTimeMs) return undefined;
    return this.pop();
  }

  /** Removes and returns the earliest entry whose time is < limitMs (undefined if none). */
  popBefore(limitMs: number): T | undefined {
    if (this.times.length === 0 || !(this.times[0]! < limitMs)) return undefined;
    return this.pop();
  }

  private pop(): T {
    const times = this.times;
    const items = this.items;
    const top = items[0]!;
    const lastTime = times.pop()!;
    const lastItem = items.pop()!;
    const n = times.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && times[child + 1]! < times[child]!) child++;
        if (times[child]! >= lastTime) break;
        times[i] = times[child]!;
        items[i] = items[child]!;
        i = child;
      }
      times[i] = lastTime;
      items[i] = lastItem;
    }
    return top;
  }

  clear(): void {
    this.times.length = 0;
    this.items.length = 0;
  }
}
