/**
 * Retention per table family (issue 21 item 3): row TTLs that ClickHouse applies when it merges
 * parts, set at start from RETENTION_*_DAYS (0 = keep forever, the default). Families:
 *  - raw: the raw_* tables (the archive of every event; the Kafka log is the source of truth);
 *  - minute: one-minute tables (qoe_minute, kpi_payments_1m, kpi_gifts_1m, safety_events_1m, and
 *    the histories of the last three) and the 1-minute QoE rollups;
 *  - hour: hourly tables (account_activity_1h and its history, kpi_business_1h_closed, the gift
 *    rollups kpi_gifts_creator_1h and kpi_gifts_sender_1h) and the 5-minute and 1-hour QoE rollups.
 * With minute retention shorter than hour retention, long ranges keep answering from the rollups
 * after the minute rows are gone (docs/api.md); only their ragged ends and asn/content_id views
 * need minute rows. Per-view, case, issue and churn tables are kept (not time series).
 * `materialize_ttl_after_modify = 0`: changing a TTL is a metadata change at start, not a rewrite
 * of every part; existing parts lose expired rows as they merge (or at OPTIMIZE … FINAL).
 */
import { EVENT_KINDS } from '../../contracts/topics.js';
import { command, queryRows, type ClickHouse } from './client.js';
import { dataTarget, LOCAL_SUFFIX } from './cluster-ddl.js';
import { rawTableName } from './raw-ddl.js';

export interface Retention {
  rawDays: number;
  minuteDays: number;
  hourDays: number;
}

/** A day count that means "never" where one family of a shared table keeps rows forever. */
const FOREVER_DAYS = 36_500;

/** Each table's TTL expression for the given retention, or null for no TTL. */
export function retentionTtls(r: Retention): Map<string, string | null> {
  const ttl = new Map<string, string | null>();
  const days = (d: number, expr: string) => (d > 0 ? `${expr} + toIntervalDay(${d})` : null);
  for (const k of EVENT_KINDS) ttl.set(rawTableName(k), days(r.rawDays, 'toDateTime(event_time)'));
  for (const t of [
    'qoe_minute',
    'kpi_payments_1m',
    'kpi_gifts_1m',
    'safety_events_1m',
    'kpi_payments_1m_history',
    'kpi_gifts_1m_history',
    'safety_events_1m_history',
  ])
    ttl.set(t, days(r.minuteDays, 'window_start'));
  for (const t of ['account_activity_1h', 'account_activity_1h_history', 'kpi_business_1h_closed', 'kpi_gifts_creator_1h', 'kpi_gifts_sender_1h'])
    ttl.set(t, days(r.hourDays, 'hour'));
  // One table, two families: the 1-minute buckets follow minute retention, the others hour retention (both QoE rollups).
  for (const t of ['qoe_minute_rollup', 'qoe_series_rollup'])
    ttl.set(t, r.minuteDays > 0 || r.hourDays > 0 ? `addDays(bucket, if(step = 60, ${r.minuteDays || FOREVER_DAYS}, ${r.hourDays || FOREVER_DAYS}))` : null);
  return ttl;
}

/** Sets (or removes) every family's TTL; returns the tables changed. */
export async function applyRetention(ch: ClickHouse, r: Retention): Promise<string[]> {
  const db = ch.database;
  const engines = new Map(
    (await queryRows<{ name: string; engine_full: string }>(ch, `SELECT name, engine_full FROM system.tables WHERE database = {db:String}`, { db })).map(
      (t) => [t.name, t.engine_full],
    ),
  );
  const changed: string[] = [];
  for (const [table, expr] of retentionTtls(r)) {
    // On a cluster the rows (and the TTL) live in the replicated local tables.
    const engine = engines.get(ch.cluster ? `${table}${LOCAL_SUFFIX}` : table);
    if (engine === undefined) continue;
    const has = / TTL /.test(engine);
    const target = dataTarget(db, table, ch.cluster);
    if (expr === null) {
      if (!has) continue;
      await command(ch, `ALTER TABLE ${target} REMOVE TTL`);
    } else await command(ch, `ALTER TABLE ${target} MODIFY TTL ${expr} SETTINGS materialize_ttl_after_modify = 0`);
    changed.push(table);
  }
  return changed;
}
