import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs; event names are stable snake_case in the `event` field. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { service: 'streampulse', ...base }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A silent logger for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
