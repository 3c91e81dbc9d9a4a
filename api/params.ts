/** Shared request parameters: time ranges, pagination cursors, and errors that name the parameter. */
import { Type } from '@sinclair/typebox';

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly error: string,
    message: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

export const badParam = (param: string, message: string) => new ApiError(400, 'bad_request', `${param}: ${message}`, param);

export const ErrorBody = Type.Object({ error: Type.String(), message: Type.String(), param: Type.Optional(Type.String()) });

export const TimeRangeQuery = {
  from: Type.Optional(Type.String({ description: 'Start: ISO 8601 time or epoch ms (default: to − 1 h).' })),
  to: Type.Optional(Type.String({ description: 'End: ISO 8601 time or epoch ms (default: now).' })),
};

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String({ description: 'Opaque cursor from next_cursor of the previous page.' })),
};

function parseTime(param: string, v: string): number {
  const ms = /^\d{10,16}$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms)) throw badParam(param, `not a time (want ISO 8601 or epoch ms, got ${JSON.stringify(v)})`);
  return ms;
}

export interface TimeRange {
  fromMs: number;
  toMs: number;
  /** `{from:DateTime64(3)}` / `{to:...}` parameter values (seconds with millis). */
  from: string;
  to: string;
}

/** Reads from/to; the range must be ordered and at most maxDays long. */
export function timeRange(q: { from?: string; to?: string }, now: number, defaultMs = 3_600_000, maxDays = 400): TimeRange {
  const toMs = q.to ? parseTime('to', q.to) : now;
  const fromMs = q.from ? parseTime('from', q.from) : toMs - defaultMs;
  if (fromMs >= toMs) throw badParam('from', 'must be before to');
  if (toMs - fromMs > maxDays * 86_400_000) throw badParam('from', `range longer than ${maxDays} days`);
  return { fromMs, toMs, from: (fromMs / 1000).toFixed(3), to: (toMs / 1000).toFixed(3) };
}

/** Cursors are base64url offsets: opaque to clients, stable for a given ordering. */
export function decodeCursor(cursor: string | undefined): number {
  if (!cursor) return 0;
  const m = /^o(\d{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw badParam('cursor', 'not a cursor returned by this API');
  return Number(m[1]);
}

export function page<T>(rows: T[], offset: number, limit: number): { items: T[]; next_cursor: string | null } {
  const more = rows.length > limit;
  return { items: more ? rows.slice(0, limit) : rows, next_cursor: more ? Buffer.from(`o${offset + limit}`).toString('base64url') : null };
}

export const PageBody = <T extends ReturnType<typeof Type.Object>>(item: T) =>
  Type.Object({ items: Type.Array(item), next_cursor: Type.Union([Type.String(), Type.Null()]) });

/** Rows from ClickHouse JSON: 64-bit integers arrive as strings; make numbers of numeric strings. */
export function numeric<T extends Record<string, unknown>>(rows: T[], keys: readonly string[]): T[] {
  for (const r of rows) for (const k of keys) if (typeof r[k] === 'string') (r as Record<string, unknown>)[k] = Number(r[k]);
  return rows;
}
