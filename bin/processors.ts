/** The processors a role name starts. Processors never import each other; this table wires them. */
import type { Role } from '../lib/config.js';
import type { ClickHouse } from '../sinks/clickhouse/client.js';
import type { Processor } from '../processors/core/processor.js';
import { businessProcessor } from '../processors/business/business.processor.js';
import { rawStoreProcessor } from '../processors/raw-store/raw-store.processor.js';

export type ProcessorRole = Extract<Role, 'raw-store' | 'business' | 'qoe' | 'churn' | 'safety' | 'production'>;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const PROCESSOR_FACTORIES: Partial<Record<ProcessorRole, (ch: ClickHouse) => Processor<any>>> = {
  'raw-store': () => rawStoreProcessor(),
  business: (ch) => businessProcessor({ ch }),
};

export function processorFor(role: string, ch: ClickHouse): Processor<unknown> {
  const f = PROCESSOR_FACTORIES[role as ProcessorRole];
  if (!f) throw new Error(`unknown processor "${role}" (known: ${Object.keys(PROCESSOR_FACTORIES).join(', ')})`);
  return f(ch);
}
