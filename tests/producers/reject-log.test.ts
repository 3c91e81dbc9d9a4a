import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RateLimitedRejectLog } from '../../producers/ingest/reject-log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, sink) };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('RateLimitedRejectLog (injected clock)', () => {
  it('logs the first refusal of a reason at once, counts the rest of the interval, and reports them once', async () => {
    let now = 1_000;
    const { lines, logger } = capture();
    const log = new RateLimitedRejectLog(logger, 10_000, () => now);
    for (let i = 0; i < 1000; i++) log.note('too_deep', { i });
    log.note('unauthorized', { i: 0 });
    await tick();
    expect(lines.map((l) => [l.event, l.reason, l.i])).toEqual([
      ['ingest_rejected', 'too_deep', 0],
      ['ingest_rejected', 'unauthorized', 0],
    ]);
    log.flush();
    await tick();
    expect(lines.slice(2).map((l) => [l.event, l.reason, l.count])).toEqual([['ingest_rejected_summary', 'too_deep', 999]]);
    // Still inside the interval: counted, then reported with the next line once the interval is over.
    now += 5_000;
    log.note('too_deep', { i: 1000 });
    now += 5_000;
    log.note('too_deep', { i: 1001 });
    await tick();
    expect(lines.slice(3).map((l) => [l.event, l.i, l.suppressed_before])).toEqual([['ingest_rejected', 1001, 1]]);
    log.flush();
    await tick();
    expect(lines).toHaveLength(4);
  });
});
