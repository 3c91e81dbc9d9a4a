/** The processors a role name starts. Processors never import each other; this table wires them. */
import type { Role } from '../lib/config.js';
import type { ClickHouse } from '../sinks/clickhouse/client.js';
import type { Processor } from '../processors/core/processor.js';
import { businessProcessor } from '../processors/business/business.processor.js';
import { rawStoreProcessor } from '../processors/raw-store/raw-store.processor.js';
import { qoeProcessor } from '../processors/qoe/qoe.processor.js';
import { safetyProcessor } from '../processors/safety/safety.processor.js';
import { productionProcessor } from '../processors/production/production.processor.js';
import { churnProcessor } from '../processors/churn/churn.processor.js';

export type ProcessorRole = Extract<Role, 'raw-store' | 'business' | 'qoe' | 'churn' | 'safety' | 'production'>;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface ProcessorSettings {
  ch: ClickHouse;
  graceMs: number;
  allowedLatenessMs: number;
}

export const PROCESSOR_FACTORIES: Partial<Record<ProcessorRole, (s: ProcessorSettings) => Processor<any>>> = {
  'raw-store': () => rawStoreProcessor(),
  business: (s) => businessProcessor({ ch: s.ch, graceMs: s.graceMs, allowedLatenessMs: s.allowedLatenessMs }),
  qoe: (s) => qoeProcessor({ graceMs: s.graceMs, allowedLatenessMs: s.allowedLatenessMs }),
  safety: (s) => safetyProcessor({ graceMs: s.graceMs, allowedLatenessMs: s.allowedLatenessMs }),
  production: (s) => productionProcessor({ allowedLatenessMs: s.allowedLatenessMs }),
  churn: (s) => churnProcessor({ graceMs: s.graceMs, allowedLatenessMs: s.allowedLatenessMs }),
};

export function processorFor(role: string, s: ProcessorSettings): Processor<unknown> {
  const f = PROCESSOR_FACTORIES[role as ProcessorRole];
  if (!f) throw new Error(`unknown processor "${role}" (known: ${Object.keys(PROCESSOR_FACTORIES).join(', ')})`);
  return f(s);
}
