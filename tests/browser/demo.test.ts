/**
 * A first run that shows itself (issue 21): `npm run demo` prints the live dashboard's URL with a
 * viewer key made for the run; that URL, opened in headless Chromium as printed, shows data in
 * every chart within 90 s. Also checked in the demo's output: the API docs URL (which answers),
 * the SQL door with its read-only user (a query through it answers), and a status line per role.
 * The demo finds the shared Kafka and Redis running; topics, keys, ports and data are this test's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { CHROMIUM, launchHeadless } from '../helpers/browser.js';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, cleanupTestEnv, freePort, pollUntil, testEnv } from '../helpers/env.js';

const t = testEnv('demo');
let demo: ChildProcess | null = null;
let browser: BrowserContext | undefined;
let output = '';

afterAll(async () => {
  // What the demo printed, kept for a failure's diagnosis (tests/artifacts is git-ignored).
  mkdirSync(join(REPO_ROOT, 'tests', 'artifacts'), { recursive: true });
  writeFileSync(join(REPO_ROOT, 'tests', 'artifacts', 'demo-output.log'), output);
  await browser?.close();
  if (demo?.pid) {
    try {
      process.kill(-demo.pid, 'SIGKILL'); // its process group, if Ctrl-C below did not end it
    } catch {
      /* gone already */
    }
  }
  await cleanupTestEnv(t);
});

describe('npm run demo', () => {
  it('prints a dashboard URL that shows data in every chart within 90 s', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`).toBe(true);
    const [httpPort, chPort, registryPort] = [await freePort(), await freePort(), await freePort()];
    const env: Record<string, string | undefined> = {
      ...t.env,
      HTTP_PORT: String(httpPort),
      CLICKHOUSE_HTTP_PORT: String(chPort),
      REGISTRY_PORT: String(registryPort),
      SCHEMA_REGISTRY_URL: `http://127.0.0.1:${registryPort}`,
    };
    delete env.ROLES;
    delete env.CLICKHOUSE_ANALYST_PASSWORD;
    demo = spawn('npm', ['run', 'demo', '--', '--rate', '300'], { cwd: REPO_ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    demo.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    demo.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<string>((r) => demo!.on('exit', (code, signal) => r(code === null ? String(signal) : String(code))));

    const url = await pollUntil(
      () => {
        if (demo!.exitCode !== null) throw new Error(`the demo exited ${demo!.exitCode}:\n${output.slice(-3000)}`);
        return /dashboard: (http:\/\/\S+#key=\S+)/.exec(output)?.[1];
      },
      { timeoutMs: 420_000, intervalMs: 200, description: 'the demo printed the dashboard URL' },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${output.slice(-3000)}`);
    });
    const printedAt = Date.now();
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${httpPort}/#key=demo-viewer-[\\w-]{20,}$`));
    const docs = /API docs:\s+(\S+)/.exec(output)![1]!;
    expect((await fetch(docs)).status).toBe(200);
    // The SQL door, as printed (user and password of this run), answers a read and refuses a write.
    const door = /curl -s -u '([^:]+):([^']+)' '([^']+)'/.exec(output)!;
    expect(door[1]).toBe('analyst');
    const auth = { Authorization: `Basic ${Buffer.from(`${door[1]}:${door[2]}`).toString('base64')}` };
    const read = await fetch(door[3]!, { method: 'POST', headers: auth, body: 'SELECT 1' });
    expect(await read.text()).toBe('1\n');
    const write = await fetch(door[3]!, { method: 'POST', headers: auth, body: `CREATE TABLE ${t.config.clickhouse.database}.x (a UInt8) ENGINE = Memory` });
    expect(write.status).not.toBe(200);

    browser = await launchHeadless(join(t.dataDir, 'chromium-profile'));
    const page = await browser.newPage();
    await page.goto(url);
    // Charts are the panels with an svg (the alerts panel is a list, empty while nothing fires).
    const charts = await page.$$eval('section[data-panel]', (els) =>
      els.filter((e) => e.querySelector('svg[data-chart]')).map((e) => e.getAttribute('data-panel')!),
    );
    expect(charts.length).toBeGreaterThanOrEqual(9);
    // Every chart has points within 90 s of the URL being printed (the page refreshes by itself).
    const left = Math.max(1_000, 90_000 - (Date.now() - printedAt));
    await page
      .waitForFunction(
        () => [...document.querySelectorAll('section[data-panel] svg[data-chart]')].every((svg) => Number(svg.getAttribute('data-points') ?? 0) > 0),
        undefined,
        { timeout: left, polling: 500 },
      )
      .catch(async (err) => {
        const points = await page.$$eval('section[data-panel]', (els) =>
          els.map((e) => `${e.getAttribute('data-panel')}=${e.querySelector('svg[data-chart]')?.getAttribute('data-points') ?? 'no chart'}`),
        );
        throw new Error(`not every chart has data 90 s after the URL was printed: ${points.join(' ')} (${(err as Error).message})`);
      });
    expect(await page.textContent('#status')).toContain('live');
    const dir = join(REPO_ROOT, 'tests', 'artifacts');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, 'demo.png'), fullPage: true });

    // A status line per role; the processors get to "caught up" or "running, N behind".
    await pollUntil(() => /^\s+raw-store\s+(caught up|running, [\d,]+ records behind)/m.test(output), {
      timeoutMs: 60_000,
      intervalMs: 500,
      description: 'role status lines',
    });
    for (const role of ['registry', 'ingest', 'api', 'business', 'qoe']) expect(output).toMatch(new RegExp(`^\\s+${role}\\s+(running|caught up)`, 'm'));

    process.kill(-demo.pid!, 'SIGINT');
    expect(['0', 'SIGINT']).toContain(await exited);
    await pollUntil(() => output.includes('stopped.'), { timeoutMs: 60_000, intervalMs: 200, description: 'the demo stopped' });
  }, 900_000);
});
