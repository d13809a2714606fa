/** How fast one user may claim other users' KeyPackages: `perMinute` users, bursts up to `burst`. */
export interface ClaimRate {
  perMinute: number;
  burst: number;
}

export type ClaimTake = { ok: true } | { ok: false; retryAfterMs: number };

/** Buckets kept at most (the least recently used go first; a dropped bucket was full or nearly). */
const MAX_BUCKETS = 100_000;

/**
 * A token bucket per claiming user, in this process's memory: a claim costs one token per user it
 * names. Claims reveal who talks to whom and each consumes other people's one-time packages, so a
 * user claiming in bulk (scraping the directory, or draining someone's packages to force the
 * last-resort one) is slowed. Per region process on purpose, for now: a user whose requests
 * reach N API processes gets up to N times the rate, which still bounds the drain; a shared
 * limit would live in Redis like the push gate (region/src/push/gate-redis.ts).
 */
export class ClaimLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly rate: ClaimRate) {}

  /** Takes `cost` tokens of `user`'s bucket, or says when that many will be there. */
  take(user: string, cost: number, now = Date.now()): ClaimTake {
    const b = this.buckets.get(user);
    const perMs = this.rate.perMinute / 60_000;
    const tokens = b ? Math.min(this.rate.burst, b.tokens + (now - b.at) * perMs) : this.rate.burst;
    // A claim costing more than the burst could never pass: it waits for a full bucket instead.
    const need = Math.min(cost, this.rate.burst);
    if (tokens < need) return { ok: false, retryAfterMs: Math.ceil((need - tokens) / perMs) };
    this.buckets.delete(user);
    this.buckets.set(user, { tokens: tokens - need, at: now });
    if (this.buckets.size > MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
    return { ok: true };
  }
}
