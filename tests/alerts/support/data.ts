/**
 * Synthetic derived-table rows for alert tests: a steady daily profile (identical every day, so
 * the 7-day baselines equal the current values) and incidents layered on top, written straight
 * into ClickHouse with insertRows.
 */
import { insertRows, type ClickHouse } from '../../../sinks/clickhouse/client.js';

export const CDNS = ['akamai', 'fastly', 'cloudfront'];
export const MIN = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

export interface Incident {
  rebufferCdn?: string;
  vsf?: boolean;
  startupSlow?: boolean;
  fatal?: boolean;
  paymentOutage?: boolean;
  engagementDrop?: boolean;
  abuse?: boolean;
  payerDrop?: boolean;
}

const ts = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
const ts3 = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
const profile = (ms: number) => 1 + 0.5 * Math.sin((2 * Math.PI * new Date(ms).getUTCHours()) / 24);

/** Minute rows for [fromMs, toMs) (qoe_minute, kpi_payments_1m, safety_events_1m). */
export async function writeMinutes(ch: ClickHouse, fromMs: number, toMs: number, inc: (tMs: number) => Incident = () => ({})): Promise<void> {
  const qoe: object[] = [];
  const pay: object[] = [];
  const safety: object[] = [];
  for (let t = fromMs; t < toMs; t += MIN) {
    const f = profile(t);
    const i = inc(t);
    const minuteOfDay = Math.floor((t % DAY) / MIN);
    for (const cdn of CDNS) {
      const viewers = Math.round(200 * f);
      const watch = viewers * 60_000;
      const rebufferShare = i.rebufferCdn === cdn ? 0.1 : 0.005;
      const playing = Math.round(watch * (1 - rebufferShare) * (i.engagementDrop ? 0.5 : 1));
      qoe.push({
        window_start: ts(t),
        cdn,
        device_category: 'tv',
        country: 'US',
        asn: 1,
        content_id: 'c1',
        concurrent_viewers: viewers,
        views_started: 20,
        startup_ms_samples: Array.from({ length: 20 }, (_, k) => (i.startupSlow ? 7000 : 900) + k * 50),
        playing_ms: playing,
        rebuffer_ms: Math.round(watch * rebufferShare),
        rebuffer_count: 3,
        seek_ms: 0,
        bitrate_kbps_ms: playing * 3000,
        views_ended: 20,
        plays: 19,
        vsf_views: i.vsf ? 3 : minuteOfDay % 5 === 0 ? 1 : 0,
        ebvs_views: 0,
        business_exception_views: 0,
        playback_failure_views: 0,
        fatal_errors: i.fatal ? 4 : minuteOfDay % 30 === 0 ? 1 : 0,
        is_final: 1,
        src_topic: 'playback',
        src_partition: 0,
        version: 1,
      });
    }
    const attempts = Math.round(20 * f);
    const failed = i.paymentOutage ? Math.round(attempts / 2) : 1;
    const net = Math.round(50_000_000 * f * (i.paymentOutage ? 0.5 : 1));
    pay.push({
      window_start: ts(t),
      method: 'card',
      plan: 'premium',
      og_tier: 0,
      country: 'US',
      attempts,
      succeeded: attempts - failed,
      failed,
      gross_usd_micros: net,
      refunds_usd_micros: 0,
      chargebacks_usd_micros: 0,
      net_usd_micros: net,
      topups: 0,
      topup_usd_micros: 0,
      is_final: 1,
      src_topic: 'payments',
      src_partition: 0,
      version: 1,
    });
    if (minuteOfDay % 60 === 0)
      safety.push({
        window_start: ts(t),
        event_type: 'report_created',
        policy: 'spam',
        severity: 'low',
        detection_source: 'user_report',
        action_type: '',
        outcome: '',
        target_type: 'stream',
        events: 5,
        is_final: 1,
        src_topic: 'moderation',
        src_partition: 0,
        version: 1,
      });
    if (i.abuse) {
      safety.push({
        window_start: ts(t),
        event_type: 'report_created',
        policy: 'harassment',
        severity: 'high',
        detection_source: 'user_report',
        action_type: '',
        outcome: '',
        target_type: 'stream',
        events: 3,
        is_final: 1,
        src_topic: 'moderation',
        src_partition: 0,
        version: 1,
      });
      if (minuteOfDay % 60 === 1)
        safety.push({
          window_start: ts(t),
          event_type: 'action_taken',
          policy: 'violence',
          severity: 'critical',
          detection_source: 'classifier',
          action_type: 'remove',
          outcome: '',
          target_type: 'stream',
          events: 1,
          is_final: 1,
          src_topic: 'moderation',
          src_partition: 0,
          version: 1,
        });
    }
  }
  await insertRows(ch, 'qoe_minute', qoe);
  await insertRows(ch, 'kpi_payments_1m', pay);
  await insertRows(ch, 'safety_events_1m', safety);
}

/** account_activity_1h rows for the hours in [fromMs, toMs): 100 active accounts, 30 paying (10 in a payer drop). */
export async function writeHours(ch: ClickHouse, fromMs: number, toMs: number, inc: (hourMs: number) => Incident = () => ({})): Promise<void> {
  const rows: object[] = [];
  for (let h = fromMs; h < toMs; h += HOUR) {
    const payers = inc(h).payerDrop ? 10 : 30;
    for (let a = 0; a < 100; a++)
      rows.push({
        hour: ts(h),
        account_id: `acct-${a}`,
        played: 1,
        paid: a < payers ? 1 : 0,
        gifted: 0,
        net_usd_micros: a < payers ? 5_000_000 : 0,
        gift_usd_micros: 0,
        is_final: 1,
        src_topic: 'payments',
        src_partition: 0,
        version: 1,
      });
  }
  await insertRows(ch, 'account_activity_1h', rows);
}

/** One Jira issue state: its production_issues row (latest state) and its production_issue_history row (read as of t by the alert metrics). */
export async function writeIssue(
  ch: ClickHouse,
  i: { key: string; show: string; createdMs: number; updatedMs: number; critical: boolean; open: boolean; costUsd: number; version?: number },
): Promise<void> {
  const state = {
    issue_key: i.key,
    project_key: 'PRD',
    status: i.open ? 'Open' : 'Done',
    status_category: i.open ? 'new' : 'done',
    priority: 'High',
    severity: i.critical ? 'critical' : 'major',
    show_name: i.show,
    cost_impact_usd: i.costUsd,
    delay_days: 0,
    created: ts3(i.createdMs),
    updated: ts3(i.updatedMs),
    resolved: i.open ? null : ts3(i.updatedMs),
    is_open: i.open ? 1 : 0,
    is_critical: i.critical ? 1 : 0,
    deleted: 0,
    deleted_time: null,
    last_event_id: `${i.key}-${i.updatedMs}`,
    state_version: i.updatedMs,
    src_topic: 'jira',
    src_partition: 0,
    version: i.version ?? 1,
  };
  await insertRows(ch, 'production_issues', [{ ...state, summary: `issue ${i.key}`, issue_type: 'Bug', labels: [], resolve_ms: null }]);
  await insertRows(ch, 'production_issue_history', [state]);
}

/**
 * churn_scores rows of day `day` (days since epoch) and its churn_score_days row: 200 accounts,
 * acct-0..19 high every day, `entries` accounts among acct-100..179 high on this day only (a
 * window of the 80 that moves by 10 a day), the others low.
 */
export async function writeChurnDay(ch: ClickHouse, day: number, entries: number): Promise<void> {
  const date = new Date(day * DAY).toISOString().slice(0, 10);
  const rotating = new Set(Array.from({ length: entries }, (_, i) => 100 + ((day * 10 + i) % 80)));
  const rows = Array.from({ length: 200 }, (_, a) => {
    const high = a < 20 || rotating.has(a);
    return {
      day: date,
      account_id: `acct-${a}`,
      plan: 'premium',
      tenure_band: '90-364d',
      top_genre: 'drama',
      risk: high ? 0.7 : 0.05,
      level: high ? 'high' : 'low',
      reasons: high ? ['inactivity_weeks'] : [],
      version: 1,
    };
  });
  await insertRows(ch, 'churn_scores', rows);
  await insertRows(ch, 'churn_score_days', [{ day: date, accounts: rows.length, version: 1 }]);
}
