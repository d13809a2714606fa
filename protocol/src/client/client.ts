import { ACK_COALESCE_MS, AckCoalescer } from '../acks.ts';
import { restartHint, shouldReconnect } from '../close-codes.ts';
import { HEARTBEAT_PING, type ChangesFrame, type ClientFrame, type Msg, type MsgsFrame, type SentFrame, type ServerFrame } from '../frames.ts';
import { ConversationCursor } from '../ordering.ts';
import { PRESENCE, type PresenceState, type WatchingFrame } from '../presence.ts';
import { MemoryStore, type ClientStore } from './store.ts';
import { TokenRefresher } from './token-refresh.ts';
import { ConsentApi } from './consent.ts';

/**
 * Sends awaiting their reply at once, at most. The edge holds at most 32 of a device's sends
 * waiting or in progress and refuses more (`rate_limited`); a client under it never has a message
 * refused for that, so its messages keep the order it sent them in.
 */
export const MAX_SENDS_IN_FLIGHT = 16;

/** The subset of the WebSocket API the client needs: the browser's, or `ws` in Node. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;

export type Status = 'connecting' | 'online' | 'offline';

export interface ClientOptions {
  /** Edge base URL, e.g. http://127.0.0.1:8787. */
  url: string;
  /**
   * Returns a fresh device token for the same user and device: called at every connect, and
   * before a live socket's token expires (its `refresh`; PROTOCOL.md, "Token expiry and refresh").
   */
  token: () => string | Promise<string>;
  /** A live socket's token could not be refreshed (no token, or refused); it is tried again until the socket closes. */
  onTokenError?: (err: unknown) => void;
  /** Defaults to the global WebSocket. */
  socket?: SocketFactory;
  /** Each message, once, in seq order per conversation. */
  onMessage?: (msg: Msg) => void;
  /**
   * Each message passes through this first, in seq order per conversation, one at a time: what it
   * resolves to goes to `onMessage` (null: nothing, e.g. an MLS commit), and the conversation's
   * cursor and ack move only once it resolved (end-to-end encryption writes its state here, before
   * the ack). A rejection (or an `onMessage` that throws) is reported to `onTransformError` and
   * the message is passed over.
   */
  transform?: (msg: Msg) => Promise<Msg | null>;
  onTransformError?: (msg: Msg, err: unknown) => void;
  onStatus?: (status: Status, detail?: string) => void;
  /** Milliseconds to wait for a reply before a request fails. Default 10 000. */
  requestTimeoutMs?: number;
  /** Reconnect backoff: base and cap in ms. Defaults 250 and 15 000. */
  backoff?: { baseMs: number; capMs: number };
  /**
   * Where unsent messages and delivered cursors survive reconnects and reloads: FileStore in
   * Node (`@switchboard/protocol/client/node`), IndexedDBStore in browsers. Default: memory.
   */
  store?: ClientStore;
  /** A send restored from the store after a reload (it has no promise) was confirmed. */
  onSent?: (sent: SentFrame) => void;
  /** The store failed a write (disk full, corrupt file): what is not stored will not survive a reload. */
  onStoreError?: (err: Error) => void;
  /** A connection not `online` this long after opening is abandoned and retried. Default 15 000 ms. */
  handshakeTimeoutMs?: number;
  /**
   * Ping interval while online; a connection silent for 2.5 intervals is dropped and retried. The
   * ping is also the presence heartbeat. Default 30 000 ms (PRESENCE.heartbeatMs).
   */
  heartbeatMs?: number;
  /**
   * Acks of one conversation are gathered for this long into one cumulative ack (the first after
   * a quiet spell leaves at once). Default ACK_COALESCE_MS (250); 0 acks every message at once.
   */
  ackDelayMs?: number;
  /** A watched user's presence: at `watch()` and on every change. */
  onPresence?: (state: PresenceState) => void;
  /** `user` started (true) or stopped (false) typing in `conv`. */
  onTyping?: (conv: string, user: string, typing: boolean) => void;
  /** How long a `typing` event shows unless renewed. Default 6 000 ms (PRESENCE.typingShowMs). */
  typingShowMs?: number;
  /**
   * `user` has read (or has had delivered) `conv` up to `seq`: the user's own reads from their
   * other devices, and other members' in conversations of at most RECEIPTS.relayMaxMembers.
   */
  onReceipt?: (receipt: { conv: string; user: string; kind: 'read' | 'delivered'; seq: number }) => void;
  /**
   * The automatic resume that follows every (re)connect has completed: every `changes` page was
   * fetched and the syncs it started have finished. `conversations`: how many the server listed
   * as changed; `ms`: from `hello` until then. Not called when that resume failed (the followed
   * conversations are then caught up instead, and the next connect resumes again).
   */
  onResumed?: (info: { conversations: number; ms: number }) => void;
  /**
   * A resume listed `conv` as a message request this user has not accepted (PROTOCOL.md,
   * "Consent"): show it apart, with accept / decline / block (`client.consent`).
   */
  onRequest?: (conv: string) => void;
}

/** What the client did to keep display exactly-once and in order; for tests, logs and support. */
export interface ClientStats {
  /** Messages released to the application. */
  delivered: number;
  /** Incoming messages dropped because that (conv, seq) was already released or held. */
  duplicates: number;
  /** Seq jumps detected (each answered by a sync of the missing range). */
  gaps: number;
  /** Messages recovered by sync (gap fill, reconnect catch-up). */
  synced: number;
  /** Sends repeated with the same cmid after a lost connection or reply. */
  resent: number;
  /** Connections opened after the first. */
  reconnects: number;
  /** Sends refused with `rate_limited` (each retried after its retry-after). */
  rateLimited: number;
}

export class RequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** On `rate_limited`: the server refuses the same request until this many ms from now. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

interface Pending {
  resolve: (f: ServerFrame) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface OutboxEntry {
  conv: string;
  cmid: string;
  body: string;
  tries: number;
  /** A `send` frame for it is awaiting its reply. */
  inflight: boolean;
  /** After a refusal worth retrying (unavailable, rate_limited …): not sent again before this (ms). */
  notBefore: number;
  /** Every `send()` call for this cmid, settled together. */
  waiters: { done: (f: SentFrame) => void; fail: (e: Error) => void }[];
}

/**
 * A device's connection: reconnects with backoff and jitter, resends unsent messages with their
 * original cmid, releases incoming messages exactly once and in order per conversation (gaps are
 * filled by `sync` of exactly the missing range), and acks cumulatively.
 */
/** Resumes of one connection at most, when the server cannot list conversations (resumeOrCatchUp). */
const RESUME_ATTEMPTS = 8;

export class SwitchboardClient {
  status: Status = 'offline';
  /** Who this connection is, from the server's `hello`. */
  me: { user: string; dev: string } | null = null;
  readonly stats: ClientStats = { delivered: 0, duplicates: 0, gaps: 0, synced: 0, resent: 0, reconnects: 0, rateLimited: 0 };
  private connectedOnce = false;
  private readonly store: ClientStore;
  private loaded: Promise<void> | null = null;
  private ws: SocketLike | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly outbox = new Map<string, OutboxEntry>();
  private readonly cursors = new Map<string, ConversationCursor>();
  private readonly syncing = new Set<string>();
  private nextRid = 1;
  private attempt = 0;
  private closed = false;
  private readonly refresher = new TokenRefresher({
    token: () => this.opts.token(),
    request: (frame) => this.request(frame),
    onError: (err) => this.opts.onTokenError?.(err),
  });
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  /** Users this device watches: watched again after every reconnect (watches end with a connection). */
  private readonly watched = new Set<string>();
  /** conv + user → the timer that ends their typing indicator. */
  private readonly typers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Read positions asked for and not yet sent, and the highest sent, per conversation. */
  private readonly readWanted = new Map<string, number>();
  private readonly readSent = new Map<string, number>();

  private readonly acks: AckCoalescer;
  /** `send` frames awaiting their reply. */
  private sendsInFlight = 0;
  /** The timer that pumps sends waiting for their retry time (pumpAt), and when it fires. */
  private pumpTimer: ReturnType<typeof setTimeout> | null = null;
  private pumpDue = Infinity;
  /** Per conversation, the messages going through `transform`, in order. */
  private readonly transforming = new Map<string, Promise<void>>();

  /** Message requests, blocks and presence visibility (consent.ts), over HTTP with this client's token. */
  readonly consent: ConsentApi;

  constructor(private readonly opts: ClientOptions) {
    this.consent = new ConsentApi(opts.url, opts.token);
    this.store = opts.store ?? new MemoryStore();
    this.acks = new AckCoalescer((conv, seq) => this.sendAck(conv, seq), opts.ackDelayMs ?? ACK_COALESCE_MS);
  }

  /** Connects (and keeps reconnecting) until `close()`. Resolves at the first `online`. */
  async connect(): Promise<void> {
    this.closed = false;
    await this.load();
    return new Promise((resolve, reject) => {
      const onStatus = this.opts.onStatus;
      let settled = false;
      this.opts.onStatus = (s, d) => {
        onStatus?.(s, d);
        if (settled) return;
        if (s === 'online') (settled = true), resolve();
        else if (s === 'offline' && this.closed) (settled = true), reject(new Error(d ?? 'closed'));
      };
      void this.open();
    });
  }

  close(): void {
    this.closed = true;
    this.acks.clear();
    this.stopHeartbeat();
    this.refresher.stop();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    this.pumpDue = Infinity;
    this.ws?.close(1000, 'client closed');
    this.setStatus('offline', 'closed by client');
  }

  /** Restores what the store kept: unsent messages go out again with their cmid, cursors resume. */
  private load(): Promise<void> {
    this.loaded ??= this.store.load().then((state) => {
      for (const [conv, seq] of Object.entries(state.cursors)) this.track(conv, seq);
      for (const p of state.outbox) {
        if (this.outbox.has(p.cmid)) continue;
        this.outbox.set(p.cmid, { conv: p.conv, cmid: p.cmid, body: p.body, tries: 1, inflight: false, notBefore: 0, waiters: [{ done: (f) => this.opts.onSent?.(f), fail: () => {} }] });
      }
    });
    return this.loaded;
  }

  /** Follows a conversation from `delivered` (the highest seq this device already has). */
  follow(conv: string, delivered = 0): void {
    const before = this.cursors.get(conv)?.delivered ?? 0;
    this.track(conv, delivered);
    // A jump forward (a member added again reads from their addition) survives a restart too.
    if (delivered > before) this.stored(this.load().then(() => this.store.setCursor(conv, this.cursors.get(conv)!.delivered)));
    if (this.status === 'online') void this.catchUp(conv);
  }

  private track(conv: string, delivered: number): void {
    const cursor = this.cursors.get(conv);
    if (cursor) cursor.advance(delivered);
    else this.cursors.set(conv, new ConversationCursor(delivered));
  }

  /**
   * Sends a message; resolves with its seq. It is in the store before it goes out, and resent
   * with the same cmid after a lost connection or a reload, so it is sequenced exactly once.
   */
  async send(conv: string, body: string, cmid: string = crypto.randomUUID()): Promise<SentFrame> {
    await this.store.putPending({ conv, cmid, body, createdAt: Date.now() });
    return new Promise((done, fail) => {
      const queued = this.outbox.get(cmid);
      // The same cmid while it is still unconfirmed: one message, and both callers get its seq.
      if (queued) return void queued.waiters.push({ done, fail });
      const entry: OutboxEntry = { conv, cmid, body, tries: 0, inflight: false, notBefore: 0, waiters: [{ done, fail }] };
      this.outbox.set(cmid, entry);
      this.pumpSends();
    });
  }

  /** Unsent messages, oldest first: what a UI shows as pending. */
  unsent(): { conv: string; cmid: string; body: string }[] {
    return [...this.outbox.values()].map(({ conv, cmid, body }) => ({ conv, cmid, body }));
  }

  /**
   * Brings every conversation up to date, including ones this device has never seen: pages of
   * `changes` from the server, then a sync of exactly each changed conversation, several at once.
   */
  async resume(): Promise<void> {
    await this.resumePages();
  }

  /**
   * A request that, refused with `rate_limited`, is sent again after the server's retry-after (a
   * few times at most; then the refusal is the answer), while the connection is online.
   */
  private async requestPaced(frame: Parameters<SwitchboardClient['request']>[0], attempts = 5): Promise<ServerFrame> {
    for (let i = 1; ; i++) {
      try {
        return await this.request(frame);
      } catch (err) {
        if (!(err instanceof RequestError) || err.code !== 'rate_limited' || err.retryAfterMs === undefined || i >= attempts || this.closed) throw err;
        await new Promise((r) => setTimeout(r, err.retryAfterMs! + Math.floor(Math.random() * 50)));
      }
    }
  }

  /** `resume()`; answers how many conversations the server listed as changed. */
  private async resumePages(): Promise<number> {
    let after = '';
    let listed = 0;
    for (let page = 0; page < 10_000; page++) {
      const f = (await this.requestPaced({ t: 'resume', after })) as ChangesFrame;
      const stale: string[] = [];
      listed += f.convs.length;
      for (const c of f.convs) {
        if (c.request) this.opts.onRequest?.(c.conv);
        let cursor = this.cursors.get(c.conv);
        if (!cursor) this.cursors.set(c.conv, (cursor = new ConversationCursor(c.acked)));
        if (cursor.delivered < c.last) stale.push(c.conv);
      }
      await inBatches(stale, 16, (conv) => this.catchUp(conv));
      if (!f.next) return listed;
      after = f.next;
    }
    return listed;
  }

  // ---- presence and typing ------------------------------------------------------------------

  /**
   * Watches users' presence (each must share a conversation with this user; at most
   * PRESENCE.maxWatch per device). Resolves with their current state, also given to
   * `onPresence`; changes follow there. Kept across reconnects until `unwatch`.
   */
  async watch(users: string[]): Promise<PresenceState[]> {
    const out: PresenceState[] = [];
    for (let i = 0; i < users.length; i += PRESENCE.maxWatch) {
      const chunk = users.slice(i, i + PRESENCE.maxWatch);
      const f = (await this.requestPaced({ t: 'watch', users: chunk })) as WatchingFrame;
      for (const u of chunk) this.watched.add(u);
      for (const st of f.users) this.opts.onPresence?.(st);
      out.push(...f.users);
    }
    return out;
  }

  async unwatch(users: string[]): Promise<void> {
    for (const u of users) this.watched.delete(u);
    for (let i = 0; i < users.length; i += PRESENCE.maxWatch) await this.request({ t: 'unwatch', users: users.slice(i, i + PRESENCE.maxWatch) });
  }

  /**
   * Marks `conv` read up to `seq` (cumulative; lower values than one already sent are ignored).
   * Sent at once when online, else when the connection returns.
   */
  read(conv: string, seq: number): void {
    if (seq <= (this.readSent.get(conv) ?? 0)) return;
    this.readWanted.set(conv, seq);
    this.flushReads();
  }

  private flushReads(): void {
    if (!this.ws || this.status !== 'online') return;
    for (const [conv, seq] of this.readWanted) {
      this.ws.send(JSON.stringify({ t: 'read', conv, seq }));
      this.readSent.set(conv, seq);
    }
    this.readWanted.clear();
  }

  /** Says this user is typing in `conv`; call again every PRESENCE.typingRenewMs while they type. */
  typing(conv: string): void {
    if (this.ws && this.status === 'online') this.ws.send(JSON.stringify({ t: 'typing', conv }));
  }

  private onTypingEvent(conv: string, user: string): void {
    const key = `${conv}\n${user}`;
    const prev = this.typers.get(key);
    if (prev) clearTimeout(prev);
    else this.opts.onTyping?.(conv, user, true);
    const timer = setTimeout(() => this.stopTyping(conv, user), this.opts.typingShowMs ?? PRESENCE.typingShowMs);
    (timer as { unref?: () => void }).unref?.();
    this.typers.set(key, timer);
  }

  private stopTyping(conv: string, user: string): void {
    const key = `${conv}\n${user}`;
    const timer = this.typers.get(key);
    if (!timer) return;
    clearTimeout(timer);
    this.typers.delete(key);
    this.opts.onTyping?.(conv, user, false);
  }

  /** One page of messages after `after` (exclusive), ascending. */
  async sync(conv: string, after: number, limit = 100): Promise<MsgsFrame> {
    return (await this.request({ t: 'sync', conv, after, limit })) as MsgsFrame;
  }

  /** Sends a frame with a fresh rid and waits for the reply that echoes it. */
  request(frame: ClientFrame): Promise<ServerFrame> {
    const rid = `r${this.nextRid++}`;
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || this.status !== 'online') return reject(new RequestError('unavailable', 'not connected'));
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new RequestError('timeout', `no reply to ${frame.t} in time`));
      }, this.opts.requestTimeoutMs ?? 10_000);
      this.pending.set(rid, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...frame, rid }));
    });
  }

  // ---- connection ---------------------------------------------------------------------------

  private async open(): Promise<void> {
    if (this.closed) return;
    this.setStatus('connecting');
    let token: string;
    try {
      token = await this.opts.token();
    } catch (err) {
      return this.scheduleReconnect(`token: ${(err as Error).message}`);
    }
    const url = this.opts.url.replace(/^http/, 'ws') + '/v1/connect?token=' + encodeURIComponent(token);
    const factory = this.opts.socket ?? ((u: string) => new WebSocket(u) as unknown as SocketLike);
    const ws = factory(url);
    this.ws = ws;
    this.lastFrameAt = Date.now();
    const handshake = setTimeout(() => {
      if (this.ws === ws && this.status !== 'online') ws.close(4000, 'handshake timeout');
    }, this.opts.handshakeTimeoutMs ?? 15_000);
    ws.onmessage = (ev) => {
      this.lastFrameAt = Date.now();
      this.onFrame(String(ev.data));
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      clearTimeout(handshake);
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
      this.refresher.stop();
      for (const [rid, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new RequestError('unavailable', 'connection lost'));
        this.pending.delete(rid);
      }
      if (this.closed) return;
      if (!shouldReconnect(ev.code)) {
        this.closed = true;
        return this.setStatus('offline', `closed ${ev.code}: ${ev.reason}`);
      }
      // A drained server's hint (1012, restartReason) spreads its devices' reconnects: it is the delay.
      this.scheduleReconnect(`closed ${ev.code}`, restartHint(ev.code, ev.reason ?? ''));
    };
  }

  private scheduleReconnect(detail: string, hintMs: number | null = null): void {
    if (this.closed) return;
    this.setStatus('offline', detail);
    const { baseMs, capMs } = this.opts.backoff ?? { baseMs: 250, capMs: 15_000 };
    const delay = hintMs ?? Math.min(capMs, baseMs * 2 ** Math.min(this.attempt++, 16)) * (0.5 + Math.random() / 2);
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  private lastFrameAt = 0;
  private heartbeat: ReturnType<typeof setInterval> | null = null;

  /** While online: ping every interval; a connection silent for 2.5 intervals is half-open, so drop it. */
  private startHeartbeat(): void {
    this.stopHeartbeat();
    const every = this.opts.heartbeatMs ?? PRESENCE.heartbeatMs;
    this.heartbeat = setInterval(() => {
      const ws = this.ws;
      if (!ws || this.status !== 'online') return;
      if (Date.now() - this.lastFrameAt > every * 2.5) return ws.close(4000, 'heartbeat timeout');
      ws.send(HEARTBEAT_PING);
    }, every);
    (this.heartbeat as { unref?: () => void }).unref?.();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private onOnline(): void {
    this.attempt = 0;
    this.startHeartbeat();
    if (this.connectedOnce) this.stats.reconnects++;
    this.connectedOnce = true;
    this.setStatus('online');
    for (const entry of this.outbox.values()) entry.notBefore = 0;
    this.pumpSends();
    this.resumeOrCatchUp(Date.now());
    this.flushReads();
    if (this.watched.size) this.watch([...this.watched]).catch(() => {});
  }

  /**
   * Resume; if the server cannot list conversations now, at least catch up the followed ones, and
   * resume again after a backoff (1 s, doubling, at most 30 s; 8 tries) while this connection
   * lasts: a conversation the device has never seen is only found by a resume.
   * `onlineAt`: this is the resume of a (re)connect that came online then (`onResumed` follows).
   */
  private resumeOrCatchUp(onlineAt?: number, attempt = 1): void {
    const ws = this.ws;
    this.resumePages().then(
      (conversations) => {
        if (onlineAt !== undefined) this.opts.onResumed?.({ conversations, ms: Date.now() - onlineAt });
      },
      () => {
        if (this.status !== 'online' || this.ws !== ws) return;
        for (const conv of this.cursors.keys()) void this.catchUp(conv);
        if (attempt >= RESUME_ATTEMPTS) return;
        const delay = Math.min(30_000, 1000 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        setTimeout(() => {
          if (this.status === 'online' && this.ws === ws && !this.closed) this.resumeOrCatchUp(onlineAt, attempt + 1);
        }, delay);
      },
    );
  }

  private setStatus(s: Status, detail?: string): void {
    if (this.status === s && s !== 'offline') return;
    this.status = s;
    this.opts.onStatus?.(s, detail);
  }

  // ---- frames -------------------------------------------------------------------------------

  private onFrame(text: string): void {
    let f: ServerFrame;
    try {
      f = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    if (f.t === 'hello') {
      this.me = { user: f.user, dev: f.dev };
      this.onOnline();
      return this.refresher.onHello(f.exp);
    }
    if (f.t === 'msg') {
      // A message ends its sender's typing indicator.
      this.stopTyping(f.conv, f.from);
      return this.onMsg(f);
    }
    if (f.t === 'presence') return this.opts.onPresence?.({ user: f.user, status: f.status, last_seen: f.last_seen });
    if (f.t === 'typing') return this.onTypingEvent(f.conv, f.user);
    if (f.t === 'read' || f.t === 'delivered') return this.opts.onReceipt?.({ conv: f.conv, user: f.user, kind: f.t, seq: f.seq });
    if (f.t === 'resync') return this.resumeOrCatchUp();
    if (f.t === 'reauth') return this.refresher.onReauth(f.exp);
    const rid = 'rid' in f ? f.rid : undefined;
    const p = rid !== undefined ? this.pending.get(rid) : undefined;
    if (!p || rid === undefined) return;
    this.pending.delete(rid);
    clearTimeout(p.timer);
    if (f.t === 'error') p.reject(new RequestError(f.code, f.message, f.retryAfterMs));
    else p.resolve(f);
  }

  /**
   * Sends the oldest unsent messages, in the order they were sent, at most MAX_SENDS_IN_FLIGHT at
   * a time (the edge refuses a device more than 32 waiting sends; staying under it keeps every
   * message in order). One waiting to be retried holds the ones after it back, for the same reason.
   */
  private pumpSends(): void {
    if (this.status !== 'online') return;
    const now = Date.now();
    for (const entry of this.outbox.values()) {
      if (this.sendsInFlight >= MAX_SENDS_IN_FLIGHT) return;
      if (entry.inflight) continue;
      if (entry.notBefore > now) return this.pumpAt(entry.notBefore);
      this.flushOne(entry);
    }
  }

  /**
   * Pumps the sends again at `at` (ms) or sooner. One timer, moved earlier when needed; it re-arms
   * itself through pumpSends while an entry still waits (a timer may fire a millisecond before
   * `Date.now()` reaches its time: with one timer per refusal, that left a send waiting forever).
   */
  private pumpAt(at: number): void {
    if (this.pumpTimer && this.pumpDue <= at) return;
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpDue = at;
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = null;
      this.pumpDue = Infinity;
      this.pumpSends();
    }, Math.max(1, at - Date.now() + 1));
  }

  private flushOne(entry: OutboxEntry): void {
    entry.inflight = true;
    if (entry.tries++ > 0) this.stats.resent++;
    this.sendsInFlight++;
    const settled = () => {
      entry.inflight = false;
      this.sendsInFlight--;
    };
    this.request({ t: 'send', conv: entry.conv, cmid: entry.cmid, body: entry.body }).then(
      (f) => {
        settled();
        const sent = f as SentFrame;
        if (this.outbox.get(entry.cmid) === entry) {
          this.outbox.delete(entry.cmid);
          this.stored(this.store.removePending(entry.cmid));
          for (const w of entry.waiters) w.done(sent);
          // The sender's own message takes its place in the ordered stream like any other.
          if (this.me && this.cursors.has(entry.conv)) {
            this.onMsg({ t: 'msg', conv: entry.conv, seq: sent.seq, cmid: entry.cmid, from: this.me.user, dev: this.me.dev, ts: sent.ts, body: entry.body });
          }
        }
        this.pumpSends();
      },
      (err: RequestError) => {
        settled();
        if (this.outbox.get(entry.cmid) !== entry) return this.pumpSends();
        if (err.code === 'unavailable' || err.code === 'timeout' || err.code === 'internal' || err.code === 'rate_limited') {
          // A lost connection is flushed again at the next connect; on a live one, retry soon, and
          // never before the server's retry-after (a rate limit's refusal says when it passes).
          const backoff = Math.min(10_000, 500 * 2 ** Math.min(entry.tries, 5));
          const delay = err.retryAfterMs !== undefined ? Math.min(3_600_000, err.retryAfterMs + Math.floor(Math.random() * 50)) : backoff;
          this.stats.rateLimited += err.code === 'rate_limited' ? 1 : 0;
          entry.notBefore = Date.now() + delay;
          return this.pumpAt(entry.notBefore);
        }
        this.outbox.delete(entry.cmid);
        this.stored(this.store.removePending(entry.cmid));
        for (const w of entry.waiters) w.fail(err);
        this.pumpSends();
      },
    );
  }

  private onMsg(msg: Msg): void {
    let cursor = this.cursors.get(msg.conv);
    if (!cursor) this.cursors.set(msg.conv, (cursor = new ConversationCursor(0)));
    const v = cursor.accept(msg);
    if (v.kind === 'deliver') this.release(msg.conv, v.msgs);
    else if (v.kind === 'duplicate') {
      this.stats.duplicates++;
      // A retransmit: our ack may have been lost, so say again how far we are, at once.
      this.acks.now(msg.conv, cursor.delivered);
    } else {
      this.stats.gaps++;
      void this.catchUp(msg.conv);
    }
  }

  private release(conv: string, msgs: Msg[]): void {
    this.stats.delivered += msgs.length;
    const last = msgs.at(-1);
    if (!last) return;
    const transform = this.opts.transform;
    if (!transform) {
      for (const m of msgs) this.opts.onMessage?.(m);
      this.stored(this.store.setCursor(conv, last.seq));
      this.acks.ack(conv, last.seq);
      return;
    }
    const run = async () => {
      for (const m of msgs) {
        // Closed: nothing more is shown, stored or acked; the next start gets these again.
        if (this.closed) return;
        let out: Msg | null = null;
        try {
          out = await transform(m);
        } catch (err) {
          if (this.closed) return;
          this.opts.onTransformError?.(m, err);
        }
        try {
          if (out) this.opts.onMessage?.(out);
        } catch (err) {
          this.opts.onTransformError?.(m, err);
        }
      }
      if (this.closed) return;
      this.stored(this.store.setCursor(conv, last.seq));
      this.acks.ack(conv, last.seq);
    };
    // One run after the other; a failure is reported, never an unhandled rejection.
    const next = (this.transforming.get(conv) ?? Promise.resolve()).then(run).catch((err: unknown) => this.opts.onTransformError?.(last, err));
    this.transforming.set(conv, next);
    void next.finally(() => {
      if (this.transforming.get(conv) === next) this.transforming.delete(conv);
    });
  }

  /** Background store writes: a failure is reported, never an unhandled rejection. */
  private stored(write: Promise<void>): void {
    write.catch((err: unknown) => this.opts.onStoreError?.(err instanceof Error ? err : new Error(String(err))));
  }

  private sendAck(conv: string, seq: number): void {
    if (seq > 0 && this.ws && this.status === 'online') this.ws.send(JSON.stringify({ t: 'ack', conv, seq }));
  }

  /** Pages through `sync` from the cursor until the server says there is no more. */
  private async catchUp(conv: string): Promise<void> {
    if (this.syncing.has(conv)) return;
    this.syncing.add(conv);
    try {
      for (;;) {
        const cursor = this.cursors.get(conv)!;
        const page = await this.sync(conv, cursor.delivered, 200);
        for (const m of page.msgs) {
          const v = cursor.accept(m);
          if (v.kind === 'deliver') {
            this.stats.synced += v.msgs.length;
            this.release(conv, v.msgs);
          } else if (v.kind === 'duplicate') this.stats.duplicates++;
        }
        if (!page.more || page.msgs.length === 0) break;
      }
    } catch {
      // Retried at the next connect or the next gap.
    } finally {
      this.syncing.delete(conv);
    }
  }
}

/** Runs `fn` over `items`, at most `width` at a time. */
async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}
