/**
 * The one place that reads the environment. Entry points call `loadConfig(process.env)` once and
 * pass the result down; nothing else touches `process.env`. Every missing or bad key is named in
 * one ConfigError, so a misconfigured deployment fails at start with the whole list.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ConfigError } from './errors.js';

const Int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => Type.Integer({ default: def, minimum: min, maximum: max });
const Str = (def: string) => Type.String({ default: def });

export const ROLES = ['registry', 'clickhouse', 'ingest', 'raw-store', 'business', 'qoe', 'churn', 'safety', 'production', 'alerts', 'api'] as const;
export type Role = (typeof ROLES)[number];

export const EnvSchema = Type.Object({
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  /** Comma-separated roles this process runs; `all` runs every role. */
  ROLES: Str('all'),
  DATA_DIR: Str('.data'),

  KAFKA_BROKERS: Str('127.0.0.1:9092'),
  /** Prefix of every topic name: `sp.` gives `sp.playback`, `sp.dlq`. Tests use a unique prefix. */
  TOPIC_PREFIX: Type.String({ default: 'sp.', pattern: '^[a-zA-Z0-9._-]*$' }),
  KAFKA_CLIENT_ID: Str('streampulse'),
  /** Prefix of consumer group ids (`<prefix><processor>`). */
  GROUP_PREFIX: Type.String({ default: 'sp-', pattern: '^[a-zA-Z0-9._-]*$' }),

  SCHEMA_REGISTRY_URL: Str('http://127.0.0.1:8081'),
  REGISTRY_HOST: Str('127.0.0.1'),
  REGISTRY_PORT: Int(8081, 0, 65535),
  /** Topic the built-in registry persists schemas in (compacted). */
  REGISTRY_TOPIC: Str('_schemas'),

  /** When set, ClickHouse is a server reached over HTTP; otherwise embedded chdb in CHDB_PATH. */
  CLICKHOUSE_URL: Str(''),
  CLICKHOUSE_USER: Str('default'),
  CLICKHOUSE_PASSWORD: Str(''),
  CLICKHOUSE_DATABASE: Type.String({ default: 'streampulse', pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' }),
  /**
   * With CLICKHOUSE_URL: the cluster (remote_servers name) the migrations create every table on,
   * replicated and sharded behind Distributed tables (sinks/clickhouse/cluster-ddl.ts, docs/deploy.md).
   */
  CLICKHOUSE_CLUSTER: Type.String({ default: '', pattern: '^([a-zA-Z_][a-zA-Z0-9_]*)?$' }),
  /** With CLICKHOUSE_URL: a request (insert or query) not answered within this fails and is retried. */
  CLICKHOUSE_REQUEST_TIMEOUT_MS: Int(60_000, 1_000, 3_600_000),
  CHDB_PATH: Str(''),
  /** Port of the `clickhouse` role: serves the embedded ClickHouse over HTTP to other processes. */
  CLICKHOUSE_HTTP_PORT: Int(8123, 0, 65535),
  /** Where the `clickhouse` role listens, whatever HTTP_HOST is. Not loopback: passwords required. */
  CLICKHOUSE_HTTP_HOST: Str('127.0.0.1'),
  /**
   * The read-only analyst ClickHouse user: on the `clickhouse` role's port, and on a ClickHouse
   * server (a user with a readonly settings profile) for POST /v1/sql. Enabled when the password is set.
   */
  CLICKHOUSE_ANALYST_USER: Type.String({ default: 'analyst', pattern: '^[a-zA-Z_][a-zA-Z0-9_.-]*$' }),
  CLICKHOUSE_ANALYST_PASSWORD: Str(''),
  /** Limits of every analyst query (POST /v1/sql and the analyst user of the `clickhouse` role). */
  SQL_MAX_EXECUTION_SECONDS: Int(10, 1, 3600),
  SQL_MAX_MEMORY_BYTES: Int(1024 ** 3, 16 * 1024 ** 2),
  SQL_MAX_RESULT_ROWS: Int(100_000, 1),
  SQL_MAX_RESULT_BYTES: Int(64 * 1024 ** 2, 1024),

  REDIS_URL: Str('redis://127.0.0.1:6379'),
  REDIS_PREFIX: Str('sp:'),

  HTTP_HOST: Str('127.0.0.1'),
  HTTP_PORT: Int(8080, 0, 65535),
  METRICS_PORT: Int(9464, 0, 65535),
  /** Port of the local Prometheus of `npm run stack:up -- --prometheus` (loopback). */
  PROMETHEUS_PORT: Int(9090, 0, 65535),
  /** Comma-separated `key:role` pairs seeded at start (ingest, viewer, analyst, admin). */
  API_KEYS: Str(''),
  INGEST_MAX_BODY_BYTES: Int(5 * 1024 * 1024, 1024),
  INGEST_MAX_EVENTS: Int(10_000, 1),
  /** Deepest JSON nesting of an ingest body or webhook, checked on the bytes before parsing (400 too_deep). */
  INGEST_MAX_JSON_DEPTH: Int(32, 2, 10_000),
  /** Longest JSON string (keys too) in an ingest body, in bytes as sent, checked before parsing (400 string_too_long). */
  INGEST_MAX_STRING_BYTES: Int(64 * 1024, 64),
  /** Requests per second per API key on /v1/events/{kind} (429 + Retry-After beyond; counted in Redis). */
  INGEST_RATE_LIMIT_REQUESTS_PER_S: Int(100, 1),
  /**
   * Events per second per API key on /v1/events/{kind} (429 + Retry-After beyond; counted in Redis).
   * Default 50,000, the HTTP ingest target of one gateway process: at 20,000 `npm run bench:ingest`
   * itself was refused (one key, 4 clients, about 22,000 events/s on a quiet 2-core machine).
   */
  INGEST_RATE_LIMIT_EVENTS_PER_S: Int(50_000, 1),
  /**
   * Browser origins allowed to call /v1/events/{kind} from a page (CORS), comma-separated, e.g.
   * `https://player.example.com,https://www.example.com`; `*` allows any; empty: no CORS headers.
   */
  INGEST_CORS_ORIGINS: Str(''),
  /** Longest wait for Kafka to acknowledge an ingest request's events before answering 503. */
  INGEST_ACK_TIMEOUT_MS: Int(10_000, 100),
  /** How often the API key cache in Redis is checked for lost contents (and restored). */
  API_KEY_CHECK_INTERVAL_MS: Int(2_000, 100),
  /**
   * How far ahead of the reference clock an event time may be: the producer's clock at the edge
   * (ingest, SDK `send`), the record's Kafka timestamp in the processors (contracts/bounds.ts).
   */
  MAX_FUTURE_SKEW_MS: Int(300_000, 0, 86_400_000),
  JIRA_WEBHOOK_SECRET: Str(''),
  /** Accept unsigned Jira webhooks when JIRA_WEBHOOK_SECRET is empty (never in production; warned at start). */
  JIRA_WEBHOOK_INSECURE: Type.Boolean({ default: false }),
  /** JSON object mapping our names (severity, show_name, cost_impact_usd, delay_days) to Jira custom field ids. */
  JIRA_FIELD_MAP: Str(
    '{"severity":"customfield_10040","show_name":"customfield_10041","cost_impact_usd":"customfield_10042","delay_days":"customfield_10043"}',
  ),

  BATCH_MAX_ROWS: Int(40_000, 1),
  BATCH_MAX_BYTES: Int(16 * 1024 * 1024, 1024),
  BATCH_MAX_MS: Int(1_000, 10),
  CHECKPOINT_INTERVAL_MS: Int(2_000, 10),
  /**
   * A consumer whose newest record reached Kafka at most this long ago counts as caught up and
   * writes every changed open-window row at every commit cycle (RunnerOptions.caughtUpRecordAgeMs);
   * 0: by the offsets alone. Further behind, open rows wait for the next minute of watermark time.
   */
  CAUGHT_UP_RECORD_AGE_MS: Int(10_000, 0),
  /**
   * While a processor is live (caught up), an open view's qoe_views row is written at most once per
   * this long, and an open account-day's churn_account_daily row at most once per
   * CHURN_DAY_ROW_INTERVAL_MS (processing time; 0: at every commit cycle). Final rows are never held back.
   */
  VIEW_ROW_INTERVAL_MS: Int(30_000, 0),
  CHURN_DAY_ROW_INTERVAL_MS: Int(60_000, 0),
  /** An idle commit cycle serializes checkpoints for about this long at most (RunnerOptions.idleCheckpointBudgetMs). */
  IDLE_CHECKPOINT_BUDGET_MS: Int(50, 1),
  /** How often the pipeline monitor reads checkpoints and Kafka offsets (lag, stalls); 0: off. */
  PIPELINE_MONITOR_INTERVAL_MS: Int(15_000, 0),
  /** ClickHouse inserts of one commit cycle running at once (one per table). */
  SINK_CONCURRENCY: Int(2, 1),
  /** A partition with no events for this long (processing time) stops holding windows open. */
  IDLE_PARTITION_MS: Int(30_000, 100),
  /** How often the churn role looks for days closed in event time and scores them. */
  CHURN_SCORING_INTERVAL_MS: Int(60_000, 100),
  /** How often the qoe and business roles roll up buckets closed in event time (migration 017, docs/api.md). */
  ROLLUP_INTERVAL_MS: Int(15_000, 100),
  /** Row TTLs per table family in days, 0 = keep forever (sinks/clickhouse/retention.ts, docs/processing.md). */
  RETENTION_RAW_DAYS: Int(0, 0),
  RETENTION_MINUTE_DAYS: Int(0, 0),
  RETENTION_HOUR_DAYS: Int(0, 0),
  /** Windows close at end + grace; later events go to late_events. */
  WINDOW_GRACE_MS: Int(60_000, 0),
  /** Write rows of open windows at every commit cycle (is_final = 0); false: only closed windows. */
  EMIT_WINDOW_UPDATES: Type.Boolean({ default: true }),
  /**
   * Processors of one process share one consumer (each record fetched and decoded once; group
   * `<GROUP_PREFIX><a>+<b>+…`); false: one consumer group per processor (`<GROUP_PREFIX><name>`).
   * Checkpoints are per processor either way, so switching resumes where each processor stood.
   */
  FUSE_PROCESSORS: Type.Boolean({ default: true }),
  /** Watermark = max event time seen − allowed lateness (per partition). */
  ALLOWED_LATENESS_MS: Int(5_000, 0),
  /**
   * Allowed lateness past the grace, per event kind (issue 18; processors/core/late-firing.ts): an
   * event whose window closed less than this ago is still counted and the closed window's row
   * rewritten with a higher version (a late firing); later ones go to late_events. Defaults per
   * source, the reasons in docs/processing.md. Jira is never late (latest `updated` wins).
   */
  LATENESS_PLAYBACK_MS: Int(30_000, 0, 7 * 86_400_000),
  LATENESS_GIFTS_MS: Int(30_000, 0, 7 * 86_400_000),
  LATENESS_PAYMENTS_MS: Int(15 * 60_000, 0, 7 * 86_400_000),
  LATENESS_MODERATION_MS: Int(6 * 3_600_000, 0, 7 * 86_400_000),

  ALERT_RULES_FILE: Str('alerts/rules.default.yaml'),
  ALERT_WEBHOOK_SECRET: Str(''),
});

export type Env = Static<typeof EnvSchema>;

export interface Config {
  env: Env;
  roles: Set<Role>;
  kafkaBrokers: string;
  topicPrefix: string;
  clickhouse: { url: string | null; user: string; password: string; database: string; chdbPath: string; requestTimeoutMs: number; cluster: string | null };
  /** The read-only analyst user (null when CLICKHOUSE_ANALYST_PASSWORD is empty: analyst login off). */
  clickhouseAnalyst: { name: string; password: string } | null;
  /** Limits of analyst SQL (names as in sinks/clickhouse/analyst.ts). */
  sqlLimits: { maxExecutionSeconds: number; maxMemoryBytes: number; maxResultRows: number; maxResultBytes: number };
  jiraFieldMap: Record<string, string>;
  /** INGEST_CORS_ORIGINS as a list (`*`: any origin); empty: CORS off. */
  ingestCorsOrigins: string[];
}

const INTEGER_KEYS = Object.entries(EnvSchema.properties)
  .filter(([, s]) => (s as { type?: string }).type === 'integer')
  .map(([k]) => k);

const BOOLEAN_KEYS = Object.entries(EnvSchema.properties)
  .filter(([, s]) => (s as { type?: string }).type === 'boolean')
  .map(([k]) => k);

/** Reads the environment once, validates every StreamPulse key and names each bad one. */
export function loadConfig(source: Record<string, string | undefined>): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const v = source[key];
    if (v === undefined || v === '') continue;
    if (INTEGER_KEYS.includes(key) && /^-?\d+$/.test(v.trim())) raw[key] = Number(v.trim());
    else if (BOOLEAN_KEYS.includes(key) && /^(true|false|1|0)$/i.test(v.trim())) raw[key] = /^(true|1)$/i.test(v.trim());
    else raw[key] = v;
  }
  const withDefaults = Value.Default(EnvSchema, raw) as Record<string, unknown>;
  const problems: string[] = [];
  for (const e of Value.Errors(EnvSchema, withDefaults)) {
    const key = e.path.replace(/^\//, '');
    problems.push(`${key}: ${e.message} (got ${JSON.stringify(source[key])})`);
  }
  const env = withDefaults as Env;
  const roles = new Set<Role>();
  if (problems.length === 0) {
    for (const r of env.ROLES.split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      if (r === 'all') ROLES.forEach((x) => roles.add(x));
      else if ((ROLES as readonly string[]).includes(r)) roles.add(r as Role);
      else problems.push(`ROLES: unknown role "${r}" (known: all, ${ROLES.join(', ')})`);
    }
  }
  let jiraFieldMap: Record<string, string> = {};
  try {
    jiraFieldMap = JSON.parse(env.JIRA_FIELD_MAP ?? '{}') as Record<string, string>;
    if (typeof jiraFieldMap !== 'object' || jiraFieldMap === null || Array.isArray(jiraFieldMap)) throw new Error('not an object');
  } catch (err) {
    problems.push(`JIRA_FIELD_MAP: must be a JSON object of field ids (${(err as Error).message})`);
  }
  const ingestCorsOrigins = (env.INGEST_CORS_ORIGINS ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const o of ingestCorsOrigins) {
    // An origin is scheme://host[:port], exactly as a browser sends it in the Origin header.
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o))
      problems.push(`INGEST_CORS_ORIGINS: "${o}" is not an origin such as https://player.example.com (scheme and host, no path), nor *`);
  }
  if (env.CLICKHOUSE_CLUSTER && !env.CLICKHOUSE_URL) {
    problems.push(`CLICKHOUSE_CLUSTER: needs CLICKHOUSE_URL (a server of the cluster "${env.CLICKHOUSE_CLUSTER}"); embedded ClickHouse is one server`);
  }
  if (problems.length === 0 && env.CLICKHOUSE_ANALYST_PASSWORD && env.CLICKHOUSE_ANALYST_USER === env.CLICKHOUSE_USER) {
    problems.push(`CLICKHOUSE_ANALYST_USER: must differ from CLICKHOUSE_USER (both "${env.CLICKHOUSE_USER}"): the analyst user is the read-only one`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    env,
    roles,
    kafkaBrokers: env.KAFKA_BROKERS,
    topicPrefix: env.TOPIC_PREFIX,
    clickhouse: {
      url: env.CLICKHOUSE_URL || null,
      user: env.CLICKHOUSE_USER,
      password: env.CLICKHOUSE_PASSWORD,
      database: env.CLICKHOUSE_DATABASE,
      chdbPath: env.CHDB_PATH || `${env.DATA_DIR}/chdb`,
      requestTimeoutMs: env.CLICKHOUSE_REQUEST_TIMEOUT_MS,
      cluster: env.CLICKHOUSE_CLUSTER || null,
    },
    clickhouseAnalyst: env.CLICKHOUSE_ANALYST_PASSWORD ? { name: env.CLICKHOUSE_ANALYST_USER, password: env.CLICKHOUSE_ANALYST_PASSWORD } : null,
    sqlLimits: {
      maxExecutionSeconds: env.SQL_MAX_EXECUTION_SECONDS,
      maxMemoryBytes: env.SQL_MAX_MEMORY_BYTES,
      maxResultRows: env.SQL_MAX_RESULT_ROWS,
      maxResultBytes: env.SQL_MAX_RESULT_BYTES,
    },
    jiraFieldMap,
    ingestCorsOrigins,
  };
}
