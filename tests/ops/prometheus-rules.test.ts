/**
 * The pipeline's Prometheus side (issue 21): the alert rules pass `promtool test rules` (each alert
 * has a test where it fires), the PromQL of the "Pipeline health" dashboard parses, every metric
 * name the rules and panels read is one lib/metrics.ts exports, and those names follow
 * Prometheus conventions (units, _total, no doubled prefix). promtool comes with Debian's
 * `prometheus` package (scripts/setup.sh installs it).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { DASHBOARDS } from '../../grafana/src/dashboards.js';
import { createMetrics } from '../../lib/metrics.js';
import { loadConfig } from '../../lib/config.js';
import { localPrometheusConfig } from '../../stack/prometheus.js';
import { REPO_ROOT } from '../helpers/env.js';

const RULES_DIR = join(REPO_ROOT, 'stack', 'prometheus', 'rules');
const RULES = join(RULES_DIR, 'pipeline.rules.yml');

function promtool(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd: REPO_ROOT });
  if (r.error) throw new Error(`promtool not found (${r.error.message}): run bash scripts/setup.sh (Debian package prometheus)`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

interface RuleFile {
  groups: Array<{ rules: Array<{ alert?: string; record?: string; expr: string }> }>;
}
const rules = (parse(readFileSync(RULES, 'utf8')) as RuleFile).groups.flatMap((g) => g.rules);
const panelExprs = DASHBOARDS.flatMap((d) =>
  d.panels.flatMap((p) => (p.promql ?? []).map((q) => ({ panel: `${d.title} / ${p.title}`, expr: q.expr.replaceAll('$__rate_interval', '5m') }))),
);

/** Every series name StreamPulse exports (histograms as their _bucket, _sum and _count series). */
function exportedNames(): Set<string> {
  const m = createMetrics({ defaultMetrics: true });
  const names = new Set<string>();
  for (const x of m.registry.getMetricsAsArray()) {
    const name = (x as unknown as { name: string }).name;
    const type = (x as unknown as { type: string }).type;
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    else names.add(name);
  }
  m.registry.clear();
  return names;
}

const metricNames = (expr: string) => [...expr.matchAll(/\bstreampulse_[a-z0-9_]+/g)].map((x) => x[0]);

describe('Prometheus alert rules', () => {
  it('promtool check rules accepts the rule file', () => {
    const r = promtool('check', 'rules', RULES);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.status, r.out).toBe(0);
  });

  it('promtool test rules passes', () => {
    const r = promtool('test', 'rules', join(RULES_DIR, 'pipeline.rules.test.yml'));
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS/);
  });

  it('every alert has a test case in which it fires', () => {
    const tests = parse(readFileSync(join(RULES_DIR, 'pipeline.rules.test.yml'), 'utf8')) as {
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
    };
    const firing = new Set(tests.tests.flatMap((t) => (t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    const alerts = rules.filter((r) => r.alert).map((r) => r.alert!);
    expect(alerts.length).toBeGreaterThanOrEqual(5);
    expect(alerts.filter((a) => !firing.has(a))).toEqual([]);
    // The five the issue names.
    for (const a of [
      'StreamPulseConsumerLagHigh',
      'StreamPulseWatermarkDelayHigh',
      'StreamPulseDeadLetterRate',
      'StreamPulseIngestErrorRate',
      'StreamPulseProcessorStalled',
    ])
      expect(alerts).toContain(a);
  });
});

describe('Prometheus configurations', () => {
  it('docker-compose and the local stack:up --prometheus configs pass promtool check config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sp-promcfg-'));
    try {
      // The compose file mounts the rules at /etc/prometheus/rules: pointed at the repo's copy here.
      const compose = readFileSync(join(REPO_ROOT, 'stack', 'prometheus', 'prometheus.yml'), 'utf8').replace('/etc/prometheus/rules/', `${RULES_DIR}/`);
      const local = localPrometheusConfig(loadConfig({ HTTP_PORT: '18080', METRICS_PORT: '19464' }));
      expect(local).toContain('127.0.0.1:18080');
      expect(local).toContain(RULES);
      for (const [name, text] of [
        ['compose.yml', compose],
        ['local.yml', local],
      ] as const) {
        writeFileSync(join(dir, name), text);
        const r = promtool('check', 'config', join(dir, name));
        expect(r.status, `${name}: ${r.out}`).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('PromQL of the Pipeline health dashboard', () => {
  it('has panels for lag, watermark delay, stalls, in/out, late, dead letters, cycles, checkpoints, sink, outages', () => {
    const all = panelExprs.map((p) => p.expr).join('\n');
    for (const n of [
      'streampulse_consumer_lag_records',
      'streampulse_consumer_lag_seconds',
      'streampulse_watermark_delay_seconds',
      'streampulse_processor_stalled_seconds',
      'streampulse_consumed_events_total',
      'streampulse_sink_rows_total',
      'streampulse_late_events_total',
      'streampulse_dead_letters_total',
      'streampulse_commit_cycle_duration_seconds_bucket',
      'streampulse_checkpoint_duration_seconds_bucket',
      'streampulse_checkpoint_size_bytes',
      'streampulse_sink_duration_seconds_bucket',
      'streampulse_sink_errors_total',
      'streampulse_dependency_unavailable_seconds_total',
    ]) {
      expect(all, n).toContain(n);
    }
  });

  it('every panel expression parses (promtool, as recording rules)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sp-promql-'));
    try {
      const file = join(dir, 'panels.yml');
      writeFileSync(file, stringify({ groups: [{ name: 'panels', rules: panelExprs.map((p, i) => ({ record: `panel:expr_${i}`, expr: p.expr })) }] }));
      const r = promtool('check', 'rules', file);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toContain(`SUCCESS: ${panelExprs.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metric names', () => {
  const exported = exportedNames();

  it('every streampulse_ name read by an alert rule or a panel is exported by lib/metrics.ts', () => {
    const read = [...rules.map((r) => ({ where: r.alert ?? r.record!, expr: r.expr })), ...panelExprs.map((p) => ({ where: p.panel, expr: p.expr }))];
    const missing = read.flatMap((r) =>
      metricNames(r.expr)
        .filter((n) => !exported.has(n))
        .map((n) => `${r.where}: ${n}`),
    );
    expect(missing).toEqual([]);
  });

  it('follow Prometheus conventions: counters end in _total, units in the name, no doubled prefix', () => {
    const m = createMetrics({ defaultMetrics: true });
    const bad: string[] = [];
    for (const x of m.registry.getMetricsAsArray()) {
      const { name, type } = x as unknown as { name: string; type: string };
      if (!name.startsWith('streampulse_')) bad.push(`${name}: not prefixed`);
      if (name.startsWith('streampulse_process_process_')) bad.push(`${name}: doubled prefix`);
      if (type === 'counter' && !name.endsWith('_total')) bad.push(`${name}: counter without _total`);
      if (/_ms$|_millis|_milliseconds/.test(name)) bad.push(`${name}: milliseconds (Prometheus uses seconds)`);
      if (/timestamp/.test(name) && !name.endsWith('_timestamp_seconds')) bad.push(`${name}: a timestamp is _timestamp_seconds`);
    }
    m.registry.clear();
    expect(bad).toEqual([]);
    expect(exported.has('streampulse_process_cpu_seconds_total')).toBe(true);
    expect(exported.has('streampulse_watermark_timestamp_seconds')).toBe(true);
  });
});
