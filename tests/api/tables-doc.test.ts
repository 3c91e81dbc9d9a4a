/**
 * docs/tables.md lists every table and view of a migrated database, with every column.
 * Regenerate it with `npx tsx scripts/tables-doc.ts` after changing a migration.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { schemaCatalog } from '../../scripts/schema-catalog.js';
import { cleanupTestEnv, REPO_ROOT, testEnv } from '../helpers/env.js';

const t = testEnv('tables-doc');
afterAll(() => cleanupTestEnv(t));

describe('docs/tables.md', () => {
  it('has a section for every table and view in system.tables of a migrated database, listing its columns and types', async () => {
    const catalog = await schemaCatalog(t.dataDir);
    expect(catalog.length).toBeGreaterThan(40);
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'tables.md'), 'utf8');
    const sections = new Map(
      doc
        .split(/^### /m)
        .slice(1)
        .map((s) => [s.slice(0, s.indexOf('\n')).trim(), s]),
    );
    const missing = catalog.filter((x) => !sections.has(x.name)).map((x) => x.name);
    expect(missing, 'tables missing from docs/tables.md (run npx tsx scripts/tables-doc.ts)').toEqual([]);
    for (const table of catalog) {
      const body = sections.get(table.name)!;
      expect(body, `${table.name}: meaning`).not.toContain('(meaning not written yet)');
      for (const c of table.columns) expect(body, `${table.name}.${c.name}`).toContain(`| ${c.name} | ${c.type.replaceAll('|', '\\|')} |`);
    }
    const extra = [...sections.keys()].filter((n) => !catalog.some((x) => x.name === n));
    expect(extra, 'sections for tables that no migration creates').toEqual([]);
  });
});
