/**
 * What the process knows about the services it depends on (Redis, ClickHouse, Kafka): which are
 * unavailable since when and why, fed by the components that retry through an outage
 * (processors/core/runner.ts). Pure: the clock is injected; metrics are optional.
 *
 * Outage time is counted per dependency in `streampulse_dependency_unavailable_seconds_total`
 * (time from the first failed attempt to the first successful one, accounted at every report), and
 * `streampulse_dependency_up` is 0 while a dependency is out. Readiness endpoints read `status()`.
 */
import type { Metrics } from './metrics.js';

export const DEPENDENCIES = ['redis', 'clickhouse', 'kafka'] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

interface Outage {
  sinceMs: number;
  /** Time accounted into the counter up to here. */
  countedToMs: number;
  reason: string;
  attempts: number;
}

export interface DependencyStatus {
  up: boolean;
  /** While down: when the outage started (ms) and the last error. */
  sinceMs?: number;
  reason?: string;
  attempts?: number;
}

/**
 * Delay before retry number `attempt` (1-based): exponential from `baseMs`, capped at `maxMs`,
 * with "equal jitter" (half fixed, half random), so that processes retrying the same dependency
 * spread out instead of hitting it in step when it comes back.
 */
export function backoffDelayMs(attempt: number, opts: { baseMs?: number; maxMs?: number } = {}, random: () => number = Math.random): number {
  const base = opts.baseMs ?? 200;
  const max = opts.maxMs ?? 5_000;
  const exp = Math.min(max, base * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(exp / 2 + random() * (exp / 2));
}

export class DependencyHealth {
  private readonly outages = new Map<Dependency, Outage>();

  constructor(
    private readonly metrics?: Pick<Metrics, 'dependencyUnavailableSeconds' | 'dependencyUp'>,
    private readonly clock: () => number = Date.now,
  ) {
    for (const d of DEPENDENCIES) metrics?.dependencyUp.set({ dependency: d }, 1);
  }

  private account(dep: Dependency, o: Outage, now: number): void {
    if (now > o.countedToMs) {
      this.metrics?.dependencyUnavailableSeconds.inc({ dependency: dep }, (now - o.countedToMs) / 1000);
      o.countedToMs = now;
    }
  }

  /** A failed attempt on `dep`; true when it starts an outage (the caller logs it once). */
  unavailable(dep: Dependency, err: unknown): boolean {
    const now = this.clock();
    const reason = err instanceof Error ? err.message : String(err);
    const o = this.outages.get(dep);
    if (o) {
      this.account(dep, o, now);
      o.reason = reason;
      o.attempts++;
      return false;
    }
    this.outages.set(dep, { sinceMs: now, countedToMs: now, reason, attempts: 1 });
    this.metrics?.dependencyUp.set({ dependency: dep }, 0);
    return true;
  }

  /** A successful attempt on `dep`; the outage's length in ms when it ends one, else null. */
  available(dep: Dependency): number | null {
    const o = this.outages.get(dep);
    if (!o) return null;
    const now = this.clock();
    this.account(dep, o, now);
    this.outages.delete(dep);
    this.metrics?.dependencyUp.set({ dependency: dep }, 1);
    return now - o.sinceMs;
  }

  /** Accounts the time of running outages into the counter (call before a scrape). */
  tick(): void {
    const now = this.clock();
    for (const [dep, o] of this.outages) this.account(dep, o, now);
  }

  isUp(dep: Dependency): boolean {
    return !this.outages.has(dep);
  }

  status(): Record<Dependency, DependencyStatus> {
    const out = {} as Record<Dependency, DependencyStatus>;
    for (const d of DEPENDENCIES) {
      const o = this.outages.get(d);
      out[d] = o ? { up: false, sinceMs: o.sinceMs, reason: o.reason, attempts: o.attempts } : { up: true };
    }
    return out;
  }
}
