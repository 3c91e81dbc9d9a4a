/**
 * Rows for ClickHouse as Avro object container files (FORMAT Avro), the format the processors'
 * tables are written in. Pure: no I/O.
 *
 * Why Avro and not JSON: ClickHouse parses a binary row in about half the CPU of a
 * JSONCompactEachRow line, and for the raw tables there is nothing to encode at all: a raw row
 * is the record's Avro body exactly as it arrived from Kafka (it is already in the schema the
 * raw table's columns are generated from), followed by the four source fields. Derived rows are
 * encoded by avsc with a record schema built from the table's ClickHouse column types, so the
 * table's DDL stays the one contract (a column's Avro type is the one ClickHouse reads into it).
 * Measured on the bench machine (bench/RESULTS.md, "Sink"): docs/processing.md has the figures.
 */
import { randomBytes } from 'node:crypto';
import avro from 'avsc';

/** A ClickHouse column: name and type as DESCRIBE TABLE / system.columns print them. */
export interface ColumnType {
  name: string;
  type: string;
}

/** Splits the arguments of a type such as `Map(String, Array(UInt64))` at top-level commas. */
function typeArgs(inner: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === "'" && inner[i - 1] !== '\\') quoted = !quoted;
    else if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')') depth--;
    else if (!quoted && depth === 0 && c === ',') {
      out.push(inner.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(inner.slice(start).trim());
  return out;
}

/** The symbols of `Enum8('a' = 1, 'b' = 2)`, in value order (Avro enums are read by name). */
function enumSymbols(type: string): string[] {
  const pairs = typeArgs(type.slice(type.indexOf('(') + 1, -1)).map((p) => {
    const m = /^'((?:[^'\\]|\\.)*)'\s*=\s*(-?\d+)$/.exec(p);
    if (!m) throw new Error(`cannot read enum member ${p} of ${type}`);
    return { name: m[1]!.replace(/\\(.)/g, '$1'), value: Number(m[2]) };
  });
  return pairs.sort((a, b) => a.value - b.value).map((p) => p.name);
}

let enumCount = 0;

/**
 * The Avro type ClickHouse's Avro input reads into a column of `chType`, for the JS values the
 * processors emit: numbers for integers, floats and times (DateTime: s, DateTime64(3): ms,
 * Date: days), strings, booleans, arrays, objects for maps, null for Nullable.
 */
export function avroTypeFor(chType: string, column = 'c'): avro.Schema {
  const t = chType.trim();
  const wrapped = /^(\w+)\((.*)\)$/s.exec(t);
  const head = wrapped ? wrapped[1]! : t;
  switch (head) {
    case 'LowCardinality':
      return avroTypeFor(wrapped![2]!, column);
    case 'Nullable': {
      const inner = avroTypeFor(wrapped![2]!, column);
      return ['null', inner] as avro.Schema;
    }
    case 'Array':
      return { type: 'array', items: avroTypeFor(wrapped![2]!, column) };
    case 'Map': {
      const [k, v] = typeArgs(wrapped![2]!);
      if (!/String/.test(k!)) throw new Error(`Map keys must be strings for Avro (column ${column}: ${t})`);
      return { type: 'map', values: avroTypeFor(v!, column) };
    }
    case 'Enum8':
    case 'Enum16':
      return { type: 'enum', name: `${column.replace(/\W/g, '_')}_enum${enumCount++}`, symbols: enumSymbols(t) };
    case 'String':
    case 'FixedString':
    case 'UUID':
      return 'string';
    case 'Bool':
      return 'boolean';
    case 'Int8':
    case 'Int16':
    case 'Int32':
    case 'UInt8':
    case 'UInt16':
      return 'int';
    case 'UInt32':
    case 'Int64':
    case 'UInt64':
    case 'Date':
    case 'Date32':
    case 'DateTime':
    case 'DateTime64':
      return 'long';
    case 'Float32':
    case 'Float64':
      return 'double';
    default:
      throw new Error(`no Avro type for ClickHouse type ${t} (column ${column})`);
  }
}

/** The Avro default of a field, so that a row without the key writes the column's zero value. */
function zeroOf(schema: avro.Schema): unknown {
  if (Array.isArray(schema)) return null;
  if (typeof schema === 'string') return { string: '', boolean: false, int: 0, long: 0, double: 0 }[schema];
  const s = schema as { type: string; symbols?: string[] };
  if (s.type === 'array') return [];
  if (s.type === 'map') return {};
  if (s.type === 'enum') return s.symbols![0];
  return undefined;
}

/** An Avro record schema for `columns` of a table, in that order (ClickHouse maps fields by name). */
export function recordSchemaFor(table: string, columns: readonly ColumnType[]): avro.Schema {
  return {
    type: 'record',
    name: table.replace(/\W/g, '_'),
    fields: columns.map((c) => {
      const type = avroTypeFor(c.type, c.name);
      return { name: c.name, type, default: zeroOf(type) };
    }),
  };
}

/** Zig-zag varint (Avro int and long) of a safe integer, appended to `buf` at `pos`; returns the new pos. */
export function writeLong(buf: Buffer, pos: number, n: number): number {
  let v = n >= 0 ? n * 2 : -n * 2 - 1;
  while (v >= 0x80) {
    buf[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[pos++] = v;
  return pos;
}

/** A growing byte buffer rows are encoded into. */
export class ByteSink {
  buf: Buffer;
  pos = 0;

  constructor(initialBytes = 1 << 20) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * A row that is already an Avro body in a known record schema (a raw event as Kafka holds it),
 * written with the source fields the runner tags every row with appended after it.
 */
export class AvroBodyRow {
  src_topic = '';
  src_partition = 0;
  version = 0;

  constructor(
    /** Avro binary of the record, in `schema`. */
    readonly body: Buffer,
    /** The record schema of `body` (its fields come first in the row). */
    readonly schema: { readonly name: string; readonly fields: ReadonlyArray<{ name: string; type: unknown }> },
    readonly src_offset: number,
  ) {}
}

/** Fields appended to every AvroBodyRow, in this order. */
export const BODY_ROW_FIELDS = [
  { name: 'src_topic', type: 'string' },
  { name: 'src_partition', type: 'int' },
  { name: 'src_offset', type: 'long' },
  { name: 'version', type: 'long' },
] as const;

/** An encoded batch: the rows' Avro binary, back to back, and the column list of the insert. */
export interface EncodedRows {
  schemaJson: string;
  columns: string[];
  body: Buffer;
  count: number;
}

/** Encodes AvroBodyRows of one schema: body, then the source fields. */
export function encodeBodyRows(rows: readonly AvroBodyRow[]): EncodedRows {
  const schema = rows[0]!.schema;
  const fields = [...schema.fields, ...BODY_ROW_FIELDS];
  const sink = new ByteSink(Math.max(1024, rows.length * 400));
  let topic = '';
  let topicBytes = Buffer.alloc(0);
  for (const r of rows) {
    if (r.schema !== schema) throw new Error(`rows of one insert must share one Avro schema (${schema.name} and ${r.schema.name})`);
    if (r.src_topic !== topic) {
      topic = r.src_topic;
      const t = Buffer.from(topic);
      const b = Buffer.allocUnsafe(10 + t.length);
      const p = writeLong(b, 0, t.length);
      topicBytes = b.subarray(0, p + t.copy(b, p));
    }
    sink.reserve(r.body.length + topicBytes.length + 30);
    const buf = sink.buf;
    let pos = sink.pos + r.body.copy(buf, sink.pos);
    pos += topicBytes.copy(buf, pos);
    pos = writeLong(buf, pos, r.src_partition);
    pos = writeLong(buf, pos, r.src_offset);
    sink.pos = writeLong(buf, pos, r.version);
  }
  return {
    schemaJson: JSON.stringify({ type: 'record', name: schema.name, fields }),
    columns: fields.map((f) => f.name),
    body: sink.bytes(),
    count: rows.length,
  };
}

/** Encodes plain row objects of one table with an avsc type compiled once per column list. */
export class RowEncoder {
  readonly columns: string[];
  readonly schemaJson: string;
  private readonly type: avro.Type;

  constructor(table: string, columns: readonly ColumnType[]) {
    const schema = recordSchemaFor(table, columns);
    this.columns = columns.map((c) => c.name);
    this.schemaJson = JSON.stringify(schema);
    this.type = avro.Type.forSchema(schema, { wrapUnions: false });
  }

  encode(rows: readonly object[]): EncodedRows {
    const sink = new ByteSink(Math.max(1024, rows.length * 200));
    const type = this.type;
    for (const row of rows) {
      let pos = type.encode(row, sink.buf, sink.pos);
      if (pos < 0) {
        // avsc returns minus the bytes missing: grow and write the row again.
        sink.reserve(sink.buf.length - sink.pos - pos + 1024);
        pos = type.encode(row, sink.buf, sink.pos);
      }
      sink.pos = pos;
    }
    return { schemaJson: this.schemaJson, columns: this.columns, body: sink.bytes(), count: rows.length };
  }

  /** Why `row` does not fit the columns' types (tests and error messages), or null. */
  invalid(row: object): string | null {
    const paths: string[] = [];
    this.type.isValid(row, { errorHook: (path, val) => paths.push(`${path.join('.')} = ${JSON.stringify(val)}`) });
    return paths.length ? paths.join('; ') : null;
  }
}

const MAGIC = Buffer.from('Obj\u0001', 'latin1');

/**
 * An Avro object container file holding `rows` as one data block: header (magic, metadata map with
 * the schema and codec "null", sync marker), then count, byte size, the rows and the marker. In
 * three parts (head, rows, marker), so the rows are written out without a copy.
 */
export function containerFile(rows: EncodedRows): [Buffer, Buffer, Buffer] {
  const sync = randomBytes(16);
  const schema = Buffer.from(rows.schemaJson);
  const codec = Buffer.from('null');
  const head = Buffer.allocUnsafe(64 + schema.length);
  let pos = MAGIC.copy(head, 0);
  pos = writeLong(head, pos, 2);
  for (const [k, v] of [
    [Buffer.from('avro.schema'), schema],
    [Buffer.from('avro.codec'), codec],
  ] as const) {
    pos = writeLong(head, pos, k.length);
    pos += k.copy(head, pos);
    pos = writeLong(head, pos, v.length);
    pos += v.copy(head, pos);
  }
  pos = writeLong(head, pos, 0);
  pos += sync.copy(head, pos);
  pos = writeLong(head, pos, rows.count);
  pos = writeLong(head, pos, rows.body.length);
  return [head.subarray(0, pos), rows.body, sync];
}
