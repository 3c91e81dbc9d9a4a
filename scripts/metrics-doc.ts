/**
 * Writes docs/metrics.md from the metric catalog (contracts/metrics-catalog.ts):
 *   npx tsx scripts/metrics-doc.ts
 * tests/metrics-catalog.test.ts fails when the committed file differs.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { metricsDoc } from '../contracts/metrics-catalog.js';

const file = join(import.meta.dirname, '..', 'docs', 'metrics.md');
writeFileSync(file, metricsDoc());
console.log(`wrote ${file}`);
