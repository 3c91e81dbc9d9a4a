/**
 * Writes sinks/clickhouse/migrations/016_metric_views.sql from the metric catalog
 * (contracts/metrics-catalog.ts via sinks/clickhouse/metric-views.ts):
 *   npx tsx scripts/metric-views.ts
 * tests/metrics-catalog.test.ts fails when the committed file differs.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS_DIR } from '../sinks/clickhouse/migrate.js';
import { metricViewsMigration } from '../sinks/clickhouse/metric-views.js';

export const METRIC_VIEWS_FILE = join(MIGRATIONS_DIR, '016_metric_views.sql');
writeFileSync(METRIC_VIEWS_FILE, metricViewsMigration());
console.log(`wrote ${METRIC_VIEWS_FILE}`);
