/**
 * Per-kind validation and Avro encoding compiled once from the schema (contracts/avro/*.avsc)
 * into straight-line functions: one `typeof` test per field and one writer call per field, no
 * closures or error hooks per field, no copy of the event. The ingest gateway and the SDK run
 * every event through these; the generic path (avsc `isValid` with an error hook, then
 * `toBuffer` and a copy into the wire buffer) cost about half of the gateway's CPU time.
 *
 * These functions only say yes quickly. Whatever they do not accept goes to the generic path
 * (contracts/validate.ts, avsc), which gives the reason; so an accepted event is one that
 * `validateEvent` accepts too, and the bytes written are the bytes avsc writes (tests/contracts
 * compiled.test.ts checks both on generated and mutated events). Pure: no I/O.
 */
import { schemaJson } from './schemas.js';
import { EVENT_KINDS, type EventKind } from './topics.js';
import { MAGIC_BYTE } from './wire.js';

/** A growable scratch buffer that Avro values are written into. */
export class AvroWriter {
  buf: Buffer;
  pos = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Makes room for `bytes` more bytes at `pos`. */
  reserve(bytes: number): void {
    if (this.pos + bytes > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + bytes));
      this.buf.copy(next, 0, 0, this.pos);
      this.buf = next;
    }
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  /** Zig-zag varint, as avsc's Tap.writeLong (integer arithmetic while it cannot overflow). */
  long(n: number): void {
    const buf = this.buf;
    if (n >= -1073741824 && n < 1073741824) {
      let m = n >= 0 ? n << 1 : (~n << 1) | 1;
      while (m > 0x7f) {
        buf[this.pos++] = (m & 0x7f) | 0x80;
        m >>>= 7;
      }
      buf[this.pos++] = m;
      return;
    }
    let f = n >= 0 ? n * 2 : -n * 2 - 1;
    while (f >= 128) {
      buf[this.pos++] = (f & 0x7f) | 0x80;
      f = Math.floor(f / 128);
    }
    buf[this.pos++] = f;
  }

  double(x: number): void {
    this.buf.writeDoubleLE(x, this.pos);
    this.pos += 8;
  }

  /** Length-prefixed UTF-8. Short ASCII strings (ids, enums-as-text) are copied by a loop. */
  str(s: string): void {
    const len = s.length;
    this.reserve(len * 3 + 10);
    const buf = this.buf;
    if (len < 64) {
      const start = this.pos + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i] = c;
      }
      if (i === len) {
        buf[this.pos] = len << 1;
        this.pos = start + len;
        return;
      }
    }
    const bytes = Buffer.byteLength(s, 'utf8');
    this.long(bytes);
    this.pos += buf.write(s, this.pos, 'utf8');
  }

  /** Wire header: magic byte and big-endian schema id. */
  header(schemaId: number): void {
    this.reserve(5);
    this.buf[this.pos] = MAGIC_BYTE;
    this.buf.writeUInt32BE(schemaId, this.pos + 1);
    this.pos += 5;
  }
}

/** The strings of an array<string>: a shared helper, not a closure per field. */
function allStrings(a: unknown[]): boolean {
  for (let i = 0; i < a.length; i++) if (typeof a[i] !== 'string') return false;
  return true;
}

function writeStringArray(w: AvroWriter, a: string[]): void {
  if (a.length > 0) {
    w.reserve(10);
    w.long(a.length);
    for (let i = 0; i < a.length; i++) w.str(a[i]!);
  }
  w.reserve(1);
  w.byte(0);
}

export interface CompiledKind {
  kind: EventKind;
  /** Known fields only, each of its Avro type (absent ones having a default): what avsc isValid accepts after defaults. */
  accepts(event: unknown): boolean;
  /** Like accepts, but fields outside the schema are ignored (avsc toBuffer ignores them too). */
  conforms(event: unknown): boolean;
  /** Writes the wire header and the Avro body of an event that `conforms`; received_time 0 or absent is written as `receivedTime`. */
  write(w: AvroWriter, schemaId: number, event: unknown, receivedTime: number): void;
}

type FieldType = string | { type: string; symbols?: string[]; items?: unknown; logicalType?: string } | unknown[];

const SAFE_LONG = 9007199254740990; // avsc's isSafeLong bound

/** Test expression of one non-union type on `x`; null when the type is not compiled. */
function checkExpr(t: FieldType, enums: Array<Record<string, number>>): string | null {
  const name = typeof t === 'string' ? t : Array.isArray(t) ? 'union' : t.type;
  switch (name) {
    case 'string':
      return `typeof x === 'string'`;
    case 'long':
      return `(typeof x === 'number' && x % 1 === 0 && x >= ${-SAFE_LONG} && x <= ${SAFE_LONG})`;
    case 'int':
      return `x === (x | 0)`;
    case 'double':
      return `typeof x === 'number'`;
    case 'boolean':
      return `typeof x === 'boolean'`;
    case 'enum': {
      const symbols = (t as { symbols: string[] }).symbols;
      const map: Record<string, number> = Object.create(null) as Record<string, number>;
      symbols.forEach((s, i) => (map[s] = i));
      enums.push(map);
      return `(typeof x === 'string' && E[${enums.length - 1}][x] !== undefined)`;
    }
    case 'array':
      return (t as { items: unknown }).items === 'string' ? `(Array.isArray(x) && allStrings(x))` : null;
    default:
      return null;
  }
}

function writeStmt(t: FieldType, enumIndex: number): string {
  const name = typeof t === 'string' ? t : (t as { type: string }).type;
  switch (name) {
    case 'string':
      return `w.str(x);`;
    case 'long':
    case 'int':
      return `w.long(x);`;
    case 'double':
      return `w.double(x);`;
    case 'boolean':
      return `w.byte(x ? 1 : 0);`;
    case 'enum':
      return `w.long(E[${enumIndex}][x]);`;
    case 'array':
      return `writeStringArray(w, x);`;
    default:
      throw new Error(`no writer for ${name}`);
  }
}

function compile(kind: EventKind): CompiledKind {
  const { fields } = schemaJson(kind);
  const enums: Array<Record<string, number>> = [];
  const checks: string[] = [];
  const writes: string[] = [];
  for (const f of fields) {
    const get = `x = e[${JSON.stringify(f.name)}];`;
    const hasDefault = f.default !== undefined;
    const union = Array.isArray(f.type) ? (f.type as FieldType[]) : null;
    if (union && (union.length !== 2 || union[0] !== 'null')) throw new Error(`${kind}.${f.name}: only [null, T] unions are compiled`);
    const inner = union ? union[1]! : (f.type as FieldType);
    const enumIndex = enums.length;
    const test = checkExpr(inner, enums);
    if (test === null) throw new Error(`${kind}.${f.name}: type ${JSON.stringify(f.type)} is not compiled`);
    // A field absent from the event takes its default (validate.ts withDefaults): absent passes when there is one.
    const absentOk = hasDefault ? `x === undefined || ` : '';
    checks.push(`${get} if (!(${absentOk}${union ? 'x === null || ' : ''}${test})) return false;`);
    const absent = hasDefault ? `if (x === undefined) x = ${JSON.stringify(f.default)}; ` : '';
    if (f.name === 'received_time') writes.push(`${get} w.reserve(10); w.long(x || receivedTime);`);
    else if (union) writes.push(`${get} ${absent}w.reserve(11); if (x === null) w.byte(0); else { w.byte(2); ${writeStmt(inner, enumIndex)} }`);
    else writes.push(`${get} ${absent}w.reserve(10); ${writeStmt(inner, enumIndex)}`);
  }
  const known = fields.map((f) => `case ${JSON.stringify(f.name)}:`).join(' ');
  const isObject = `if (typeof e !== 'object' || e === null || Array.isArray(e)) return false; let x;`;
  const conformsSrc = `${isObject}\n${checks.join('\n')}\nreturn true;`;
  // for-in also sees inherited enumerable keys; the generic path sees own keys only, so this is never laxer.
  const acceptsSrc = `${isObject}\nfor (const k in e) { switch (k) { ${known} break; default: return false; } }\n${checks.join('\n')}\nreturn true;`;
  const writeSrc = `let x;\nw.header(schemaId);\n${writes.join('\n')}`;
  // Generating the validator and the writer as code is the point of this module (its source is built above
  // from the schema, never from input); the Function it returns is typed by the callers below.
  const make = (args: string[], body: string): unknown =>
    // eslint-disable-next-line @typescript-eslint/no-implied-eval, @typescript-eslint/no-unsafe-call -- see above
    new Function('E', 'allStrings', 'writeStringArray', `return function (${args.join(', ')}) {\n${body}\n};`)(enums, allStrings, writeStringArray);
  return {
    kind,
    accepts: make(['e'], acceptsSrc) as CompiledKind['accepts'],
    conforms: make(['e'], conformsSrc) as CompiledKind['conforms'],
    write: make(['w', 'schemaId', 'e', 'receivedTime'], writeSrc) as CompiledKind['write'],
  };
}

const compiled = new Map<EventKind, CompiledKind>();

/** The compiled functions of `kind` (built on first use). */
export function compiledKind(kind: EventKind): CompiledKind {
  let c = compiled.get(kind);
  if (!c) compiled.set(kind, (c = compile(kind)));
  return c;
}

/** Every kind compiled, so that a schema the compiler cannot handle fails at start, not on the first event. */
export function compileAllKinds(): void {
  for (const k of EVENT_KINDS) compiledKind(k);
}
