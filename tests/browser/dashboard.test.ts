/**
 * The live dashboard in headless Debian Chromium (playwright-core), against a running pipeline:
 * bin/pipeline.ts startPipeline with registry, raw-store, business, qoe, safety, production and
 * api roles on a test env; simulator traffic for the last 20 minutes produced through the SDK.
 * Checks the charts show data and keep updating (server-sent events), and keeps a screenshot in
 * tests/artifacts/dashboard.png (git-ignored).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright-core';
import { CHROMIUM, launchHeadless } from '../helpers/browser.js';
import { silentLogger } from '../../lib/logger.js';
import { createMetrics } from '../../lib/metrics.js';
import { startPipeline, type Pipeline } from '../../bin/pipeline.js';
import { generateRange } from '../../producers/simulator/index.js';
import type { EventKind } from '../../contracts/topics.js';
import { queryRows } from '../../sinks/clickhouse/client.js';
import { REPO_ROOT, cleanupTestEnv, pollUntil, testEnv } from '../helpers/env.js';

const VIEWER = 'browser-viewer-key-0123456789';
const t = testEnv('browser', {
  ROLES: 'registry,raw-store,business,qoe,safety,production,api',
  SCHEMA_REGISTRY_URL: 'http://127.0.0.1:0',
  API_KEYS: `${VIEWER}:viewer`,
  CHECKPOINT_INTERVAL_MS: '500',
  BATCH_MAX_MS: '500',
});
let pipeline: Pipeline;
let browser: BrowserContext | undefined;

beforeAll(async () => {
  pipeline = await startPipeline(t.config, silentLogger(), createMetrics());
  const now = Date.now();
  const events = generateRange({ seed: 11, startMs: now - 20 * 60_000, ratePerSec: 15, accounts: 2000, creators: 30 }, now);
  const byKind = new Map<EventKind, unknown[]>();
  for (const e of events) {
    let l = byKind.get(e.kind);
    if (!l) byKind.set(e.kind, (l = []));
    l.push(e.event);
  }
  for (const [kind, list] of byKind) {
    for (let i = 0; i < list.length; i += 2000) await pipeline.producer!.sendValid(kind, list.slice(i, i + 2000) as never);
  }
  const db = t.config.clickhouse.database;
  await pollUntil(
    async () => {
      const [r] = await queryRows<{ q: string; p: string }>(
        pipeline.ch!,
        `SELECT (SELECT count() FROM ${db}.qoe_minute) AS q, (SELECT count() FROM ${db}.kpi_payments_1m) AS p`,
      );
      return Number(r!.q) > 0 && Number(r!.p) > 0;
    },
    { timeoutMs: 120_000, intervalMs: 500, description: 'processors wrote QoE and payment rows' },
  );
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await pipeline?.stop();
  await cleanupTestEnv(t);
});

describe('live dashboard in Chromium', () => {
  it('shows QoE, business, safety and production charts with live data', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`).toBe(true);
    const address = pipeline.http!.server.address() as { port: number };
    const base = `http://127.0.0.1:${address.port}`;
    browser = await launchHeadless(join(t.dataDir, 'chromium-profile'));
    const page = await browser.newPage();
    await page.goto(`${base}/#key=${VIEWER}`);
    // Two snapshots at least: the first on connect, the next pushed by the stream.
    await page.waitForFunction(() => Number(document.body.dataset.updates ?? 0) >= 2, undefined, { timeout: 30_000 });
    const points = await page.$$eval('section[data-panel]', (els) =>
      Object.fromEntries(els.map((e) => [e.getAttribute('data-panel'), Number(e.querySelector('svg')?.getAttribute('data-points') ?? -1)])),
    );
    for (const panel of ['qoe-concurrent', 'qoe-rebuffer', 'qoe-startup', 'business-revenue', 'business-failures', 'business-gifts', 'safety']) {
      expect(points[panel], panel).toBeGreaterThan(0);
    }
    expect(points['production']).toBeGreaterThanOrEqual(0);
    expect(await page.textContent('#status')).toContain('live');
    expect(Number((await page.textContent('[data-panel="qoe-concurrent"] [data-value]'))!.replace(/,/g, ''))).toBeGreaterThan(0);
    const dir = join(REPO_ROOT, 'tests', 'artifacts');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });
  });
});
