import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRulesFile, parseRules, RulesError } from '../../alerts/rules.js';
import { alertKey, step, type AlertState, type Observation } from '../../alerts/state-machine.js';
import { pagerDutyBody, sign, slackBody, webhookBody, type Notification } from '../../alerts/notifiers.js';
import { backoffMs } from '../../alerts/delivery.js';
import { createHmac } from 'node:crypto';

const DEFAULT = join(import.meta.dirname, '../../alerts/rules.default.yaml');

function errorOf(text: string): string {
  try {
    parseRules(text, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(RulesError);
    return (err as Error).message;
  }
  throw new Error('expected a RulesError');
}

describe('rules file', () => {
  it('the default rule set parses and covers DOMAIN §8', () => {
    const rs = loadRulesFile(DEFAULT);
    expect(rs.rules.map((r) => r.name)).toEqual(
      expect.arrayContaining([
        'qoe_rebuffer_high',
        'qoe_vsf_high',
        'qoe_startup_slow',
        'business_revenue_drop',
        'business_payer_rate_drop',
        'business_payment_failures_high',
        'engagement_playing_time_drop',
        'churn_high_risk_surge',
        'safety_reports_actions_surge',
        'safety_critical_action',
        'infra_fatal_errors_high',
        'infra_late_events_high',
        'production_new_critical_issue',
        'production_cost_impact_high',
      ]),
    );
    const r = rs.rules.find((x) => x.name === 'qoe_rebuffer_high')!;
    expect(r).toMatchObject({
      groupBy: ['cdn'],
      windowMs: 60_000,
      forMs: 180_000,
      minVolume: 50,
      severity: 'critical',
      condition: { kind: 'threshold', op: '>', threshold: 2 },
    });
    expect(rs.rules.find((x) => x.name === 'business_revenue_drop')!.condition).toEqual({ kind: 'below_baseline_pct', pct: 15, baselineDays: 7 });
  });

  it('a bad rule is reported with its index, name and field', () => {
    const base = readFileSync(DEFAULT, 'utf8');
    expect(errorOf(base.replace('for: 3m', 'for: three minutes'))).toContain('rules[0] (qoe_rebuffer_high).for: "three minutes" is not a duration');
    expect(errorOf(base.replace('metric: qoe_vsf_pct', 'metric: qoe_vfs_pct'))).toContain('rules[1] (qoe_vsf_high).metric: unknown metric "qoe_vfs_pct"');
    expect(errorOf(base.replace('group_by: [cdn]', 'group_by: [cnd]'))).toContain(
      'rules[0] (qoe_rebuffer_high).group_by: metric qoe_rebuffer_pct has no label "cnd"',
    );
    expect(errorOf(base.replace('severity: warning', 'severity: sev2'))).toMatch(/rules\[2\] \(qoe_startup_slow\)\.severity: must be one of/);
    expect(errorOf(base.replace('condition: "> 5"', 'condition: "over 5"'))).toContain('rules[1] (qoe_vsf_high).condition:');
    expect(errorOf('rules:\n  - metric: qoe_vsf_pct\n    condition: "> 1"\n    severity: info\n    annotations: { summary: x }\n')).toContain(
      'rules[0].name: required',
    );
    expect(errorOf('rules: [')).toContain('not valid YAML');
  });

  it('loadRulesFile names the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    const f = join(dir, 'bad.yaml');
    writeFileSync(
      f,
      'rules:\n  - name: x\n    metric: qoe_vsf_pct\n    condition: "> 1"\n    severity: info\n    receivers: [nobody]\n    annotations: { summary: x }\n',
    );
    expect(() => loadRulesFile(f)).toThrow(/bad\.yaml[\s\S]*rules\[0\] \(x\)\.receivers: unknown receiver "nobody"/);
  });
});

describe('state machine (event time)', () => {
  const rule = parseRules(
    'rules:\n  - { name: r, metric: qoe_rebuffer_pct, group_by: [cdn], condition: "> 2", for: 3m, keep_firing_for: 2m, min_volume: 50, severity: critical, annotations: { summary: s } }\n',
  ).rules[0]!;
  const key = alertKey('r', { cdn: 'a' });
  const obs = (value: number, volume = 100): Map<string, Observation> =>
    new Map([[key, { labels: { cdn: 'a' }, value, baseline: null, volume, active: value > 2 && volume >= 50 }]]);
  const run = (values: (number | null)[]) => {
    let live = new Map<string, AlertState>();
    const out: string[] = [];
    values.forEach((v, i) => {
      const { next, transitions } = step(rule, i * 60_000, live, v === null ? new Map() : obs(v));
      for (const t of transitions) out.push(`${i}:${t.from}->${t.to}`);
      live = new Map([...next].filter(([, a]) => a.status !== 'resolved'));
    });
    return out;
  };

  it('fires after `for`, resolves after keep_firing_for', () => {
    expect(run([1, 5, 5, 5, 5, 1, 1, 1])).toEqual(['1:inactive->pending', '4:pending->firing', '6:firing->resolved']);
  });
  it('a single noisy minute never fires', () => {
    expect(run([1, 9, 1, 1, 9, 1])).toEqual(['1:inactive->pending', '2:pending->inactive', '4:inactive->pending', '5:pending->inactive']);
  });
  it('keep_firing_for rides over a one-minute dip; missing data counts as false', () => {
    expect(run([5, 5, 5, 5, 1, 5, 1, null, 1])).toEqual(['0:inactive->pending', '3:pending->firing', '7:firing->resolved']);
  });
  it('below min volume the condition does not hold', () => {
    const { transitions } = step(rule, 0, new Map(), obs(9, 10));
    expect(transitions).toEqual([]);
  });
});

describe('notification formats', () => {
  const n: Notification = {
    id: 'abc:hook',
    receiver: 'hook',
    status: 'firing',
    rule: 'qoe_rebuffer_high',
    severity: 'critical',
    dedupKey: 'streampulse/qoe_rebuffer_high/0123',
    labels: { alertname: 'qoe_rebuffer_high', cdn: 'akamai', severity: 'critical' },
    annotations: { summary: 'Rebuffering 9.5% on akamai', runbook: 'https://rb/x' },
    value: 9.5,
    baseline: null,
    volume: 200,
    condition: 'c',
    startsAt: '2024-01-01T00:00:00.000Z',
    endsAt: null,
    repeat: false,
    createdAtMs: 0,
  };
  it('PagerDuty Events v2: trigger with payload, resolve with the same dedup_key', () => {
    const t = pagerDutyBody(n, 'R'.repeat(32));
    expect(t).toMatchObject({
      routing_key: 'R'.repeat(32),
      event_action: 'trigger',
      dedup_key: n.dedupKey,
      payload: { severity: 'critical', source: 'streampulse', custom_details: { value: 9.5 } },
    });
    expect(pagerDutyBody({ ...n, status: 'resolved' }, 'k')).toEqual({ routing_key: 'k', event_action: 'resolve', dedup_key: n.dedupKey });
  });
  it('Slack has text and blocks; webhook carries the id and labels; signature is HMAC-SHA256 of "ts.body"', () => {
    const s = slackBody(n) as { text: string; blocks: unknown[] };
    expect(s.text).toContain('FIRING');
    expect(s.blocks.length).toBe(3);
    expect(webhookBody(n)).toMatchObject({ notification_id: 'abc:hook', status: 'firing', labels: { cdn: 'akamai' } });
    expect(sign('k', 10, '{}')).toBe(`sha256=${createHmac('sha256', 'k').update('10.{}').digest('hex')}`);
  });
  it('an explanation goes into the webhook body, Slack sections with the Grafana link, and PagerDuty custom_details', () => {
    const explanation: NonNullable<Notification['explanation']> = {
      version: 1,
      metric: 'rebuffer_pct',
      unit: '%',
      kind: 'ratio',
      within: { cdn: 'akamai' },
      period: { from: '2023-12-31T23:56:00.000Z', to: '2024-01-01T00:00:00.000Z' },
      baseline_days: [1, 2, 3],
      previous_period: false,
      current: 4,
      baseline: 0.5,
      change: 3.5,
      dimensions: ['country', 'device_category'],
      top: [
        {
          dimension: 'country',
          value: 'IN',
          share: 0.97,
          weight: 0.3,
          excess_share: 0.67,
          contribution: 3.395,
          rate_effect: 3.4,
          mix_effect: -0.005,
          current: 12.1,
          baseline: 0.5,
        },
        {
          dimension: 'device_category',
          value: 'mobile',
          share: 0.55,
          weight: 0.55,
          excess_share: 0,
          contribution: 1.925,
          rate_effect: 1.9,
          mix_effect: 0.025,
          current: 4.1,
          baseline: 0.5,
        },
      ],
      context: {
        slice: { dimension: 'country', value: 'IN' },
        avg_concurrent_viewers: 41,
        views_started: 12,
        top_shows: [{ show_name: 'Lost Frontier', playing_hours: 2, avg_concurrent_viewers: 9 }],
        lenses: [{ metric: 'playing_hours', unit: 'h', scope: 'cdn=akamai, country=IN', current: 2, baseline: 3, change_pct: -33.3 }],
        jira: [{ issue_key: 'PROD-7', show_name: 'Lost Frontier', severity: 'critical', status: 'To Do', age_hours: 0.5, cost_impact_usd: 9500 }],
      },
      grafana: 'https://g/d/streampulse-qoe?from=1&to=2&var-cdn=akamai&var-country=IN',
      computed_ms: 80,
    };
    const e = { ...n, explanation };
    expect(webhookBody(e).explanation).toEqual(explanation);
    expect(webhookBody(n)).not.toHaveProperty('explanation');
    const text = JSON.stringify(slackBody(e));
    expect(text).toContain('country=IN: 97 % of the change (0.50 → 12.1 %; 30 % of the traffic)');
    expect(text).toContain('open Jira PROD-7 (critical, To Do, 0.5 h old) on Lost Frontier');
    expect(text).toContain('<https://g/d/streampulse-qoe?from=1&to=2&var-cdn=akamai&var-country=IN|Grafana: this slice>');
    expect((slackBody(e) as { blocks: unknown[] }).blocks.length).toBe(5);
    const d = (pagerDutyBody(e, 'k') as { payload: { custom_details: Record<string, unknown> } }).payload.custom_details;
    expect(d.explanation).toEqual([
      'country=IN: 97 % of the change (0.50 → 12.1 %; 30 % of the traffic)',
      'device_category=mobile: 55 % of the change (0.50 → 4.10 %; 55 % of the traffic)',
    ]);
    expect(d).toMatchObject({ top_slices: explanation.top, context: explanation.context, grafana: explanation.grafana });
  });
  it('backoff doubles up to the cap', () => {
    expect([1, 2, 3, 4, 10].map((a) => backoffMs(a, 1000, 5000))).toEqual([1000, 2000, 4000, 5000, 5000]);
  });
});
