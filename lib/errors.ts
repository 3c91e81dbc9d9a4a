/**
 * Infrastructure errors are typed; data errors are values (dead letters with a reason: see
 * processors/core/processor.ts).
 * Every error has a stable `code` and says whether retrying the same work may succeed.
 * The codes are listed in docs/errors.md; keep the two in step.
 */
export class StreamPulseError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retriable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ConfigError extends StreamPulseError {
  constructor(readonly problems: string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`, false);
  }
}

export class KafkaError extends StreamPulseError {
  constructor(message: string, retriable: boolean, options?: { cause?: unknown }) {
    super('KAFKA', message, retriable, options);
  }
}

export class ClickHouseError extends StreamPulseError {
  constructor(
    message: string,
    readonly serverCode: string | undefined,
    retriable: boolean,
    options?: { cause?: unknown },
  ) {
    super('CLICKHOUSE', message, retriable, options);
  }
}

export class RegistryError extends StreamPulseError {
  constructor(
    message: string,
    readonly status: number | undefined,
    retriable: boolean,
    options?: { cause?: unknown },
  ) {
    super('SCHEMA_REGISTRY', message, retriable, options);
  }
}

export class StateError extends StreamPulseError {
  constructor(message: string, retriable: boolean, options?: { cause?: unknown }) {
    super('STATE_STORE', message, retriable, options);
  }
}

export class StackError extends StreamPulseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STACK', message, false, options);
  }
}

/** Retries `fn` with capped exponential backoff while it throws retriable errors. */
export async function withRetry<T>(
  fn: () => Promise<T>,
  opts: { attempts?: number; baseMs?: number; maxMs?: number; onRetry?: (err: unknown, attempt: number) => void; sleep?: (ms: number) => Promise<void> } = {},
): Promise<T> {
  const attempts = opts.attempts ?? 8;
  const base = opts.baseMs ?? 100;
  const max = opts.maxMs ?? 10_000;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const retriable = err instanceof StreamPulseError ? err.retriable : false;
      if (!retriable || attempt >= attempts) throw err;
      opts.onRetry?.(err, attempt);
      await sleep(Math.min(max, base * 2 ** (attempt - 1)));
    }
  }
}
