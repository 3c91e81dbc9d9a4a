/**
 * A local single-node Kafka 4.1 (KRaft, broker + controller in one JVM) run from the Maven jars
 * in .cache/kafka/libs. No Docker, no Kafka distribution tarball: `java -cp libs/* kafka.Kafka`.
 *
 * Layout under `<DATA_DIR>/kafka`: server.properties, kafka.pid, data/ (log.dirs, formatted once)
 * and logs/ (server.log, controller.log, kafkaServer.out). Nothing is printed on our stdout.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../lib/config.js';
import { StackError } from '../lib/errors.js';
import { isKafkaReachable } from '../lib/kafka-admin.js';
import type { Logger } from '../lib/logger.js';
import { delay, isAlive, livePid, removeFile, stopPid, tailFile } from './proc.js';

/** Repository root (this file is stack/kafka.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const POM = join(REPO_ROOT, 'stack/kafka/pom.xml');
const LOG4J2_XML = join(REPO_ROOT, 'stack/kafka/log4j2.xml');
const PID_MARKER = 'kafka.Kafka';
/** `<DATA_DIR>/<this>` holds the throw-away Kafka the test run starts (tests/setup/global-setup.ts). */
export const TEST_KAFKA_DIRNAME = 'test-kafka';

export interface KafkaStackOptions {
  /** host:port of the PLAINTEXT listener, e.g. 127.0.0.1:9092 (first entry of KAFKA_BROKERS). */
  brokers: string;
  /** Port of the CONTROLLER listener (default: broker port + 1). */
  controllerPort?: number;
  /** Folder holding server.properties, the pid file, data/ and logs/ (default `<DATA_DIR>/kafka`). */
  dataDir: string;
  /** Folder of the broker jars (default `<repo>/.cache/kafka/libs`). */
  libsDir?: string;
  /** Maximum heap in MiB (default 1024). */
  heapMb?: number;
  /** How long to wait for the broker to answer after starting it (default 120 s). */
  startTimeoutMs?: number;
  /** How long SIGTERM may take before SIGKILL (default 30 s). */
  stopTimeoutMs?: number;
  logger: Logger;
}

export interface KafkaHandle {
  brokers: string;
  /** Pid of the broker we manage, or null when some other Kafka answers on the port. */
  pid: number | null;
  /** True when it was already running before this call (nothing was started). */
  alreadyRunning: boolean;
  dataDir: string;
  logFile: string;
}

/** Options from the loaded config: first broker of KAFKA_BROKERS, `<DATA_DIR>/kafka`. */
export function kafkaOptionsFromConfig(config: Config, logger: Logger): KafkaStackOptions {
  return { brokers: config.kafkaBrokers.split(',')[0]!.trim(), dataDir: resolve(config.env.DATA_DIR, 'kafka'), logger };
}

function paths(opts: KafkaStackOptions) {
  const dataDir = resolve(opts.dataDir);
  return {
    dataDir,
    props: join(dataDir, 'server.properties'),
    pidFile: join(dataDir, 'kafka.pid'),
    logDirs: join(dataDir, 'data'),
    appLogs: join(dataDir, 'logs'),
    serverLog: join(dataDir, 'logs', 'server.log'),
    stdoutLog: join(dataDir, 'logs', 'kafkaServer.out'),
    libsDir: resolve(opts.libsDir ?? join(REPO_ROOT, '.cache/kafka/libs')),
  };
}

function hostPort(brokers: string): { host: string; port: number } {
  const first = brokers.split(',')[0]!.trim();
  const m = /^(.*):(\d+)$/.exec(first);
  if (!m) throw new StackError(`KAFKA_BROKERS entry "${first}" is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

function pomHash(): string {
  return createHash('sha256').update(readFileSync(POM)).digest('hex');
}

/**
 * Makes sure the broker jars for stack/kafka/pom.xml are in `libsDir`: when the folder is
 * missing or was fetched for another version of the pom, runs Maven into a fresh folder and
 * swaps it in (so no stale jar, e.g. an old slf4j binding, stays on the classpath).
 */
export function ensureKafkaJars(opts: Pick<KafkaStackOptions, 'libsDir' | 'logger'>): string {
  const libsDir = resolve(opts.libsDir ?? join(REPO_ROOT, '.cache/kafka/libs'));
  const marker = join(libsDir, '.pom.sha256');
  const want = pomHash();
  if (existsSync(marker) && readFileSync(marker, 'utf8').trim() === want) return libsDir;
  const jars = existsSync(libsDir) ? readdirSync(libsDir) : [];
  const looksComplete =
    jars.some((j) => /^kafka_2\.13-.*\.jar$/.test(j)) && jars.some((j) => /^log4j-slf4j-impl-.*\.jar$/.test(j)) && !jars.some((j) => /reload4j/.test(j));
  if (looksComplete) {
    // Fetched by the documented mvn command (CI does this); adopt it.
    writeFileSync(marker, want + '\n');
    return libsDir;
  }
  const mvn = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (mvn.error || mvn.status !== 0) throw new StackError(`Kafka jars are missing in ${libsDir} and Maven is not available (apt-get install maven)`);
  const tmp = `${libsDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  opts.logger.info({ event: 'kafka_jars_fetch', libsDir }, 'fetching Kafka jars with Maven');
  const r = spawnSync('mvn', ['-q', '-B', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${tmp}`, '-DincludeScope=runtime'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new StackError(`mvn dependency:copy-dependencies failed (exit ${r.status}):\n${(r.stdout + r.stderr).split('\n').slice(-30).join('\n')}`);
  }
  writeFileSync(join(tmp, '.pom.sha256'), want + '\n');
  rmSync(libsDir, { recursive: true, force: true });
  mkdirSync(dirname(libsDir), { recursive: true });
  renameSync(tmp, libsDir);
  return libsDir;
}

/** The KRaft server.properties for one combined broker+controller node. */
export function serverProperties(opts: KafkaStackOptions): string {
  const p = paths(opts);
  const { host, port } = hostPort(opts.brokers);
  const cport = opts.controllerPort ?? port + 1;
  return [
    '# Written by stack/kafka.ts; edits are overwritten on the next start.',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${host}:${cport}`,
    `listeners=PLAINTEXT://${host}:${port},CONTROLLER://${host}:${cport}`,
    `advertised.listeners=PLAINTEXT://${host}:${port}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    `log.dirs=${p.logDirs}`,
    'num.partitions=3',
    'default.replication.factor=1',
    'min.insync.replicas=1',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=10',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=4',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    'auto.create.topics.enable=false',
    'delete.topic.enable=true',
    'num.network.threads=2',
    'num.io.threads=4',
    'log.retention.hours=168',
    'log.cleaner.dedupe.buffer.size=33554432',
    '',
  ].join('\n');
}

/**
 * A Kafka cluster id: 16 random bytes, base64url without padding (what `random-uuid` prints).
 * Like Kafka's Uuid.randomUuid, never one starting with '-': the storage tool would read it as an
 * option ("--cluster-id expected one argument"; 1 format in 64 failed before this).
 */
export function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function java(): string {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new StackError('java is not on PATH: install a JRE 17+ (apt-get install openjdk-17-jre-headless)');
  return 'java';
}

function formatStorage(opts: KafkaStackOptions, libsDir: string): void {
  const p = paths(opts);
  if (existsSync(join(p.logDirs, 'meta.properties'))) return;
  mkdirSync(p.logDirs, { recursive: true });
  const r = spawnSync(
    java(),
    [
      `-Dlog4j2.configurationFile=${LOG4J2_XML}`,
      `-Dkafka.logs.dir=${p.appLogs}`,
      '-cp',
      `${libsDir}/*`,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      newClusterId(),
      '-c',
      p.props,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new StackError(`kafka storage format failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  opts.logger.info({ event: 'kafka_storage_formatted', logDirs: p.logDirs }, 'formatted Kafka storage');
}

function startupFailure(opts: KafkaStackOptions, why: string): StackError {
  const p = paths(opts);
  return new StackError(`${why}\n--- tail of ${p.serverLog} ---\n${tailFile(p.serverLog, 30)}\n--- tail of ${p.stdoutLog} ---\n${tailFile(p.stdoutLog, 20)}`);
}

/** Is our broker process alive (pid file) and/or does any broker answer on the port? */
export async function kafkaStatus(opts: KafkaStackOptions): Promise<{ pid: number | null; reachable: boolean }> {
  const pid = livePid(paths(opts).pidFile, PID_MARKER);
  return { pid, reachable: await isKafkaReachable(opts.brokers, 2000) };
}

/**
 * Starts the broker unless one already answers on `brokers` (then it only reports it).
 * Resolves once the broker answers a metadata request; on failure or timeout throws a
 * StackError with the tail of the broker's log. The JVM is detached: it outlives this process
 * until `stopKafka`.
 */
export async function startKafka(opts: KafkaStackOptions): Promise<KafkaHandle> {
  const p = paths(opts);
  const log = opts.logger;
  const existing = livePid(p.pidFile, PID_MARKER);
  if (await isKafkaReachable(opts.brokers, 2000)) {
    log.info({ event: 'kafka_already_running', brokers: opts.brokers, pid: existing }, 'Kafka already running');
    return { brokers: opts.brokers, pid: existing, alreadyRunning: true, dataDir: p.dataDir, logFile: p.serverLog };
  }
  let pid = existing;
  if (pid === null) {
    removeFile(p.pidFile);
    const libsDir = ensureKafkaJars({ libsDir: opts.libsDir, logger: log });
    mkdirSync(p.appLogs, { recursive: true });
    writeFileSync(p.props, serverProperties(opts));
    formatStorage(opts, libsDir);
    const heapMb = opts.heapMb ?? 1024;
    const args = [
      `-Xms${Math.min(256, heapMb)}m`,
      `-Xmx${heapMb}m`,
      '-server',
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-XX:InitiatingHeapOccupancyPercent=35',
      '-XX:+ExplicitGCInvokesConcurrent',
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${LOG4J2_XML}`,
      `-Dkafka.logs.dir=${p.appLogs}`,
      '-cp',
      `${libsDir}/*`,
      PID_MARKER,
      p.props,
    ];
    const out = openSync(p.stdoutLog, 'a');
    const child = spawn(java(), args, { detached: true, stdio: ['ignore', out, out], cwd: p.dataDir });
    closeSync(out);
    if (child.pid === undefined) throw new StackError('could not spawn java for Kafka');
    child.unref();
    pid = child.pid;
    writeFileSync(p.pidFile, `${pid}\n`);
    log.info({ event: 'kafka_starting', pid, brokers: opts.brokers, dataDir: p.dataDir }, 'starting Kafka');
  } else {
    log.info({ event: 'kafka_waiting', pid }, 'Kafka process exists but does not answer yet; waiting');
  }
  const deadline = Date.now() + (opts.startTimeoutMs ?? 120_000);
  for (;;) {
    if (!isAlive(pid)) {
      removeFile(p.pidFile);
      throw startupFailure(opts, `Kafka (pid ${pid}) exited during startup`);
    }
    if (await isKafkaReachable(opts.brokers, 2000)) break;
    if (Date.now() > deadline) {
      await stopPid(pid, 10_000);
      removeFile(p.pidFile);
      throw startupFailure(opts, `Kafka did not answer on ${opts.brokers} within ${opts.startTimeoutMs ?? 120_000} ms (stopped it)`);
    }
    await delay(250);
  }
  log.info({ event: 'kafka_started', pid, brokers: opts.brokers }, 'Kafka is up');
  return { brokers: opts.brokers, pid, alreadyRunning: false, dataDir: p.dataDir, logFile: p.serverLog };
}

/**
 * Stops the broker we started (pid file): SIGTERM, wait, SIGKILL after the timeout. A Kafka
 * we did not start is left alone. Resolves true when a process was stopped.
 */
export async function stopKafka(opts: KafkaStackOptions): Promise<boolean> {
  const p = paths(opts);
  const pid = livePid(p.pidFile, PID_MARKER);
  if (pid === null) {
    removeFile(p.pidFile);
    return false;
  }
  const r = await stopPid(pid, opts.stopTimeoutMs ?? 30_000);
  if (!r.stopped) throw new StackError(`Kafka (pid ${pid}) did not stop even after SIGKILL`);
  removeFile(p.pidFile);
  opts.logger.info({ event: 'kafka_stopped', pid, killed: r.killed }, r.killed ? 'Kafka killed after timeout' : 'Kafka stopped');
  return true;
}

/** Deletes the broker's data (only when it is not running): a fresh cluster on next start. */
export function wipeKafkaData(opts: KafkaStackOptions): void {
  const p = paths(opts);
  if (livePid(p.pidFile, PID_MARKER) !== null) throw new StackError('stop Kafka before wiping its data');
  rmSync(p.dataDir, { recursive: true, force: true });
}
