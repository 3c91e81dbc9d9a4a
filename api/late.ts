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
export async function lateEvents(
  ctx: ApiContext,
  processor: string,
  fromS: string,
  toS: string,
  reasons?: readonly string[],
  kinds?: readonly string[],
): Promise<number> {
  const [r] = await queryRows<{ n: string | number }>(
    ctx.ch,
    `SELECT count() AS n FROM ${ctx.db}.late_events FINAL
     WHERE processor = {p:String} AND event_time >= fromUnixTimestamp64Milli(toInt64({from:Float64} * 1000)) AND event_time < fromUnixTimestamp64Milli(toInt64({to:Float64} * 1000))
       ${reasons ? 'AND reason IN {reasons:Array(String)}' : ''}${kinds ? ' AND arrayExists(k -> endsWith(src_topic, k), {kinds:Array(String)})' : ''}`,
    { p: processor, from: fromS, to: toS, ...(reasons ? { reasons: [...reasons] } : {}), ...(kinds ? { kinds: [...kinds] } : {}) },
  );
  return Number(r?.n ?? 0);
}
