import { RAISED_LIMITS } from '../../edge/src/limits/limits.ts';

/**
 * The edge settings every bench runs with: rate limits far above any bench's load, and message
 * requests off (a bench's users never accept one; a request would stop a direct conversation's
 * sends after 3 with `request_pending`).
 */
export const BENCH_EDGE_VARS: Record<string, string> = { ...RAISED_LIMITS, MESSAGE_REQUESTS: 'false' };
