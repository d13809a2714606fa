/** A device's sustained and burst allowance of notifications. */
export interface PushRate {
  perHour: number;
  burst: number;
}

export type PushTake = { ok: true } | { ok: false; retryAfterMs: number };

/** A claim's answer: the wake is this owner's now; another owner holds it; this owner already sent it. */
export type PushClaim = 'claimed' | 'held' | 'sent';

/**
 * What lets a push worker send a device a notification now: coalescing and a rate limit, shared
 * by every push worker process. Contract, tested by region/test/push/gate.contract.ts against
 * every implementation:
 * - `claim` is `claimed` for the first caller and `held` for every other until `release` or
 *   `holdMs` pass: one wake per device while an earlier one is outstanding, whatever the number
 *   of messages or workers (atomic). The claim names its `owner` (the intent): the same owner
 *   claiming again is let through (`claimed`), so an intent handled again after its worker died
 *   still sends its wake instead of being taken for a duplicate; once `sent` marked it, that
 *   owner's claim answers `sent`, so only a send in flight when a worker died is repeated;
 * - `sent` marks the owner's wake as sent (nothing if another owner holds it now); the hold
 *   keeps its expiry;
 * - `release` (the device came online and will sync) lets the next claim through at once;
 * - `take` is a token bucket per device: `burst` at once, refilled at `perHour`; a refusal says
 *   when the next token comes. Atomic; clocks of different workers do not matter (Redis's).
 */
export interface PushGate {
  readonly name: string;
  claim(user: string, device: string, holdMs: number, owner: string): Promise<PushClaim>;
  sent(user: string, device: string, owner: string): Promise<void>;
  release(user: string, device: string): Promise<void>;
  take(user: string, device: string, rate: PushRate): Promise<PushTake>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Tokens of a bucket after `elapsedMs` at `perHour`, capped at `burst`. */
export function refill(tokens: number, elapsedMs: number, rate: PushRate): number {
  return Math.min(rate.burst, tokens + (elapsedMs * rate.perHour) / 3_600_000);
}
