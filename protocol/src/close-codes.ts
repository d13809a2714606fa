/**
 * WebSocket close codes. The reconnect rule: a client reconnects (with backoff and jitter) after
 * any close whose `reconnect` is true, and after any code not listed here. It must not reconnect
 * after a `reconnect: false` code until the user acts (signs in again, updates the app).
 */
export const CLOSE_CODES = {
  normal: { code: 1000, reconnect: false, reason: 'closed by the client' },
  going_away: { code: 1001, reconnect: true, reason: 'server going away' },
  internal: { code: 1011, reconnect: true, reason: 'internal error' },
  restart: { code: 1012, reconnect: true, reason: 'server restarting' },
  unauthorized: { code: 4001, reconnect: false, reason: 'token invalid or expired' },
  replaced: { code: 4002, reconnect: false, reason: 'this device connected again elsewhere' },
  policy: { code: 4003, reconnect: false, reason: 'protocol violation' },
  unsupported_version: { code: 4004, reconnect: false, reason: 'protocol version not supported' },
  idle_timeout: { code: 4005, reconnect: true, reason: 'no heartbeat within the idle timeout' },
  lagging: { code: 4006, reconnect: true, reason: 'too many unacknowledged messages; reconnect and resume' },
  stalled: { code: 4007, reconnect: true, reason: 'messages were not acknowledged; reconnect and resume' },
  flooding: { code: 4008, reconnect: true, reason: 'kept sending after rate_limited; reconnect after a backoff and honour retryAfterMs' },
  disconnected: { code: 4009, reconnect: false, reason: 'disconnected by the service' },
} as const;

export type CloseName = keyof typeof CLOSE_CODES;

/** Whether a client should reconnect after the server closed with `code`. */
export function shouldReconnect(code: number): boolean {
  for (const c of Object.values(CLOSE_CODES)) if (c.code === code) return c.reconnect;
  return true;
}

/** Longest reconnect hint a server sends (and a client honours) with 1012. */
export const MAX_RESTART_HINT_MS = 60_000;

/**
 * The close reason of a 1012 (server restarting) that carries a reconnect hint: the client waits
 * that long before it reconnects, so the sockets of a drained server come back spread out.
 */
export function restartReason(retryAfterMs: number): string {
  return `server restarting; retry after ${Math.max(0, Math.min(MAX_RESTART_HINT_MS, Math.round(retryAfterMs)))} ms`;
}

/** The reconnect hint of a close (`restartReason`), or null when it has none. */
export function restartHint(code: number, reason: string): number | null {
  if (code !== CLOSE_CODES.restart.code) return null;
  const m = /retry after (\d{1,6}) ms/.exec(reason);
  return m ? Math.min(MAX_RESTART_HINT_MS, Number(m[1])) : null;
}
