/** The processors a role name starts. Processors never import each other; this table wires them. */
import type { Env, Role } from '../lib/config.js';
import type { LatenessPolicy } from '../processors/core/late-firing.js';
import type { ClickHouse } from '../sinks/clickhouse/client.js';
import type { Processor } from '../processors/core/processor.js';
import { businessProcessor } from '../processors/business/business.processor.js';
import { rawStoreProcessor } from '../processors/raw-store/raw-store.processor.js';
import { qoeProcessor } from '../processors/qoe/qoe.processor.js';
import { safetyProcessor } from '../processors/safety/safety.processor.js';
import { productionProcessor } from '../processors/production/production.processor.js';
import { churnProcessor } from '../processors/churn/churn.processor.js';

export type ProcessorRole = Extract<Role, 'raw-store' | 'business' | 'qoe' | 'churn' | 'safety' | 'production'>;

export interface ProcessorSettings {
  ch: ClickHouse;
  graceMs: number;
  allowedLatenessMs: number;
  /** Allowed lateness past the grace per kind (late firings); absent: none. */
  lateness?: LatenessPolicy;
  /** While live, open rows of views (qoe_views) and of account-days (churn_account_daily) at most once per this long; absent: the processors' defaults. */
  viewRowIntervalMs?: number;
  dayRowIntervalMs?: number;
}

/** The allowed lateness per kind from the settings (docs/processing.md, "Late data policy"). */
export function latenessPolicy(
  env: Pick<Env, 'LATENESS_PLAYBACK_MS' | 'LATENESS_GIFTS_MS' | 'LATENESS_PAYMENTS_MS' | 'LATENESS_MODERATION_MS'>,
): LatenessPolicy {
  return { playback: env.LATENESS_PLAYBACK_MS, gifts: env.LATENESS_GIFTS_MS, payments: env.LATENESS_PAYMENTS_MS, moderation: env.LATENESS_MODERATION_MS };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each factory's processor has its own state type, and Processor<S> takes and returns S (Processor<unknown> would not accept them)
export const PROCESSOR_FACTORIES: Partial<Record<ProcessorRole, (s: ProcessorSettings) => Processor<any>>> = {
  'raw-store': () => rawStoreProcessor(),
  business: (s) => businessProcessor({ ch: s.ch, graceMs: s.graceMs, allowedLatenessMs: s.allowedLatenessMs, lateness: s.lateness }),
  qoe: (s) => qoeProcessor({ graceMs: s.graceMs, allowedLatenessMs: s.allowedLatenessMs, viewRowIntervalMs: s.viewRowIntervalMs }),
  safety: (s) => safetyProcessor({ graceMs: s.graceMs, allowedLatenessMs: s.allowedLatenessMs, lateness: s.lateness }),
  production: (s) => productionProcessor({ allowedLatenessMs: s.allowedLatenessMs }),
  churn: (s) => churnProcessor({ graceMs: s.graceMs, allowedLatenessMs: s.allowedLatenessMs, dayRowIntervalMs: s.dayRowIntervalMs }),
};

export function processorFor(role: string, s: ProcessorSettings): Processor<unknown> {
  const f = PROCESSOR_FACTORIES[role as ProcessorRole];
  if (!f) throw new Error(`unknown processor "${role}" (known: ${Object.keys(PROCESSOR_FACTORIES).join(', ')})`);
  return f(s);
}
