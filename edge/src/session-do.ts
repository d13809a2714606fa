import { DurableObject } from 'cloudflare:workers';
import {
  CLOSE_CODES,
  ProtocolError,
  decodeClientFrame,
  type ClientFrame,
  type Delivery,
  type RouteOp,
  type ServerFrame,
} from '@switchboard/protocol';
import { config, type Env } from './env.ts';
import { errorFields, log } from './log.ts';
import { callRegion } from './region-client.ts';

/** What each hibernatable socket remembers across wake-ups. */
interface Attachment {
  user: string;
  device: string;
  connectedAt: number;
}

export const USER_HEADER = 'x-sb-user';
export const DEVICE_HEADER = 'x-sb-device';

/**
 * One per user: holds every device socket of that user through the hibernation API, answers
 * their frames, and pushes deliveries from the region to the user's live devices. The worker has
 * already verified the token; the user and device arrive in trusted headers.
 */
export class SessionDO extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /** Per device, the tail of its chain of `send` frames: a device's messages are sequenced in the order it sent them. */
  private readonly sendChains = new Map<string, Promise<void>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS cursors (
      device TEXT NOT NULL, conv TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (device, conv))`);
  }

  override async fetch(request: Request): Promise<Response> {
    const user = request.headers.get(USER_HEADER);
    const device = request.headers.get(DEVICE_HEADER);
    if (!user || !device) return new Response('missing principal', { status: 400 });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    // A device has one live socket: a new connection replaces the old one.
    for (const old of this.ctx.getWebSockets(device)) {
      old.close(CLOSE_CODES.replaced.code, CLOSE_CODES.replaced.reason);
    }
    this.ctx.acceptWebSocket(server, [device]);
    server.serializeAttachment({ user, device, connectedAt: Date.now() } satisfies Attachment);
    send(server, { t: 'hello', user, dev: device, v: 1 });
    await this.updateRoutes([{ op: 'up', user, device, edge: config(this.env).edgeUrl }]);
    await this.ensureRefreshAlarm();
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const who = ws.deserializeAttachment() as Attachment | null;
    if (!who) return ws.close(CLOSE_CODES.internal.code, 'lost session state');
    const decoded = decodeClientFrame(message);
    if (!decoded.ok) return sendError(ws, decoded.rid, decoded.error);
    const frame = decoded.frame;
    const run = async () => {
      try {
        await this.handle(ws, who, frame);
      } catch (err) {
        if (err instanceof ProtocolError) return sendError(ws, frame.rid, err);
        log('error', 'frame handler failed', { user: who.user, device: who.device, t: frame.t, ...errorFields(err) });
        sendError(ws, frame.rid, new ProtocolError('internal'));
      }
    };
    if (frame.t !== 'send') return run();
    const next = (this.sendChains.get(who.device) ?? Promise.resolve()).then(run);
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

  /** Region → devices: each delivery goes to every live socket of this user but `skipDevice`. */
  async deliver(deliveries: Delivery[]): Promise<{ sockets: number }> {
    let sockets = 0;
    const live = this.ctx.getWebSockets();
    for (const d of deliveries) {
      const text = JSON.stringify(d.msg);
      for (const ws of live) {
        const who = ws.deserializeAttachment() as Attachment | null;
        if (!who || who.device === d.skipDevice) continue;
        try {
          ws.send(text);
          sockets++;
        } catch {
          // A socket closing under us: its device catches up by sync on reconnect.
        }
      }
    }
    return { sockets };
  }

  /** Keeps the region's routes for live devices fresh while any socket is open. */
  override async alarm(): Promise<void> {
    const cfg = config(this.env);
    const ops: RouteOp[] = [];
    for (const ws of this.ctx.getWebSockets()) {
      const who = ws.deserializeAttachment() as Attachment | null;
      if (who) ops.push({ op: 'up', user: who.user, device: who.device, edge: cfg.edgeUrl });
    }
    if (ops.length === 0) return;
    await this.updateRoutes(ops);
    await this.ctx.storage.setAlarm(Date.now() + cfg.routeRefreshSeconds * 1000);
  }

  // ---- frames -------------------------------------------------------------------------------

  private async handle(ws: WebSocket, who: Attachment, frame: ClientFrame): Promise<void> {
    switch (frame.t) {
      case 'ping':
        return send(ws, { t: 'pong', rid: frame.rid, ts: Date.now() });
      case 'send': {
        const r = await this.conversation(frame.conv).send({ from: who.user, dev: who.device, cmid: frame.cmid, body: frame.body });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        return send(ws, { t: 'sent', rid: frame.rid, conv: frame.conv, cmid: frame.cmid, seq: r.seq, ts: r.ts });
      }
      case 'sync': {
        const r = await this.conversation(frame.conv).sync({ user: who.user, after: frame.after, limit: frame.limit });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        return send(ws, { t: 'msgs', rid: frame.rid, conv: frame.conv, msgs: r.msgs, more: r.more });
      }
      case 'history': {
        const r = await this.conversation(frame.conv).history({ user: who.user, before: frame.before, limit: frame.limit });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        return send(ws, { t: 'msgs', rid: frame.rid, conv: frame.conv, msgs: r.msgs, more: r.more });
      }
      case 'ack': {
        // Cumulative: a cursor only moves forward.
        this.sql.exec(
          `INSERT INTO cursors (device, conv, seq) VALUES (?, ?, ?)
           ON CONFLICT(device, conv) DO UPDATE SET seq = MAX(seq, excluded.seq)`,
          who.device,
          frame.conv,
          frame.seq,
        );
        return;
      }
    }
  }

  private conversation(conv: string) {
    return this.env.CONVERSATIONS.get(this.env.CONVERSATIONS.idFromName(conv));
  }

  private async socketGone(ws: WebSocket, code: number): Promise<void> {
    const who = ws.deserializeAttachment() as Attachment | null;
    if (!who) return;
    // A replaced socket's device is still online through its new socket.
    const stillLive = this.ctx.getWebSockets(who.device).some((s) => s !== ws && s.readyState === WebSocket.OPEN);
    log('info', 'socket closed', { user: who.user, device: who.device, code, stillLive });
    if (!stillLive) await this.updateRoutes([{ op: 'down', user: who.user, device: who.device, edge: config(this.env).edgeUrl }]);
  }

  private async updateRoutes(ops: RouteOp[]): Promise<void> {
    try {
      await callRegion(config(this.env), '/internal/routes', { ops });
    } catch (err) {
      // Routes are soft state: the refresh alarm retries, and devices sync on reconnect.
      log('warn', 'route update failed', { ops: ops.length, ...errorFields(err) });
    }
  }

  private async ensureRefreshAlarm(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(Date.now() + config(this.env).routeRefreshSeconds * 1000);
    }
  }
}

function send(ws: WebSocket, frame: ServerFrame): void {
  ws.send(JSON.stringify(frame));
}

function sendError(ws: WebSocket, rid: string | undefined, err: ProtocolError): void {
  send(ws, { t: 'error', ...(rid !== undefined ? { rid } : {}), code: err.code, message: err.message });
}
