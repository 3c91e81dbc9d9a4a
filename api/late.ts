/**
 * Late data in API answers (DOMAIN §9, issue 18): every answer over a period says how many events
 * of that period (by event time) arrived after their window closed and were left out of what it
 * reports — the rows of `late_events` of the processor whose tables the answer reads, optionally
 * only the reasons that leave the answer's table out (e.g. QoE by view end still merges events
 * that were late for the minute rows; only `view_expired` is left out of the views).
 */
import { Type } from '@sinclair/typebox';
import { queryRows } from '../sinks/clickhouse/client.js';
import type { ApiContext } from './context.js';

export const LateEvents = Type.Integer({
  minimum: 0,
  description: 'Events of the period (by event time) that arrived after their window closed and are left out of this answer (late_events).',
});

/**
 * `kinds`: only events of these kinds (their topic is `<TOPIC_PREFIX><kind>`), for an answer that
 * reads one kind of a processor that reads several (gifts of the business processor).
 */
/**
 * The WHERE of lateEvents, with the period as `{from:Float64}` / `{to:Float64}` (the routes' own
 * parameters) and the rest in the returned parameters.
 */
function lateWhere(processor: string, reasons?: readonly string[], kinds?: readonly string[]) {
  return {
    where: `processor = {late_p:String} AND event_time >= fromUnixTimestamp64Milli(toInt64({from:Float64} * 1000)) AND event_time < fromUnixTimestamp64Milli(toInt64({to:Float64} * 1000))
       ${reasons ? 'AND reason IN {late_reasons:Array(String)}' : ''}${kinds ? ' AND arrayExists(k -> endsWith(src_topic, k), {late_kinds:Array(String)})' : ''}`,
    params: { late_p: processor, ...(reasons ? { late_reasons: [...reasons] } : {}), ...(kinds ? { late_kinds: [...kinds] } : {}) },
  };
}

/**
 * lateEvents as a scalar subquery for a route to put in its own query (`… AS late_events`), the
 * same count without a query of its own (each query costs embedded ClickHouse a few ms however
 * small); `params` go with the route's, whose `from` / `to` must be the period's.
 */
export function lateEventsSql(ctx: ApiContext, processor: string, reasons?: readonly string[], kinds?: readonly string[]) {
  const w = lateWhere(processor, reasons, kinds);
  return { sql: `(SELECT count() FROM ${ctx.db}.late_events FINAL WHERE ${w.where})`, params: w.params };
}

export async function lateEvents(
  ctx: ApiContext,
  processor: string,
  fromS: string,
  toS: string,
  reasons?: readonly string[],
  kinds?: readonly string[],
): Promise<number> {
  const w = lateWhere(processor, reasons, kinds);
  const [r] = await queryRows<{ n: string | number }>(ctx.ch, `SELECT count() AS n FROM ${ctx.db}.late_events FINAL WHERE ${w.where}`, {
    ...w.params,
    from: fromS,
    to: toS,
  });
  return Number(r?.n ?? 0);
}

/**
 * The count a route's query carried in its column `late_events` (lateEventsSql), removed from
 * its rows; from a query of its own (`fallback`) when the route's query gave no row.
 */
export async function takeLateEvents(rows: Array<Record<string, unknown>>, fallback: () => Promise<number>): Promise<number> {
  if (rows.length === 0) return fallback();
  const n = Number(rows[0]!.late_events);
  for (const r of rows) delete r.late_events;
  return n;
}
