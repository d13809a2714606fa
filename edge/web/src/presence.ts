import { PRESENCE, type PresenceState } from '@switchboard/protocol';

/** The SDK calls the presence tracker needs (SwitchboardClient has them). */
export interface WatchApi {
  watch(users: string[]): Promise<unknown>;
  unwatch(users: string[]): Promise<void>;
}

/**
 * Who to watch: the open conversation's other members first, then the peers of the direct
 * conversations in view, never the user themself, at most `cap` (the server's per-device bound).
 */
export function chooseWatched(me: string, open: string[], peers: string[], cap: number = PRESENCE.maxWatch): string[] {
  const out = new Set<string>();
  for (const u of [...open, ...peers]) {
    if (out.size >= cap) break;
    if (u !== me) out.add(u);
  }
  return [...out];
}

/** "online", "last seen 5 min ago", "offline" (never seen), or "" when unknown. */
export function presenceText(st: PresenceState | undefined, now = Date.now()): string {
  if (!st) return '';
  if (st.status === 'online') return 'online';
  if (st.last_seen === null) return 'offline';
  const min = Math.floor(Math.max(0, now - st.last_seen) / 60_000);
  if (min < 1) return 'last seen just now';
  if (min < 60) return `last seen ${min} min ago`;
  const h = Math.floor(min / 60);
  if (h < 24) return `last seen ${h} h ago`;
  const d = Math.floor(h / 24);
  return `last seen ${d} day${d === 1 ? '' : 's'} ago`;
}

export interface PresenceWatchOptions {
  /** First retry of a user the server refused (`forbidden`: the shared conversation may not have reached it yet); doubles up to `retryMaxMs`. */
  retryMs?: number;
  retryMaxMs?: number;
  /** After a reconnect, how long the SDK's own re-watch has to report a user before it is watched again here. */
  confirmMs?: number;
}

/**
 * Keeps the server-side watch set equal to the people in view and holds their states.
 * States are known only while online: a lost connection ends every watch, so they are dropped
 * then and read again after the reconnect (the SDK re-watches; whoever it did not report within
 * `confirmMs` is watched again here). A refused watch is split to find the refused users, who are
 * retried with backoff while still in view.
 */
export class PresenceWatch {
  private readonly states = new Map<string, PresenceState>();
  private wanted = new Set<string>();
  /** Users the SDK watches (and re-watches after a reconnect) on our behalf. */
  private readonly watching = new Set<string>();
  /** Users watched before the reconnect, not yet reported since. */
  private unconfirmed = new Set<string>();
  /** Users the SDK's re-watch did not report: unwatched (so the SDK forgets them) and watched again. */
  private readonly stale = new Set<string>();
  /** Users whose watch failed: retried at `at`, backing off. */
  private readonly refused = new Map<string, { at: number; delay: number }>();
  private online = false;
  private busy = false;
  private again = false;
  private confirmTimer: ReturnType<typeof setTimeout> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly retryMs: number;
  private readonly retryMaxMs: number;
  private readonly confirmMs: number;

  constructor(private readonly api: WatchApi, private readonly onChange: () => void, opts: PresenceWatchOptions = {}) {
    this.retryMs = opts.retryMs ?? 1_000;
    this.retryMaxMs = opts.retryMaxMs ?? 30_000;
    this.confirmMs = opts.confirmMs ?? 3_000;
  }

  /** The user's last known state while this connection is up; undefined when unknown. */
  state(user: string): PresenceState | undefined {
    return this.states.get(user);
  }

  /** Users watched right now (for tests and support). */
  watched(): string[] {
    return [...this.watching].sort();
  }

  /** A state from the server (the reply to a watch, or a change). */
  update(st: PresenceState): void {
    this.unconfirmed.delete(st.user);
    if (!this.wanted.has(st.user) && !this.watching.has(st.user)) return;
    this.states.set(st.user, st);
    this.onChange();
  }

  /** The people in view now: watches whoever is new, unwatches whoever left. */
  want(users: string[]): void {
    this.wanted = new Set(users);
    void this.sync();
  }

  /** The connection came up (`true`) or went (`false`). */
  connection(up: boolean): void {
    if (up === this.online) return;
    this.online = up;
    if (this.confirmTimer) clearTimeout(this.confirmTimer);
    this.confirmTimer = null;
    this.stale.clear();
    this.unconfirmed = new Set(up ? this.watching : []);
    if (!up) {
      this.states.clear();
      this.onChange();
      return;
    }
    if (this.unconfirmed.size) {
      this.confirmTimer = setTimeout(() => {
        this.confirmTimer = null;
        for (const u of this.unconfirmed) this.stale.add(u);
        this.unconfirmed.clear();
        void this.sync();
      }, this.confirmMs);
    }
    void this.sync();
  }

  private async sync(): Promise<void> {
    if (this.busy) return void (this.again = true);
    this.busy = true;
    try {
      do {
        this.again = false;
        if (!this.online) return;
        const gone = [...this.watching].filter((u) => !this.wanted.has(u) || this.stale.has(u));
        this.stale.clear();
        if (gone.length) {
          for (const u of gone) this.watching.delete(u), this.unconfirmed.delete(u);
          for (const u of gone) if (!this.wanted.has(u)) this.states.delete(u);
          this.onChange();
          await this.api.unwatch(gone).catch(() => {});
        }
        for (const u of this.refused.keys()) if (!this.wanted.has(u)) this.refused.delete(u);
        const now = Date.now();
        const add = [...this.wanted].filter((u) => !this.watching.has(u) && (this.refused.get(u)?.at ?? 0) <= now);
        if (add.length) await this.watch(add);
      } while (this.again);
    } finally {
      this.busy = false;
    }
    const next = Math.min(...[...this.refused.values()].map((r) => r.at));
    if (Number.isFinite(next) && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        void this.sync();
      }, Math.max(0, next - Date.now()));
    }
  }

  /**
   * Watches `users`. One stranger refuses the whole frame (`forbidden`), so a refused frame is
   * split until the refused users are found; they, and a frame that failed otherwise while
   * connected (timeout, `conflict`), are retried with backoff.
   */
  private async watch(users: string[]): Promise<void> {
    try {
      await this.api.watch(users);
      for (const u of users) this.watching.add(u), this.refused.delete(u);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'unavailable') return; // not connected: the next connect watches them
      if (code === 'forbidden' && users.length > 1) {
        const half = Math.ceil(users.length / 2);
        await this.watch(users.slice(0, half));
        await this.watch(users.slice(half));
        return;
      }
      for (const u of users) {
        const delay = Math.min(this.retryMaxMs, (this.refused.get(u)?.delay ?? this.retryMs / 2) * 2);
        this.refused.set(u, { at: Date.now() + delay, delay });
      }
    }
  }
}
