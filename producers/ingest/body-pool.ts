/**
 * Request bodies read into reused buffers instead of a new one per request.
 *
 * Fastify's `parseAs: 'buffer'` concatenates the socket's chunks into a new Buffer per request
 * (1.2 MB for 2,000 events). Such a Buffer lives outside the V8 heap, but V8 counts it as
 * external memory, and a process that makes little garbage of its own (the gateway reads NDJSON
 * lines straight into Avro) reaches V8's external-memory limit long before its young generation
 * fills: every ~64 MB of bodies started a full mark of the heap (`--trace-gc` of the gateway:
 * a mark-compact about every second, the V8 worker threads 3.8-4.6 CPU-s per million events
 * against the SDK path's 1). The chunks Node reads from the socket are still new each time;
 * the concatenation is not.
 *
 * A buffer goes back to the pool only when nothing reads it any more: `Lease` counts the holders
 * (the request until its answer is sent, and a send still walking the body's lines), and the
 * last `release` returns it. A lease never released (a socket torn down before the answer) just
 * leaves its buffer to the garbage collector, as before.
 */

/** Buffers are allocated in steps of this many bytes, so one buffer serves bodies of nearby sizes. */
const ALLOCATION_STEP = 256 * 1024;

export class BodyPool {
  private readonly free: Buffer[] = [];
  private freeBytes = 0;

  /**
   * @param maxBufferBytes largest buffer kept (a larger body gets a buffer of its own, dropped after use)
   * @param maxPooledBytes most bytes kept in free buffers in all
   */
  constructor(
    readonly maxBufferBytes: number,
    readonly maxPooledBytes: number,
  ) {}

  /** A buffer of at least `bytes` bytes (its content is whatever it held before). */
  take(bytes: number): Buffer {
    const free = this.free;
    let best = -1;
    for (let i = 0; i < free.length; i++) {
      if (free[i]!.length >= bytes && (best < 0 || free[i]!.length < free[best]!.length)) best = i;
    }
    if (best >= 0) {
      const buf = free[best]!;
      free[best] = free[free.length - 1]!;
      free.pop();
      this.freeBytes -= buf.length;
      return buf;
    }
    const size = Math.max(ALLOCATION_STEP, Math.ceil(bytes / ALLOCATION_STEP) * ALLOCATION_STEP);
    return Buffer.allocUnsafeSlow(size);
  }

  /** Returns a buffer from `take` (nothing may read or write it afterwards). */
  give(buf: Buffer): void {
    if (buf.length > this.maxBufferBytes) return;
    // Full: keep the larger buffers (they serve every body the smaller ones serve).
    while (this.freeBytes + buf.length > this.maxPooledBytes && this.free.length > 0) {
      let smallest = 0;
      for (let i = 1; i < this.free.length; i++) if (this.free[i]!.length < this.free[smallest]!.length) smallest = i;
      if (this.free[smallest]!.length >= buf.length) return;
      this.freeBytes -= this.free[smallest]!.length;
      this.free[smallest] = this.free[this.free.length - 1]!;
      this.free.pop();
    }
    if (this.freeBytes + buf.length > this.maxPooledBytes) return;
    this.free.push(buf);
    this.freeBytes += buf.length;
  }

  /** Bytes held in free buffers (tests). */
  get pooledBytes(): number {
    return this.freeBytes;
  }
}

/** One request's pooled buffer and how many holders still read it. */
export class Lease {
  private holds = 1;

  constructor(
    private readonly pool: BodyPool,
    readonly buf: Buffer,
  ) {}

  /** One more holder (release once each). */
  hold(): void {
    this.holds++;
  }

  /** A holder is done; the last returns the buffer to the pool. */
  release(): void {
    if (--this.holds === 0) this.pool.give(this.buf);
  }
}

/** What `readBody` reads: the request stream (or a preParsing hook's, which may count encoded bytes). */
export interface BodyStream {
  headers?: Record<string, string | string[] | undefined>;
  receivedEncodedLength?: number;
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  on(event: 'end' | 'error', listener: (err?: Error & { statusCode?: number }) => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  resume(): unknown;
}

/** The errors Fastify's own buffer parser gives (so the error handler answers as before). */
export interface BodyErrors {
  tooLarge(): Error;
  invalidContentLength(): Error;
}

/**
 * Reads a request body into a buffer of `pool`, with the checks and errors of Fastify's
 * `parseAs: 'buffer'` parser (content-length over `limit`, more bytes than `limit`, fewer or
 * more bytes than content-length, a stream error as 400): `done(null, body, lease)` with `body`
 * a view of the lease's buffer, or `done(err)`. The caller releases the lease when the body is
 * no longer read.
 */
export function readBody(
  declaredLength: string | undefined,
  payload: BodyStream,
  limit: number,
  pool: BodyPool,
  errors: BodyErrors,
  done: (err: Error | null, body?: Buffer, lease?: Lease) => void,
): void {
  const contentLength = Number(declaredLength);
  if (contentLength > limit) {
    done(errors.tooLarge());
    return;
  }
  const known = Number.isInteger(contentLength) && contentLength >= 0;
  let buf: Buffer | null = pool.take(known ? contentLength : 64 * 1024);
  let received = 0;

  const detach = () => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onEnd);
  };
  const drop = () => {
    if (buf) pool.give(buf);
    buf = null;
  };

  function onData(data: Buffer | string): void {
    if (buf === null) return;
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    const end = received + chunk.length;
    if (end > limit || (payload.receivedEncodedLength ?? 0) > limit) {
      detach();
      drop();
      done(errors.tooLarge());
      return;
    }
    if (end > buf.length) {
      const bigger = pool.take(Math.min(limit, Math.max(end, buf.length * 2)));
      buf.copy(bigger, 0, 0, received);
      pool.give(buf);
      buf = bigger;
    }
    chunk.copy(buf, received);
    received = end;
  }

  function onEnd(err?: Error & { statusCode?: number }): void {
    detach();
    if (err != null) {
      drop();
      if (!(typeof err.statusCode === 'number' && err.statusCode >= 400)) err.statusCode = 400;
      done(err);
      return;
    }
    if (!Number.isNaN(contentLength) && (payload.receivedEncodedLength || received) !== contentLength) {
      drop();
      done(errors.invalidContentLength());
      return;
    }
    const lease = new Lease(pool, buf!);
    buf = null;
    done(null, lease.buf.subarray(0, received), lease);
  }

  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onEnd);
  payload.resume();
}
