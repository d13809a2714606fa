import { shardOf } from '../gateway/placement.ts';
import type { Env } from '../config.ts';

/** Shards of the revocation store (each a Durable Object answering its users' connects and requests, cached 5 s per isolate); a user always lands on the same one (never change it: times would be lost). */
export const REVOCATION_SHARDS = 256;

/**
 * How long an isolate trusts a revocation time it read. A revocation is in force at once in the
 * isolate that made it and on every gateway holding the user's sockets (they close them and
 * refuse old tokens at connect and on refresh); other isolates' HTTP routes may accept an old
 * token this much longer at most.
 */
export const REVOCATION_CACHE_MS = 5000;
const MAX_CACHED = 10_000;

const cache = new Map<string, { before: number; until: number }>();

export function revocationShard(user: string): string {
  return `revocations:${shardOf(user, REVOCATION_SHARDS)}`;
}

function stub(ns: Env['REVOCATIONS'], user: string) {
  return ns.get(ns.idFromName(revocationShard(user)));
}

/** Unix seconds: the user's tokens issued before it are refused (0: none). */
export async function revokedBefore(ns: Env['REVOCATIONS'], user: string, now = Date.now()): Promise<number> {
  const hit = cache.get(user);
  if (hit && hit.until > now) return hit.before;
  const before = await stub(ns, user).revokedBefore(user);
  remember(user, before, now);
  return before;
}

/** Sets the user's revocation time (never moved back) and returns the one in force. */
export async function revoke(ns: Env['REVOCATIONS'], user: string, before: number, now = Date.now()): Promise<number> {
  const inForce = await stub(ns, user).revoke(user, before);
  remember(user, inForce, now);
  return inForce;
}

function remember(user: string, before: number, now: number): void {
  cache.delete(user);
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(user, { before, until: now + REVOCATION_CACHE_MS });
}
