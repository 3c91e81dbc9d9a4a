/** What every route module receives: clients and settings, injected by the plugin's caller. */
import type { Redis } from 'ioredis';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import type { ClickHouse } from '../sinks/clickhouse/client.js';
import type { AlertsService } from './alerts-service.js';
import type { ApiKeyStore } from '../producers/ingest/api-keys.js';
import type { ApiRole } from './api-keys.js';
import type { RedisRateLimiter } from './rate-limit.js';
import type { AnalystLimits, AnalystSql } from '../sinks/clickhouse/analyst.js';
import type { KeyAdmin } from './routes/keys.js';

export interface ApiOptions {
  logger: Logger;
  metrics: Metrics;
  redis: Redis;
  ch: ClickHouse;
  keys: ApiKeyStore;
  /** Key management for /v1/admin/keys (default: `keys` when it is a RedisApiKeyStore). */
  keyAdmin?: KeyAdmin | null;
  limiter: RedisRateLimiter;
  /** Requests per key per limiter window, by role. */
  rateLimits?: Partial<Record<ApiRole, number>>;
  /** Cost of one /v1/sql call in rate-limit units (default 10). */
  sqlCost?: number;
  alerts?: AlertsService | null;
  /** Named readiness checks for /readyz (each rejects when its dependency is down). */
  readiness?: Record<string, () => Promise<void>>;
  /**
   * Where analyst SQL runs (POST /v1/sql): a read-only session or user. Default: opened on `ch`
   * with `sqlLimits` when the plugin starts, closed with it.
   */
  analyst?: AnalystSql;
  /** Limits of analyst SQL when the plugin opens `analyst` itself (defaults in analyst.ts). */
  sqlLimits?: AnalystLimits;
  /** ClickHouse server only: the read-only analyst user the plugin's own `analyst` logs in as. */
  analystUser?: { name: string; password: string } | null;
  /** Server-sent events period of the live dashboard stream. */
  liveIntervalMs?: number;
  now?: () => number;
  /** Serve OpenAPI + Swagger UI at /docs (default true). */
  docs?: boolean;
}

export interface ApiContext extends Required<Omit<ApiOptions, 'alerts' | 'rateLimits' | 'sqlLimits' | 'analystUser' | 'keyAdmin'>> {
  alerts: AlertsService | null;
  keyAdmin: KeyAdmin | null;
  rateLimits: Record<ApiRole, number>;
  db: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    apiRole?: ApiRole;
    /** Non-secret id of the key (`key_` + 12 hex digits of its digest). */
    apiKeyId?: string;
  }
  interface FastifyContextConfig {
    /** Role a route needs; routes without it are public. */
    role?: ApiRole;
    /** Rate-limit units a call costs (default 1). */
    cost?: number;
  }
}
