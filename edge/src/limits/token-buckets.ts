/**
 * Token buckets by key, in memory: a bucket holds at most `burst` tokens and refills `burst`
 * tokens per `periodMs` (so bursts up to `burst` pass, and a sustained flood gets `burst` per
 * period). A bucket is created full and exists only while it is not full again: a key that is
 * quiet for a period costs nothing.
 */
export interface Rate {
  /** Tokens a full bucket holds: the largest burst. */
  burst: number;
  /** A bucket refills completely in this long: the sustained rate is burst / periodMs. */
  periodMs: number;
}

export interface BucketState {
  tokens: number;
  /** When `tokens` was computed (ms). */
  at: number;
}

/** One spend: `cost` tokens from the bucket `key` of a limit with rate `rate`. */
export interface Spend<L extends string = string> {
  limit: L;
  key: string;
  rate: Rate;
  cost: number;
}

/** Tokens in a bucket at `now`, refilled since its state was taken. */
export function level(s: BucketState | undefined, rate: Rate, now: number): number {
  if (!s) return rate.burst;
  return Math.min(rate.burst, s.tokens + (Math.max(0, now - s.at) * rate.burst) / rate.periodMs);
}

/** How long until `cost` tokens are there (0: now). A cost above the burst waits a whole period. */
export function waitFor(tokens: number, rate: Rate, cost: number): number {
  if (cost <= tokens) return 0;
  if (cost > rate.burst) return rate.periodMs;
  return Math.max(1, Math.ceil(((cost - tokens) * rate.periodMs) / rate.burst));
}

export class TokenBuckets<L extends string = string> {
  private readonly buckets = new Map<string, BucketState>();

  /** At most this many buckets are kept before full ones are swept. */
  constructor(private readonly maxBuckets = 10_000) {}

  /**
   * Takes every spend, or none: the first that cannot be paid is returned with how long until it
   * could (ms), and nothing is taken from any bucket.
   */
  take(spends: readonly Spend<L>[], now: number): { limit: L; retryAfterMs: number } | null {
    for (const s of spends) {
      const wait = waitFor(level(this.buckets.get(bucketKey(s)), s.rate, now), s.rate, s.cost);
      if (wait > 0) return { limit: s.limit, retryAfterMs: wait };
    }
    for (const s of spends) {
      const k = bucketKey(s);
      const tokens = level(this.buckets.get(k), s.rate, now) - s.cost;
      // Deleted first, so the map's order is the order buckets were last touched (the sweep's).
      this.buckets.delete(k);
      this.buckets.set(k, { tokens, at: now });
    }
    if (this.buckets.size > this.maxBuckets) this.sweep(spends, now);
    return null;
  }

  /** The state of a bucket (undefined: full), e.g. to persist it. */
  get(limit: L, key: string): BucketState | undefined {
    return this.buckets.get(bucketKey({ limit, key }));
  }

  /** Puts a bucket's state back (read from storage); a full one is not kept. */
  set(limit: L, key: string, s: BucketState): void {
    this.buckets.set(bucketKey({ limit, key }), s);
  }

  has(limit: L, key: string): boolean {
    return this.buckets.has(bucketKey({ limit, key }));
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Drops buckets that have refilled (a full bucket and no bucket are the same). */
  private sweep(rates: readonly Spend<L>[], now: number): void {
    // Every bucket's rate is not known here; a bucket untouched for a day is full under any rate a
    // limit may have (at most a day's period), and the ones just spent are kept.
    const keep = new Set(rates.map(bucketKey));
    for (const [k, s] of this.buckets) if (!keep.has(k) && now - s.at >= DAY_MS) this.buckets.delete(k);
    // Still over: the least recently touched go first (losing one only lets its key burst again).
    if (this.buckets.size > this.maxBuckets) {
      for (const k of this.buckets.keys()) {
        if (this.buckets.size <= this.maxBuckets * 0.9) break;
        if (!keep.has(k)) this.buckets.delete(k);
      }
    }
  }
}

const DAY_MS = 86_400_000;

function bucketKey(s: { limit: string; key: string }): string {
  return `${s.limit}\n${s.key}`;
}
