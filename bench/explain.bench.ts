/**
 * Alert explanations (issue 22) at the `bench:api` data size: the time `explainAlert` (contribution
 * analysis + context, alerts/explain.ts) adds before an alert's notice is enqueued.
 *
 *   flock /tmp/heavy.lock node --import tsx bench/explain.bench.ts
 *   BENCH_EXPLAIN_RUNS=5 …        # timed runs per alert (default 10, after one warm-up)
 *
 * Data (.data/bench/explain/): the derived tables of bench/api.bench.ts for 10 M raw playback events
 * in one day (its `generate`, without raw_playback itself, which no explanation reads), plus the 7
 * days before it (qoe_minute and kpi_payments_1m copied back with other rates, so every baseline day
 * has data and every alert has a change to explain), a catalog (2,001 titles in 150 shows) and 2,000
 * Jira issues. Alerts explained: the default rules' explainable ones at 20:00 of the day.
 * CPU time is the process's (embedded ClickHouse runs in it).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { explainAlert } from '../alerts/explain.js';
import { loadRulesFile } from '../alerts/rules.js';
import { loadConfig } from '../lib/config.js';
import { command, openClickHouse, queryRows } from '../sinks/clickhouse/client.js';
import { migrate } from '../sinks/clickhouse/migrate.js';
import { REPO_ROOT } from '../stack/kafka.js';
import { machine, recordResults } from './common.js';

process.env.BENCH_API_RAW ??= '0';
const { generate, DAY0 } = await import('./api.bench.js');

const RUNS = Number(process.env.BENCH_EXPLAIN_RUNS ?? 10);
const DAY = 86_400_000;
const MIN = 60_000;
const dir = join(REPO_ROOT, '.data', 'bench', 'explain');
const chTime = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

async function main(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn', CHDB_PATH: join(dir, 'chdb') });
  const ch = await openClickHouse({ ...config.clickhouse, url: null });
  await migrate(ch);
  const db = ch.database;
  const ready =
    existsSync(join(dir, 'chdb')) &&
    (await queryRows(ch, `SELECT 1 FROM system.tables WHERE database = {db:String} AND name = 'bench_explain_marker'`, { db })).length > 0;
  if (!ready) {
    await generate(ch);
    const day = `window_start >= toDateTime('${chTime(DAY0)}') AND window_start < toDateTime('${chTime(DAY0 + DAY)}')`;
    for (let k = 1; k <= 7; k++) {
      // Earlier days: less rebuffering, fewer start failures and payment failures, more playing and revenue.
      // (The day is filtered in a sub-query: in ClickHouse the WHERE of the same SELECT would see the shifted window_start alias.)
      await command(
        ch,
        `INSERT INTO ${db}.qoe_minute SELECT * REPLACE (window_start - toIntervalDay(${k}) AS window_start, intDiv(rebuffer_ms, 2) AS rebuffer_ms,
        intDiv(vsf_views, 2) AS vsf_views, intDiv(playing_ms * ${100 + 3 * k}, 100) AS playing_ms, intDiv(fatal_errors, 2) AS fatal_errors) FROM (SELECT * FROM ${db}.qoe_minute FINAL WHERE ${day})`,
      );
      await command(
        ch,
        `INSERT INTO ${db}.kpi_payments_1m SELECT * REPLACE (window_start - toIntervalDay(${k}) AS window_start, intDiv(failed, 2) AS failed,
        intDiv(net_usd_micros * ${110 + k}, 100) AS net_usd_micros) FROM (SELECT * FROM ${db}.kpi_payments_1m FINAL WHERE ${day})`,
      );
    }
    await command(
      ch,
      `INSERT INTO ${db}.raw_catalog (event_id, event_time, received_time, content_id, title, show_name, genre, stream_type, duration_ms, creator_id, src_topic, src_partition, src_offset, version)
      SELECT concat('cat-', toString(number)), now64(3), now64(3), concat('content-', toString(number)), concat('Title ', toString(number)), concat('Show ', toString(number % 150)),
        'drama', 'vod', 2700000, NULL, 'catalog', 0, number, 1 FROM numbers(2001)`,
    );
    await command(
      ch,
      `INSERT INTO ${db}.production_issue_history (issue_key, project_key, status, status_category, priority, severity, show_name, cost_impact_usd, delay_days, created, updated,
        resolved, is_open, is_critical, deleted, deleted_time, last_event_id, state_version, src_topic, src_partition, version)
      SELECT concat('PROD-', toString(number)), 'PROD', 'In Progress', 'indeterminate', 'High', ['low', 'medium', 'high', 'critical'][1 + number % 4], concat('Show ', toString(number % 150)),
        1000 * (number % 50), 1, toDateTime64('${chTime(DAY0)}', 3) - toIntervalHour(number % 200), toDateTime64('${chTime(DAY0)}', 3) + toIntervalMinute(number % 600), NULL,
        1, number % 4 = 3, 0, NULL, concat('ev-', toString(number)), 1, 'jira', 0, 1 FROM numbers(2000)`,
    );
    await command(ch, `CREATE TABLE ${db}.bench_explain_marker (x UInt8) ENGINE = TinyLog`);
  } else console.log(`reusing the data set in ${dir}`);
  const counts = await queryRows<{ t: string; n: string }>(
    ch,
    `SELECT table AS t, sum(rows) AS n FROM system.parts WHERE database = {db:String} AND active AND table IN ('qoe_minute', 'kpi_payments_1m') GROUP BY t ORDER BY t`,
    { db },
  );
  const rows = Object.fromEntries(counts.map((r) => [r.t, Number(r.n)]));
  console.log(rows);

  const rules = loadRulesFile(join(REPO_ROOT, 'alerts', 'rules.default.yaml')).rules;
  const at = DAY0 + 20 * 60 * MIN;
  const cases: Array<{ rule: string; labels: Record<string, string> }> = [
    { rule: 'qoe_rebuffer_high', labels: { cdn: 'akamai' } },
    { rule: 'qoe_vsf_high', labels: {} },
    { rule: 'engagement_playing_time_drop', labels: {} },
    { rule: 'business_payment_failures_high', labels: {} },
    { rule: 'business_revenue_drop', labels: {} },
  ];
  const lines: string[] = [];
  const loadStart = loadavg()[0]!;
  for (const c of cases) {
    const rule = rules.find((r) => r.name === c.rule)!;
    const alert = { labels: c.labels, activeAtMs: at, firingAtMs: at + rule.forMs };
    const first = await explainAlert(ch, rule, alert);
    if (first.baseline_days.length !== 7)
      throw new Error(`${c.rule}: ${first.baseline_days.length} baseline days with data, expected 7 (the copies of the day are missing)`);
    const wall: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < RUNS; i++) {
      const s = performance.now();
      await explainAlert(ch, rule, alert);
      wall.push(performance.now() - s);
    }
    const cpu = process.cpuUsage(cpu0);
    wall.sort((a, b) => a - b);
    const p = (q: number) => wall[Math.min(wall.length - 1, Math.max(0, Math.ceil(q * wall.length) - 1))]!;
    const line = `| ${c.rule}${
      Object.keys(c.labels).length
        ? ` {${Object.entries(c.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')}}`
        : ''
    } | ${(Date.parse(first.period.to) - Date.parse(first.period.from)) / MIN} min, ${first.baseline_days.length} baseline days | ${first.dimensions.length} | ${p(0.5).toFixed(0)} | ${p(0.95).toFixed(0)} | ${((cpu.user + cpu.system) / 1e6 / RUNS).toFixed(2)} | ${first.top
      .slice(0, 2)
      .map((t) => `${t.dimension}=${t.value} ${(100 * t.share).toFixed(0)} %`)
      .join(', ')} |`;
    console.log(line);
    lines.push(line);
  }
  const body = [
    `Machine: ${machine()}; load average (1 min) ${loadStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end (other jobs on the machine). Embedded ClickHouse (chdb) in the process.`,
    '',
    `Data: the derived tables of \`bench:api\` for 10 M raw playback events in one day (qoe_minute ${(rows.qoe_minute ?? 0).toLocaleString('en-US')} rows and kpi_payments_1m ${(rows.kpi_payments_1m ?? 0).toLocaleString('en-US')} rows over that day and the 7 days before it, copied back with other rates so every baseline day has data), 2,001 catalog titles, 2,000 Jira issues. ` +
      `Each explainable default rule explained at 20:00 of the day (period = window + for, the same period on 7 baseline days), ${RUNS} timed runs after one warm-up. Wall ms is what the explanation adds before the notice is enqueued; CPU-s per explanation is the process's (ClickHouse included).`,
    '',
    '| alert | period | dimensions | p50 ms | p95 ms | CPU-s / explanation | top slices |',
    '|---|---|---|---|---|---|---|',
    ...lines,
  ].join('\n');
  recordResults('Alert explanations (node --import tsx bench/explain.bench.ts)', body);
  console.log(body);
  await ch.close();
}

await main();
