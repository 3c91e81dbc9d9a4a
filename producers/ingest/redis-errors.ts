/** Recognises ioredis errors that mean "Redis cannot be reached now" (so the edge answers 503, not 500). */
const UNREACHABLE =
  /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|Stream isn't writeable|enableOfflineQueue|max retries per request|Command timed out|LOADING|connect ETIMEDOUT/i;

export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  return UNREACHABLE.test(err.message) && !('statusCode' in err && typeof (err as { statusCode?: unknown }).statusCode === 'number');
}
