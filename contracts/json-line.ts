/**
 * One event's JSON object read straight from its bytes into Avro, without `JSON.parse`: per kind,
 * a reader built once from the schema (contracts/avro/*.avsc) scans the bytes of one line of an
 * NDJSON body, keeps where each field's value is (numbers as numbers, strings as byte ranges),
 * checks each field's type as the compiled check does (contracts/compiled.ts), applies the same
 * semantic rules and bounds (`passesRules`, contracts/validate.ts) to a view of those values, and
 * writes the Avro body by copying the bytes of each string. No object per event, no string per
 * field (a string is made only when a rule or the record key reads it).
 *
 * Like the compiled check, it only says yes quickly. It says no to anything it does not take
 * whole: JSON that is not one flat object of this kind's fields (a nested object, an unknown or
 * repeated key, a value of another type), a string with an escape, a control character or a byte
 * outside ASCII, an event that a rule or bound refuses. The caller then parses the line with
 * `JSON.parse` and takes the generic path, which gives the answer and the reason, as before. So
 * a line it accepts is one that `JSON.parse` and `validateEvent` accept, and it writes the bytes
 * avsc writes for it (tests/contracts/json-line.test.ts checks both on simulated lines and
 * random edits of them). Pure: no I/O.
 */
import type { TimeOptions } from './bounds.js';
import type { AvroWriter } from './compiled.js';
import { schemaJson } from './schemas.js';
import { topicSpec, type EventKind } from './topics.js';
import { passesRules } from './validate.js';

// What a field holds, as the schema says (the inner type of a [null, T] union).
const F_STRING = 1;
const F_LONG = 2;
const F_INT = 3;
const F_DOUBLE = 4;
const F_BOOLEAN = 5;
const F_ENUM = 6;
const F_STRING_ARRAY = 7;

// What the last line gave a field.
const T_ABSENT = 0;
const T_NULL = 1;
const T_NUMBER = 2;
const T_STRING = 3;
const T_TRUE = 4;
const T_FALSE = 5;
const T_ARRAY = 6;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const SAFE_LONG = 9007199254740990; // avsc's isSafeLong bound, as contracts/compiled.ts
/** Integer literals of at most this many digits are summed exactly (< 2^53); longer ones go to Number(). */
const EXACT_DIGITS = 15;

/** Position of the first byte at or after `i` (before `stop`) that is not JSON white space inside a line. */
function skipSpace(raw: Buffer, i: number, stop: number): number {
  while (i < stop) {
    const c = raw[i]!;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) return i;
    i++;
  }
  return i;
}

/** Per byte: 0 a byte a plain string may hold, 1 the closing quote, 2 anything else (escape, control character, non-ASCII). */
const STRING_BYTE = new Uint8Array(256).map((_, c) => (c === QUOTE ? 1 : c < 0x20 || c === BACKSLASH || c >= 0x80 ? 2 : 0));

/**
 * End (the closing quote) of a JSON string whose content starts at `i`, or -1 when the string is
 * not plain: an escape, a control character or a byte outside ASCII (then JSON.parse decides), or
 * no closing quote before `stop`. The loop needs no bound: it stops at the first byte that is not
 * plain, and the end of the buffer (`undefined`) is not plain either; a stop found past `stop`
 * is refused.
 */
function plainStringEnd(raw: Buffer, i: number, stop: number): number {
  while (STRING_BYTE[raw[i]!] === 0) i++;
  return i < stop && raw[i] === QUOTE ? i : -1;
}

/**
 * Position after the key `name` when `raw` holds `"name"` from `i` (the opening quote) before
 * `stop`, else -1. Field names are plain ASCII, so equal bytes are plain string bytes.
 */
function keyAt(raw: Buffer, i: number, stop: number, name: Uint8Array): number {
  const len = name.length;
  if (i + len + 2 > stop) return -1;
  let k = 0;
  i++;
  while (k < len && raw[i + k] === name[k]) k++;
  return k === len && raw[i + len] === QUOTE ? i + len + 1 : -1;
}

/** Whether `raw[start, stop)` holds exactly the bytes of `word` starting at `start`. */
function bytesEqual(raw: Buffer, start: number, stop: number, word: Uint8Array): boolean {
  if (stop - start !== word.length) return false;
  for (let k = 0; k < word.length; k++) if (raw[start + k] !== word[k]) return false;
  return true;
}

/** Whether the bytes at `i` are `word` (true, false, null), within `stop`. */
function literalAt(raw: Buffer, i: number, stop: number, word: Uint8Array): boolean {
  return i + word.length <= stop && bytesEqual(raw, i, i + word.length, word);
}

/**
 * The string of ASCII bytes `raw[start, stop)`: Buffer's own latin1Slice (what toString('latin1')
 * ends in, without its argument checks and encoding lookup; a string per key and rule-read field).
 */
function latin1(raw: Buffer, start: number, stop: number): string {
  return (raw as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(start, stop);
}

const NO_BYTES = Buffer.alloc(0);
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

/** Zig-zag varint of a length, and the bytes of `raw[start, stop)` after it. */
function writeBytes(w: AvroWriter, raw: Buffer, start: number, stop: number): void {
  const len = stop - start;
  w.reserve(len + 10);
  w.long(len);
  const buf = w.buf;
  let pos = w.pos;
  if (len < 48) {
    for (let k = start; k < stop; k++) buf[pos++] = raw[k]!;
  } else {
    raw.copy(buf, pos, start, stop);
    pos += len;
  }
  w.pos = pos;
}

/**
 * The reader of one kind: `encode` scans and checks a line and writes its wire bytes. One reader
 * per kind is shared (jsonLineReader); a call keeps nothing of the line after it returns (a
 * reference to the request body kept past its request made V8 promote the body to the old
 * generation, whose collections cost more than the bytes).
 */
export class JsonLineReader {
  private readonly n: number;
  private readonly names: Uint8Array[];
  private readonly types: Uint8Array;
  private readonly nullable: Uint8Array;
  /** 1 when the field may be absent (it has a default). */
  private readonly optional: Uint8Array;
  /** Defaults of the fields that are not unions (received_time's 0): written when absent. */
  private readonly numberDefaults: Float64Array;
  private readonly symbols: Array<Uint8Array[] | null>;
  private readonly symbolNames: Array<string[] | null>;
  private readonly receivedTimeField: number;
  private readonly keyField: number;
  /** What the last line gave each field. */
  private readonly tag: Uint8Array;
  private readonly num: Float64Array;
  private readonly from: Int32Array;
  private readonly to: Int32Array;
  /** Symbol index of each enum field. */
  private readonly symbol: Int32Array;
  /** Byte ranges of the strings of array fields, in pairs; `from`/`to` of such a field index them. */
  private items = new Int32Array(64);
  private itemCount = 0;
  private raw: Buffer = NO_BYTES;
  /** Strings made for the rules from the last line (made at most once per field and line). */
  private readonly strings: Array<string | null>;
  private readonly stringLine: Float64Array;
  /**
   * The field that came after each field in the last line (`follows[n]`: the first), tried first
   * for the next key: senders write their fields in one order, so a key is usually found by one
   * comparison.
   */
  private readonly follows: Int32Array;
  private line = 0;
  /** What the rules read: one accessor per field, over the last line's values. */
  private readonly view: Record<string, unknown>;

  constructor(readonly kind: EventKind) {
    const { fields } = schemaJson(kind);
    const n = (this.n = fields.length);
    this.names = fields.map((f) => Buffer.from(f.name, 'utf8'));
    this.types = new Uint8Array(n);
    this.nullable = new Uint8Array(n);
    this.optional = new Uint8Array(n);
    this.numberDefaults = new Float64Array(n);
    this.symbols = [];
    this.symbolNames = [];
    this.tag = new Uint8Array(n);
    this.num = new Float64Array(n);
    this.from = new Int32Array(n);
    this.to = new Int32Array(n);
    this.symbol = new Int32Array(n);
    this.strings = new Array<string | null>(n).fill(null);
    this.stringLine = new Float64Array(n).fill(-1);
    this.follows = new Int32Array(n + 1).map((_, i) => (i < n - 1 ? i + 1 : 0));
    this.receivedTimeField = fields.findIndex((f) => f.name === 'received_time');
    const keyField = topicSpec('', kind).keyField;
    this.keyField = fields.findIndex((f) => f.name === keyField);
    fields.forEach((f, i) => {
      const union = Array.isArray(f.type) ? (f.type as unknown[]) : null;
      if (union && (union.length !== 2 || union[0] !== 'null')) throw new Error(`${kind}.${f.name}: only [null, T] unions are read from JSON lines`);
      const inner = (union ? union[1] : f.type) as string | { type: string; symbols?: string[]; items?: unknown };
      const name = typeof inner === 'string' ? inner : inner.type;
      const type = (
        {
          string: F_STRING,
          long: F_LONG,
          int: F_INT,
          double: F_DOUBLE,
          boolean: F_BOOLEAN,
          enum: F_ENUM,
          array: typeof inner === 'object' && inner.items === 'string' ? F_STRING_ARRAY : undefined,
        } as Record<string, number | undefined>
      )[name];
      if (type === undefined) throw new Error(`${kind}.${f.name}: type ${JSON.stringify(f.type)} is not read from JSON lines`);
      this.types[i] = type;
      this.nullable[i] = union ? 1 : 0;
      const symbols = type === F_ENUM ? (inner as { symbols: string[] }).symbols : null;
      this.symbolNames.push(symbols);
      this.symbols.push(symbols && symbols.map((s) => Buffer.from(s, 'utf8')));
      if (f.default !== undefined) {
        this.optional[i] = 1;
        // The defaults written for an absent field: null (unions), a number (received_time), [] (labels).
        const d = f.default;
        const ok = union
          ? d === null
          : type === F_STRING_ARRAY
            ? Array.isArray(d) && d.length === 0
            : (type === F_LONG || type === F_INT) && typeof d === 'number';
        if (!ok) throw new Error(`${kind}.${f.name}: default ${JSON.stringify(d)} is not read from JSON lines`);
        if (typeof d === 'number') this.numberDefaults[i] = d;
      }
    });
    if (this.keyField < 0 || this.types[this.keyField] !== F_STRING || this.nullable[this.keyField]) {
      throw new Error(`${kind}: key field ${keyField} must be a string field`);
    }
    const view: Record<string, unknown> = {};
    fields.forEach((f, i) => Object.defineProperty(view, f.name, { enumerable: true, get: () => this.value(i) }));
    this.view = view;
  }

  /** The record key (the topic's key field) of the line the last `encode` accepted. */
  key = '';

  /**
   * Scans `raw[start, stop)` (one line, without its line end) and checks it. When it is one JSON
   * object that `JSON.parse` and `validateEvent(kind, …, time)` accept as it is, and that this
   * reader takes whole: writes its wire header and Avro body into `w` (received_time 0 or absent
   * written as `receivedTime`), sets `key` and returns true. False means "ask the generic path"
   * (`w` may hold anything then).
   */
  encode(raw: Buffer, start: number, stop: number, time: TimeOptions, w: AvroWriter, schemaId: number, receivedTime: number): boolean {
    this.raw = raw;
    this.line++;
    const ok = this.scan(raw, start, stop) && this.typesHold() && passesRules(this.kind, this.view, time);
    if (ok) {
      this.write(w, schemaId, receivedTime);
      this.key = this.stringOf(this.keyField);
    }
    this.raw = NO_BYTES;
    return ok;
  }

  private write(w: AvroWriter, schemaId: number, receivedTime: number): void {
    const { raw, tag, num, types, n } = this;
    w.header(schemaId);
    for (let f = 0; f < n; f++) {
      const t = tag[f]!;
      w.reserve(11);
      if (this.nullable[f]) {
        if (t === T_NULL || t === T_ABSENT) {
          w.byte(0);
          continue;
        }
        w.byte(2);
      }
      switch (types[f]) {
        case F_STRING:
          writeBytes(w, raw, this.from[f]!, this.to[f]!);
          break;
        case F_LONG:
        case F_INT: {
          const x = t === T_ABSENT ? this.numberDefaults[f]! : num[f]!;
          w.long(f === this.receivedTimeField ? x || receivedTime : x);
          break;
        }
        case F_DOUBLE:
          w.double(num[f]!);
          break;
        case F_BOOLEAN:
          w.byte(t === T_TRUE ? 1 : 0);
          break;
        case F_ENUM:
          w.long(this.symbol[f]!);
          break;
        case F_STRING_ARRAY: {
          const count = t === T_ABSENT ? 0 : this.to[f]! - this.from[f]!;
          if (count > 0) {
            w.long(count);
            for (let k = this.from[f]!; k < this.to[f]!; k++) writeBytes(w, raw, this.items[2 * k]!, this.items[2 * k + 1]!);
            w.reserve(1);
          }
          w.byte(0);
          break;
        }
        default:
          throw new Error(`no writer for field ${f}`);
      }
    }
  }

  /** One JSON object of known fields, each value a string, number, literal or array of strings, nothing after it. */
  private scan(raw: Buffer, start: number, stop: number): boolean {
    const { tag, from, to } = this;
    tag.fill(T_ABSENT);
    this.itemCount = 0;
    let i = skipSpace(raw, start, stop);
    if (i >= stop || raw[i] !== OPEN_BRACE) return false;
    i = skipSpace(raw, i + 1, stop);
    if (i < stop && raw[i] === CLOSE_BRACE) return skipSpace(raw, i + 1, stop) === stop;
    const follows = this.follows;
    let previous = this.n; // follows[n]: the first field of the last line
    for (;;) {
      if (i >= stop || raw[i] !== QUOTE) return false;
      let f = follows[previous]!;
      let afterKey = keyAt(raw, i, stop, this.names[f]!);
      if (afterKey < 0) {
        const keyEnd = plainStringEnd(raw, i + 1, stop);
        if (keyEnd < 0) return false;
        f = this.fieldNamed(raw, i + 1, keyEnd);
        afterKey = keyEnd + 1;
      }
      if (f < 0 || tag[f] !== T_ABSENT) return false; // unknown or repeated (JSON.parse keeps the last; the generic path decides)
      follows[previous] = f;
      previous = f;
      i = skipSpace(raw, afterKey, stop);
      if (i >= stop || raw[i] !== COLON) return false;
      i = skipSpace(raw, i + 1, stop);
      if (i >= stop) return false;
      const c = raw[i]!;
      if (c === QUOTE) {
        const end = plainStringEnd(raw, i + 1, stop);
        if (end < 0) return false;
        tag[f] = T_STRING;
        from[f] = i + 1;
        to[f] = end;
        i = end + 1;
      } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
        i = this.number(raw, i, stop, f);
        if (i < 0) return false;
        tag[f] = T_NUMBER;
      } else if (c === 0x74) {
        if (!literalAt(raw, i, stop, TRUE)) return false;
        tag[f] = T_TRUE;
        i += 4;
      } else if (c === 0x66) {
        if (!literalAt(raw, i, stop, FALSE)) return false;
        tag[f] = T_FALSE;
        i += 5;
      } else if (c === 0x6e) {
        if (!literalAt(raw, i, stop, NULL)) return false;
        tag[f] = T_NULL;
        i += 4;
      } else if (c === OPEN_BRACKET) {
        i = this.stringArray(raw, i + 1, stop, f);
        if (i < 0) return false;
        tag[f] = T_ARRAY;
      } else return false;
      i = skipSpace(raw, i, stop);
      if (i >= stop) return false;
      if (raw[i] === COMMA) {
        i = skipSpace(raw, i + 1, stop);
        continue;
      }
      if (raw[i] !== CLOSE_BRACE) return false;
      return skipSpace(raw, i + 1, stop) === stop;
    }
  }

  /** The field whose name is `raw[start, stop)`; -1 when none. */
  private fieldNamed(raw: Buffer, start: number, stop: number): number {
    const names = this.names;
    for (let f = 0; f < this.n; f++) if (bytesEqual(raw, start, stop, names[f]!)) return f;
    return -1;
  }

  /**
   * A JSON number at `i` (strict JSON grammar: no leading zeros, no `+`, digits after `.` and in
   * the exponent) into num[f]; the position after it, or -1. Integers of up to 15 digits are
   * summed here (exact); any other number is converted by Number(), which gives JSON.parse's value
   * for every text of the JSON grammar.
   */
  private number(raw: Buffer, i: number, stop: number, f: number): number {
    const start = i;
    const negative = raw[i] === MINUS;
    if (negative) i++;
    if (i >= stop) return -1;
    let c = raw[i]!;
    let value = 0;
    const digitsFrom = i;
    if (c === ZERO) i++;
    else if (c > ZERO && c <= NINE) {
      while (i < stop && (c = raw[i]!) >= ZERO && c <= NINE) {
        value = value * 10 + (c - ZERO);
        i++;
      }
    } else return -1;
    let exact = i - digitsFrom <= EXACT_DIGITS;
    if (i < stop && raw[i] === DOT) {
      exact = false;
      i++;
      const d = i;
      while (i < stop && (c = raw[i]!) >= ZERO && c <= NINE) i++;
      if (i === d) return -1;
    }
    if (i < stop && (raw[i] === 0x65 || raw[i] === 0x45)) {
      exact = false;
      i++;
      if (i < stop && (raw[i] === PLUS || raw[i] === MINUS)) i++;
      const d = i;
      while (i < stop && (c = raw[i]!) >= ZERO && c <= NINE) i++;
      if (i === d) return -1;
    }
    this.num[f] = exact ? (negative ? -value : value) : Number(latin1(raw, start, i));
    return i;
  }

  /** `[` already read: plain strings separated by commas, then `]`; their ranges go to `items`. The position after `]`, or -1. */
  private stringArray(raw: Buffer, i: number, stop: number, f: number): number {
    this.from[f] = this.itemCount;
    i = skipSpace(raw, i, stop);
    if (i < stop && raw[i] === CLOSE_BRACKET) {
      this.to[f] = this.itemCount;
      return i + 1;
    }
    for (;;) {
      if (i >= stop || raw[i] !== QUOTE) return -1;
      const end = plainStringEnd(raw, i + 1, stop);
      if (end < 0) return -1;
      if (2 * this.itemCount + 2 > this.items.length) {
        const more = new Int32Array(this.items.length * 2);
        more.set(this.items);
        this.items = more;
      }
      this.items[2 * this.itemCount] = i + 1;
      this.items[2 * this.itemCount + 1] = end;
      this.itemCount++;
      i = skipSpace(raw, end + 1, stop);
      if (i >= stop) return -1;
      if (raw[i] === COMMA) {
        i = skipSpace(raw, i + 1, stop);
        continue;
      }
      if (raw[i] !== CLOSE_BRACKET) return -1;
      this.to[f] = this.itemCount;
      return i + 1;
    }
  }

  /** Each field's value of the type its schema says (what compiled.ts's `accepts` checks of a parsed object); enum symbols found. */
  private typesHold(): boolean {
    const { tag, num, types, n } = this;
    for (let f = 0; f < n; f++) {
      const t = tag[f]!;
      if (t === T_ABSENT) {
        if (!this.optional[f]) return false;
        continue;
      }
      if (t === T_NULL) {
        if (!this.nullable[f]) return false;
        continue;
      }
      switch (types[f]) {
        case F_STRING:
          if (t !== T_STRING) return false;
          break;
        case F_LONG: {
          const x = num[f]!;
          if (t !== T_NUMBER || x % 1 !== 0 || x < -SAFE_LONG || x > SAFE_LONG) return false;
          break;
        }
        case F_INT: {
          const x = num[f]!;
          if (t !== T_NUMBER || x !== (x | 0)) return false;
          break;
        }
        case F_DOUBLE:
          if (t !== T_NUMBER) return false;
          break;
        case F_BOOLEAN:
          if (t !== T_TRUE && t !== T_FALSE) return false;
          break;
        case F_ENUM: {
          if (t !== T_STRING) return false;
          const s = this.symbolOf(f);
          if (s < 0) return false;
          this.symbol[f] = s;
          break;
        }
        case F_STRING_ARRAY:
          if (t !== T_ARRAY) return false;
          break;
        default:
          return false;
      }
    }
    return true;
  }

  private symbolOf(f: number): number {
    const symbols = this.symbols[f]!;
    const start = this.from[f]!;
    const stop = this.to[f]!;
    for (let s = 0; s < symbols.length; s++) if (bytesEqual(this.raw, start, stop, symbols[s]!)) return s;
    return -1;
  }

  /** The string of string field `f` (made once per line). */
  private stringOf(f: number): string {
    if (this.stringLine[f] === this.line) return this.strings[f]!;
    const s = latin1(this.raw, this.from[f]!, this.to[f]!);
    this.strings[f] = s;
    this.stringLine[f] = this.line;
    return s;
  }

  /** Field `f` as JSON.parse and validateEvent's defaults would give it (read by the rules, through the view). */
  private value(f: number): unknown {
    const t = this.tag[f]!;
    if (t === T_ABSENT) return this.nullable[f] ? null : this.types[f] === F_STRING_ARRAY ? [] : this.numberDefaults[f];
    switch (t) {
      case T_NULL:
        return null;
      case T_NUMBER:
        return this.num[f];
      case T_TRUE:
        return true;
      case T_FALSE:
        return false;
      case T_ARRAY: {
        const out: string[] = [];
        for (let k = this.from[f]!; k < this.to[f]!; k++) out.push(latin1(this.raw, this.items[2 * k]!, this.items[2 * k + 1]!));
        return out;
      }
      default:
        return this.types[f] === F_ENUM ? this.symbolNames[f]![this.symbol[f]!] : this.stringOf(f);
    }
  }
}

const readers = new Map<EventKind, JsonLineReader>();

/** The JSON line reader of `kind` (built on first use). */
export function jsonLineReader(kind: EventKind): JsonLineReader {
  let r = readers.get(kind);
  if (!r) readers.set(kind, (r = new JsonLineReader(kind)));
  return r;
}
