/**
 * One measured read of `npm run bench:consumers` (bench/consumer-clients.bench.ts), in a child
 * process of its own so that its CPU time and peak RSS are one Kafka client's: it reads every
 * record of the topics from the beginning, in a fresh consumer group, with node-rdkafka (the
 * runner's consumer settings and loop, processors/core/runner.ts) or with @platformatic/kafka,
 * optionally decoding each record with the project's Avro decoder (lib/avro-codec.ts) as the
 * runner does (prepare, then decode per record). Forked with IPC; answers with what it saw.
 *
 * Measured span: from the group's assignment (the client's first partition assignment) until the
 * last record is in hand; start-up, connecting and the codec's schema registration excluded. CPU:
 * user + system of this process (every thread: librdkafka's, V8's) over the span.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Consumer, type Message as PlatformaticMessage, type MessagesStream } from '@platformatic/kafka';
import Kafka from 'node-rdkafka';
import { AvroCodec } from '../lib/avro-codec.js';
import { CONSUMER_SETTINGS } from '../processors/core/runner.js';
import type { EventKind } from '../contracts/topics.js';

export type ClientName = 'node-rdkafka' | 'platformatic';

export interface ConsumerJob {
  client: ClientName;
  /** node-rdkafka only: settings merged over the runner's (exploring, e.g. fetch.queue.backoff.ms). */
  rdkafkaConfig?: Record<string, string | number | boolean>;
  decode: boolean;
  brokers: string;
  registryUrl: string;
  topicPrefix: string;
  /** topic → kind of every topic read */
  topics: Record<string, EventKind>;
  /** Records on the topics (the sum of their high watermarks): the read stops there. */
  total: number;
  /** Records per batch (the runner's consumeBatch, 2,000). */
  batch: number;
  groupId: string;
}

export interface ConsumerResult {
  records: number;
  seconds: number;
  /** user + system of this process over the span (all threads). */
  cpuSeconds: number;
  /** of which the main (JavaScript) thread. */
  mainThreadCpuSeconds: number;
  /** VmHWM of this process at the end of the read. */
  peakRssMb: number;
  /** Bytes of the records' values. */
  valueBytes: number;
  /** Batches handed to the loop (non-empty). */
  batches: number;
  loadAvg: number;
}

/** user + system seconds of this process's main thread (its task of the same id as the process). */
function mainThreadCpuSeconds(): number {
  const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

interface Mark {
  at: number;
  cpu: NodeJS.CpuUsage;
  main: number;
}

const mark = (): Mark => ({ at: performance.now(), cpu: process.cpuUsage(), main: mainThreadCpuSeconds() });

/** A read: marks at its start (assignment) and end (last record in hand), records and non-empty batches. */
interface Read {
  start: Mark;
  end: Mark;
  records: number;
  batches: number;
}

/** What the loop does with a batch: count its bytes (consume only), or prepare and decode every record. */
type Handle = (values: Array<Buffer | null | undefined>, topics: string[]) => Promise<void>;

/** Fetches batches until job.total records were read, handing each batch's values and topics to `handle`. */
async function readAll(
  job: ConsumerJob,
  handle: Handle,
  fetch: () => Promise<ReadonlyArray<{ value: Buffer | null | undefined; topic: string }>>,
): Promise<{ records: number; batches: number }> {
  let records = 0;
  let batches = 0;
  while (records < job.total) {
    const msgs = await fetch();
    if (msgs.length === 0) continue;
    await handle(
      msgs.map((m) => m.value),
      msgs.map((m) => m.topic),
    );
    records += msgs.length;
    batches++;
  }
  return { records, batches };
}

function handler(job: ConsumerJob, codec: AvroCodec, seen: { bytes: number }): Handle {
  if (!job.decode) {
    return async (values) => {
      for (const v of values) seen.bytes += v?.length ?? 0;
    };
  }
  return async (values, topics) => {
    await codec.prepare(values);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      const d = codec.decode(job.topics[topics[i]!]!, v);
      if (!d.ok) throw new Error(`record not decoded: ${d.reason}`);
      seen.bytes += v?.length ?? 0;
    }
  };
}

/** node-rdkafka as the runner uses it: its consumer settings, subscribe + rebalance callback, consume(batch) in a loop. */
async function readWithRdkafka(job: ConsumerJob, handle: Handle): Promise<Read> {
  let start: Mark | null = null;
  let self: Kafka.KafkaConsumer | null = null;
  const consumer = new Kafka.KafkaConsumer(
    {
      'group.id': job.groupId,
      'metadata.broker.list': job.brokers,
      'client.id': `${job.groupId}-rdkafka`,
      ...CONSUMER_SETTINGS,
      ...job.rdkafkaConfig,
      rebalance_cb: (err: Kafka.LibrdKafkaError, assignment: Kafka.TopicPartition[]) => {
        if (err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) {
          start ??= mark();
          // As the runner does for a partition without a checkpoint: from the beginning (OFFSET_BEGINNING).
          self!.assign(assignment.map((tp) => ({ topic: tp.topic, partition: tp.partition, offset: -2 })));
        } else self!.unassign();
      },
    },
    { 'auto.offset.reset': 'earliest' },
  );
  self = consumer;
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
  consumer.setDefaultConsumeTimeout(100);
  consumer.subscribe(Object.keys(job.topics));
  const { records, batches } = await readAll(
    job,
    handle,
    () => new Promise<Kafka.Message[]>((resolve, reject) => consumer.consume(job.batch, (err, m) => (err ? reject(err) : resolve(m)))),
  );
  const s = start as Mark | null;
  if (!s) throw new Error('records read without an assignment');
  const end = mark();
  await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  return { start: s, end, records, batches };
}

/** A message of @platformatic/kafka with its default (Buffer) deserializers. */
type PlatformaticRecord = PlatformaticMessage<Buffer, Buffer, Buffer, Buffer>;

/**
 * Up to `max` messages the stream holds, waiting up to `waitMs` for some when it holds none (as
 * node-rdkafka's consume(n) with its 100 ms timeout). The stream is read in paused mode through
 * `read()`; a 'readable' listener stays attached for the whole read, since without one the
 * stream's flowing state returns to null and @platformatic/kafka stops fetching.
 */
function batchReader(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>): (max: number, waitMs: number) => Promise<PlatformaticRecord[]> {
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  const rethrow = () => {
    if (failure) throw failure;
  };
  stream.on('readable', () => wake?.());
  stream.on('error', (err) => {
    failure = err;
    wake?.();
  });
  const drain = (max: number) => {
    const out: PlatformaticRecord[] = [];
    let m: PlatformaticRecord | null;
    while (out.length < max && (m = stream.read() as PlatformaticRecord | null) !== null) out.push(m);
    return out;
  };
  return async (max, waitMs) => {
    rethrow();
    const now = drain(max);
    if (now.length > 0) return now;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wake = null;
        resolve();
      }, waitMs);
      wake = () => {
        clearTimeout(timer);
        wake = null;
        resolve();
      };
    });
    rethrow();
    return drain(max);
  };
}

/**
 * @platformatic/kafka's consumer: a group member (subscribe by `consume`, manual commits), its
 * message stream from the earliest offsets, read in batches. Fetch sizes as librdkafka's defaults
 * under the runner's settings: fetch.wait.max.ms 50, fetch.min.bytes 1, fetch.max.bytes 50 MiB,
 * max.partition.fetch.bytes 1 MiB; the stream buffers up to one batch of messages.
 */
async function readWithPlatformatic(job: ConsumerJob, handle: Handle): Promise<Read> {
  let start: Mark | null = null;
  const consumer = new Consumer({
    groupId: job.groupId,
    clientId: `${job.groupId}-platformatic`,
    bootstrapBrokers: job.brokers.split(','),
    autocommit: false,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    maxWaitTime: 50,
    minBytes: 1,
    maxBytes: 50 * 1024 * 1024,
    maxBytesPerPartition: 1024 * 1024,
    highWaterMark: job.batch,
  });
  consumer.on('consumer:group:join', () => {
    start ??= mark();
  });
  const stream = await consumer.consume({ topics: Object.keys(job.topics), mode: 'earliest', autocommit: false });
  const next = batchReader(stream);
  const { records, batches } = await readAll(job, handle, () => next(job.batch, 100));
  const s = start as Mark | null;
  if (!s) throw new Error('records read without a group join');
  const end = mark();
  await stream.close();
  await consumer.close(true);
  return { start: s, end, records, batches };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]!) as ConsumerJob;
  const codec = await AvroCodec.connect(job.registryUrl, job.topicPrefix);
  const seen = { bytes: 0 };
  const handle = handler(job, codec, seen);
  const read = job.client === 'node-rdkafka' ? readWithRdkafka : readWithPlatformatic;
  const r = await read(job, handle);
  const cpu = r.end.cpu;
  const result: ConsumerResult = {
    records: r.records,
    seconds: (r.end.at - r.start.at) / 1000,
    cpuSeconds: (cpu.user - r.start.cpu.user + cpu.system - r.start.cpu.system) / 1e6,
    mainThreadCpuSeconds: r.end.main - r.start.main,
    peakRssMb: peakRssMb(),
    valueBytes: seen.bytes,
    batches: r.batches,
    loadAvg: loadavg()[0]!,
  };
  process.send!({ type: 'done', result });
}

main().catch((err: Error) => {
  process.send!({ type: 'error', message: err.stack ?? err.message });
  process.exitCode = 1;
});
