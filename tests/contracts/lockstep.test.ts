/**
 * The Avro schemas are the source of truth: the generated TypeScript types and the raw-table
 * DDL must be what the schemas give today, and every event field has a raw column.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GENERATED_PATH, generateTypes } from '../../contracts/codegen.js';
import { allSchemas } from '../../contracts/schemas.js';
import { EVENT_KINDS, allTopicSpecs, dlqTopic } from '../../contracts/topics.js';
import { RAW_MIGRATION, rawDDL } from '../../sinks/clickhouse/raw-ddl.js';
import { FX_RATES, toUsdMicros } from '../../contracts/fx-rates.js';

describe('contracts in lock-step', () => {
  it('contracts/types.generated.ts is what contracts/codegen.ts generates (run it after a schema change)', () => {
    expect(readFileSync(GENERATED_PATH, 'utf8')).toBe(generateTypes());
  });

  it('migrations/001_raw_events.sql is what sinks/clickhouse/raw-ddl.ts generates', () => {
    expect(readFileSync(RAW_MIGRATION, 'utf8')).toBe(rawDDL());
  });

  it('every schema field is a raw column, and every record has the envelope fields', () => {
    const ddl = rawDDL();
    for (const [kind, schema] of Object.entries(allSchemas())) {
      const names = schema.fields.map((f) => f.name);
      expect(names.slice(0, 3), kind).toEqual(['event_id', 'event_time', 'received_time']);
      const table = ddl.split('CREATE TABLE').find((t) => t.includes(`.raw_${kind} (`))!;
      for (const n of names) expect(table, `${kind}.${n}`).toMatch(new RegExp(`\\n  ${n} `));
    }
  });

  it('topics: one per kind, keyed by the field DOMAIN §2 names, catalog compacted, plus the DLQ', () => {
    const specs = allTopicSpecs('sp.');
    expect(specs.map((s) => s.topic)).toEqual(EVENT_KINDS.map((k) => `sp.${k}`));
    expect(Object.fromEntries(specs.map((s) => [s.kind, s.keyField]))).toEqual({
      playback: 'view_id',
      payments: 'account_id',
      gifts: 'stream_id',
      moderation: 'target_id',
      jira: 'issue_key',
      catalog: 'content_id',
    });
    expect(specs.filter((s) => s.compacted).map((s) => s.kind)).toEqual(['catalog']);
    expect(dlqTopic('sp.')).toBe('sp.dlq');
    for (const s of specs)
      expect(
        allSchemas()[s.kind].fields.some((f) => f.name === s.keyField),
        s.kind,
      ).toBe(true);
  });

  it('fx rates convert minor units to USD micros exactly', () => {
    expect(toUsdMicros(999, 'USD')).toBe(9_990_000);
    expect(toUsdMicros(50_000, 'NPR')).toBe(3_750_000);
    expect(toUsdMicros(100, 'JPY')).toBe(670_000);
    expect(toUsdMicros(1, 'XXX')).toBeNull();
    expect(new Set(FX_RATES.map((r) => r.currency)).size).toBe(FX_RATES.length);
  });
});
