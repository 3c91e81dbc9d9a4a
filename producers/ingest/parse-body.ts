/**
 * Turns an ingest request body into events, as values (no exceptions). Pure: no I/O.
 *
 * - `json`: a JSON array of events, or one JSON object (one event). Anything else, or text that
 *   is not JSON, makes the whole body invalid (`invalid_json`).
 * - `ndjson`: one JSON value per line (`\n` or `\r\n`). Blank lines are skipped but keep their
 *   number; a line that is not JSON is rejected alone, the others go on.
 *
 * Every entry carries `index`: its 0-based position in the array, or its 0-based line number.
 */
import { isAscii } from 'node:buffer';

export type BodyFormat = 'json' | 'ndjson';

export type BodyRejectClass = 'invalid_json' | BoundsViolation['errorClass'];

export type BodyEntry =
  | { index: number; ok: true; event: unknown }
  /** `raw` is the line as sent, for the dead letter. */
  | { index: number; ok: false; errorClass: BodyRejectClass; reason: string; raw: Buffer };

export type ParsedBody = { ok: true; entries: BodyEntry[] } | { ok: false; errorClass: BodyRejectClass; reason: string };

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

function syntaxReason(err: unknown): string {
  return (err as Error).message.replace(/\s+/g, ' ').slice(0, 300);
}

/** A JSON array of events or one event. With `bounds`, the bytes are checked before parsing. */
export function parseJsonBody(raw: Buffer, bounds?: JsonBounds): ParsedBody {
  if (raw.length === 0) return { ok: false, errorClass: 'invalid_json', reason: 'body is empty; send a JSON array of events or one event object' };
  const violation = bounds ? checkJsonBounds(raw, bounds) : null;
  if (violation) return { ok: false, errorClass: violation.errorClass, reason: `body refused before parsing: ${violation.reason}` };
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    return { ok: false, errorClass: 'invalid_json', reason: `body is not valid JSON: ${syntaxReason(err)}` };
  }
  if (Array.isArray(value)) return { ok: true, entries: (value as unknown[]).map((event, index) => ({ index, ok: true, event })) };
  if (typeof value === 'object' && value !== null) return { ok: true, entries: [{ index: 0, ok: true, event: value }] };
  return {
    ok: false,
    errorClass: 'invalid_json',
    reason: `body must be a JSON array of events or one event object, got ${value === null ? 'null' : typeof value}`,
  };
}

/** One JSON value per line; a line that is not JSON (or breaks `bounds`) is rejected alone. */
export function parseNdjsonBody(raw: Buffer, bounds?: JsonBounds): ParsedBody {
  const entries: BodyEntry[] = [];
  const lines = new NdjsonCursor(raw, bounds);
  while (lines.next()) {
    if (lines.ok) entries.push({ index: lines.index, ok: true, event: lines.event });
    else entries.push({ index: lines.index, ok: false, errorClass: lines.errorClass, reason: lines.reason, raw: lines.rawLine() });
  }
  return { ok: true, entries };
}

/** ASCII white space (JSON's, and vertical tab and form feed): a line of only these is blank. */
function isBlank(raw: Buffer, start: number, stop: number): boolean {
  for (let i = start; i < stop; i++) {
    const c = raw[i]!;
    if (c !== 0x20 && c !== 0x09 && c !== CARRIAGE_RETURN && c !== 0x0b && c !== 0x0c) return false;
  }
  return true;
}

/**
 * How many entries `parseNdjsonBody` (and an `NdjsonCursor`) gives for `raw`: its lines that are
 * not blank. Reads only the line ends and the white space that starts a line, so the request's
 * event count (its limit, the events/s limit) is known before anything is parsed.
 */
export function countNdjsonEntries(raw: Buffer): number {
  let count = 0;
  let start = 0;
  while (start < raw.length) {
    let end = raw.indexOf(NEWLINE, start);
    if (end < 0) end = raw.length;
    if (raw[start] === OPEN_BRACE || !isBlank(raw, start, end)) count++;
    start = end + 1;
  }
  return count;
}

/**
 * Walks the lines of an NDJSON body one at a time, parsing each when reached, so a caller can
 * validate, encode and produce an event before the next one exists: every parsed object dies
 * young (one live at a time, not a request's worth held through the Kafka acknowledgement).
 * Blank lines are skipped but keep their number. After `next()` returns true: `index` is the
 * 0-based line number, and either `ok` with `event`, or not `ok` with `errorClass` and `reason`
 * (the line broke `bounds` or is not JSON; `rawLine()` gives its bytes for the dead letter).
 *
 * With `deferParse`, `next()` stops after the bounds check: `ok` then says the line is within
 * bounds (its bytes are `raw[lineStart, lineStop)`) and `event` is not set until `parse()`, so a
 * caller that can take the bytes as they are (the gateway's JSON line reader) parses only the
 * lines it cannot.
 */
export class NdjsonCursor {
  index = -1;
  ok = false;
  event: unknown = undefined;
  errorClass: BodyRejectClass = 'invalid_json';
  reason = '';
  /** The bytes of the current line (without its line end) are raw[lineStart, lineStop). */
  lineStart = 0;
  lineStop = 0;
  private start = 0;
  private line = -1;
  /** Position of the next `{` and `[` at or after the last line checked (raw.length: none left); see mayBreakBounds. */
  private nextBrace = -1;
  private nextBracket = -1;
  /**
   * Whether the body is ASCII (the usual case): then each line is decoded as latin1, the cheapest
   * decode, else as UTF-8. Each line is decoded on its own: a slice of one decode of the whole
   * body (over 1 MB: an external string) cost JSON.parse about twice as much (bench/ingest.micro.ts).
   */
  private readonly ascii: boolean;

  constructor(
    private readonly raw: Buffer,
    private readonly bounds?: JsonBounds,
    private readonly deferParse = false,
  ) {
    this.ascii = isAscii(raw);
  }

  next(): boolean {
    const raw = this.raw;
    this.event = undefined;
    while (this.start < raw.length) {
      const lineStart = this.start;
      let end = raw.indexOf(NEWLINE, lineStart);
      if (end < 0) end = raw.length;
      let stop = end;
      if (stop > lineStart && raw[stop - 1] === CARRIAGE_RETURN) stop--;
      this.start = end + 1;
      const line = ++this.line;
      if (raw[lineStart] !== OPEN_BRACE && isBlank(raw, lineStart, stop)) continue;
      this.index = line;
      this.lineStart = lineStart;
      this.lineStop = stop;
      const violation = this.bounds && this.mayBreakBounds(this.bounds, lineStart, stop) ? checkJsonBounds(raw, this.bounds, lineStart, stop) : null;
      if (violation) {
        this.ok = false;
        this.errorClass = violation.errorClass;
        this.reason = `line ${line} refused before parsing: ${violation.reason}`;
        return true;
      }
      if (this.deferParse) this.ok = true;
      else this.parse();
      return true;
    }
    return false;
  }

  /** Parses the current line (which passed the bounds check): `ok` with `event`, or not `ok` with the reason. */
  parse(): void {
    const text = this.raw.toString(this.ascii ? 'latin1' : 'utf8', this.lineStart, this.lineStop);
    try {
      this.event = JSON.parse(text);
      this.ok = true;
    } catch (err) {
      this.ok = false;
      this.errorClass = 'invalid_json';
      this.reason = `line ${this.index} is not valid JSON: ${syntaxReason(err)}`;
    }
  }

  /**
   * Whether `checkJsonBounds` could refuse `raw[start, stop)`. It cannot when the line is no
   * longer than the longest string allowed (a string in it is shorter than the line) and holds
   * at most `maxDepth` bytes `{` and `[` (quoted ones included: the depth never exceeds the number
   * of opening brackets). Those bytes are found by native `indexOf` (memchr), each searched for
   * once per body (the next position is kept across lines), so an ordinary line costs two or three
   * calls instead of the byte loop over all of it; a line that could break a bound still gets the
   * byte loop, which decides and gives the reason. Same answers, less CPU (bench/ingest.micro.ts).
   */
  private mayBreakBounds(bounds: JsonBounds, start: number, stop: number): boolean {
    if (stop - start > bounds.maxStringBytes) return true;
    const raw = this.raw;
    let opens = 0;
    let p = this.nextBrace < start ? indexOrEnd(raw, OPEN_BRACE, start) : this.nextBrace;
    while (p < stop) {
      if (++opens > bounds.maxDepth) return true;
      p = indexOrEnd(raw, OPEN_BRACE, p + 1);
    }
    this.nextBrace = p;
    p = this.nextBracket < start ? indexOrEnd(raw, OPEN_BRACKET, start) : this.nextBracket;
    while (p < stop) {
      if (++opens > bounds.maxDepth) return true;
      p = indexOrEnd(raw, OPEN_BRACKET, p + 1);
    }
    this.nextBracket = p;
    return false;
  }

  /** A copy of the current line's bytes (without its line end). */
  rawLine(): Buffer {
    return Buffer.from(this.raw.subarray(this.lineStart, this.lineStop));
  }
}

/** Position of the first `byte` at or after `from`, or raw.length when there is none. */
function indexOrEnd(raw: Buffer, byte: number, from: number): number {
  const i = raw.indexOf(byte, from);
  return i < 0 ? raw.length : i;
}

export function parseEventsBody(raw: Buffer, format: BodyFormat, bounds?: JsonBounds): ParsedBody {
  return format === 'ndjson' ? parseNdjsonBody(raw, bounds) : parseJsonBody(raw, bounds);
}

/** Bounds checked on the raw bytes before any JSON is parsed (see checkJsonBounds). */
export interface JsonBounds {
  /** Deepest nesting of arrays and objects (the top-level array of a body counts as 1). */
  maxDepth: number;
  /** Longest string (keys too), in bytes as sent (escapes counted as written). */
  maxStringBytes: number;
}

export interface BoundsViolation {
  errorClass: 'too_deep' | 'string_too_long';
  reason: string;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * One pass over `raw[start, end)` that finds nesting deeper than `maxDepth` and strings longer
 * than `maxStringBytes`, without parsing: outside strings it looks at brackets only, inside a
 * string at quotes and backslashes only (a backslash skips the byte after it). Run before
 * `JSON.parse`, so a body of 10⁵ nested arrays or a multi-megabyte value is refused at the cost
 * of reading its bytes once. A plain loop over the bytes: the strings of events are short, and a
 * native `indexOf` per string cost more in call overhead than the loop (bench/ingest.micro.ts).
 * Text that is not JSON is left to the parser (an unterminated string is only measured).
 */
export function checkJsonBounds(raw: Buffer, bounds: JsonBounds, start = 0, end = raw.length): BoundsViolation | null {
  const { maxDepth, maxStringBytes } = bounds;
  let depth = 0;
  let i = start;
  while (i < end) {
    const c = raw[i]!;
    if (c === QUOTE) {
      let q = i + 1;
      while (q < end) {
        const d = raw[q]!;
        if (d === QUOTE) break;
        q += d === BACKSLASH ? 2 : 1;
      }
      if (q > end) q = end; // a backslash as the last byte
      const length = q - i - 1;
      if (length > maxStringBytes) {
        return { errorClass: 'string_too_long', reason: `a string of ${length} bytes starts at byte ${i - start}; the limit is ${maxStringBytes} bytes` };
      }
      i = q + 1;
      continue;
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) {
        return { errorClass: 'too_deep', reason: `JSON nested deeper than ${maxDepth} levels (at byte ${i - start})` };
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
    i++;
  }
  return null;
}
