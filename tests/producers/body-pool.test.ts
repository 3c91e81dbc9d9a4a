/**
 * The gateway's reused body buffers (producers/ingest/body-pool.ts): readBody gives the bytes
 * sent, with the limits and errors of Fastify's buffer parser; a buffer goes back to the pool
 * only after its last holder releases it, and the pool keeps within its bounds.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BodyPool, type Lease, readBody } from '../../producers/ingest/body-pool.js';

class TooLarge extends Error {}
class BadLength extends Error {}
const ERRORS = { tooLarge: () => new TooLarge('too large'), invalidContentLength: () => new BadLength('bad length') };

interface Read {
  err: Error | null;
  body?: Buffer;
  lease?: Lease;
}

/** Streams `chunks` into readBody and resolves with what it answered. */
function read(pool: BodyPool, limit: number, contentLength: string | undefined, chunks: Array<Buffer | string>, fail?: Error): Promise<Read> {
  return new Promise((resolve) => {
    const stream = new PassThrough();
    readBody(contentLength, stream, limit, pool, ERRORS, (err, body, lease) => resolve({ err, body, lease }));
    for (const c of chunks) stream.write(c);
    if (fail) stream.emit('error', fail);
    else stream.end();
  });
}

const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

describe('readBody', () => {
  it('gives the bytes sent, whatever the chunks, with and without content-length', async () => {
    const pool = new BodyPool(1 << 20, 4 << 20);
    const data = bytes(300_000, 7);
    const chunks = [data.subarray(0, 1), data.subarray(1, 65_537), data.subarray(65_537, 200_000), data.subarray(200_000)];
    const known = await read(pool, 1 << 20, String(data.length), chunks);
    expect(known.err).toBeNull();
    expect(known.body!.equals(data)).toBe(true);
    // No content-length (chunked): the buffer grows as the bytes come.
    const streamed = await read(pool, 1 << 20, undefined, chunks);
    expect(streamed.err).toBeNull();
    expect(streamed.body!.equals(data)).toBe(true);
    expect((await read(pool, 1 << 20, undefined, ['{"a":', '1}'])).body!.toString()).toBe('{"a":1}');
  });

  it('refuses a declared length over the limit before reading, and a body that grows past it', async () => {
    const pool = new BodyPool(1 << 20, 4 << 20);
    expect((await read(pool, 1000, '1001', [])).err).toBeInstanceOf(TooLarge);
    expect((await read(pool, 1000, undefined, [bytes(600, 1), bytes(401, 2)])).err).toBeInstanceOf(TooLarge);
    expect((await read(pool, 1000, '1000', [bytes(1000, 3)])).body).toHaveLength(1000);
  });

  it('refuses a body shorter or longer than its content-length, and answers a stream error as 400', async () => {
    const pool = new BodyPool(1 << 20, 4 << 20);
    expect((await read(pool, 1000, '10', [bytes(9, 1)])).err).toBeInstanceOf(BadLength);
    expect((await read(pool, 1000, '10', [bytes(11, 1)])).err).toBeInstanceOf(BadLength);
    const failed = await read(pool, 1000, '10', [bytes(5, 1)], new Error('aborted'));
    expect(failed.err?.message).toBe('aborted');
    expect((failed.err as Error & { statusCode?: number }).statusCode).toBe(400);
    // A refused body's buffer went back to the pool: nothing else holds it.
    expect(pool.pooledBytes).toBeGreaterThan(0);
  });
});

describe('BodyPool and Lease', () => {
  it('reuses a buffer only after every holder has released it', async () => {
    const pool = new BodyPool(1 << 20, 4 << 20);
    const first = await read(pool, 1 << 20, '1000', [bytes(1000, 1)]);
    first.lease!.hold(); // a send still reading the body
    first.lease!.release(); // the answer was sent
    const second = await read(pool, 1 << 20, '1000', [bytes(1000, 2)]);
    expect(second.lease!.buf).not.toBe(first.lease!.buf);
    expect(first.body!.equals(bytes(1000, 1))).toBe(true); // untouched while held
    first.lease!.release();
    const third = await read(pool, 1 << 20, '1000', [bytes(1000, 3)]);
    expect(third.lease!.buf).toBe(first.lease!.buf);
    expect(third.body!.equals(bytes(1000, 3))).toBe(true);
  });

  it('keeps no buffer larger than its bound and at most its total of bytes, the larger ones first', () => {
    const pool = new BodyPool(1 << 20, 1 << 20);
    pool.give(Buffer.allocUnsafeSlow((1 << 20) + 1));
    expect(pool.pooledBytes).toBe(0);
    const small = Buffer.allocUnsafeSlow(256 * 1024);
    const large = Buffer.allocUnsafeSlow(768 * 1024);
    pool.give(small);
    pool.give(large);
    expect(pool.pooledBytes).toBe(1 << 20);
    const larger = Buffer.allocUnsafeSlow(1 << 20);
    pool.give(larger); // room only by dropping both: the larger buffer stays
    expect(pool.pooledBytes).toBe(1 << 20);
    expect(pool.take(900_000)).toBe(larger);
    expect(pool.pooledBytes).toBe(0);
    expect(pool.take(10).length).toBeGreaterThanOrEqual(10); // a new one when none is free
  });
});
