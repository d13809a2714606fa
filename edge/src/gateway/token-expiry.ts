/** What the deadlines read of a socket (a gateway's Conn, connections.ts). */
export interface TokenSocket {
  readonly att: { exp?: number | null; iat?: number | null };
  ready: boolean;
  closing: boolean;
}

/** The verified token's times, from the Worker to the gateway with the upgrade (trusted headers, as user and device). */
export const TOKEN_EXP_HEADER = 'x-sb-token-exp';
export const TOKEN_IAT_HEADER = 'x-sb-token-iat';

/**
 * How long a gateway remembers a revocation it was told of, to refuse an old token's connect or
 * refresh that an isolate still caching the previous time let through (longer than
 * REVOCATION_CACHE_MS in auth/revocations.ts).
 */
const REMEMBER_REVOCATION_MS = 60_000;

/** Sets the headers on a copy of the client's request: a client's own values never pass (no `iat` → header removed). */
export function setTokenTimes(headers: Headers, t: { exp: number; iat: number | null }): void {
  headers.set(TOKEN_EXP_HEADER, String(t.exp));
  if (t.iat !== null) headers.set(TOKEN_IAT_HEADER, String(t.iat));
  else headers.delete(TOKEN_IAT_HEADER);
}

/** The token times of an upgrade; exp null when absent (an older Worker). */
export function tokenTimesFrom(req: Request): { exp: number | null; iat: number | null } {
  const num = (h: string) => {
    const v = req.headers.get(h);
    const n = v === null ? NaN : Number(v);
    return Number.isSafeInteger(n) ? n : null;
  };
  return { exp: num(TOKEN_EXP_HEADER), iat: num(TOKEN_IAT_HEADER) };
}

export interface TokenDue<C extends TokenSocket> {
  /** Sockets to ask for a new token now (`reauth`). */
  notify: C[];
  /** Sockets whose token expired more than the grace ago: to close with 4001. */
  expire: C[];
}

/**
 * A gateway's view of its sockets' tokens: each socket's `exp` lives in its attachment (it
 * survives hibernation); a socket is asked for a new token AUTH_REFRESH_NOTICE_SECONDS before it
 * (`reauth`, once per `exp`) and closed AUTH_REFRESH_GRACE_SECONDS after it unless a `refresh`
 * moved it. The gateway's storage alarm runs these deadlines (`nextDue`), so they hold while
 * the object hibernates. Also remembers recent revocations of its users (see REMEMBER_REVOCATION_MS).
 */
export class TokenDeadlines {
  /** The `exp` each socket was last asked about. */
  private readonly noticed = new WeakMap<TokenSocket, number>();
  private readonly revoked = new Map<string, { before: number; until: number }>();

  constructor(private readonly opts: { noticeSeconds: number; graceSeconds: number }) {}

  /** When the socket should be asked (ms), or null: not yet known / already asked. */
  private noticeAt(c: TokenSocket): number | null {
    const exp = c.att.exp;
    if (exp === undefined || exp === null || this.noticed.get(c) === exp) return null;
    return (exp - this.opts.noticeSeconds) * 1000;
  }

  private closeAt(c: TokenSocket): number | null {
    const exp = c.att.exp;
    return exp === undefined || exp === null ? null : (exp + this.opts.graceSeconds) * 1000;
  }

  /** Whether a socket just opened should be asked at once (its token is already within the notice); marks it asked. */
  noticeOnOpen(c: TokenSocket, now: number): boolean {
    const at = this.noticeAt(c);
    if (at === null || at > now) return false;
    this.noticed.set(c, c.att.exp!);
    return true;
  }

  /** What is due at `now`; sockets returned in `notify` are marked asked. Sockets not yet `ready` are asked on open. */
  due<C extends TokenSocket>(conns: Iterable<C>, now: number): TokenDue<C> {
    const out: TokenDue<C> = { notify: [], expire: [] };
    for (const c of conns) {
      if (c.closing) continue;
      const close = this.closeAt(c);
      if (close !== null && close <= now) {
        out.expire.push(c);
        continue;
      }
      const notice = this.noticeAt(c);
      if (c.ready && notice !== null && notice <= now) {
        this.noticed.set(c, c.att.exp!);
        out.notify.push(c);
      }
    }
    return out;
  }

  /** The earliest deadline of any socket (ms), or null. */
  nextDue(conns: Iterable<TokenSocket>): number | null {
    let next = Infinity;
    for (const c of conns) {
      if (c.closing) continue;
      const close = this.closeAt(c);
      if (close !== null) next = Math.min(next, close);
      const notice = c.ready ? this.noticeAt(c) : null;
      if (notice !== null) next = Math.min(next, notice);
    }
    return next === Infinity ? null : next;
  }

  revoke(user: string, before: number, now: number): void {
    for (const [u, r] of this.revoked) if (r.until <= now) this.revoked.delete(u);
    const prev = this.revoked.get(user)?.before ?? 0;
    this.revoked.set(user, { before: Math.max(prev, before), until: now + REMEMBER_REVOCATION_MS });
  }

  /** A token of `user` issued at `iat` falls under a revocation this gateway was told of recently. */
  isRevoked(user: string, iat: number | null | undefined, now: number): boolean {
    const r = this.revoked.get(user);
    if (!r || r.until <= now) return false;
    return iat === null || iat === undefined || iat < r.before;
  }
}
