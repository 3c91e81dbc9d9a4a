/**
 * Where the schema registry persists: an append-only log of (key, value) records, compacted by
 * key. `KafkaRegistryLog` is a one-partition compacted topic read with node-rdkafka (assign, no
 * consumer group, no commits) and written with acks=all; `MemoryRegistryLog` is the same
 * contract in memory for unit tests.
 */
import rdkafka from 'node-rdkafka';
import type { KafkaConsumer as KafkaConsumerT, Producer as ProducerT, Message } from 'node-rdkafka';
import { randomUUID } from 'node:crypto';
import { RegistryError } from '../../lib/errors.js';
import { ensureTopics } from '../../lib/kafka-admin.js';
import type { Logger } from '../../lib/logger.js';

const { KafkaConsumer, Producer } = rdkafka;

export interface LogRecord {
  key: string | null;
  /** null is a tombstone. */
  value: string | null;
}

export interface RegistryLog {
  /** Delivers every record written since the previous call (all of them on the first call). */
  catchUp(apply: (r: LogRecord) => void): Promise<void>;
  /** Resolves once the record is durable (acknowledged by the log). */
  append(r: LogRecord): Promise<void>;
  close(): Promise<void>;
}

/** In-memory log. Pass another log's `records` to simulate a second registry on the same topic. */
export class MemoryRegistryLog implements RegistryLog {
  private position = 0;

  constructor(readonly records: LogRecord[] = []) {}

  async catchUp(apply: (r: LogRecord) => void): Promise<void> {
    while (this.position < this.records.length) apply(this.records[this.position++]!);
  }

  async append(r: LogRecord): Promise<void> {
    this.records.push(r);
  }

  async close(): Promise<void> {}
}

export interface KafkaRegistryLogOptions {
  brokers: string;
  topic: string;
  clientId?: string;
  logger: Logger;
  /** Timeout of each Kafka operation (default 30 s). */
  timeoutMs?: number;
}

export class KafkaRegistryLog implements RegistryLog {
  private constructor(
    private readonly opts: KafkaRegistryLogOptions,
    private readonly consumer: KafkaConsumerT,
    private readonly producer: ProducerT,
    /** Next offset to read. */
    private nextOffset: number,
  ) {}

  /** Creates the compacted topic if needed and connects a reader and a writer. */
  static async open(opts: KafkaRegistryLogOptions): Promise<KafkaRegistryLog> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    await ensureTopics(opts.brokers, [{ topic: opts.topic, partitions: 1, compacted: true, config: { 'min.compaction.lag.ms': '0' } }], { timeoutMs });
    const clientId = opts.clientId ?? 'streampulse-registry';
    const consumer = new KafkaConsumer(
      {
        'metadata.broker.list': opts.brokers,
        'client.id': clientId,
        // librdkafka wants a group id; we only assign() and never commit, so no group forms.
        'group.id': `${clientId}-reader-${randomUUID()}`,
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        'enable.partition.eof': true,
        'fetch.wait.max.ms': 50,
      },
      { 'auto.offset.reset': 'earliest' },
    );
    const producer = new Producer(
      {
        'metadata.broker.list': opts.brokers,
        'client.id': clientId,
        'enable.idempotence': true,
        dr_cb: true,
        'linger.ms': 0,
      },
      { 'request.required.acks': -1, 'message.timeout.ms': timeoutMs },
    );
    await Promise.all([
      new Promise<void>((res, rej) =>
        consumer.connect({ timeout: timeoutMs }, (err) =>
          err ? rej(new RegistryError(`registry log reader cannot connect: ${err.message}`, undefined, true, { cause: err })) : res(),
        ),
      ),
      new Promise<void>((res, rej) =>
        producer.connect({ timeout: timeoutMs }, (err) =>
          err ? rej(new RegistryError(`registry log writer cannot connect: ${err.message}`, undefined, true, { cause: err })) : res(),
        ),
      ),
    ]);
    producer.setPollInterval(20);
    consumer.assign([{ topic: opts.topic, partition: 0, offset: 0 }]);
    return new KafkaRegistryLog(opts, consumer, producer, 0);
  }

  private highWatermark(): Promise<number> {
    return new Promise(
      (res, rej) =>
        void this.consumer.queryWatermarkOffsets(this.opts.topic, 0, this.opts.timeoutMs ?? 30_000, (err, o) =>
          err ? rej(new RegistryError(`cannot read end offset of ${this.opts.topic}: ${err.message}`, undefined, true, { cause: err })) : res(o.highOffset),
        ),
    );
  }

  private consumeBatch(): Promise<Message[]> {
    return new Promise((res, rej) =>
      this.consumer.consume(500, (err, msgs) =>
        err ? rej(new RegistryError(`cannot read ${this.opts.topic}: ${err.message}`, undefined, true, { cause: err })) : res(msgs),
      ),
    );
  }

  async catchUp(apply: (r: LogRecord) => void): Promise<void> {
    const high = await this.highWatermark();
    const deadline = Date.now() + (this.opts.timeoutMs ?? 30_000);
    this.consumer.setDefaultConsumeTimeout(200);
    while (this.nextOffset < high) {
      // Compaction leaves gaps in offsets, so progress is the offset of what we read, and the
      // consumer's position once the partition end (EOF) is reached.
      const msgs = await this.consumeBatch();
      for (const m of msgs) {
        if (m.offset < this.nextOffset) continue;
        apply({ key: m.key === null || m.key === undefined ? null : m.key.toString(), value: m.value === null ? null : m.value.toString() });
        this.nextOffset = m.offset + 1;
      }
      if (msgs.length === 0) {
        const pos = this.consumer.position([{ topic: this.opts.topic, partition: 0 }])[0];
        if (pos && typeof pos.offset === 'number' && pos.offset >= high) this.nextOffset = Math.max(this.nextOffset, pos.offset);
      }
      if (this.nextOffset < high && Date.now() > deadline)
        throw new RegistryError(`timed out reading ${this.opts.topic} up to offset ${high} (at ${this.nextOffset})`, undefined, true);
    }
  }

  append(r: LogRecord): Promise<void> {
    const opaque = Symbol('registry-append');
    return new Promise<void>((resolve, reject) => {
      const onReport = (err: { message: string } | null, report: { opaque?: unknown }) => {
        if (report?.opaque !== opaque) return;
        this.producer.off('delivery-report', onReport);
        if (err) reject(new RegistryError(`schema record not acknowledged by Kafka: ${err.message}`, undefined, true, { cause: err }));
        else resolve();
      };
      this.producer.on('delivery-report', onReport);
      try {
        this.producer.produce(
          this.opts.topic,
          0,
          r.value === null ? null : Buffer.from(r.value),
          r.key === null ? null : Buffer.from(r.key),
          Date.now(),
          opaque,
        );
      } catch (err) {
        this.producer.off('delivery-report', onReport);
        reject(new RegistryError(`cannot write schema record: ${(err as Error).message}`, undefined, true, { cause: err }));
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all([
      new Promise<void>((res) => this.producer.flush(5000, () => this.producer.disconnect(() => res()))),
      new Promise<void>((res) => this.consumer.disconnect(() => res())),
    ]);
  }
}
