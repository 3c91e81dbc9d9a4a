/**
 * HTTP caching of answers over closed data (issue 20). The metrics of an answer whose whole range
 * is before the rollups' sealed point (sinks/clickhouse/rollups.ts: closed in event time on every
 * partition, its rows final) cannot change any more; only its `late_events` count can still grow.
 * It is sent with `Cache-Control: private, max-age=…` and an ETag (a digest of the body), and a
 * request with a matching If-None-Match gets 304 without the body. Answers that reach into open
 * data get `Cache-Control: private, no-cache` and no ETag. `private`: the answer depends on an API
 * key. A replay rebuilds the same rows, so the digest of a closed answer stays valid across it.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { sealedState, type RollupFamily } from '../sinks/clickhouse/rollups.js';
import type { ApiContext } from './context.js';

/** How long a client may reuse a closed answer without asking again: its metrics cannot change, but its `late_events` count still grows when events of the period arrive late (the ETag then changes). */
export const CLOSED_MAX_AGE_S = 300;
/** Sealed points are read at most this often per family (a request is not slowed by one more query). */
const SEALED_TTL_MS = 1000;

const closedReplies = new WeakSet<FastifyReply>();
const cache = new WeakMap<ApiContext, Map<RollupFamily, { at: number; state: Promise<Map<string, number>> }>>();

/** Sealed-until (epoch ms) of one rollup, cached for SEALED_TTL_MS of wall time; 0 when nothing is sealed. */
export async function sealedUntil(ctx: ApiContext, family: RollupFamily, name: string): Promise<number> {
  let byFamily = cache.get(ctx);
  if (!byFamily) cache.set(ctx, (byFamily = new Map<RollupFamily, { at: number; state: Promise<Map<string, number>> }>()));
  const now = Date.now();
  let hit = byFamily.get(family);
  if (!hit || now - hit.at > SEALED_TTL_MS) {
    hit = { at: now, state: sealedState(ctx.ch, family) };
    byFamily.set(family, hit);
    hit.state.catch(() => byFamily.delete(family));
  }
  return (await hit.state).get(name) ?? 0;
}

/** Marks an answer as closed (cacheable, with an ETag) or open. */
export function cacheHeaders(reply: FastifyReply, closed: boolean): void {
  if (closed) {
    reply.header('cache-control', `private, max-age=${CLOSED_MAX_AGE_S}`);
    closedReplies.add(reply);
  } else reply.header('cache-control', 'private, no-cache');
}

/** ETag and 304 for answers marked closed. */
export function httpCacheHook(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply, payload) => {
    if (!closedReplies.has(reply) || reply.statusCode !== 200 || (typeof payload !== 'string' && !Buffer.isBuffer(payload))) return payload;
    const etag = `"${createHash('sha1').update(payload).digest('base64url')}"`;
    reply.header('etag', etag);
    const inm = req.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) {
      reply.code(304);
      return '';
    }
    return payload;
  });
}
