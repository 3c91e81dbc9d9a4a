/**
 * The anchors of `npm run bench`: the same topic data processed by Kafka Streams
 * (bench/anchors/kafka-streams/, a Java 17 Maven project on Kafka Streams 4.1.1 from Maven
 * Central), run as a JVM child over a bench's preloaded topics and timed the way the pipeline
 * is: from its first record read (start-up excluded) until its consumer group's committed
 * offsets cover every input and repartition partition (exactly_once_v2: every record's results
 * committed). The JVM measures its own CPU (/proc/self/stat, all threads) and peak RSS (VmHWM).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../stack/kafka.js';
import type { BenchEnv } from './common.js';

export type StreamsAnchorMode = 'windows' | 'accounts';

export interface AnchorResult {
  mode: StreamsAnchorMode;
  /** Records on the anchor's topics (playback, payments, gifts). */
  events: number;
  seconds: number;
  eventsPerSec: number;
  /** CPU (user + system, every JVM thread) over the measured span. */
  cpuSeconds: number;
  cpuSecondsPerMillion: number;
  peakRssMb: number;
  threads: number;
}

/** What each mode computes, as RESULTS.md describes it. */
export const STREAMS_ANCHOR_TITLES: Record<StreamsAnchorMode, string> = {
  windows:
    'Kafka Streams 4.1.1, 1-min event-time windows (60 s grace, updates emitted at each commit) per cdn over playback, per method·plan·og_tier·country·currency over payments, per creator·sender over gifts',
  accounts: 'Kafka Streams 4.1.1, the same windows plus a per-account 1-hour activity window over playback, payments and gifts (large keyed state, RocksDB)',
};

const PROJECT = join(REPO_ROOT, 'bench', 'anchors', 'kafka-streams');
const JAR = join(PROJECT, 'target', 'streams-anchor.jar');

function newestMtime(dir: string): number {
  let m = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    m = Math.max(m, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return m;
}

/** Builds the anchor with Maven when its jar is missing or older than its sources (offline first, then from Maven Central); returns its classpath. */
export function buildStreamsAnchor(): string {
  const stale = !existsSync(JAR) || Math.max(newestMtime(join(PROJECT, 'src')), statSync(join(PROJECT, 'pom.xml')).mtimeMs) > statSync(JAR).mtimeMs;
  if (stale) {
    const offline = spawnSync('mvn', ['-B', '-q', '-o', '-f', join(PROJECT, 'pom.xml'), 'clean', 'package'], { encoding: 'utf8' });
    if (offline.status !== 0) {
      const online = spawnSync('mvn', ['-B', '-q', '-f', join(PROJECT, 'pom.xml'), 'clean', 'package'], { encoding: 'utf8' });
      if (online.error || online.status !== 0)
        throw new Error(`cannot build the Kafka Streams anchor (mvn package in ${PROJECT}): ${online.error?.message ?? online.stdout + online.stderr}`);
    }
  }
  return `${JAR}:${join(PROJECT, 'target', 'lib', '*')}`;
}

/** Runs the anchor in `mode` over the preloaded topics of `b` to their end. */
export async function runStreamsAnchor(b: BenchEnv, mode: StreamsAnchorMode, label: string): Promise<AnchorResult> {
  const classpath = buildStreamsAnchor();
  const appId = `${b.config.topicPrefix}kstreams-${label}`;
  const child = spawn(
    'java',
    [
      '-cp',
      classpath,
      'dev.streampulse.anchor.StreamsAnchor',
      '--bootstrap',
      b.config.kafkaBrokers,
      '--topic-prefix',
      b.config.topicPrefix,
      '--schemas',
      join(REPO_ROOT, 'contracts', 'avro'),
      '--mode',
      mode,
      '--app-id',
      appId,
      '--state-dir',
      join(b.dataDir, `kstreams-${label}`),
    ],
    { cwd: PROJECT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (c) => resolve(c ?? -1));
  });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (code !== 0 || !line) throw new Error(`Kafka Streams anchor ${mode} exited with ${code}: ${out.slice(-2000)}`);
  return JSON.parse(line.slice('RESULT '.length)) as AnchorResult;
}
