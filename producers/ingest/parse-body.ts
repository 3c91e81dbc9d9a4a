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
export type BodyFormat = 'json' | 'ndjson';

export type BodyEntry =
  | { index: number; ok: true; event: unknown }
  /** `raw` is the line as sent, for the dead letter. */
  | { index: number; ok: false; reason: string; raw: Buffer };

export type ParsedBody = { ok: true; entries: BodyEntry[] } | { ok: false; reason: string };

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

function syntaxReason(err: unknown): string {
  return (err as Error).message.replace(/\s+/g, ' ').slice(0, 300);
}

export function parseJsonBody(raw: Buffer): ParsedBody {
  if (raw.length === 0) return { ok: false, reason: 'body is empty; send a JSON array of events or one event object' };
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `body is not valid JSON: ${syntaxReason(err)}` };
  }
  if (Array.isArray(value)) return { ok: true, entries: value.map((event, index) => ({ index, ok: true, event })) };
  if (typeof value === 'object' && value !== null) return { ok: true, entries: [{ index: 0, ok: true, event: value }] };
  return { ok: false, reason: `body must be a JSON array of events or one event object, got ${value === null ? 'null' : typeof value}` };
}

export function parseNdjsonBody(raw: Buffer): ParsedBody {
  const entries: BodyEntry[] = [];
  let start = 0;
  for (let line = 0; start < raw.length; line++) {
    let end = raw.indexOf(NEWLINE, start);
    if (end < 0) end = raw.length;
    let stop = end;
    if (stop > start && raw[stop - 1] === CARRIAGE_RETURN) stop--;
    const bytes = raw.subarray(start, stop);
    start = end + 1;
    const text = bytes.toString('utf8');
    if (text.trim() === '') continue;
    try {
      entries.push({ index: line, ok: true, event: JSON.parse(text) });
    } catch (err) {
      entries.push({ index: line, ok: false, reason: `line ${line} is not valid JSON: ${syntaxReason(err)}`, raw: Buffer.from(bytes) });
    }
  }
  return { ok: true, entries };
}

export function parseEventsBody(raw: Buffer, format: BodyFormat): ParsedBody {
  return format === 'ndjson' ? parseNdjsonBody(raw) : parseJsonBody(raw);
}
