/**
 * The typed producer every StreamPulse writer uses: validate at the edge, Avro-encode in the
 * Confluent wire format, key by the topic's key field, and produce through one idempotent
 * node-rdkafka producer (acks=all, lz4). Calls resolve only when Kafka has acknowledged every
 * message they produced; a failed delivery rejects with a typed KafkaError.
 *
 * Delivery reports are counted per call, not per message: each call owns a `DeliveryBatch`
 * passed as the opaque of all its messages, and the poll loop's reports count it down.
 */
import rdkafka from 'node-rdkafka';
import type { LibrdKafkaError, DeliveryReport, MessageHeader } from 'node-rdkafka';
import type { TimeOptions } from '../../contracts/bounds.js';
import { dlqTopic, DLQ_HEADERS, topicSpec, type DeadLetter, type EventKind, type RejectClass, type TopicSpec } from '../../contracts/topics.js';
import { jsonLineReader } from '../../contracts/json-line.js';
import { acceptsEvent, validateEvent } from '../../contracts/validate.js';
import type { EventByKind } from '../../contracts/types.generated.js';
import type { AvroCodec } from '../../lib/avro-codec.js';
import { KafkaError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';

const { Producer, CODES } = rdkafka;
type RdProducer = InstanceType<typeof Producer>;

export interface EventProducerOptions {
  brokers: string;
  clientId: string;
  topicPrefix: string;
  codec: AvroCodec;
  logger: Logger;
  metrics?: Metrics;
  /** librdkafka linger.ms, default 5. */
  lingerMs?: number;
  /** The producer's clock: received_time, and the reference of the event-time bound. */
  now?: () => number;
  /** How far ahead of `now()` an event time may be (MAX_FUTURE_SKEW_MS; contracts/bounds.ts default 5 min). */
  maxFutureSkewMs?: number;
}

export interface SendResult {
  accepted: number;
  rejected: number;
  errors: Array<{ index: number; reason: string }>;
}

export type { DeadLetter };

/** A send in progress (EventProducer.openSend). */
export interface OpenSend {
  /** Validates, encodes and produces one event (a dead letter when invalid), reported at `index`. A promise only when the queue is full. */
  add(input: unknown, index: number): Promise<void> | void;
  /**
   * An event given as the bytes of one JSON object, `raw[start, stop)` (an NDJSON line): checked
   * and encoded straight from the bytes (contracts/json-line.ts) and produced when the line reader
   * accepts it: true, or a promise when the queue is full. False when it does not (it says no to
   * anything unusual, valid or not): then the caller parses the line and calls `add` (or `reject`),
   * which gives the answer and the reason. Nothing is counted or produced for a false.
   */
  addJson(raw: Buffer, start: number, stop: number): Promise<void> | boolean;
  /** Dead-letters bytes refused before they became an event (e.g. a line that is not JSON), reported at `index` as `<errorClass>: <reason>`. */
  reject(index: number, value: Buffer, errorClass: string, reason: string): Promise<void> | void;
  /** Nothing more comes: resolves with the answer when Kafka has acknowledged every message; rejects with a KafkaError when one is not. */
  finish(): Promise<SendResult>;
  /** The caller gave up (an error while adding): releases the send without waiting for it. */
  abandon(): void;
}

/** How often the poll loop serves delivery reports. */
const POLL_INTERVAL_MS = 5;
/** How long librdkafka keeps retrying a message before its delivery report fails. */
const MESSAGE_TIMEOUT_MS = 30_000;
/** Largest message we hand to librdkafka (its message.max.bytes default is 1,000,000). */
export const MAX_MESSAGE_BYTES = 1_000_000;
/** Dead letters larger than this keep only their first bytes (and say so in the message). */
export const MAX_DEAD_LETTER_VALUE_BYTES = 900_000;
const QUEUE_FULL_BACKOFF_MS = 2;
const CONNECT_TIMEOUT_MS = 15_000;
/** While librdkafka reports every broker down, a metadata request probes for their return this often. */
const BROKER_PROBE_INTERVAL_MS = 1_000;
/** Dead-letter header messages are cut to this many characters (a reason may quote the input). */
export const MAX_DEAD_LETTER_MESSAGE_CHARS = 2_000;

/**
 * Whether the producer can reach a broker, from librdkafka's own signals: `ERR__ALL_BROKERS_DOWN`
 * marks it down, a delivered message or an answered metadata probe marks it up again. Lets the
 * HTTP edge answer 503 at once instead of queueing events that would wait for a broker.
 */
class BrokerHealth {
  downSince: number | null = null;
  private probe: NodeJS.Timeout | null = null;

  constructor(private readonly now: () => number) {}

  down(producer: RdProducer): void {
    this.downSince ??= this.now();
    if (this.probe) return;
    this.probe = setInterval(() => {
      producer.getMetadata({ timeout: BROKER_PROBE_INTERVAL_MS }, (err) => {
        if (!err) this.up();
      });
    }, BROKER_PROBE_INTERVAL_MS);
    this.probe.unref();
  }

  up(): void {
    this.downSince = null;
    if (this.probe) clearInterval(this.probe);
    this.probe = null;
  }
}

/** Counts the delivery reports of one call down to zero, then settles its promise once. */
class DeliveryBatch {
  delivered = 0;
  private pending = 1; // held open by the call until every message is handed over (see seal)
  private failure: LibrdKafkaError | null = null;
  private failedCount = 0;
  readonly done: Promise<void>;
  private resolve!: () => void;
  private reject!: (err: unknown) => void;

  constructor(
    readonly topic: string,
    private readonly onSettled: (batch: DeliveryBatch, failed: number) => void,
  ) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // A batch whose failure nobody awaits (a call that threw while producing) must not crash the process.
    this.done.catch(() => undefined);
  }

  added(): void {
    this.pending++;
  }

  report(err: LibrdKafkaError | null): void {
    if (err) {
      this.failedCount++;
      this.failure ??= err;
    } else this.delivered++;
    this.countDown();
  }

  /** The call has handed over every message: release the hold taken in the constructor. */
  seal(): void {
    this.countDown();
  }

  private countDown(): void {
    if (--this.pending > 0) return;
    this.onSettled(this, this.failedCount);
    if (this.failure) {
      const err = this.failure;
      this.reject(new KafkaError(`${this.failedCount} message(s) to ${this.topic} were not delivered: ${err.message}`, isRetriable(err.code), { cause: err }));
    } else this.resolve();
  }
}

function isRetriable(code: number | undefined): boolean {
  const E = CODES.ERRORS;
  return (
    code === E.ERR__MSG_TIMED_OUT ||
    code === E.ERR__TRANSPORT ||
    code === E.ERR__ALL_BROKERS_DOWN ||
    code === E.ERR__TIMED_OUT ||
    code === E.ERR_REQUEST_TIMED_OUT ||
    code === E.ERR_NOT_LEADER_FOR_PARTITION ||
    code === E.ERR_LEADER_NOT_AVAILABLE ||
    code === E.ERR_NOT_ENOUGH_REPLICAS ||
    code === E.ERR__QUEUE_FULL
  );
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Dead-letter headers (contracts/topics.ts DLQ_HEADERS) for one rejected record. */
export function deadLetterHeaders(d: Omit<DeadLetter, 'key' | 'value'>, timestampMs: number): MessageHeader[] {
  const headers: MessageHeader[] = [
    { [DLQ_HEADERS.topic]: d.originalTopic },
    { [DLQ_HEADERS.partition]: String(d.partition) },
    { [DLQ_HEADERS.offset]: String(d.offset) },
    { [DLQ_HEADERS.errorClass]: d.errorClass },
    {
      [DLQ_HEADERS.errorMessage]:
        d.message.length > MAX_DEAD_LETTER_MESSAGE_CHARS
          ? `${d.message.slice(0, MAX_DEAD_LETTER_MESSAGE_CHARS)}… (message cut from ${d.message.length} characters)`
          : d.message,
    },
    { [DLQ_HEADERS.stage]: d.stage },
    { [DLQ_HEADERS.timestamp]: String(timestampMs) },
  ];
  if (d.kind !== undefined) headers.push({ [DLQ_HEADERS.kind]: d.kind });
  return headers;
}

/** Keeps a dead letter under the broker's size limit; the message says when it was cut. */
function boundedDeadLetterValue(value: Buffer | null, message: string): { value: Buffer | null; message: string } {
  if (!value || value.length <= MAX_DEAD_LETTER_VALUE_BYTES) return { value, message };
  return {
    value: value.subarray(0, MAX_DEAD_LETTER_VALUE_BYTES),
    message: `${message} (value truncated to its first ${MAX_DEAD_LETTER_VALUE_BYTES} of ${value.length} bytes)`,
  };
}

function keyOf(event: unknown, keyField: string): string | null {
  const k = (event as Record<string, unknown> | null)?.[keyField];
  return k === undefined || k === null ? null : String(k);
}

/**
 * Encodes `event` with received_time set to `receivedTime` when it is 0 or absent, without
 * changing the caller's object. When the field exists (the usual `received_time: 0`), it is set
 * for the synchronous encode and restored: copying each event instead changes its shape and
 * makes the Avro writer about 1.5x slower.
 */
function encodeStamped(codec: AvroCodec, kind: EventKind, event: { received_time?: number }, receivedTime: number): Buffer {
  if (event.received_time) return codec.encode(kind, event);
  if (!('received_time' in event)) return codec.encode(kind, { ...event, received_time: receivedTime });
  const original = event.received_time;
  event.received_time = receivedTime;
  try {
    return codec.encode(kind, event);
  } finally {
    event.received_time = original;
  }
}

function originalJson(event: unknown): Buffer {
  return Buffer.from(JSON.stringify(event) ?? 'null', 'utf8');
}

/** What an EventSend needs of its producer. */
interface SendContext {
  codec: AvroCodec;
  metrics?: Metrics;
  maxFutureSkewMs?: number;
  produce(topic: string, value: Buffer | null, key: string | null, headers: MessageHeader[] | undefined, batch: DeliveryBatch): Promise<void> | void;
  prepare(kind: EventKind, input: unknown, receivedTime: number): Prepared;
}

type Prepared = { ok: true; value: Buffer } | { ok: false; errorClass: RejectClass; reason: string };

/**
 * One send in progress (EventProducer.openSend). A class, not an object of closures made per
 * send: the gateway calls `add`/`addJson` once per line, and closures new on every request were
 * new call targets to V8 each time (its optimized loop was thrown away at every request).
 */
class EventSend implements OpenSend {
  private readonly result: SendResult = { accepted: 0, rejected: 0, errors: [] };
  private readonly toTopic: DeliveryBatch;
  private readonly toDlq: DeliveryBatch;
  private readonly rejectedByClass = new Map<string, number>();
  private readonly time: TimeOptions;
  private sealed = false;

  constructor(
    private readonly ctx: SendContext,
    private readonly kind: EventKind,
    private readonly spec: TopicSpec,
    private readonly receivedTime: number,
    newBatch: (topic: string) => DeliveryBatch,
    private readonly dlq: string,
  ) {
    this.toTopic = newBatch(spec.topic);
    this.toDlq = newBatch(dlq);
    this.time = { referenceMs: receivedTime, maxFutureSkewMs: ctx.maxFutureSkewMs };
  }

  add(input: unknown, index: number): Promise<void> | void {
    const { kind, ctx, spec } = this;
    // The compiled yes (contracts/compiled.ts) and an encode straight from the event; anything
    // else takes the generic path below, which says why it is refused.
    const view = acceptsEvent(kind, input, this.time) ? ctx.codec.encodeAccepted(kind, input, this.receivedTime) : null;
    if (view !== null && view.length <= MAX_MESSAGE_BYTES) {
      this.result.accepted++;
      return ctx.produce(spec.topic, view, keyOf(input, spec.keyField), undefined, this.toTopic);
    }
    const prepared = ctx.prepare(kind, input, this.receivedTime);
    if (prepared.ok) {
      this.result.accepted++;
      return ctx.produce(spec.topic, prepared.value, keyOf(input, spec.keyField), undefined, this.toTopic);
    }
    return this.deadLetter(index, originalJson(input), keyOf(input, spec.keyField), prepared.errorClass, prepared.reason);
  }

  addJson(raw: Buffer, start: number, stop: number): Promise<void> | boolean {
    const line = jsonLineReader(this.kind);
    const view = this.ctx.codec.encodeLine(line, raw, start, stop, this.time, this.receivedTime);
    if (view === null || view.length > MAX_MESSAGE_BYTES) return false;
    this.result.accepted++;
    const queued = this.ctx.produce(this.spec.topic, view, line.key, undefined, this.toTopic);
    return queued === undefined ? true : queued;
  }

  reject(index: number, value: Buffer, errorClass: string, reason: string): Promise<void> | void {
    return this.deadLetter(index, value, null, errorClass, reason);
  }

  async finish(): Promise<SendResult> {
    this.abandon();
    await Promise.all([this.toTopic.done, this.toDlq.done]);
    for (const [errorClass, count] of this.rejectedByClass) this.ctx.metrics?.deadLetters.inc({ processor: 'ingest', error_class: errorClass }, count);
    return this.result;
  }

  abandon(): void {
    if (this.sealed) return;
    this.sealed = true;
    this.toTopic.seal();
    this.toDlq.seal();
  }

  private deadLetter(index: number, value: Buffer | null, key: string | null, errorClass: string, reason: string): Promise<void> | void {
    this.result.rejected++;
    this.result.errors.push({ index, reason: `${errorClass}: ${reason}` });
    this.rejectedByClass.set(errorClass, (this.rejectedByClass.get(errorClass) ?? 0) + 1);
    const dead = boundedDeadLetterValue(value, reason);
    const headers = deadLetterHeaders(
      { originalTopic: this.spec.topic, partition: -1, offset: -1, errorClass, message: dead.message, stage: 'ingest', kind: this.kind },
      this.receivedTime,
    );
    return this.ctx.produce(this.dlq, dead.value, key, headers, this.toDlq);
  }
}

export class EventProducer {
  private closed = false;
  private readonly dlq: string;
  private readonly now: () => number;
  /** What every EventSend of this producer uses, built once (so each send's calls go to the same functions). */
  private readonly sendContext: SendContext;

  private constructor(
    private readonly producer: RdProducer,
    private readonly opts: EventProducerOptions,
    private readonly health: BrokerHealth,
  ) {
    this.dlq = dlqTopic(opts.topicPrefix);
    this.now = opts.now ?? Date.now;
    this.sendContext = {
      codec: opts.codec,
      metrics: opts.metrics,
      maxFutureSkewMs: opts.maxFutureSkewMs,
      produce: (topic, value, key, headers, batch) => this.produceTracked(topic, null, value, key, headers, batch),
      prepare: (kind, input, receivedTime) => this.prepare(kind, input, receivedTime),
    };
  }

  /** Since when (ms) librdkafka has reported every broker down; null while a broker is reachable. */
  get brokersDownSince(): number | null {
    return this.health.downSince;
  }

  /**
   * Marks the brokers unreachable (a caller waited longer than it could for acknowledgements);
   * a metadata probe every second marks them reachable again, as a delivered message does.
   */
  markBrokersDown(): void {
    this.health.down(this.producer);
  }

  /** The prefix of every topic this producer writes (`<prefix><kind>`, `<prefix>dlq`). */
  get topicPrefix(): string {
    return this.opts.topicPrefix;
  }

  static async connect(opts: EventProducerOptions): Promise<EventProducer> {
    const producer = new Producer(
      {
        'metadata.broker.list': opts.brokers,
        'client.id': opts.clientId,
        'enable.idempotence': true,
        'compression.codec': 'lz4',
        'linger.ms': opts.lingerMs ?? 5,
        'queue.buffering.max.messages': 200_000,
        'batch.num.messages': 10_000,
        'socket.connection.setup.timeout.ms': CONNECT_TIMEOUT_MS,
        // Reconnect within a second of a broker coming back (librdkafka's default backs off to 10 s).
        'reconnect.backoff.max.ms': 1_000,
        'log.connection.close': false,
        dr_cb: true,
      },
      {
        acks: -1, // all in-sync replicas; idempotence requires it
        'message.timeout.ms': MESSAGE_TIMEOUT_MS,
        // murmur2 like the Java and kafkajs clients, so every producer puts a key on the same partition.
        partitioner: 'murmur2_random',
      },
    );
    const { logger } = opts;
    const health = new BrokerHealth(opts.now ?? Date.now);
    producer.on('delivery-report', (err, report: DeliveryReport) => {
      if (!err && health.downSince !== null) health.up();
      (report.opaque as DeliveryBatch | undefined)?.report(err ?? null);
    });
    producer.on('event.error', (err: LibrdKafkaError) => {
      if (err.code === CODES.ERRORS.ERR__ALL_BROKERS_DOWN) health.down(producer);
      logger.error({ event: 'producer_error', code: err.code, err: err.message, fatal: err.isFatal ?? false }, 'kafka producer error');
    });
    await new Promise<void>((resolve, reject) => {
      producer.connect({ timeout: CONNECT_TIMEOUT_MS }, (err) => {
        if (err) reject(new KafkaError(`cannot connect producer to Kafka at ${opts.brokers}: ${err.message}`, true, { cause: err }));
        else resolve();
      });
    });
    producer.setPollInterval(POLL_INTERVAL_MS);
    logger.info({ event: 'producer_connected', brokers: opts.brokers, client_id: opts.clientId }, 'kafka producer connected');
    return new EventProducer(producer, opts, health);
  }

  /**
   * Validates each event (contracts/validate.ts), sets received_time when 0 or absent,
   * Avro-encodes it, keys it by the topic's key field and produces it to `<prefix><kind>`.
   * Invalid events go to the DLQ with their JSON and the reason. Resolves when every message
   * (events and dead letters) is acknowledged; rejects with a KafkaError when one is not.
   */
  async send<K extends EventKind>(kind: K, events: readonly unknown[]): Promise<SendResult> {
    const open = this.openSend(kind);
    try {
      for (let index = 0; index < events.length; index++) {
        const queued = open.add(events[index], index);
        if (queued) await queued;
      }
    } catch (err) {
      open.abandon();
      throw err;
    }
    return open.finish();
  }

  /**
   * A send whose events are handed over one at a time, each validated, encoded and produced at
   * once (what `send` does for an array): a caller that parses as it goes (the HTTP gateway)
   * keeps no array of parsed events alive while Kafka acknowledges. `add` returns a promise only
   * when librdkafka's queue is full: await it before the next `add`. Then `finish()` (answer when
   * every message is acknowledged), or `abandon()` when the caller gives up on an error.
   */
  openSend(kind: EventKind): OpenSend {
    this.assertOpen();
    const receivedTime = this.now();
    return new EventSend(this.sendContext, kind, topicSpec(this.opts.topicPrefix, kind), receivedTime, this.newBatch, this.dlq);
  }

  /** Pre-validated fast path (simulator, bench): encodes and produces, no validation. */
  async sendValid<K extends EventKind>(kind: K, events: readonly EventByKind[K][]): Promise<void> {
    this.assertOpen();
    const spec = topicSpec(this.opts.topicPrefix, kind);
    const { codec } = this.opts;
    const receivedTime = this.now();
    const batch = this.newBatch(spec.topic);
    try {
      for (const event of events) {
        const value = codec.encodeView(kind, event, receivedTime) ?? encodeStamped(codec, kind, event, receivedTime);
        const queued = this.produceTracked(spec.topic, null, value, keyOf(event, spec.keyField), undefined, batch);
        if (queued) await queued;
      }
    } finally {
      batch.seal();
    }
    await batch.done;
  }

  /** Produces raw bytes (dead letters from any stage use this); resolves on delivery. */
  async produceRaw(
    topic: string,
    key: Buffer | string | null,
    value: Buffer | null,
    headers?: Array<Record<string, Buffer | string>>,
    partition?: number,
  ): Promise<void> {
    this.assertOpen();
    const batch = this.newBatch(topic);
    try {
      await this.produceTracked(topic, partition ?? null, value, key, headers, batch);
    } finally {
      batch.seal();
    }
    await batch.done;
  }

  /** A dead letter for any stage: original bytes and headers naming topic, partition, offset, class, message. */
  async sendDeadLetter(d: DeadLetter): Promise<void> {
    const dead = boundedDeadLetterValue(d.value, d.message);
    await this.produceRaw(this.dlq, d.key, dead.value, deadLetterHeaders({ ...d, message: dead.message }, this.now()));
    this.opts.metrics?.deadLetters.inc({ processor: d.stage, error_class: d.errorClass });
  }

  async flush(timeoutMs = 10_000): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve, reject) => {
      this.producer.flush(timeoutMs, (err) =>
        err ? reject(new KafkaError(`flush did not finish in ${timeoutMs} ms: ${err.message}`, true, { cause: err })) : resolve(),
      );
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } catch (err) {
      this.opts.logger.warn({ event: 'producer_flush_failed', err: (err as Error).message }, 'producer closed with undelivered messages');
    }
    this.closed = true;
    this.health.up();
    await new Promise<void>((resolve) => this.producer.disconnect(5_000, () => resolve()));
    this.opts.logger.info({ event: 'producer_closed' }, 'kafka producer closed');
  }

  private assertOpen(): void {
    if (this.closed) throw new KafkaError('producer is closed', false);
  }

  private readonly newBatch = (topic: string): DeliveryBatch => {
    const metrics = this.opts.metrics;
    return new DeliveryBatch(topic, (batch, failed) => {
      if (!metrics) return;
      if (batch.delivered > 0) metrics.producedMessages.inc({ topic }, batch.delivered);
      if (failed > 0) metrics.produceErrors.inc({ topic }, failed);
    });
  };

  /** Validates, stamps and encodes one event, or says why it is rejected. */
  private prepare(kind: EventKind, input: unknown, receivedTime: number): Prepared {
    const checked = validateEvent(kind, input, { referenceMs: receivedTime, maxFutureSkewMs: this.opts.maxFutureSkewMs });
    if (!checked.ok) return checked;
    const event = checked.event as { received_time?: number };
    if (!event.received_time) event.received_time = receivedTime; // validateEvent returned a copy
    const value = this.opts.codec.encode(kind, event);
    if (value.length > MAX_MESSAGE_BYTES) {
      return { ok: false, errorClass: 'oversize', reason: `encoded event is ${value.length} bytes; the limit is ${MAX_MESSAGE_BYTES}` };
    }
    return { ok: true, value };
  }

  /**
   * Hands one message to librdkafka with `batch` as its opaque. Synchronous while the local
   * queue has room (the returned promise is already settled); when the queue is full it polls,
   * yields so delivery reports can drain it, and tries again.
   */
  private produceTracked(
    topic: string,
    partition: number | null,
    value: Buffer | null,
    key: Buffer | string | null,
    headers: MessageHeader[] | undefined,
    batch: DeliveryBatch,
  ): Promise<void> | void {
    if (this.tryProduce(topic, partition, value, key, headers, batch)) return;
    return this.produceWhenQueueHasRoom(topic, partition, value, key, headers, batch);
  }

  private async produceWhenQueueHasRoom(
    topic: string,
    partition: number | null,
    view: Buffer | null,
    key: Buffer | string | null,
    headers: MessageHeader[] | undefined,
    batch: DeliveryBatch,
  ): Promise<void> {
    this.opts.logger.debug({ event: 'producer_queue_full', topic }, 'producer queue full; waiting for deliveries');
    // The value may be the codec's scratch (encodeView), which other calls overwrite while this one waits.
    const value = view && Buffer.from(view);
    do {
      this.producer.poll();
      await sleep(QUEUE_FULL_BACKOFF_MS);
    } while (!this.tryProduce(topic, partition, value, key, headers, batch));
  }

  /** True when queued, false when the local queue is full; throws a KafkaError otherwise. */
  private tryProduce(
    topic: string,
    partition: number | null,
    value: Buffer | null,
    key: Buffer | string | null,
    headers: MessageHeader[] | undefined,
    batch: DeliveryBatch,
  ): boolean {
    try {
      this.producer.produce(topic, partition, value, key, null, batch, headers);
    } catch (err) {
      const code = (err as LibrdKafkaError).code;
      if (code === CODES.ERRORS.ERR__QUEUE_FULL) return false;
      throw new KafkaError(`cannot produce to ${topic}: ${(err as Error).message}`, isRetriable(code), { cause: err });
    }
    batch.added();
    return true;
  }
}
