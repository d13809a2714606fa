import type { ClientFrame } from '@switchboard/protocol';
import type { EdgeMetrics } from '../metrics/edge-metrics.ts';
import type { LimitName, Limits } from './limits.ts';
import { RateLimited } from './refusal.ts';
import { TokenBuckets, type BucketState } from './token-buckets.ts';

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
}

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

function storageKey(s: LimitSpend): string {
  return `limit:${s.limit}:${s.key}`;
}
