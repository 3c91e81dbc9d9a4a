/**
 * Kafka administration helpers on node-rdkafka: probe a broker, create/delete/list topics,
 * read high watermarks. Every call builds a short-lived client and disconnects it, so nothing
 * here is a singleton and nothing keeps the process alive.
 */
import rdkafka from 'node-rdkafka';
import type { LibrdKafkaError, Metadata, NewTopic } from 'node-rdkafka';
import { allTopicSpecs, dlqTopic, DLQ_PARTITIONS } from '../contracts/topics.js';
import { KafkaError } from './errors.js';

const { AdminClient, Producer, CODES } = rdkafka;

/** A topic to create. `TopicSpec` from contracts/topics.ts fits this shape. */
export interface TopicToCreate {
  topic: string;
  partitions: number;
  /** cleanup.policy=compact when true. */
  compacted?: boolean;
  replicationFactor?: number;
  /** Extra topic configs (string values, Kafka names). */
  config?: Record<string, string>;
}

export interface PartitionWatermark {
  partition: number;
  low: number;
  high: number;
}

export interface AdminOptions {
  clientId?: string;
  /** Per-request timeout. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 15_000;

function baseConf(brokers: string, opts: AdminOptions) {
  return {
    'metadata.broker.list': brokers,
    'client.id': opts.clientId ?? 'streampulse-admin',
    'socket.connection.setup.timeout.ms': Math.max(1000, Math.min(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, 30_000)),
    'reconnect.backoff.max.ms': 1000,
    'log.connection.close': false,
  };
}

function isRetriableCode(code: number | undefined): boolean {
  return (
    code === CODES.ERRORS.ERR__TRANSPORT ||
    code === CODES.ERRORS.ERR__TIMED_OUT ||
    code === CODES.ERRORS.ERR__ALL_BROKERS_DOWN ||
    code === CODES.ERRORS.ERR_REQUEST_TIMED_OUT ||
    code === CODES.ERRORS.ERR_NOT_CONTROLLER ||
    code === CODES.ERRORS.ERR__RESOLVE
  );
}

function kafkaError(what: string, err: unknown): KafkaError {
  const e = err as Partial<LibrdKafkaError>;
  return new KafkaError(`${what}: ${e?.message ?? String(err)}`, isRetriableCode(e?.code), { cause: err });
}

/** Runs `fn` with a connected metadata-capable client (a producer that never produces). */
async function withClient<T>(brokers: string, opts: AdminOptions, fn: (p: InstanceType<typeof Producer>, timeoutMs: number) => Promise<T>): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const producer = new Producer(baseConf(brokers, opts));
  await new Promise<void>((resolve, reject) => {
    producer.connect({ timeout: timeoutMs }, (err) => (err ? reject(kafkaError(`cannot connect to Kafka at ${brokers}`, err)) : resolve()));
  });
  try {
    return await fn(producer, timeoutMs);
  } finally {
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  }
}

/** Cluster metadata (brokers and topics). Throws a retriable KafkaError when no broker answers. */
export async function fetchMetadata(brokers: string, opts: AdminOptions & { topic?: string } = {}): Promise<Metadata> {
  return withClient(
    brokers,
    opts,
    (p, timeoutMs) =>
      new Promise<Metadata>((resolve, reject) => {
        p.getMetadata({ timeout: timeoutMs, ...(opts.topic ? { topic: opts.topic } : { allTopics: true }) }, (err, md) =>
          err ? reject(kafkaError('metadata request failed', err)) : resolve(md),
        );
      }),
  );
}

/** True when a broker at `brokers` answers a metadata request within `timeoutMs`. */
export async function isKafkaReachable(brokers: string, timeoutMs = 3000): Promise<boolean> {
  try {
    const md = await fetchMetadata(brokers, { timeoutMs });
    return md.brokers.length > 0;
  } catch {
    return false;
  }
}

/** Topic names in the cluster; internal topics (`__consumer_offsets`, ...) only when asked. */
export async function listTopics(brokers: string, opts: AdminOptions & { includeInternal?: boolean } = {}): Promise<string[]> {
  const md = await fetchMetadata(brokers, opts);
  return md.topics
    .map((t) => t.name)
    .filter((n) => opts.includeInternal || !n.startsWith('__'))
    .sort();
}

/** Every StreamPulse topic for a prefix: the event topics (catalog compacted) and the DLQ. */
export function streamPulseTopics(prefix: string): TopicToCreate[] {
  return [
    ...allTopicSpecs(prefix).map((s) => ({ topic: s.topic, partitions: s.partitions, compacted: s.compacted })),
    { topic: dlqTopic(prefix), partitions: DLQ_PARTITIONS },
  ];
}

function toNewTopic(spec: TopicToCreate): NewTopic {
  const config: Record<string, string> = { ...(spec.compacted ? { 'cleanup.policy': 'compact' } : {}), ...(spec.config ?? {}) };
  return { topic: spec.topic, num_partitions: spec.partitions, replication_factor: spec.replicationFactor ?? 1, config: config };
}

/**
 * Creates the topics that do not exist yet (an existing topic is fine and left as it is) and
 * waits until the broker's metadata shows every partition with a leader, so producing right
 * after this call does not race topic creation.
 */
export async function ensureTopics(
  brokers: string,
  specs: readonly TopicToCreate[],
  opts: AdminOptions = {},
): Promise<{ created: string[]; existing: string[] }> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const created: string[] = [];
  const existing: string[] = [];
  const admin = AdminClient.create(baseConf(brokers, opts));
  try {
    for (const spec of specs) {
      await new Promise<void>((resolve, reject) => {
        admin.createTopic(toNewTopic(spec), timeoutMs, (err) => {
          if (!err) {
            created.push(spec.topic);
            resolve();
          } else if (err.code === CODES.ERRORS.ERR_TOPIC_ALREADY_EXISTS) {
            existing.push(spec.topic);
            resolve();
          } else reject(kafkaError(`cannot create topic ${spec.topic}`, err));
        });
      });
    }
  } finally {
    admin.disconnect();
  }
  await waitForTopics(brokers, specs, { ...opts, timeoutMs });
  return { created, existing };
}

/** Polls metadata until each topic exists with all its partitions led. */
export async function waitForTopics(brokers: string, specs: readonly Pick<TopicToCreate, 'topic' | 'partitions'>[], opts: AdminOptions = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  await withClient(brokers, opts, async (p) => {
    for (;;) {
      const md = await new Promise<Metadata>(
        (resolve, reject) =>
          void p.getMetadata({ allTopics: true, timeout: 5000 }, (err, m) => (err ? reject(kafkaError('metadata request failed', err)) : resolve(m))),
      );
      const missing = specs.filter((s) => {
        const t = md.topics.find((x) => x.name === s.topic);
        return !t || t.partitions.length < s.partitions || t.partitions.some((pm) => pm.leader < 0);
      });
      if (missing.length === 0) return;
      if (Date.now() > deadline) throw new KafkaError(`topics not ready after creation: ${missing.map((s) => s.topic).join(', ')}`, true);
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

/** Deletes topics; a topic that does not exist is not an error. */
export async function deleteTopics(brokers: string, topics: readonly string[], opts: AdminOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const admin = AdminClient.create(baseConf(brokers, opts));
  try {
    for (const topic of topics) {
      await new Promise<void>((resolve, reject) => {
        admin.deleteTopic(topic, timeoutMs, (err) => {
          if (!err || err.code === CODES.ERRORS.ERR_UNKNOWN_TOPIC_OR_PART) resolve();
          else reject(kafkaError(`cannot delete topic ${topic}`, err));
        });
      });
    }
  } finally {
    admin.disconnect();
  }
}

/** Low and high watermark of every partition of `topic`, sorted by partition. */
export async function topicHighWatermarks(brokers: string, topic: string, opts: AdminOptions = {}): Promise<PartitionWatermark[]> {
  return withClient(brokers, opts, async (p, timeoutMs) => {
    const md = await new Promise<Metadata>(
      (resolve, reject) =>
        void p.getMetadata({ topic, timeout: timeoutMs }, (err, m) => (err ? reject(kafkaError('metadata request failed', err)) : resolve(m))),
    );
    const t = md.topics.find((x) => x.name === topic);
    if (!t || t.partitions.length === 0) throw new KafkaError(`topic ${topic} does not exist`, false);
    const out: PartitionWatermark[] = [];
    for (const pm of [...t.partitions].sort((a, b) => a.id - b.id)) {
      const wm = await new Promise<{ lowOffset: number; highOffset: number }>(
        (resolve, reject) =>
          void p.queryWatermarkOffsets(topic, pm.id, timeoutMs, (err, o) => (err ? reject(kafkaError(`watermarks of ${topic}[${pm.id}]`, err)) : resolve(o))),
      );
      out.push({ partition: pm.id, low: wm.lowOffset, high: wm.highOffset });
    }
    return out;
  });
}

/** A connection kept open to read partitions' low and high watermarks repeatedly (the pipeline monitor). */
export interface OffsetReader {
  watermarks(topic: string, partition: number): Promise<{ low: number; high: number }>;
  close(): Promise<void>;
}

/** Opens an OffsetReader (a metadata-capable producer that never produces, as `withClient`). */
export async function openOffsetReader(brokers: string, opts: AdminOptions = {}): Promise<OffsetReader> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const producer = new Producer(baseConf(brokers, opts));
  await new Promise<void>((resolve, reject) => {
    producer.connect({ timeout: timeoutMs }, (err) => (err ? reject(kafkaError(`cannot connect to Kafka at ${brokers}`, err)) : resolve()));
  });
  return {
    watermarks: (topic, partition) =>
      new Promise(
        (resolve, reject) =>
          void producer.queryWatermarkOffsets(topic, partition, timeoutMs, (err, o) =>
            err ? reject(kafkaError(`watermarks of ${topic}[${partition}]`, err)) : resolve({ low: o.lowOffset, high: o.highOffset }),
          ),
      ),
    close: () => new Promise<void>((resolve) => producer.disconnect(() => resolve())),
  };
}
