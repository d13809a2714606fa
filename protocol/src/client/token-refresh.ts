import type { ClientFrame, ServerFrame } from '../frames.ts';

/** Refresh this long before the token's expiry unless the server asked sooner (`reauth`). */
export const REFRESH_AHEAD_MS = 30_000;
/** A refresh that failed (no token, refused, no reply) is tried again after this, while the socket lives. */
const RETRY_MS = 5_000;

export interface TokenRefreshOptions {
  /** The client's token source (ClientOptions.token): must return a token for the same user and device. */
  token: () => string | Promise<string>;
  /** Sends a frame on the live socket and resolves with its reply (rejects on an error reply). */
  request: (frame: ClientFrame) => Promise<ServerFrame>;
  aheadMs?: number;
  onError?: (err: unknown) => void;
}

/**
 * Keeps a live socket's token fresh (PROTOCOL.md, "Token expiry and refresh"): from `hello`'s
 * `exp` it sends `refresh` with a token from the client's source AHEAD of the expiry, and at once
 * when the server sends `reauth`; a failed refresh is retried until the socket closes (the server
 * closes it with 4001 once the token expired and the grace passed).
 */
export class TokenRefresher {
  private exp: number | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  /** Bumped by every new connection and close: a refresh of an older one does nothing. */
  private generation = 0;

  constructor(private readonly opts: TokenRefreshOptions) {}

  /** A connection said `hello` (with its token's `exp`, Unix seconds, when the server tells it). */
  onHello(exp: number | undefined): void {
    this.stop();
    this.exp = exp ?? null;
    this.schedule();
  }

  /** The server asks for a new token now. */
  onReauth(exp: number): void {
    this.exp = exp;
    void this.refresh();
  }

  /** The connection closed. */
  stop(): void {
    this.generation++;
    this.exp = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.running = false;
  }

  /** The token's expiry as last confirmed by the server (Unix seconds), or null. */
  get expiresAt(): number | null {
    return this.exp;
  }

  private schedule(delayMs?: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.exp === null) return;
    const ms = delayMs ?? Math.max(0, this.exp * 1000 - (this.opts.aheadMs ?? REFRESH_AHEAD_MS) - Date.now());
    this.timer = setTimeout(() => void this.refresh(), ms);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private async refresh(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const gen = this.generation;
    try {
      const token = await this.opts.token();
      const reply = await this.opts.request({ t: 'refresh', token });
      if (gen !== this.generation) return;
      if (reply.t === 'refreshed') {
        this.exp = reply.exp;
        // A token source that keeps returning a token as short-lived is asked again no sooner than RETRY_MS.
        this.schedule(Math.max(RETRY_MS, reply.exp * 1000 - (this.opts.aheadMs ?? REFRESH_AHEAD_MS) - Date.now()));
      }
    } catch (err) {
      if (gen !== this.generation) return;
      this.opts.onError?.(err);
      this.schedule(RETRY_MS);
    } finally {
      if (gen === this.generation) this.running = false;
    }
  }
}
