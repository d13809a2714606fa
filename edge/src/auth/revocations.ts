import { shardOf } from '../gateway/placement.ts';
import type { RevocationsRpc } from './revocations-api.ts';

/**
 * The REVOCATIONS binding as this module uses it (a Durable Object namespace of RevocationsDO;
 * structural, so the module and its tests need no Workers types).
 */
export interface RevocationsNamespace<Id = unknown> {
  idFromName(name: string): Id;
  get(id: Id): Pick<RevocationsRpc, 'revokedBefore' | 'revoke' | 'snapshot'>;
}

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

/**
 * A shard's revocations at most this many are cached whole per isolate: one call answers every
 * user of the shard for REVOCATION_CACHE_MS (a reconnect storm of a million users is 256 calls
 * per isolate, not a million). A shard holding more is asked per user.
 */
export const SHARD_SNAPSHOT_MAX = 200;
const shards = new Map<string, { entries: Map<string, number> | null; until: number }>();

export function revocationShard(user: string): string {
  return `revocations:${shardOf(user, REVOCATION_SHARDS)}`;
}

function stub<Id>(ns: RevocationsNamespace<Id>, user: string) {
  return ns.get(ns.idFromName(revocationShard(user)));
}

/** Unix seconds: the user's tokens issued before it are refused (0: none). */
export async function revokedBefore<Id>(ns: RevocationsNamespace<Id>, user: string, now = Date.now()): Promise<number> {
  const hit = cache.get(user);
  if (hit && hit.until > now) return hit.before;
  const shard = revocationShard(user);
  let whole = shards.get(shard);
  if (!whole || whole.until <= now) {
    const snapshot = await stub(ns, user).snapshot(SHARD_SNAPSHOT_MAX);
    whole = { entries: snapshot ? new Map(Object.entries(snapshot)) : null, until: now + REVOCATION_CACHE_MS };
    shards.set(shard, whole);
  }
  if (whole.entries) return whole.entries.get(user) ?? 0;
  const before = await stub(ns, user).revokedBefore(user);
  remember(user, before, now);
  return before;
}

/** Sets the user's revocation time (never moved back) and returns the one in force. */
export async function revoke<Id>(ns: RevocationsNamespace<Id>, user: string, before: number, now = Date.now()): Promise<number> {
  const inForce = await stub(ns, user).revoke(user, before);
  remember(user, inForce, now);
  shards.get(revocationShard(user))?.entries?.set(user, inForce);
  return inForce;
}

/** Forgets every cached answer (tests). */
export function clearRevocationCache(): void {
  cache.clear();
  shards.clear();
}

function remember(user: string, before: number, now: number): void {
  cache.delete(user);
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(user, { before, until: now + REVOCATION_CACHE_MS });
}
