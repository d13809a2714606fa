import type { ClientFrame } from '@switchboard/protocol';
import type { EdgeMetrics } from '../metrics/edge-metrics.ts';
import type { LimitName, Limits } from './limits.ts';
import { RateLimited } from './refusal.ts';
import { level, TokenBuckets, type BucketState } from './token-buckets.ts';

/** A spend named by limit: `cost` tokens from the bucket of `key` (a user, a device, an address). */
export interface LimitSpend {
  limit: LimitName;
  key: string;
  cost: number;
}

/** A quota's answer over RPC (an error cannot cross it with its fields). */
export type SpendResult = { ok: true } | { ok: false; limit: LimitName | 'queue'; retryAfterMs: number; message: string };

/** The part of a Durable Object's storage the quotas use. */
export interface QuotaStorage {
  get<T>(key: string): Promise<T | undefined>;
  put<T>(entries: Record<string, T>): Promise<void>;
  list<T>(options: { prefix: string; startAfter?: string; limit: number }): Promise<Map<string, T>>;
  delete(keys: string[]): Promise<number>;
}

/** Stored buckets looked at per sweep. */
const SWEEP_BATCH = 200;

/**
 * Limits with periods this long or longer are quotas: their buckets are also written to the
 * gateway's storage, so a hibernation or an eviction of the gateway does not hand out a fresh
 * hour. Shorter ones live in memory only (a hibernated gateway was idle, so it starts them full).
 */
const PERSIST_FROM_MS = 10 * 60_000;

/**
 * The rate limits a gateway keeps: every bucket of the users and devices whose sockets it holds,
 * and the quotas the Worker asks it to keep for them (conversations created, members added, key
 * and push registrations, list pages) and for client addresses hashed to it (connects per IP).
 *
 * Why here: a user's devices in one placement share this gateway (placement.ts), so per-user
 * frame limits are exact and cost a map lookup, with no call and no write; HTTP quotas of the
 * same user land on the same object with one RPC, decided before anything else is called or
 * written. Their buckets are durable enough: quotas of an hour or more are written to this
 * object's storage when spent (a refusal writes nothing), the rest are memory. A user connecting
 * through several placements has one set of buckets in each (production only; each placement is
 * one gateway per user).
 */
export class GatewayLimits {
  private readonly buckets = new TokenBuckets<LimitName>();
  /** Where the next sweep of stored buckets starts (they are visited a batch at a time, round and round). */
  private sweepAfter = '';

  constructor(
    private readonly limits: Limits,
    private readonly storage: QuotaStorage,
    private readonly counts: EdgeMetrics,
  ) {}

  /**
   * Frames and connects: takes every spend or none, from memory; the refusal, counted here unless
   * `counted` is false (a quota's refusal is counted by the Worker that answers it), or null.
   */
  check(spends: readonly LimitSpend[], now = Date.now(), counted = true): RateLimited | null {
    const refused = this.buckets.take(spends.map((s) => ({ ...s, rate: this.limits[s.limit] })), now);
    if (!refused) return null;
    if (counted) this.counts.inc('switchboard_edge_rate_limited_total', refused.limit);
    return RateLimited.of(refused.limit, this.limits[refused.limit], refused.retryAfterMs);
  }

  /**
   * Deletes stored buckets that have refilled (a full bucket and none are the same), a batch at a
   * time, so the quotas of users long gone do not stay in storage. Called with the gateway's
   * periodic alarm.
   */
  async sweep(now = Date.now()): Promise<number> {
    const batch = await this.storage.list<BucketState>({ prefix: STORAGE_PREFIX, ...(this.sweepAfter ? { startAfter: this.sweepAfter } : {}), limit: SWEEP_BATCH });
    const full: string[] = [];
    for (const [k, state] of batch) {
      const limit = k.slice(STORAGE_PREFIX.length, k.indexOf(':', STORAGE_PREFIX.length)) as LimitName;
      const rate = this.limits[limit];
      if (!rate || level(state, rate, now) >= rate.burst) full.push(k);
    }
    this.sweepAfter = batch.size < SWEEP_BATCH ? '' : [...batch.keys()].at(-1)!;
    if (full.length > 0) await this.storage.delete(full);
    return full.length;
  }

  /** Empties a bucket (a penalty): its next spend waits for a refill. */
  exhaust(limit: LimitName, key: string, now = Date.now()): void {
    this.buckets.set(limit, key, { tokens: 0, at: now });
  }

  /** A quota spend from the Worker: quota buckets are read from storage when not in memory, and written when spent. */
  async spend(spends: readonly LimitSpend[]): Promise<SpendResult> {
    const durable = spends.filter((s) => this.limits[s.limit].periodMs >= PERSIST_FROM_MS);
    for (const s of durable) {
      if (this.buckets.has(s.limit, s.key)) continue;
      const stored = await this.storage.get<BucketState>(storageKey(s));
      if (stored && !this.buckets.has(s.limit, s.key)) this.buckets.set(s.limit, s.key, stored);
    }
    const refused = this.check(spends, Date.now(), false);
    if (refused) return { ok: false, limit: refused.limit, retryAfterMs: refused.retryAfterMs, message: refused.message };
    if (durable.length > 0) {
      const entries: Record<string, BucketState> = {};
      for (const s of durable) entries[storageKey(s)] = this.buckets.get(s.limit, s.key)!;
      await this.storage.put(entries);
    }
    return { ok: true };
  }
}

/** What a frame costs before it is handled (`send` is counted by the send path; `ping`, `ack`, `sync`, `read`, `typing` by none). */
export function frameSpends(frame: ClientFrame, user: string, deviceKey: string): LimitSpend[] {
  switch (frame.t) {
    case 'send':
      return [
        { limit: 'send_device', key: deviceKey, cost: 1 },
        { limit: 'send_user', key: user, cost: 1 },
      ];
    case 'resume':
    case 'history':
      return [{ limit: 'read_cost', key: user, cost: 1 }];
    case 'watch':
    case 'unwatch':
      return [{ limit: 'watch', key: deviceKey, cost: frame.users.length }];
    default:
      return [];
  }
}

const STORAGE_PREFIX = 'limit:';

function storageKey(s: LimitSpend): string {
  return `${STORAGE_PREFIX}${s.limit}:${s.key}`;
}
