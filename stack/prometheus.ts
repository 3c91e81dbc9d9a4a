/**
 * A local Prometheus for `npm run stack:up -- --prometheus`: the Debian package's binary
 * (scripts/setup.sh installs it), on 127.0.0.1:PROMETHEUS_PORT, scraping the pipeline's
 * /metrics on HTTP_PORT (processes with the ingest or api role) and METRICS_PORT (the others), and
 * evaluating the pipeline alert rules (stack/prometheus/rules). Its config and data live in
 * DATA_DIR/prometheus; `stack:down` stops it through its pid file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../lib/config.js';
import { StackError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { REPO_ROOT } from './kafka.js';
import { delay, isAlive, livePid, removeFile, stopPid, tailFile } from './proc.js';

export const PROMETHEUS_RULES = join(REPO_ROOT, 'stack', 'prometheus', 'rules', 'pipeline.rules.yml');

export function prometheusPaths(config: Config) {
  const dir = resolve(config.env.DATA_DIR, 'prometheus');
  return {
    dir,
    configFile: join(dir, 'prometheus.yml'),
    dataDir: join(dir, 'data'),
    pidFile: join(dir, 'prometheus.pid'),
    logFile: join(dir, 'prometheus.log'),
  };
}

/** The local Prometheus's configuration: the pipeline's two metrics ports on this machine. */
export function localPrometheusConfig(config: Config): string {
  return stringify({
    global: { scrape_interval: '15s', evaluation_interval: '15s' },
    rule_files: [PROMETHEUS_RULES],
    scrape_configs: [{ job_name: 'streampulse', static_configs: [{ targets: [`127.0.0.1:${config.env.HTTP_PORT}`, `127.0.0.1:${config.env.METRICS_PORT}`] }] }],
  });
}

async function ready(url: string): Promise<boolean> {
  return fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) }).then(
    (r) => r.ok,
    () => false,
  );
}

/** Starts the local Prometheus in the background (unless one of ours, or any, answers already). */
export async function startPrometheus(config: Config, logger: Logger): Promise<{ url: string; pid: number | null; alreadyRunning: boolean }> {
  const url = `http://127.0.0.1:${config.env.PROMETHEUS_PORT}`;
  const p = prometheusPaths(config);
  if (await ready(url)) return { url, pid: livePid(p.pidFile, 'prometheus'), alreadyRunning: true };
  if (spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).error) {
    throw new StackError('prometheus is not installed: run bash scripts/setup.sh (Debian package prometheus), or leave out --prometheus');
  }
  mkdirSync(p.dataDir, { recursive: true });
  writeFileSync(p.configFile, localPrometheusConfig(config));
  const out = openSync(p.logFile, 'a');
  const child = spawn(
    'prometheus',
    [
      `--config.file=${p.configFile}`,
      `--storage.tsdb.path=${p.dataDir}`,
      `--web.listen-address=127.0.0.1:${config.env.PROMETHEUS_PORT}`,
      '--storage.tsdb.retention.time=3d',
    ],
    { detached: true, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  if (child.pid === undefined) throw new StackError('could not spawn prometheus');
  child.unref();
  writeFileSync(p.pidFile, `${child.pid}\n`);
  const deadline = Date.now() + 60_000;
  while (!(await ready(url))) {
    if (!isAlive(child.pid)) throw new StackError(`prometheus exited during startup:\n${tailFile(p.logFile, 20)}`);
    if (Date.now() > deadline) {
      await stopPid(child.pid, 5000);
      throw new StackError(`prometheus did not answer on ${url} within 60 s:\n${tailFile(p.logFile, 20)}`);
    }
    await delay(200);
  }
  logger.info({ event: 'prometheus_started', url, pid: child.pid }, 'prometheus started');
  return { url, pid: child.pid, alreadyRunning: false };
}

/** Stops the Prometheus `startPrometheus` started (true when one was running). */
export async function stopPrometheus(config: Config): Promise<number | null> {
  const p = prometheusPaths(config);
  const pid = livePid(p.pidFile, p.configFile);
  if (pid !== null) await stopPid(pid, 10_000);
  removeFile(p.pidFile);
  return pid;
}
