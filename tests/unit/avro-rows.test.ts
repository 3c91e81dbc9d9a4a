/**
 * Rows as Avro object container files (sinks/clickhouse/avro-rows.ts), pure: the ClickHouse type →
 * Avro type mapping, and containers that avsc's own container decoder reads back to the rows.
 * That ClickHouse reads them into the same table contents as JSON is tests/integration/sink-avro.test.ts.
 */
import { Readable } from 'node:stream';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { avroType, schemaJson } from '../../contracts/schemas.js';
import {
  AvroBodyRow,
  RowEncoder,
  avroTypeFor,
  containerFile,
  encodeBodyRows,
  recordSchemaFor,
  writeLong,
  type EncodedRows,
} from '../../sinks/clickhouse/avro-rows.js';

async function readContainer(rows: EncodedRows): Promise<unknown[]> {
  const out: unknown[] = [];
  const decoder = new avro.streams.BlockDecoder({ parseHook: (s: unknown) => avro.Type.forSchema(s as avro.Schema, { wrapUnions: false }) });
  await new Promise<void>((resolve, reject) => {
    decoder
      .on('data', (r: unknown) => out.push(r))
      .on('end', () => resolve())
      .on('error', reject);
    Readable.from(containerFile(rows)).pipe(decoder);
  });
  return out;
}

describe('ClickHouse type → Avro type', () => {
  it('maps every column type the migrations use', () => {
    expect(avroTypeFor('String')).toBe('string');
    expect(avroTypeFor('LowCardinality(String)')).toBe('string');
    expect(avroTypeFor('LowCardinality(Nullable(String))')).toEqual(['null', 'string']);
    expect(avroTypeFor('UInt8')).toBe('int');
    expect(avroTypeFor('UInt16')).toBe('int');
    expect(avroTypeFor('Int32')).toBe('int');
    expect(avroTypeFor('UInt32')).toBe('long');
    expect(avroTypeFor('UInt64')).toBe('long');
    expect(avroTypeFor("DateTime64(3, 'UTC')")).toBe('long');
    expect(avroTypeFor("DateTime('UTC')")).toBe('long');
    expect(avroTypeFor('Date')).toBe('long');
    expect(avroTypeFor('Nullable(Float64)')).toEqual(['null', 'double']);
    expect(avroTypeFor('Bool')).toBe('boolean');
    expect(avroTypeFor('Array(UInt64)')).toEqual({ type: 'array', items: 'long' });
    expect(avroTypeFor('Map(String, Array(String))')).toEqual({ type: 'map', values: { type: 'array', items: 'string' } });
    const e = avroTypeFor("Nullable(Enum8('fatal' = 1, 'page_now' = 3, 'warning' = 2))", 'error_severity') as [string, { type: string; symbols: string[] }];
    expect(e[0]).toBe('null');
    expect(e[1].type).toBe('enum');
    // Symbols in value order (ClickHouse reads an Avro enum by its symbol names).
    expect(e[1].symbols).toEqual(['fatal', 'warning', 'page_now']);
    // ClickHouse prints quotes in enum names with a backslash; Avro symbols cannot hold them.
    const odd = avroTypeFor("Enum8('it\\'s, odd' = 1)", 'x') as { symbols: string[] };
    expect(odd.symbols).toEqual(["it's, odd"]);
    expect(() => new RowEncoder('t', [{ name: 'x', type: "Enum8('it\\'s, odd' = 1)" }])).toThrow(/invalid "x_enum\d+" symbol/);
  });

  it('names the column of a type it cannot map', () => {
    expect(() => avroTypeFor('AggregateFunction(uniqExact, String)', 'views')).toThrow(/AggregateFunction\(uniqExact, String\) \(column views\)/);
    expect(() => avroTypeFor('Map(UInt8, String)', 'm')).toThrow(/Map keys must be strings/);
  });

  it('writes Avro longs (zig-zag varints) as avsc does', () => {
    const long = avro.Type.forSchema('long');
    for (const n of [0, 1, -1, 63, 64, -64, -65, 300, 2 ** 31, -(2 ** 31) - 1, 1_795_132_800_000, 2 ** 52, -(2 ** 52)]) {
      const buf = Buffer.alloc(12);
      expect(buf.subarray(0, writeLong(buf, 0, n)).toString('hex'), String(n)).toBe(long.toBuffer(n).toString('hex'));
    }
    // Beyond avsc's range, up to the largest safe integer: zig-zag 2^54 − 2: seven full 7-bit groups, then 2^5 − 1.
    const buf = Buffer.alloc(12);
    expect(buf.subarray(0, writeLong(buf, 0, Number.MAX_SAFE_INTEGER)).toString('hex')).toBe('feffffffffffff1f');
  });
});

describe('Avro object container files', () => {
  const cols = [
    { name: 'window_start', type: "DateTime('UTC')" },
    { name: 'cdn', type: 'LowCardinality(String)' },
    { name: 'samples', type: 'Array(UInt64)' },
    { name: 'pct', type: 'Nullable(Float64)' },
    { name: 'outcome', type: "Enum8('play' = 1, 'vsf' = 2)" },
    { name: 'is_final', type: 'UInt8' },
  ];

  it('plain rows come back from the container as written; a missing key is the zero value', async () => {
    const enc = new RowEncoder('qoe_minute', cols);
    const rows = [
      { window_start: 1_795_132_800, cdn: 'akamai', samples: [120, 4_000], pct: 0.5, outcome: 'vsf', is_final: 1 },
      { window_start: 1_795_132_860, cdn: 'Ünïcødé ✓', samples: [], pct: null, outcome: 'play', is_final: 0 },
      { window_start: 1_795_132_920, cdn: 'fastly', samples: [1], outcome: 'play', is_final: 0 },
    ];
    // Many rows, so the encoder's buffer has to grow.
    const many = Array.from({ length: 20_000 }, (_, i) => ({ ...rows[i % 3]!, window_start: 1_795_132_800 + i }));
    const encoded = enc.encode(many);
    expect(encoded.columns).toEqual(cols.map((c) => c.name));
    expect(encoded.count).toBe(many.length);
    const back = (await readContainer(encoded)) as Array<Record<string, unknown>>;
    expect(back).toHaveLength(many.length);
    expect(back[0]).toEqual(many[0]);
    expect(back[1]).toEqual(many[1]);
    expect(back[2]).toEqual({ ...many[2], pct: null });
    expect(back.at(-1)).toEqual({ ...many.at(-1), ...(many.length % 3 === 0 ? { pct: null } : {}) });
    expect(enc.invalid(rows[0]!)).toBeNull();
    expect(enc.invalid({ ...rows[0], is_final: 1.5, outcome: 'ebvs' })).toMatch(/outcome = "ebvs"; is_final = 1.5/);
  });

  it('raw rows are the Avro body as Kafka holds it, followed by the source fields', async () => {
    const type = avroType('payments');
    const events = [0, 1, 2].map((i) => ({
      event_id: `00000000-0000-4000-8000-00000000000${i}`,
      event_time: 1_795_132_800_000 + i,
      received_time: 1_795_132_800_100,
      payment_id: `p${i}`,
      account_id: 'acc-1',
      kind: 'renewal',
      status: i === 1 ? 'failed' : 'succeeded',
      amount_minor: 999,
      currency: 'USD',
      method: 'card',
      plan: 'basic',
      og_tier: 0,
      auto_renew: true,
      period_end: i === 2 ? null : 1_797_811_200_000,
      failure_code: i === 1 ? 'insufficient_funds' : null,
      country: 'NP',
    }));
    const schema = schemaJson('payments');
    const rows = events.map((e, i) =>
      Object.assign(new AvroBodyRow(type.toBuffer(e), schema, 40 + i), { src_topic: 'sp.payments', src_partition: 3, version: 41 + i }),
    );
    const encoded = encodeBodyRows(rows);
    expect(encoded.columns).toEqual([...schemaJson('payments').fields.map((f) => f.name), 'src_topic', 'src_partition', 'src_offset', 'version']);
    const back = (await readContainer(encoded)) as Array<Record<string, unknown>>;
    expect(back).toEqual(events.map((e, i) => ({ ...e, src_topic: 'sp.payments', src_partition: 3, src_offset: 40 + i, version: 41 + i })));
    expect(() => encodeBodyRows([rows[0]!, new AvroBodyRow(Buffer.alloc(0), schemaJson('gifts'), 1)])).toThrow(/share one Avro schema/);
  });

  it('a record schema for a table keeps the column order and gives each field its zero default', () => {
    const s = recordSchemaFor('qoe_minute', cols) as { fields: Array<{ name: string; default: unknown }> };
    expect(s.fields.map((f) => [f.name, f.default])).toEqual([
      ['window_start', 0],
      ['cdn', ''],
      ['samples', []],
      ['pct', null],
      ['outcome', 'play'],
      ['is_final', 0],
    ]);
  });
});
