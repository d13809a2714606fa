import { ProtocolError } from '@switchboard/protocol';
import { describeRate, LIMIT_TABLE, type LimitName } from './limits.ts';
import type { Rate } from './token-buckets.ts';

/**
 * A refusal by a rate limit: `rate_limited`, with how long to wait before the same request can
 * pass. On a socket it is an error frame with `retryAfterMs`; over HTTP a 429 with `Retry-After`
 * (seconds, rounded up) and `retryAfterMs` in the error body.
 */
export class RateLimited extends ProtocolError {
  constructor(
    /** `queue`: a device's bound of waiting sends or requests in progress (gateway-do.ts). */
    readonly limit: LimitName | 'queue',
    readonly retryAfterMs: number,
    message: string,
  ) {
    super('rate_limited', message);
  }

  static of(limit: LimitName, rate: Rate, retryAfterMs: number): RateLimited {
    const def = LIMIT_TABLE[limit];
    return new RateLimited(limit, retryAfterMs, `${limit}: at most ${describeRate(rate)} per ${def.per}; retry after ${retryAfterMs} ms`);
  }
}

/** Retry-After in whole seconds (at least 1) for a wait in ms. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** The HTTP answer to a refusal: 429, `Retry-After` in seconds and `retryAfterMs` in the error body. */
export function rateLimitedResponse(err: RateLimited): Response {
  const body = { error: { code: err.code, message: err.message, retryAfterMs: err.retryAfterMs } };
  return new Response(JSON.stringify(body), { status: 429, headers: { 'content-type': 'application/json', 'retry-after': String(retryAfterSeconds(err.retryAfterMs)) } });
}
