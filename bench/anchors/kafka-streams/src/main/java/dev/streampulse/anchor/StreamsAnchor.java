package dev.streampulse.anchor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams anchor of `npm run bench`: the business processor's windowed work in Kafka
 * Streams, over the same topics, run from the start of the topics until every input record's
 * results are committed, reporting events/s, CPU seconds and peak RSS of this JVM.
 *
 * Modes:
 *   windows   1-minute event-time tumbling windows, 60 s grace, updates emitted at commit: per cdn
 *             over playback, per method·plan·og_tier·country·currency over payments (attempts,
 *             succeeded, failed, gross, refunds, chargebacks, top-ups, in minor units of the
 *             currency), per creator·sender over gifts (business's kpi_gifts_1m).
 *   accounts  the same plus a per-account 1-hour activity window (played, paid, gifted, events,
 *             gift value) over playback, payments and gifts: large keyed state (RocksDB).
 *
 * Values are Confluent wire format (magic byte, 4-byte schema id) then Avro binary, decoded with
 * Avro's GenericDatumReader and the schemas of contracts/avro/. Event time is each record's
 * event_time (a TimestampExtractor reading the record's second field). exactly_once_v2.
 *
 * Arguments (--name value): --bootstrap, --topic-prefix, --schemas (contracts/avro),
 * --mode (windows|accounts), --app-id, --state-dir, --threads (1).
 * Prints one line "RESULT {json}" on stdout.
 */
public final class StreamsAnchor {
  private static final long MINUTE_MS = 60_000L;
  private static final long HOUR_MS = 3_600_000L;
  private static final Set<String> CHARGE_KINDS = Set.of("subscription_start", "renewal", "upgrade", "downgrade", "coin_topup");
  private static final String SEP = "\u001f";

  /** Set at the first record the app reads (start-up excluded, as the pipeline's first partition claim). */
  private static volatile long startNanos = 0;
  private static volatile double startCpu = 0;
  private static final AtomicLong aggregated = new AtomicLong();

  public static void main(String[] argv) throws Exception {
    System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
    // Internal topics are created after the first metadata requests: those warnings say nothing.
    System.setProperty("org.slf4j.simpleLogger.log.org.apache.kafka.clients.NetworkClient", "error");
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
    String bootstrap = args.getOrDefault("bootstrap", "127.0.0.1:9092");
    String prefix = args.getOrDefault("topic-prefix", "sp.");
    Path schemas = Path.of(args.getOrDefault("schemas", "contracts/avro"));
    String mode = args.getOrDefault("mode", "windows");
    if (!mode.equals("windows") && !mode.equals("accounts")) throw new IllegalArgumentException("--mode windows|accounts");
    String appId = args.getOrDefault("app-id", prefix + "kstreams-" + mode);
    String stateDir = args.getOrDefault("state-dir", Files.createTempDirectory("kstreams-anchor").toString());
    String threads = args.getOrDefault("threads", "1");

    List<String> sources = List.of(prefix + "playback", prefix + "payments", prefix + "gifts");
    Properties adminProps = new Properties();
    adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    try (Admin admin = Admin.create(adminProps)) {
      Map<TopicPartition, Long> sourceEnd = endOffsets(admin, partitionsOf(admin, sources), OffsetSpec.latest());
      Map<TopicPartition, Long> sourceStart = endOffsets(admin, sourceEnd.keySet(), OffsetSpec.earliest());
      long events = 0;
      for (TopicPartition tp : sourceEnd.keySet()) events += sourceEnd.get(tp) - sourceStart.get(tp);

      Properties p = new Properties();
      p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
      p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
      p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
      p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
      p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
      // Streams' EOS default (10 s) aborts a transaction whose thread stalls that long, which a
      // loaded 2-core machine does (seen: InvalidProducerEpochException, the task migrated).
      p.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), "60000");
      // A transaction per second, as the pipeline's commit cycle (BATCH_MAX_MS 1,000); EOS's default is 100 ms.
      p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "1000");

      // The results topic (Kafka Streams creates only its internal topics); deleted with them at the end.
      admin.createTopics(List.of(new NewTopic(appId + "-out", 3, (short) 1))).all().get();
      KafkaStreams streams = new KafkaStreams(topology(prefix, schemas, mode, appId), p);
      streams.setUncaughtExceptionHandler(e -> {
        e.printStackTrace();
        return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
      });
      streams.start();

      // Done when the group's committed offsets reach the end of every source partition and of
      // every repartition topic partition: every record's results are committed (exactly once).
      Set<TopicPartition> repartition = null;
      long endNanos;
      for (;;) {
        Thread.sleep(50);
        if (streams.state() == KafkaStreams.State.ERROR || streams.state() == KafkaStreams.State.NOT_RUNNING) {
          throw new IllegalStateException("Kafka Streams stopped: " + streams.state());
        }
        if (startNanos == 0) continue;
        Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(appId).partitionsToOffsetAndMetadata().get();
        if (!covers(committed, sourceEnd)) continue;
        if (repartition == null) {
          List<String> internal = admin.listTopics().names().get().stream().filter(t -> t.startsWith(appId + "-") && t.endsWith("-repartition")).collect(Collectors.toList());
          repartition = partitionsOf(admin, internal);
        }
        if (covers(committed, endOffsets(admin, repartition, OffsetSpec.latest()))) {
          endNanos = System.nanoTime();
          break;
        }
      }
      double cpu = cpuSeconds() - startCpu;
      double seconds = (endNanos - startNanos) / 1e9;
      double rssMb = peakRssMb();
      System.out.println(String.format(Locale.ROOT,
          "RESULT {\"mode\":\"%s\",\"events\":%d,\"seconds\":%.3f,\"eventsPerSec\":%.1f,\"cpuSeconds\":%.2f,\"cpuSecondsPerMillion\":%.2f,\"peakRssMb\":%.1f,\"aggregatorCalls\":%d,\"threads\":%s}",
          mode, events, seconds, events / seconds, cpu, cpu / (events / 1e6), rssMb, aggregated.get(), threads));
      System.out.flush();
      streams.close(Duration.ofSeconds(60));
      streams.cleanUp();
      List<String> internal = admin.listTopics().names().get().stream().filter(t -> t.startsWith(appId + "-")).collect(Collectors.toList());
      if (!internal.isEmpty()) admin.deleteTopics(internal).all().get();
      // Kafka Streams does not leave its group on close: the group goes once its session expires.
      try {
        admin.deleteConsumerGroups(List.of(appId)).all().get();
      } catch (java.util.concurrent.ExecutionException e) {
        System.err.println("consumer group " + appId + " not deleted: " + e.getCause().getMessage());
      }
    }
  }

  private static boolean covers(Map<TopicPartition, OffsetAndMetadata> committed, Map<TopicPartition, Long> end) {
    for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
      if (e.getValue() == 0) continue;
      OffsetAndMetadata c = committed.get(e.getKey());
      if (c == null || c.offset() < e.getValue()) return false;
    }
    return true;
  }

  private static Set<TopicPartition> partitionsOf(Admin admin, List<String> topics) throws Exception {
    Set<TopicPartition> out = new HashSet<>();
    if (topics.isEmpty()) return out;
    for (TopicDescription d : admin.describeTopics(topics).allTopicNames().get().values()) {
      d.partitions().forEach(pi -> out.add(new TopicPartition(d.name(), pi.partition())));
    }
    return out;
  }

  private static Map<TopicPartition, Long> endOffsets(Admin admin, Set<TopicPartition> tps, OffsetSpec spec) throws Exception {
    Map<TopicPartition, OffsetSpec> req = new HashMap<>();
    for (TopicPartition tp : tps) req.put(tp, spec);
    Map<TopicPartition, Long> out = new HashMap<>();
    if (req.isEmpty()) return out;
    for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e : admin.listOffsets(req).all().get().entrySet()) {
      out.put(e.getKey(), e.getValue().offset());
    }
    return out;
  }

  // --- topology ---------------------------------------------------------------------------------

  private static org.apache.kafka.streams.Topology topology(String prefix, Path schemas, String mode, String appId) throws IOException {
    StreamsBuilder b = new StreamsBuilder();
    Consumed<byte[], byte[]> consumed = Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()).withTimestampExtractor(new EventTimeExtractor());
    AvroWire playbackReader = new AvroWire(schemas.resolve("playback.avsc"));
    AvroWire paymentsReader = new AvroWire(schemas.resolve("payments.avsc"));
    AvroWire giftsReader = new AvroWire(schemas.resolve("gifts.avsc"));
    KStream<byte[], GenericRecord> playback = b.stream(prefix + "playback", consumed).mapValues(playbackReader::decode);
    KStream<byte[], GenericRecord> payments = b.stream(prefix + "payments", consumed).mapValues(paymentsReader::decode);
    KStream<byte[], GenericRecord> gifts = b.stream(prefix + "gifts", consumed).mapValues(giftsReader::decode);
    TimeWindows minute = TimeWindows.ofSizeAndGrace(Duration.ofMillis(MINUTE_MS), Duration.ofSeconds(60));
    TimeWindows hour = TimeWindows.ofSizeAndGrace(Duration.ofMillis(HOUR_MS), Duration.ofSeconds(60));
    String out = appId + "-out";

    // Per cdn (playback): events, view starts, errors.
    windowed(playback.map((k, v) -> {
      String type = v.get("event_type").toString();
      return KeyValue.pair(v.get("cdn").toString(), new long[] { 1, type.equals("view_start") ? 1 : 0, type.equals("error") ? 1 : 0 });
    }), "cdn_1m", minute, 3, 0, out);

    // Per method·plan·og_tier·country·currency (payments), as business's kpi_payments_1m.
    windowed(payments.map((k, v) -> {
      String kind = v.get("kind").toString();
      boolean ok = v.get("status").toString().equals("succeeded");
      long amount = (Long) v.get("amount_minor");
      long[] a = new long[8];
      if (CHARGE_KINDS.contains(kind)) {
        a[0] = 1;
        if (ok) {
          a[1] = 1;
          a[3] = amount;
          if (kind.equals("coin_topup")) { a[6] = 1; a[7] = amount; }
        } else a[2] = 1;
      } else if (ok && kind.equals("refund")) a[4] = amount;
      else if (ok && kind.equals("chargeback")) a[5] = amount;
      String key = v.get("method") + SEP + v.get("plan") + SEP + v.get("og_tier") + SEP + v.get("country") + SEP + v.get("currency");
      return KeyValue.pair(key, a);
    }), "payments_1m", minute, 8, 0, out);

    // Per creator·sender (gifts), as business's kpi_gifts_1m.
    windowed(gifts.map((k, v) -> {
      long quantity = (Integer) v.get("quantity");
      long coins = quantity * (Integer) v.get("unit_coins");
      return KeyValue.pair(v.get("creator_id") + SEP + v.get("sender_account_id"), new long[] { 1, quantity, coins, coins * (Long) v.get("coin_value_usd_micros") });
    }), "gifts_1m", minute, 4, 0, out);

    if (mode.equals("accounts")) {
      // Per account and hour: played, paid, gifted (flags: bits 0-2 are OR-ed), events, gift value.
      KStream<String, long[]> act = playback.map((k, v) -> KeyValue.pair(v.get("account_id").toString(), new long[] { 1, 0, 0, 1, 0 }))
          .merge(payments.map((k, v) -> KeyValue.pair(v.get("account_id").toString(),
              new long[] { 0, CHARGE_KINDS.contains(v.get("kind").toString()) && v.get("status").toString().equals("succeeded") ? 1 : 0, 0, 1, 0 })))
          .merge(gifts.map((k, v) -> {
            long coins = (long) (Integer) v.get("quantity") * (Integer) v.get("unit_coins");
            return KeyValue.pair(v.get("sender_account_id").toString(), new long[] { 0, 0, 1, 1, coins * (Long) v.get("coin_value_usd_micros") });
          }));
      windowed(act, "account_activity_1h", hour, 5, 0b111, out);
    }
    return b.build();
  }

  /**
   * Groups by the new key (a repartition through Kafka), windows, sums (OR for the flag bits) and
   * emits updated windows through the record cache at each commit: Kafka Streams' default, and the
   * pipeline's (EMIT_WINDOW_UPDATES, open rows written each commit cycle). EmitStrategy
   * onWindowClose was tried: with the cache its close check copies the cache's key set
   * (NamedCache.keyRange), and it ran at a few hundred events/s here.
   */
  private static void windowed(KStream<String, long[]> s, String name, TimeWindows w, int width, int flagMask, String out) {
    Serde<long[]> serde = new LongsSerde(width);
    s.groupByKey(Grouped.with(name, Serdes.String(), serde))
        .windowedBy(w)
        .aggregate(() -> new long[width], (key, v, acc) -> {
          aggregated.incrementAndGet();
          for (int i = 0; i < width; i++) acc[i] = (flagMask & (1 << i)) != 0 ? Math.max(acc[i], v[i]) : acc[i] + v[i];
          return acc;
        }, Materialized.<String, long[], WindowStore<Bytes, byte[]>>as(name).withKeySerde(Serdes.String()).withValueSerde(serde))
        .toStream((wk, v) -> name + SEP + wk.key() + SEP + wk.window().start())
        .to(out, Produced.with(Serdes.String(), serde));
  }

  // --- decoding ---------------------------------------------------------------------------------

  /** Confluent wire format: magic 0, a 4-byte schema id, then Avro binary of the contract's schema. */
  static final class AvroWire {
    private final GenericDatumReader<GenericRecord> reader;
    private BinaryDecoder decoder;

    AvroWire(Path schemaFile) throws IOException {
      this.reader = new GenericDatumReader<>(new Schema.Parser().parse(Files.readString(schemaFile)));
    }

    GenericRecord decode(byte[] value) {
      if (value == null || value.length < 5 || value[0] != 0) throw new IllegalArgumentException("not Confluent wire format");
      decoder = DecoderFactory.get().binaryDecoder(value, 5, value.length - 5, decoder);
      try {
        return reader.read(null, decoder);
      } catch (IOException e) {
        throw new IllegalArgumentException("undecodable Avro record", e);
      }
    }
  }

  /** Event time: the record's event_time, the long after the event_id string at the start of every contract. */
  static final class EventTimeExtractor implements TimestampExtractor {
    @Override
    public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
      if (startNanos == 0) {
        synchronized (StreamsAnchor.class) {
          if (startNanos == 0) {
            startCpu = cpuSeconds();
            startNanos = System.nanoTime();
          }
        }
      }
      byte[] v = (byte[]) record.value();
      int[] pos = { 5 };
      long idLength = readLong(v, pos);
      pos[0] += (int) idLength;
      return readLong(v, pos);
    }

    private static long readLong(byte[] b, int[] pos) {
      long n = 0;
      int shift = 0;
      int i = pos[0];
      for (;;) {
        long x = b[i++] & 0xff;
        n |= (x & 0x7f) << shift;
        if ((x & 0x80) == 0) break;
        shift += 7;
      }
      pos[0] = i;
      return (n >>> 1) ^ -(n & 1);
    }
  }

  /** A fixed-width long[] as 8-byte big-endian longs. */
  static final class LongsSerde implements Serde<long[]> {
    private final int width;

    LongsSerde(int width) {
      this.width = width;
    }

    @Override
    public Serializer<long[]> serializer() {
      return (topic, a) -> {
        if (a == null) return null;
        ByteBuffer buf = ByteBuffer.allocate(8 * width);
        for (long x : a) buf.putLong(x);
        return buf.array();
      };
    }

    @Override
    public Deserializer<long[]> deserializer() {
      return (topic, bytes) -> {
        if (bytes == null) return null;
        ByteBuffer buf = ByteBuffer.wrap(bytes);
        long[] a = new long[width];
        for (int i = 0; i < width; i++) a[i] = buf.getLong();
        return a;
      };
    }
  }

  // --- this JVM's CPU and memory from /proc -----------------------------------------------------

  /** user + system CPU seconds of this process (all threads), from /proc/self/stat (clock ticks of 100 Hz). */
  static double cpuSeconds() {
    try {
      String stat = Files.readString(Path.of("/proc/self/stat"));
      String[] f = stat.substring(stat.lastIndexOf(") ") + 2).split(" ");
      return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0;
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Peak resident set size (VmHWM) of this process in MiB. */
  static double peakRssMb() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
    }
    return Double.NaN;
  }

  private StreamsAnchor() {}
}
