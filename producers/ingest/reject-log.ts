/**
 * Structured logging of refused requests that a flood cannot turn into a flood of log lines: per
 * reason, the first refusal of an interval is logged at once (`ingest_rejected`, with its
 * details), later ones in the same interval are only counted, and `flush()` (run on a timer and
 * at close) logs one `ingest_rejected_summary` line per reason with the count it held back.
 * Pure apart from the logger; the clock is injected.
 */
import type { Logger } from '../../lib/logger.js';

interface ReasonWindow {
  until: number;
  suppressed: number;
}

export class RateLimitedRejectLog {
  private readonly windows = new Map<string, ReasonWindow>();

  constructor(
    private readonly logger: Logger,
    readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs (or counts, when this reason was logged less than an interval ago) one refusal. */
  note(reason: string, fields: Record<string, unknown>, message = 'ingest request refused'): void {
    const now = this.now();
    const w = this.windows.get(reason);
    if (w && now < w.until) {
      w.suppressed++;
      return;
    }
    const suppressed = w?.suppressed ?? 0;
    this.windows.set(reason, { until: now + this.intervalMs, suppressed: 0 });
    this.logger.warn({ event: 'ingest_rejected', reason, ...fields, ...(suppressed > 0 ? { suppressed_before: suppressed } : {}) }, message);
  }

  /** One summary line per reason with refusals held back since its last line. */
  flush(): void {
    for (const [reason, w] of this.windows) {
      if (w.suppressed > 0) {
        this.logger.warn(
          { event: 'ingest_rejected_summary', reason, count: w.suppressed, interval_ms: this.intervalMs },
          `${w.suppressed} more ingest requests refused (${reason})`,
        );
        w.suppressed = 0;
      }
      if (this.now() >= w.until) this.windows.delete(reason);
    }
  }
}
