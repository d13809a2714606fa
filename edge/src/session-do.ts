import { DurableObject } from 'cloudflare:workers';
import {
  CLOSE_CODES,
  ProtocolError,
  decodeClientFrame,
  type ClientFrame,
  type ConversationsResponse,
  type Delivery,
  type PresenceEvent,
  type RouteOp,
  type ServerFrame,
} from '@switchboard/protocol';
import type { ConversationDO } from './conversation-do.ts';
import { DeliveredReports } from './delivered-reports.ts';
import { DeliveryTracker } from './delivery.ts';
import { config, type Env } from './env.ts';
import { errorFields, log } from './log.ts';
import { callRegion } from './region-client.ts';
import { PresenceRelay } from './presence-relay.ts';
import { StubCache } from './stub-cache.ts';
import { TypingLimiter } from './typing.ts';

/** What each hibernatable socket remembers across wake-ups. */
interface Attachment {
  user: string;
  device: string;
  connectedAt: number;
}

export const USER_HEADER = 'x-sb-user';
export const DEVICE_HEADER = 'x-sb-device';

/** Conversations per `changes` page. */
const RESUME_PAGE = 500;
/**
 * Acked cursors are written at most this long after the ack, and whenever a socket closes. A crash
 * or eviction re-sends at most that much, which devices drop by (conv, seq). Every write is a
 * storage commit: with a thousand users' objects acking on one edge machine, one per object per
 * second would be a thousand commits a second.
 */
const CURSOR_FLUSH_MS = 10_000;
/** Acks are reported to ConversationDOs as delivered positions this long after they arrive. */
const DELIVERED_REPORT_MS = 1000;

/**
 * One per user: holds every device socket of that user through the hibernation API, answers
 * their frames, pushes deliveries from the region to the user's live devices and retransmits
 * what they do not ack (DeliveryTracker). The worker has already verified the token; the user
 * and device arrive in trusted headers.
 */
export class SessionDO extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly delivery: DeliveryTracker;
  /** Per device, the tail of its chain of `send` frames: a device's messages are sequenced in the order it sent them. */
  private readonly sendChains = new Map<string, Promise<void>>();
  /** The alarm as last read or set (undefined: not known yet); saves a storage read per push. */
  private alarmAt: number | null | undefined = undefined;
  /** Pending write of acked cursors (acks are flushed together, within CURSOR_FLUSH_MS). */
  private cursorFlush: ReturnType<typeof setTimeout> | null = null;
  private reportTimer: ReturnType<typeof setTimeout> | null = null;
  /**
   * Retransmits run on a memory timer: the in-flight window they serve is memory only (a timer
   * keeps the object from hibernating while anything is in flight), and a storage alarm per push
   * would cost a commit.
   */
  private retransmitTimer: ReturnType<typeof setTimeout> | null = null;
  private retransmitAt = Infinity;
  /** Heartbeats batched to the region, connects/disconnects, watches (presence-relay.ts). */
  private readonly presenceRelay: PresenceRelay;
  private readonly typingLimiter = new TypingLimiter();
  /** Delivered positions for ConversationDOs, sent with each cursor flush (delivered-reports.ts). */
  private readonly deliveredReports = new DeliveredReports();
  /** This object's user, once a socket told it (one SessionDO per user). */
  private user: string | null = null;
  /** The ConversationDOs this user's devices talk to. */
  private readonly conversations: StubCache<DurableObjectStub<ConversationDO>>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const cfg = config(env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    this.delivery = new DeliveryTracker(this.sql, { window: cfg.deliveryWindow, retransmitMs: cfg.retransmitMs, maxRetransmitMs: 30_000, maxAttempts: 6 });
    this.presenceRelay = new PresenceRelay(this.sql, () => config(env));
    this.conversations = new StubCache((conv) => env.CONVERSATIONS.get(env.CONVERSATIONS.idFromName(conv)));
  }

  override async fetch(request: Request): Promise<Response> {
    const user = request.headers.get(USER_HEADER);
    const device = request.headers.get(DEVICE_HEADER);
    if (!user || !device) return new Response('missing principal', { status: 400 });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    // A device has one live socket: a new connection replaces the old one.
    for (const old of this.ctx.getWebSockets(device)) old.close(CLOSE_CODES.replaced.code, CLOSE_CODES.replaced.reason);
    this.delivery.forget(device);
    this.ctx.acceptWebSocket(server, [device]);
    server.serializeAttachment({ user, device, connectedAt: Date.now() } satisfies Attachment);
    send(server, { t: 'hello', user, dev: device, v: 1 });
    await this.updateRoutes([{ op: 'up', user, device, edge: config(this.env).edgeUrl }]);
    this.setKv('route_refresh_at', String(Date.now() + config(this.env).routeRefreshSeconds * 1000));
    await this.presenceRelay.connected(user, device);
    await this.armAlarm();
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const who = ws.deserializeAttachment() as Attachment | null;
    if (!who) return ws.close(CLOSE_CODES.internal.code, 'lost session state');
    this.user = who.user;
    // Any frame, even a bad one, shows the device is alive: a heartbeat.
    this.presenceRelay.beat(who.device);
    const decoded = decodeClientFrame(message);
    if (!decoded.ok) return sendError(ws, decoded.rid, decoded.error);
    const frame = decoded.frame;
    const run = async () => {
      try {
        await this.handle(ws, who, frame);
      } catch (err) {
        if (err instanceof ProtocolError) return sendError(ws, frame.rid, err);
        // A failed call may have broken the stub: the next frame gets a new one.
        if ('conv' in frame) this.conversations.drop(frame.conv);
        log('error', 'frame handler failed', { user: who.user, device: who.device, t: frame.t, ...errorFields(err) });
        sendError(ws, frame.rid, new ProtocolError('internal'));
      }
    };
    if (frame.t !== 'send') return run();
    // `run` never rejects, and even if it did the chain must go on: a rejected link would wedge
    // every later send of this device.
    const next = (this.sendChains.get(who.device) ?? Promise.resolve()).catch(() => {}).then(run);
    this.sendChains.set(who.device, next);
    await next;
    if (this.sendChains.get(who.device) === next) this.sendChains.delete(who.device);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // Complete the closing handshake; the client otherwise waits out its close timeout.
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
    await this.socketGone(ws, code);
  }

  override async webSocketError(ws: WebSocket, err: unknown): Promise<void> {
    log('warn', 'socket error', errorFields(err));
    await this.socketGone(ws, CLOSE_CODES.internal.code);
  }

  /**
   * Region or live path → devices: each delivery goes to every live socket of this user but
   * `skipDevice`, once (a copy already in flight or acked is skipped), and stays in flight until
   * that device acks it. A device past its window is told to resume. `devices`: those online
   * (the skipped one included), each of which has every message of this call now.
   */
  async deliver(deliveries: Delivery[]): Promise<{ sockets: number; devices: string[] }> {
    let sockets = 0;
    const now = Date.now();
    const live = this.liveSockets();
    const devices = [...live.keys()];
    let tracked = false;
    for (const d of deliveries) {
      const text = JSON.stringify(d.msg);
      for (const [device, ws] of live) {
        if (device === d.skipDevice) continue;
        const verdict = this.delivery.track(device, d.msg, now);
        if (verdict === 'acked' || verdict === 'inflight') continue;
        tracked = true;
        if (verdict === 'lagging') {
          this.dropDevice(device, ws, 'lagging');
          live.delete(device);
          continue;
        }
        try {
          ws.send(text);
          sockets++;
        } catch {
          // Closing under us: the device resumes on reconnect.
          this.delivery.forget(device);
        }
      }
    }
    if (tracked) this.scheduleRetransmit();
    return { sockets, devices };
  }

  private scheduleRetransmit(): void {
    const due = this.delivery.nextDue();
    if (due === null || due >= this.retransmitAt) return;
    if (this.retransmitTimer) clearTimeout(this.retransmitTimer);
    this.retransmitAt = due;
    this.retransmitTimer = setTimeout(() => this.retransmit(), Math.max(0, due - Date.now()));
  }

  /** Sends again what is due, closes devices that stopped acking, and waits for the next due. */
  private retransmit(): void {
    this.retransmitTimer = null;
    this.retransmitAt = Infinity;
    const live = this.liveSockets();
    const { resend, stalled } = this.delivery.due(Date.now());
    for (const device of stalled) {
      const ws = live.get(device);
      if (ws) this.dropDevice(device, ws, 'stalled');
    }
    for (const r of resend) {
      const ws = live.get(r.device);
      if (!ws) {
        this.delivery.forget(r.device);
        continue;
      }
      try {
        ws.send(JSON.stringify(r.msg));
      } catch {
        this.delivery.forget(r.device);
      }
    }
    this.scheduleRetransmit();
  }

  /** Keeps the region's routes and presence fresh while any socket is open; writes cursors. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const cfg = config(this.env);
    const now = Date.now();
    this.flushCursors();
    const live = this.liveSockets();
    if (now >= Number(this.kv('route_refresh_at') ?? '0') && live.size > 0) {
      const ops: RouteOp[] = [...live.values()].flatMap((ws) => {
        const who = ws.deserializeAttachment() as Attachment | null;
        return who ? [{ op: 'up' as const, user: who.user, device: who.device, edge: cfg.edgeUrl }] : [];
      });
      await this.updateRoutes(ops);
      this.setKv('route_refresh_at', String(now + cfg.routeRefreshSeconds * 1000));
    }
    await this.presenceRelay.flush(
      [...live.values()].flatMap((ws) => {
        const who = ws.deserializeAttachment() as Attachment | null;
        return who ? [{ user: who.user, device: who.device }] : [];
      }),
      now,
    );
    await this.armAlarm();
  }

  // ---- presence and typing (presence-relay.ts, typing.ts) ----------------------------------

  /** Region → watching devices of this user: each event to the devices it names, if live. */
  async presence(events: PresenceEvent[]): Promise<{ sockets: number }> {
    const live = this.liveSockets();
    let sockets = 0;
    for (const e of events) {
      const text = JSON.stringify({ t: 'presence', user: e.user, status: e.status, last_seen: e.last_seen });
      for (const device of e.devices) {
        const ws = live.get(device);
        if (!ws) continue;
        try {
          ws.send(text);
          sockets++;
        } catch {
          // Closing: its watches end with it.
        }
      }
    }
    return { sockets };
  }

  /** ConversationDO → this user's live devices: `user` is typing in `conv`. */
  async typing(input: { conv: string; user: string }): Promise<{ sockets: number }> {
    let sockets = 0;
    for (const ws of this.liveSockets().values()) if (send(ws, { t: 'typing', conv: input.conv, user: input.user })) sockets++;
    return { sockets };
  }

  /** ConversationDO → this user's live devices (but `skipDevice`): positions that moved (receipts.ts). */
  async receipts(events: { conv: string; user: string; delivered?: number; read?: number }[], skipDevice?: string): Promise<{ sockets: number }> {
    let sockets = 0;
    for (const [device, ws] of this.liveSockets()) {
      if (device === skipDevice) continue;
      for (const e of events) {
        if (e.delivered !== undefined && send(ws, { t: 'delivered', conv: e.conv, user: e.user, seq: e.delivered })) sockets++;
        if (e.read !== undefined && send(ws, { t: 'read', conv: e.conv, user: e.user, seq: e.read })) sockets++;
      }
    }
    return { sockets };
  }

  private async handlePresenceFrame(ws: WebSocket, who: Attachment, frame: Extract<ClientFrame, { t: 'watch' | 'unwatch' | 'typing' }>): Promise<void> {
    if (frame.t === 'typing') {
      if (!this.typingLimiter.allow(who.device, frame.conv)) return;
      const r = await this.conversation(frame.conv).typing({ user: who.user });
      if (!r.ok) throw new ProtocolError(r.code, r.message);
      return;
    }
    const users = await this.presenceRelay.watch(
      frame.t === 'watch' ? { user: who.user, device: who.device, watch: frame.users } : { user: who.user, device: who.device, unwatch: frame.users },
    );
    send(ws, { t: 'watching', rid: frame.rid, users });
  }

  // ---- frames -------------------------------------------------------------------------------

  private async handle(ws: WebSocket, who: Attachment, frame: ClientFrame): Promise<void> {
    switch (frame.t) {
      case 'ping':
        send(ws, { t: 'pong', rid: frame.rid, ts: Date.now() });
        return;
      case 'send': {
        const r = await this.conversation(frame.conv).send({ from: who.user, dev: who.device, cmid: frame.cmid, body: frame.body });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        send(ws, { t: 'sent', rid: frame.rid, conv: frame.conv, cmid: frame.cmid, seq: r.seq, ts: r.ts });
        return;
      }
      case 'sync': {
        const r = await this.conversation(frame.conv).sync({ user: who.user, after: frame.after, limit: frame.limit });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        send(ws, { t: 'msgs', rid: frame.rid, conv: frame.conv, msgs: r.msgs, more: r.more });
        return;
      }
      case 'history': {
        const r = await this.conversation(frame.conv).history({ user: who.user, before: frame.before, limit: frame.limit });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        send(ws, { t: 'msgs', rid: frame.rid, conv: frame.conv, msgs: r.msgs, more: r.more });
        return;
      }
      case 'ack':
        // Cumulative, and a cursor only moves forward; written with the other acks of the next second.
        this.delivery.ack(who.device, frame.conv, frame.seq);
        this.deliveredReports.note(frame.conv, frame.seq);
        this.reportTimer ??= setTimeout(() => this.reportDelivered(), DELIVERED_REPORT_MS);
        if (this.delivery.needsFlush && !this.cursorFlush) this.cursorFlush = setTimeout(() => this.flushCursors(), CURSOR_FLUSH_MS);
        return;
      case 'resume': {
        let page: ConversationsResponse;
        try {
          page = await callRegion<ConversationsResponse>(config(this.env), '/internal/conversations', { user: who.user, after: frame.after, limit: RESUME_PAGE });
        } catch (err) {
          log('warn', 'resume: region unavailable', { user: who.user, ...errorFields(err) });
          throw new ProtocolError('unavailable', 'conversation list unavailable; retry later');
        }
        const acked = this.delivery.cursors(who.device, page.convs.map((c) => c.conv));
        const convs = page.convs
          .map((c) => ({ conv: c.conv, last: c.last, acked: acked.get(c.conv) ?? 0 }))
          .filter((c) => c.last > c.acked);
        send(ws, { t: 'changes', rid: frame.rid, convs, ...(page.next ? { next: page.next } : {}) });
        return;
      }
      case 'read': {
        const r = await this.conversation(frame.conv).receipt({ user: who.user, device: who.device, read: frame.seq });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        return;
      }
      case 'watch':
      case 'unwatch':
      case 'typing':
        return this.handlePresenceFrame(ws, who, frame);
    }
  }

  private conversation(conv: string) {
    return this.conversations.get(conv);
  }

  /** Live sockets by device. */
  private liveSockets(): Map<string, WebSocket> {
    const out = new Map<string, WebSocket>();
    for (const ws of this.ctx.getWebSockets()) {
      const who = ws.deserializeAttachment() as Attachment | null;
      if (who && ws.readyState === WebSocket.OPEN) out.set(who.device, ws);
    }
    return out;
  }

  private dropDevice(device: string, ws: WebSocket, why: 'lagging' | 'stalled'): void {
    log('warn', `device ${why}; closing it so it resumes`, { device, inflight: this.delivery.inflightCount(device) });
    this.delivery.forget(device);
    try {
      ws.close(CLOSE_CODES[why].code, CLOSE_CODES[why].reason);
    } catch {
      // Already closing.
    }
  }

  private async socketGone(ws: WebSocket, code: number): Promise<void> {
    const who = ws.deserializeAttachment() as Attachment | null;
    if (!who) return;
    // A replaced socket's device is still online through its new socket.
    const stillLive = this.ctx.getWebSockets(who.device).some((s) => s !== ws && s.readyState === WebSocket.OPEN);
    log('info', 'socket closed', { user: who.user, device: who.device, code, stillLive });
    if (stillLive) return;
    this.flushCursors();
    this.delivery.forget(who.device);
    await this.updateRoutes([{ op: 'down', user: who.user, device: who.device, edge: config(this.env).edgeUrl }]);
    await this.presenceRelay.disconnected(who.user, who.device);
  }

  /**
   * Soft state: failures are retried by the refresh alarm, and devices resume on reconnect.
   * A changed routes epoch means the region lost its routes, so pushes since then may have found
   * no route: every live device is told to resync.
   */
  private async updateRoutes(ops: RouteOp[]): Promise<void> {
    let epoch: string | undefined;
    try {
      epoch = (await callRegion<{ epoch?: string }>(config(this.env), '/internal/routes', { ops })).epoch;
    } catch (err) {
      log('warn', 'route update failed', { ops: ops.length, ...errorFields(err) });
      return;
    }
    if (!epoch) return;
    const previous = this.kv('routes_epoch');
    this.setKv('routes_epoch', epoch);
    if (previous === null || previous === epoch) return;
    const live = this.liveSockets();
    log('info', 'routes epoch changed; telling devices to resync', { devices: live.size });
    for (const ws of live.values()) send(ws, { t: 'resync' });
  }

  /** One alarm serves the route refresh and the presence flush (retransmits have their own timer). */
  private async armAlarm(): Promise<void> {
    const refresh = this.ctx.getWebSockets().length > 0 ? Number(this.kv('route_refresh_at') ?? '0') : null;
    const presenceDue = this.ctx.getWebSockets().length > 0 ? this.presenceRelay.due() : null;
    const next = Math.min(refresh ?? Infinity, presenceDue ?? Infinity);
    if (next === Infinity) return;
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm();
    if (this.alarmAt === null || this.alarmAt > next) {
      this.alarmAt = Math.max(next, Date.now());
      await this.ctx.storage.setAlarm(this.alarmAt);
    }
  }

  /** Writes the acked cursors that moved (one commit for all of them), and reports them as delivered. */
  private flushCursors(): void {
    if (this.cursorFlush) clearTimeout(this.cursorFlush);
    this.cursorFlush = null;
    if (this.delivery.needsFlush) this.delivery.flush();
    this.reportDelivered();
  }

  private reportDelivered(): void {
    if (this.reportTimer) clearTimeout(this.reportTimer);
    this.reportTimer = null;
    const user = this.user;
    if (!user) return;
    for (const [conv, seq] of this.deliveredReports.take()) {
      this.conversation(conv)
        .receipt({ user, delivered: seq })
        .then((r) => {
          if (r.ok) this.deliveredReports.answered(conv, r.reportEveryMs);
          else log('warn', 'delivered report refused', { conv, code: r.code });
        })
        .catch((err: unknown) => {
          this.deliveredReports.failed(conv, seq);
          log('warn', 'delivered report failed', { conv, ...errorFields(err) });
        });
    }
  }

  private kv(key: string): string | null {
    const row = this.sql.exec<{ value: string }>('SELECT value FROM kv WHERE key = ?', key).toArray()[0];
    return row ? row.value : null;
  }

  private setKv(key: string, value: string): void {
    this.sql.exec('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', key, value);
  }
}

/** Writes a frame; a socket that closed meanwhile is not an error (its device resumes on reconnect). */
function send(ws: WebSocket, frame: ServerFrame): boolean {
  try {
    ws.send(JSON.stringify(frame));
    return true;
  } catch {
    return false;
  }
}

function sendError(ws: WebSocket, rid: string | undefined, err: ProtocolError): void {
  send(ws, { t: 'error', ...(rid !== undefined ? { rid } : {}), code: err.code, message: err.message });
}
