/**
 * Live dashboard data: one snapshot (JSON) and the same snapshot pushed as server-sent events
 * every liveIntervalMs. The page at / (api/dashboard/index.html) draws it.
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { metricSql } from '../../contracts/metrics-catalog.js';
import { queryRows } from '../../sinks/clickhouse/client.js';
import type { AlertExplanation } from '../alerts-service.js';
import type { ApiContext } from '../context.js';
import { numeric } from '../params.js';
import { openBySeveritySql, productionTotals } from './production.js';
import { qoeSeries } from './qoe.js';

const LiveQuery = Type.Object({
  minutes: Type.Optional(Type.Integer({ minimum: 5, maximum: 1440, default: 60, description: 'Minutes of history in each series.' })),
  api_key: Type.Optional(Type.String({ description: 'For EventSource clients, which cannot send headers.' })),
});

export interface LiveSnapshot {
  generated_at: number;
  from: number;
  to: number;
  qoe: Record<string, unknown>[];
  payments: Record<string, unknown>[];
  gifts: Record<string, unknown>[];
  safety: Record<string, unknown>[];
  production: { open_issues: number; open_critical: number; by_severity: Record<string, unknown>[] };
  alerts: { available: boolean; items: Array<{ id: string; rule: string; state: string; severity: string; startsAt: string; summary?: string; why?: string }> };
}

/** The top slice of an alert's explanation, one line for the alert panel: `country=IN: 96 % of the change`. */
function why(e: AlertExplanation | null | undefined): { why?: string } {
  const top = e?.top.slice(0, 2) ?? [];
  return top.length ? { why: top.map((s) => `${s.dimension}=${s.value}: ${(100 * s.share).toFixed(0)} % of the change`).join('; ') } : {};
}

export async function liveSnapshot(ctx: ApiContext, minutes: number): Promise<LiveSnapshot> {
  const now = ctx.now();
  const toMs = Math.ceil(now / 60_000) * 60_000;
  const fromMs = toMs - minutes * 60_000;
  const p = { from: (fromMs / 1000).toFixed(3), to: (toMs / 1000).toFixed(3), step: 60 };
  const db = ctx.db;
  // Payments, gifts and moderation per minute in one query (a UNION ALL tagged by `k`): embedded
  // ClickHouse runs one query at a time, so three small ones cost three times the fixed cost of
  // a query (planning, FINAL), about 7 ms each on the 10 M bench data.
  const range = `window_start >= toDateTime({from:Float64}) AND window_start < toDateTime({to:Float64})`;
  // The open production issues by severity ride along as a fourth branch (`production`, one row
  // per severity, t = 0; openBySeveritySql, as the production summary reads them).
  const [qoe, perMinute, alerts] = await Promise.all([
    qoeSeries(ctx, 'none', [], '', p),
    queryRows<{ k: string; s: string; t: number | string; a: number | string; b: number | string; c: number | string; d: number | string }>(
      ctx.ch,
      `SELECT * FROM (
       SELECT 'payments' AS k, '' AS s, toUnixTimestamp(window_start) * 1000 AS t, sum(net_usd_micros) / 1e6 AS a, toFloat64(sum(attempts)) AS b, toFloat64(sum(failed)) AS c,
         toFloat64(ifNull(${metricSql('payment_failure_pct', 'payment_minute')} / 100, 0)) AS d
       FROM ${db}.kpi_payments_1m FINAL WHERE ${range} GROUP BY t
       UNION ALL
       SELECT 'gifts' AS k, '' AS s, toUnixTimestamp(window_start) * 1000 AS t, sum(value_usd_micros) / 1e6 AS a, toFloat64(sum(gifts)) AS b, 0 AS c, 0 AS d
       FROM ${db}.kpi_gifts_1m FINAL WHERE ${range} GROUP BY t
       UNION ALL
       SELECT 'safety' AS k, '' AS s, toUnixTimestamp(window_start) * 1000 AS t, toFloat64(sumIf(events, event_type = 'report_created')) AS a,
         toFloat64(sumIf(events, event_type = 'action_taken' AND action_type != 'none')) AS b, toFloat64(sumIf(events, event_type = 'action_taken' AND severity = 'critical')) AS c, 0 AS d
       FROM ${db}.safety_events_1m FINAL WHERE ${range} GROUP BY t
       UNION ALL
       SELECT 'production' AS k, severity AS s, 0 AS t, open_issues AS a, open_critical AS b, 0 AS c, 0 AS d FROM (${openBySeveritySql(db)}))
       ORDER BY k, t, a DESC, s SETTINGS prefer_column_name_to_alias = 1`,
      p,
    ),
    ctx.alerts ? ctx.alerts.listAlerts({}).catch(() => null) : Promise.resolve(null),
  ]);
  const of = (k: string) => perMinute.filter((r) => r.k === k);
  const payments = of('payments').map((r) => ({ t: r.t, revenue_usd: r.a, attempts: r.b, failed: r.c, failure_rate: r.d }));
  const gifts = of('gifts').map((r) => ({ t: r.t, gift_value_usd: r.a, gifts: r.b }));
  const safety = of('safety').map((r) => ({ t: r.t, reports: r.a, actions: r.b, critical_actions: r.c }));
  const bySev = of('production').map((r) => ({ severity: r.s, open_issues: Number(r.a), open_critical: Number(r.b) }));
  return {
    generated_at: now,
    from: fromMs,
    to: toMs,
    qoe: numeric(
      qoe.map(({ samples: _s, series: _g, ...r }) => r),
      ['t', 'concurrent_viewers', 'views_started', 'plays', 'views_ended', 'startup_p50_ms', 'startup_p95_ms', 'watch_ms', 'fatal_errors'],
    ),
    payments: numeric(payments, ['t', 'attempts', 'failed']),
    gifts: numeric(gifts, ['t', 'gifts']),
    safety: numeric(safety, ['t', 'reports', 'actions', 'critical_actions']),
    production: {
      ...productionTotals(bySev),
      by_severity: bySev.map(({ severity, open_issues }) => ({ severity, open_issues })),
    },
    alerts: {
      available: alerts !== null,
      items: (alerts ?? [])
        .filter((a) => a.state !== 'resolved')
        .slice(0, 50)
        .map((a) => ({
          id: a.id,
          rule: a.rule,
          state: String(a.state),
          severity: a.severity,
          startsAt: a.startsAt,
          summary: a.summary,
          ...why(a.explanation),
        })),
    },
  };
}

/**
 * The streams' snapshots, one per period and history length (`minutes`) however many streams show
 * it: each open dashboard used to compute its own, so N dashboards cost N snapshots (two ClickHouse
 * queries each, one at a time in embedded ClickHouse) every period. A feed starts with its first
 * stream and stops with its last; a stream that joins gets the feed's last message at once when it
 * is younger than a period, else the feed computes one now (unless one is under way, which it
 * then gets). Each message is serialized once for all.
 */
class LiveFeeds {
  private readonly feeds = new Map<
    number,
    { send: Set<(msg: string) => void>; timer: NodeJS.Timeout; busy: boolean; last: { at: number; msg: string } | null }
  >();

  constructor(private readonly ctx: ApiContext) {}

  subscribe(minutes: number, send: (msg: string) => void): () => void {
    let feed = this.feeds.get(minutes);
    if (!feed) {
      const f = { send: new Set<(msg: string) => void>(), timer: setInterval(() => void this.push(minutes), this.ctx.liveIntervalMs), busy: false, last: null };
      this.feeds.set(minutes, (feed = f));
    }
    feed.send.add(send);
    this.ctx.metrics.liveStreams.inc();
    if (feed.last && Date.now() - feed.last.at < this.ctx.liveIntervalMs) send(feed.last.msg);
    else void this.push(minutes);
    return () => {
      if (!feed.send.delete(send)) return;
      this.ctx.metrics.liveStreams.dec();
      if (feed.send.size === 0) {
        clearInterval(feed.timer);
        this.feeds.delete(minutes);
      }
    };
  }

  private async push(minutes: number): Promise<void> {
    const feed = this.feeds.get(minutes);
    if (!feed || feed.busy) return;
    feed.busy = true;
    let msg: string;
    try {
      msg = `event: snapshot\ndata: ${JSON.stringify(await liveSnapshot(this.ctx, minutes))}\n\n`;
      feed.last = { at: Date.now(), msg };
      this.ctx.metrics.liveSnapshots.inc({ result: 'ok' });
    } catch (err) {
      this.ctx.logger.warn({ event: 'live_snapshot_failed', err: (err as Error).message }, 'live snapshot failed');
      this.ctx.metrics.liveSnapshots.inc({ result: 'error' });
      msg = `event: error\ndata: ${JSON.stringify({ message: 'snapshot failed' })}\n\n`;
    } finally {
      feed.busy = false;
    }
    for (const send of [...feed.send]) send(msg);
  }
}

export function liveRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const streams = new Set<() => void>();
  const feeds = new LiveFeeds(ctx);
  // preClose, not onClose: the server waits for open connections before onClose runs, and an
  // open stream (a dashboard tab) never ends by itself, so Ctrl-C of the demo hung until the tab closed.
  app.addHook('preClose', async () => {
    for (const close of [...streams]) close();
  });

  app.get<{ Querystring: Static<typeof LiveQuery> }>(
    '/v1/live/snapshot',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['live'],
        querystring: LiveQuery,
        description: 'What the live dashboard shows: per-minute QoE, payments, gifts, moderation; open production issues; active alerts.',
      },
    },
    async (req) => liveSnapshot(ctx, req.query.minutes ?? 60),
  );

  app.get<{ Querystring: Static<typeof LiveQuery> }>(
    '/v1/live/stream',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['live'],
        querystring: LiveQuery,
        description: `Server-sent events: a "snapshot" event (the /v1/live/snapshot body) every ${ctx.liveIntervalMs} ms, computed once per period and \`minutes\` for every open stream.`,
      },
    },
    async (req, reply) => {
      const minutes = req.query.minutes ?? 60;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(`retry: 3000\n\n`);
      let closed = false;
      const unsubscribe = feeds.subscribe(minutes, (msg) => {
        if (!closed) res.write(msg);
      });
      const close = () => {
        if (closed) return;
        closed = true;
        unsubscribe();
        streams.delete(close);
        res.end();
      };
      streams.add(close);
      req.raw.on('close', close);
    },
  );
}
