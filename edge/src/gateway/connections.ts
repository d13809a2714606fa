import { deviceKey } from './delivery.ts';

/** What each hibernatable socket remembers across wake-ups, from the verified token and the gateway. */
export interface Attachment {
  user: string;
  device: string;
  /** Connection id (ConnId): grows with every socket the gateway accepts, across restarts. */
  conn: number;
  /** The gateway's own name (an object does not know it; the alarm needs it after a wake-up). */
  gw: string;
  /** Accepted at (ms). */
  at: number;
  /** The token's expiry and issue time (Unix seconds; token-expiry.ts); moved by `refresh`. Absent on sockets of an older Worker. */
  exp?: number | null;
  iat?: number | null;
}

/** One live socket and the per-device state the gateway keeps beside it. */
export class Conn {
  readonly key: string;
  /** Last frame seen from the device (ms); the runtime's auto-answered pings are read separately. */
  lastBeat: number;
  /** Other requests in progress (sync, history, resume, watch …). */
  requests = 0;
  /** The gateway closed it (lagging, stalled): nothing more is pushed to it while it closes. */
  closing = false;
  /**
   * Its `hello` went out (after its route reached the region). Until then deliveries are tracked
   * for it but not written; they follow the `hello`.
   */
  ready: boolean;

  constructor(
    readonly ws: WebSocket,
    readonly att: Attachment,
    ready = true,
  ) {
    this.key = deviceKey(att.user, att.device);
    this.lastBeat = att.at;
    this.ready = ready;
  }
}

/**
 * The gateway's index of its live sockets: user → device → Conn. Rebuilt once after a wake-up
 * from the runtime's list of hibernated sockets and their attachments (`load`), then kept by
 * `add` and `remove`, so a delivery looks users up in memory, never socket by socket in the
 * runtime. A device has one current socket: a newer connection replaces it here at once, and the
 * replaced socket's close finds it is no longer current.
 */
export class Connections {
  private readonly users = new Map<string, Map<string, Conn>>();
  private readonly bySocket = new WeakMap<WebSocket, Conn>();
  private loaded = false;
  private n = 0;

  constructor(private readonly ctx: DurableObjectState) {}

  /** Adds a socket just accepted; returns the device's previous current socket, if any. */
  add(c: Conn): Conn | undefined {
    this.load();
    const old = this.put(c);
    // A first load after a wake-up already found the accepted socket itself.
    return old?.ws === c.ws ? undefined : old;
  }

  /** Removes a socket if it is still its device's current one; true when it was. */
  remove(c: Conn): boolean {
    this.load();
    const devices = this.users.get(c.att.user);
    if (devices?.get(c.att.device) !== c) return false;
    devices.delete(c.att.device);
    if (devices.size === 0) this.users.delete(c.att.user);
    this.n--;
    return true;
  }

  /** A user's current sockets by device (undefined: none here). */
  of(user: string): Map<string, Conn> | undefined {
    this.load();
    return this.users.get(user);
  }

  /** The Conn of a socket (current or replaced); undefined for a socket without an attachment. */
  forSocket(ws: WebSocket): Conn | undefined {
    this.load();
    const hit = this.bySocket.get(ws);
    if (hit) return hit;
    const att = ws.deserializeAttachment() as Attachment | null;
    if (!att) return undefined;
    const c = new Conn(ws, att);
    this.bySocket.set(ws, c);
    return c;
  }

  /** Whether `c` is its device's current socket. */
  isCurrent(c: Conn): boolean {
    return this.of(c.att.user)?.get(c.att.device) === c;
  }

  *all(): IterableIterator<Conn> {
    this.load();
    for (const devices of this.users.values()) yield* devices.values();
  }

  get size(): number {
    this.load();
    return this.n;
  }

  private put(c: Conn): Conn | undefined {
    let devices = this.users.get(c.att.user);
    if (!devices) this.users.set(c.att.user, (devices = new Map()));
    const old = devices.get(c.att.device);
    devices.set(c.att.device, c);
    this.bySocket.set(c.ws, c);
    if (!old) this.n++;
    return old;
  }

  /** After a wake-up: every open socket the runtime kept, the newest per device. */
  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      const att = ws.deserializeAttachment() as Attachment | null;
      if (!att) continue;
      const current = this.users.get(att.user)?.get(att.device);
      if (current && current.att.conn > att.conn) continue;
      this.put(new Conn(ws, att));
    }
  }
}
