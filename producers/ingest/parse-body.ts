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
  if (Array.isArray(value)) return { ok: true, entries: value.map((event, index) => ({ index, ok: true, event })) };
  if (typeof value === 'object' && value !== null) return { ok: true, entries: [{ index: 0, ok: true, event: value }] };
  return { ok: false, errorClass: 'invalid_json', reason: `body must be a JSON array of events or one event object, got ${value === null ? 'null' : typeof value}` };
}

/** One JSON value per line; a line that is not JSON (or breaks `bounds`) is rejected alone. */
export function parseNdjsonBody(raw: Buffer, bounds?: JsonBounds): ParsedBody {
  const entries: BodyEntry[] = [];
  // One decode of the whole body; when it is ASCII (the usual case) byte offsets are character
  // offsets and each line is a slice of it (no copy), else each line is decoded on its own.
  const whole = isAscii(raw) ? raw.toString('latin1') : null;
  let start = 0;
  for (let line = 0; start < raw.length; line++) {
    let end = raw.indexOf(NEWLINE, start);
    if (end < 0) end = raw.length;
    let stop = end;
    if (stop > start && raw[stop - 1] === CARRIAGE_RETURN) stop--;
    const lineStart = start;
    start = end + 1;
    const violation = bounds ? checkJsonBounds(raw, bounds, lineStart, stop) : null;
    if (violation) {
      entries.push({ index: line, ok: false, errorClass: violation.errorClass, reason: `line ${line} refused before parsing: ${violation.reason}`, raw: Buffer.from(raw.subarray(lineStart, stop)) });
      continue;
    }
    const text = whole !== null ? whole.slice(lineStart, stop) : raw.toString('utf8', lineStart, stop);
    if (raw[lineStart] !== OPEN_BRACE && text.trim() === '') continue;
    try {
      entries.push({ index: line, ok: true, event: JSON.parse(text) });
    } catch (err) {
      entries.push({ index: line, ok: false, errorClass: 'invalid_json', reason: `line ${line} is not valid JSON: ${syntaxReason(err)}`, raw: Buffer.from(raw.subarray(lineStart, stop)) });
    }
  }
  return { ok: true, entries };
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
