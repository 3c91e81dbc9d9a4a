/**
 * `npm run bench:consumers` (issue 19, item 3): node-rdkafka, the runner's consumer, against
 * @platformatic/kafka as the consumer, in one run over the same backlog. Loads the dense simulator
 * traffic of `npm run bench`'s longer backlog (BENCH_CONSUMER_EVENTS, 2,000,000 by default, 20,000
 * simulated events/s) onto a fresh topic set, then reads it from the beginning, each read in a
 * child process of its own (bench/consumer-client.ts) so that its CPU time and peak RSS are one
 * client's: consume only, and consume + Avro decode (lib/avro-codec.ts, as the runner decodes),
 * node-rdkafka then @platformatic/kafka, alternated a → b → a → b (BENCH_CONSUMER_REPEATS rounds,
 * 3 by default). Prints a table (events/s, CPU-s per million events, main-thread share, peak RSS,
 * the ratio platformatic ÷ node-rdkafka) and the versions; writes no results (bench/RESULTS.md,
 * "Issue 19, consumer clients", was written from its output).
 *
 *   flock /tmp/streampulse-bench.lock npm run bench:consumers
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import Kafka from 'node-rdkafka';
import { topicSpec, type EventKind } from '../contracts/topics.js';
import { REPO_ROOT } from '../stack/kafka.js';
import { ALL_KINDS, benchEnv, collectGarbage, generateEvents, machine, produceAll, topicTotal, type BenchEnv } from './common.js';
import type { ClientName, ConsumerJob, ConsumerResult } from './consumer-client.js';

const N = Number(process.env.BENCH_CONSUMER_EVENTS ?? 2_000_000);
const EVENT_RATE = Number(process.env.BENCH_EVENT_RATE ?? 20_000);
const REPEATS = Number(process.env.BENCH_CONSUMER_REPEATS ?? 3);
/** Records per batch: the runner's consumeBatch default. */
const BATCH = 2_000;
/**
 * BENCH_RDKAFKA_CONFIG='{"fetch.queue.backoff.ms":10}': a third reader, node-rdkafka with these
 * settings over the runner's, alternated with the other two (exploring why node-rdkafka's rate is
 * flat whatever the work per record).
 */
const RDKAFKA_CONFIG = process.env.BENCH_RDKAFKA_CONFIG ? (JSON.parse(process.env.BENCH_RDKAFKA_CONFIG) as Record<string, string | number | boolean>) : null;
interface Reader {
  label: string;
  client: ClientName;
  rdkafkaConfig?: Record<string, string | number | boolean>;
}
const READERS: Reader[] = [
  { label: 'node-rdkafka', client: 'node-rdkafka' },
  ...(RDKAFKA_CONFIG ? [{ label: `node-rdkafka ${JSON.stringify(RDKAFKA_CONFIG)}`, client: 'node-rdkafka' as const, rdkafkaConfig: RDKAFKA_CONFIG }] : []),
  { label: 'platformatic', client: 'platformatic' },
];
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function runChild(job: ConsumerJob): Promise<ConsumerResult> {
  const child = fork(new URL('./consumer-client.ts', import.meta.url).pathname, [JSON.stringify(job)], { execArgv: ['--import', 'tsx'] });
  return new Promise((resolve, reject) => {
    let result: ConsumerResult | null = null;
    child.on('message', (m: { type: string; result?: ConsumerResult; message?: string }) => {
      if (m.type === 'done') result = m.result!;
      else reject(new Error(`${job.client}: ${m.message}`));
    });
    child.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`${job.client} read exited with ${code}`))));
  });
}

function versions(): string {
  // Read from node_modules: @platformatic/kafka's `exports` does not list its package.json.
  const pkg = (name: string) => (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  return `Node ${process.version}, node-rdkafka ${pkg('node-rdkafka')} (librdkafka ${Kafka.librdkafkaVersion}), @platformatic/kafka ${pkg('@platformatic/kafka')}`;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Row {
  reader: string;
  decode: boolean;
  runs: ConsumerResult[];
}

async function main(): Promise<void> {
  console.log(`machine: ${machine()}; ${versions()}`);
  const b: BenchEnv = await benchEnv('consumers');
  try {
    const events = generateEvents(N, 21, EVENT_RATE);
    const produceSeconds = await produceAll(b.producer, events);
    events.length = 0;
    collectGarbage();
    const topics = Object.fromEntries(ALL_KINDS.map((k) => [topicSpec(b.config.topicPrefix, k).topic, k])) as Record<string, EventKind>;
    const total = await topicTotal(b, ALL_KINDS);
    console.log(`${fmt(N)} simulator events produced in ${produceSeconds.toFixed(1)} s: ${fmt(total)} records on ${Object.keys(topics).length} topics`);

    const rows: Row[] = [];
    for (const decode of [false, true]) for (const r of READERS) rows.push({ reader: r.label, decode, runs: [] });
    const load: number[] = [loadavg()[0]!];
    for (let round = 0; round < REPEATS; round++) {
      for (const decode of [false, true]) {
        for (const { label, client, rdkafkaConfig } of READERS) {
          const job: ConsumerJob = {
            client,
            rdkafkaConfig,
            decode,
            brokers: b.config.kafkaBrokers,
            registryUrl: b.registry.url,
            topicPrefix: b.config.topicPrefix,
            topics,
            total,
            batch: BATCH,
            groupId: `${b.config.env.GROUP_PREFIX}read-${client}${rdkafkaConfig ? '-tuned' : ''}-${decode ? 'decode' : 'consume'}-${round}`,
          };
          const r = await runChild(job);
          if (r.records !== total) throw new Error(`${label} read ${r.records} records, the topics hold ${total}`);
          rows.find((x) => x.reader === label && x.decode === decode)!.runs.push(r);
          load.push(r.loadAvg);
          console.log(
            `round ${round + 1}, ${decode ? 'consume + decode' : 'consume only'}, ${label}: ${fmt(r.records / r.seconds)} events/s (${r.seconds.toFixed(1)} s), ` +
              `${((1e6 * r.cpuSeconds) / r.records).toFixed(2)} CPU-s per million (${r.cpuSeconds.toFixed(2)} s, main thread ${r.mainThreadCpuSeconds.toFixed(2)} s), ` +
              `${(r.valueBytes / 2 ** 20).toFixed(0)} MiB of values in ${r.batches} batches, peak RSS ${r.peakRssMb.toFixed(0)} MiB, load average ${r.loadAvg.toFixed(1)}`,
          );
        }
      }
    }

    const perM = (r: ConsumerResult) => (1e6 * r.cpuSeconds) / r.records;
    const lines = [
      '| read | client | events/s, median (each run) | CPU-s per million events, median (each run) | of which main thread | peak RSS, median |',
      '|---|---|---|---|---|---|',
    ];
    for (const row of rows) {
      const rates = row.runs.map((r) => r.records / r.seconds);
      const cpus = row.runs.map(perM);
      const mains = row.runs.map((r) => (1e6 * r.mainThreadCpuSeconds) / r.records);
      lines.push(
        `| ${row.decode ? 'consume + decode' : 'consume only'} | ${row.reader} | ${fmt(median(rates))} (${rates.map(fmt).join(' · ')}) | ${median(cpus).toFixed(2)} (${cpus.map((c) => c.toFixed(2)).join(' · ')}) | ${median(mains).toFixed(2)} | ${median(row.runs.map((r) => r.peakRssMb)).toFixed(0)} MiB |`,
      );
    }
    for (const decode of [false, true]) {
      const a = rows.find((x) => x.reader === 'node-rdkafka' && x.decode === decode)!;
      const p = rows.find((x) => x.reader === 'platformatic' && x.decode === decode)!;
      const rate = (row: Row) => median(row.runs.map((r) => r.records / r.seconds));
      const cpu = (row: Row) => median(row.runs.map(perM));
      const rss = (row: Row) => median(row.runs.map((r) => r.peakRssMb));
      lines.push(
        `| ${decode ? 'consume + decode' : 'consume only'} | ratio platformatic ÷ node-rdkafka | ${(rate(p) / rate(a)).toFixed(2)}× | ${(cpu(p) / cpu(a)).toFixed(2)}× | | ${(rss(p) / rss(a)).toFixed(2)}× |`,
      );
    }
    console.log(
      `\n${fmt(total)} records (${fmt(N)} simulator events, ${EVENT_RATE} simulated events/s), batches of ${BATCH}, ${REPEATS} rounds; ` +
        `load average (1 min) ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}\n${machine()}; ${versions()}\n\n${lines.join('\n')}`,
    );
  } finally {
    await b.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
