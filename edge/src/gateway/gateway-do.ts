import { DurableObject } from 'cloudflare:workers';
import {
  CLOSE_CODES,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  ProtocolError,
  decodeClientFrame,
  restartReason,
  type ClientFrame,
  type ConversationsPage,
  type ConversationsPageRequest,
  type ConversationsResponse,
  type PresenceEvent,
  type WatchResponse,
} from '@switchboard/protocol';
import { config, type EdgeConfig, type Env } from '../config.ts';
import { callRegion } from '../internal/region-client.ts';
import { EdgeTracer, traceparent } from '../tracing/tracing.ts';
import { GatewayLimits, frameSpends, type LimitSpend, type SpendResult } from '../limits/gateway-limits.ts';
import { RateLimited, rateLimitedResponse } from '../limits/refusal.ts';
import { FloodGuard } from '../limits/flood-guard.ts';
import { errorFields, log } from '../log.ts';
import { AnalyticsFlusher } from '../metrics/analytics.ts';
import { EdgeMetrics, labels, type EdgeSnapshot } from '../metrics/edge-metrics.ts';
import { StubCache } from '../stub-cache.ts';
import type { DeliverResult, GatewayBatch, GatewayRpc, ReceiptEvent, WireMsg } from './api.ts';
import { Batcher } from './batcher.ts';
import { Conn, Connections, type Attachment } from './connections.ts';
import { DeliveredReports } from './delivered-reports.ts';
import { DeliveryTracker } from './delivery.ts';
import { Orphans } from './orphans.ts';
import { RegionLinks } from './region-links.ts';
import { relayPresence, relayReceipts, relayTyping, send, write } from './relays.ts';
import { TypingLimiter } from './typing-limiter.ts';
import { TokenDeadlines, tokenTimesFrom } from './token-expiry.ts';
import { verifierFor } from '../auth/token-verifier.ts';

export const USER_HEADER = 'x-sb-user';
export const DEVICE_HEADER = 'x-sb-device';
export const GATEWAY_HEADER = 'x-sb-gateway';

/** Conversations per `changes` page. */
const RESUME_PAGE = 500;
/**
 * An idle gateway waits this long for more before a batched call to the region: a connect costs
 * that much more latency, and a connect storm far fewer region requests (each costs the region
 * about a millisecond of CPU, whatever it carries).
 */
const REGION_GATHER_MS = 10;
/** Devices' resume pages per region call at most (they are batched: after a reconnect storm, thousands arrive together). */
const RESUMES_PER_CALL = 40;
/**
 * Acked cursors reach the region at most this long after the ack (one call for every device of
 * the gateway). A gateway lost before that re-sends at most that much, which devices drop.
 */
const CURSOR_FLUSH_MS = 10_000;
/** A closed socket's cursors are written this soon, so a reconnect to another gateway finds them. */
const CLOSED_CURSOR_FLUSH_MS = 1000;
/** Acks are reported to ConversationDOs as delivered positions this long after they arrive. */
const DELIVERED_REPORT_MS = 1000;
/**
 * Per device: `send` frames queued or in progress, and other requests in progress. Past them a
 * frame is refused with `rate_limited` (the SDK retries it with backoff): a device that floods
 * can hold a bounded share of the gateway and of its conversations, never an unbounded queue.
 */
const MAX_QUEUED_SENDS = 32;
const MAX_REQUESTS = 32;
/** The retry-after of a refusal by those bounds: a device's queue moves on within about this long. */
const QUEUE_RETRY_MS = 200;
/** A new socket's `hello` waits this long at most for its route to reach the region. */
const HELLO_WAIT_MS = 2000;

/**
 * THE CONNECTION SERVER: one gateway holds the hibernatable sockets of every user whose id hashes
 * to it (`gw:<placement>:<k>`), with each device's in-flight window, retransmits, send order and
 * acked cursors in memory (DeliveryTracker). The Worker has verified the token; user and device
 * arrive in trusted headers and live in each socket's attachment, and every frame acts as that
 * socket's user and device only. Deliveries come once per gateway, not per recipient; route,
 * presence and cursor changes leave for the region batched per gateway (RegionOps). There is no
 * per-user object or database: what must be durable per device (cursors) is written to the
 * region in batches.
 */
export class GatewayDO extends DurableObject<Env> implements GatewayRpc {
  private readonly cfg: EdgeConfig;
  /** This gateway's name, from the first call or socket that tells it. */
  private name: string | null = null;
  private readonly conns: Connections;
  private readonly tracker: DeliveryTracker;
  private readonly orphans = new Orphans();
  private readonly ops: RegionLinks;
  private readonly reports = new DeliveredReports();
  private readonly typingLimiter = new TypingLimiter();
  /** Rate limits and quotas of this gateway's users, devices and the addresses hashed to it (limits/gateway-limits.ts). */
  private readonly limits: GatewayLimits;
  private readonly floods = new FloodGuard<Conn>();
  private readonly conversations;
  private readonly resumes: Batcher<ConversationsPageRequest, ConversationsPage>;
  /** The last connection id given (see `nextConn`). */
  private lastConn = 0;
  /**
   * Retransmits run on a memory timer: the in-flight window they serve is memory only (a timer
   * keeps the object awake while anything is in flight), and a storage alarm would cost a commit.
   */
  private retransmitTimer: ReturnType<typeof setTimeout> | null = null;
  private retransmitAt = Infinity;
  private cursorTimer: ReturnType<typeof setTimeout> | null = null;
  private cursorAt = Infinity;
  private reportTimer: ReturnType<typeof setTimeout> | null = null;
  /**
   * Per device (not per socket: a reconnect's resends must queue behind what its previous socket
   * still has in progress), its `send` frames queued or in progress, one after the other.
   */
  private readonly sendQueues = new Map<string, { tail: Promise<void>; size: number }>();
  /** Devices whose socket closed since the last cursor flush: their state goes after it. */
  private readonly closed = new Set<string>();
  /** The alarm as last read or set (undefined: not known yet). */
  private alarmAt: number | null | undefined = undefined;
  private routesRefreshedAt = 0;
  /** Each region's routes epoch as last answered (none yet in this instance's life: absent). */
  private readonly epochs = new Map<string, string>();
  /**
   * What this gateway counted, and what its conversations handed it (on their answers): served
   * to a scrape by `metrics`, written to Analytics Engine by the alarm in production. In memory:
   * a hibernation starts it again from zero, as a restart does a Prometheus counter.
   */
  private readonly counts = new EdgeMetrics();
  /** Spans of traced sends (tracing/tracing.ts; off without OTEL_EXPORTER_OTLP_ENDPOINT). */
  private readonly tracer: EdgeTracer;
  private flusher: AnalyticsFlusher | null = null;
  /** Sockets this gateway closed (counted then): their close event is not counted again. */
  private readonly closedHere = new WeakSet<WebSocket>();
  /** Sockets' token deadlines (reauth, 4001) and recent revocations (token-expiry.ts). */
  private readonly tokens: TokenDeadlines;
  /** When the alarm's periodic work (heartbeats, routes) is next due (ms); token deadlines may run the alarm sooner. */
  private periodicAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.cfg = config(env);
    this.tracer = new EdgeTracer(this.cfg, 'switchboard-edge');
    this.conns = new Connections(ctx);
    this.tokens = new TokenDeadlines({ noticeSeconds: this.cfg.authRefreshNoticeSeconds, graceSeconds: this.cfg.authRefreshGraceSeconds });
    this.limits = new GatewayLimits(this.cfg.limits, ctx.storage, this.counts);
    this.tracker = new DeliveryTracker({ window: this.cfg.deliveryWindow, windowBytes: this.cfg.deliveryWindowBytes, retransmitMs: this.cfg.retransmitMs, maxRetransmitMs: 30_000, maxAttempts: 6 });
    this.ops = new RegionLinks({
      regions: this.cfg.regions,
      internalSecret: this.cfg.internalSecret,
      gateway: () => this.name,
      call: (target) => (path, body) => callRegion(target, path, body, undefined, this.counts),
      gatherMs: REGION_GATHER_MS,
      onEpoch: (region, epoch) => this.onEpoch(region, epoch),
      onRecovered: (region) => {
        log('info', 'region answers again; re-registering routes there', { gw: this.name, region, sockets: this.conns.size });
        for (const c of this.conns.all()) this.ops.routeTo(region, this.routeUp(c));
      },
      onError: (region, path, count, err) => log('warn', 'region call failed', { gw: this.name, region, path, count, ...errorFields(err) }),
      onCursorsFailed: (cursors) => {
        this.tracker.restoreDirty(cursors);
        this.scheduleCursorFlush(CURSOR_FLUSH_MS);
      },
    });
    this.conversations = new StubCache((conv: string) => env.CONVERSATIONS.get(env.CONVERSATIONS.idFromName(conv)));
    this.resumes = new Batcher(async (pages) => (await callRegion<ConversationsResponse>(this.ops.near(), '/internal/conversations', { pages }, undefined, this.counts)).pages, RESUMES_PER_CALL, REGION_GATHER_MS);
    // The SDK's bare heartbeat is answered by the runtime without waking the object; its time is
    // read back as the device's last beat (getWebSocketAutoResponseTimestamp).
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  // ---- sockets ------------------------------------------------------------------------------

  /** A WebSocket upgrade for a verified user and device (headers set by the Worker). */
  override async fetch(request: Request): Promise<Response> {
    const user = request.headers.get(USER_HEADER);
    const device = request.headers.get(DEVICE_HEADER);
    const gw = request.headers.get(GATEWAY_HEADER);
    if (!user || !device || !gw) return new Response('missing principal', { status: 400 });
    this.name = gw;
    const refused = this.limits.check([{ limit: 'connect_user', key: user, cost: 1 }]);
    if (refused) return rateLimitedResponse(refused);
    const now = Date.now();
    const { exp, iat } = tokenTimesFrom(request);
    if (this.tokens.isRevoked(user, iat, now)) return new Response(JSON.stringify({ error: { code: 'unauthorized', message: 'token revoked' } }), { status: 401, headers: { 'content-type': 'application/json' } });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    const att: Attachment = { user, device, conn: this.nextConn(now), gw, at: now, exp, iat };
    this.ctx.acceptWebSocket(server, [user]);
    server.serializeAttachment(att);
    const c = new Conn(server, att, false);
    this.counts.inc('switchboard_edge_connects_total');
    const old = this.conns.add(c);
    // What the device had in flight on a socket this one replaces, or on one that closed a moment
    // ago, goes out again on this one (its resume may not list it yet: see Orphans).
    const carried = [...this.tracker.detach(c.key), ...this.orphans.take(c.key, now)];
    if (old) this.closeSocket(old, 'replaced');
    for (const msg of carried) this.track(c, msg, now);
    this.ops.route({ op: 'up', user, device, edge: this.cfg.edgeUrl, gw, conn: att.conn });
    this.ops.presenceOp({ op: 'connect', user, device });
    // `hello` once the route is at the region (with the batch it rides in): from then on every
    // message the region fans out finds this socket, even for a client that never resumes. A
    // region that does not answer holds it HELLO_WAIT_MS at most: the edge serves without it.
    void withinMs(this.ops.whenSent(), HELLO_WAIT_MS).then(() => this.open(c));
    await this.armAlarm(now, this.tokens.nextDue([c]));
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Says `hello`, then writes what was held for the socket meanwhile, in order. */
  private open(c: Conn): void {
    if (!this.conns.isCurrent(c)) return;
    c.ready = true;
    send(c.ws, { t: 'hello', user: c.att.user, dev: c.att.device, v: 1, ...(c.att.exp != null ? { exp: c.att.exp } : {}) });
    // Its token's notice: at once when already due, else by the alarm (armed for it now that the socket is ready).
    if (this.tokens.noticeOnOpen(c, Date.now())) send(c.ws, { t: 'reauth', exp: c.att.exp! });
    else if (c.att.exp != null) void this.armAlarm(Date.now(), this.tokens.nextDue([c])).catch((err: unknown) => log('warn', 'arming the alarm failed', { gw: this.name, ...errorFields(err) }));
    for (const msg of this.tracker.inflight(c.key)) write(c.ws, msg.text);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const c = this.conns.forSocket(ws);
    if (!c) {
      this.counts.inc('switchboard_edge_closes_total', labels(CLOSE_CODES.internal.code, 'server'));
      this.closedHere.add(ws);
      return ws.close(CLOSE_CODES.internal.code, 'lost session state');
    }
    // Closed as flooding: what it wrote meanwhile is dropped unread (flood-guard.ts).
    if (this.floods.flooding(c)) return;
    this.name ??= c.att.gw;
    // Any frame, even a bad one, shows the device is alive: a heartbeat.
    c.lastBeat = Date.now();
    const decoded = decodeClientFrame(message);
    this.counts.inc('switchboard_edge_frames_in_total', decoded.ok ? decoded.frame.t : 'invalid');
    if (!decoded.ok) return this.sendError(ws, decoded.rid, decoded.error);
    const frame = decoded.frame;
    // Rate limits, decided from memory before anything is called or written (limits/gateway-limits.ts).
    const spends = frameSpends(frame, c.att.user, c.key);
    switch (frame.t) {
      case 'ack':
        return this.onAck(c, frame.conv, frame.seq, frame.rid);
      case 'ping':
        send(ws, { t: 'pong', rid: frame.rid, ts: Date.now() });
        return;
      case 'send': {
        let q = this.sendQueues.get(c.key);
        if (q && q.size >= MAX_QUEUED_SENDS) return this.refuse(ws, frame.rid, new RateLimited('queue', QUEUE_RETRY_MS, `at most ${MAX_QUEUED_SENDS} sends may wait per device; retry shortly`));
        const limited = this.limits.check(spends);
        if (limited) return this.limited(c, frame.rid, limited);
        this.floods.passed(c);
        if (!q) this.sendQueues.set(c.key, (q = { tail: Promise.resolve(), size: 0 }));
        q.size++;
        // A device's messages are sequenced in the order it sent them, across its sockets; `run`
        // never rejects. With sends waiting behind, each first yields to the event loop: one
        // device's chain of sends (each a call, a commit, a delivery) otherwise runs back to back
        // without letting the runtime read other sockets, and a burst of 2,000 held another
        // user's ping for 0.6 s.
        const queue = q;
        const next = queue.tail.then(() => (queue.size > 1 ? yieldToIo() : undefined)).then(() => this.run(c, frame));
        queue.tail = next;
        await next;
        if (--queue.size === 0 && this.sendQueues.get(c.key) === queue) this.sendQueues.delete(c.key);
        return;
      }
      default: {
        if (c.requests >= MAX_REQUESTS) return this.refuse(ws, frame.rid, new RateLimited('queue', QUEUE_RETRY_MS, `at most ${MAX_REQUESTS} requests may be in progress per device; retry shortly`));
        const limited = spends.length > 0 ? this.limits.check(spends) : null;
        if (limited) return this.limited(c, frame.rid, limited);
        if (spends.length > 0) this.floods.passed(c);
        c.requests++;
        try {
          await this.run(c, frame);
        } finally {
          c.requests--;
        }
      }
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    if (!this.closedHere.has(ws)) this.counts.inc('switchboard_edge_closes_total', labels(code, 'client'));
    // Complete the closing handshake; the client otherwise waits out its close timeout.
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
    this.socketGone(ws, code);
  }

  override async webSocketError(ws: WebSocket, err: unknown): Promise<void> {
    log('warn', 'socket error', { gw: this.name, ...errorFields(err) });
    this.socketGone(ws, CLOSE_CODES.internal.code);
  }

  // ---- deliveries (live path and region fan-out) -------------------------------------------

  /**
   * Each message to every current socket of its recipients but their `skip` device, once: a copy
   * in flight or acked is skipped, and what is pushed stays in flight until acked. A device past
   * its window is closed and resumes. Synchronous from the first line to the answer, so `upTo`
   * covers exactly the sockets this call saw.
   */
  async deliver(gw: string, batch: GatewayBatch): Promise<DeliverResult> {
    this.name ??= gw;
    const now = Date.now();
    const missed = new Set<string>();
    const skipOnly = new Set<string>();
    let sockets = 0;
    for (const t of batch.to) {
      const devices = this.conns.of(t.user);
      if (!devices) {
        missed.add(t.user);
        continue;
      }
      const msg = batch.msgs[t.m]!;
      let others = false;
      for (const c of devices.values()) {
        if (c.att.device === t.skip || c.closing) continue;
        others = true;
        if (this.track(c, msg, now) === 'sent' && c.ready && write(c.ws, msg.text)) sockets++;
      }
      if (!others) (t.skip !== undefined && devices.has(t.skip) ? skipOnly : missed).add(t.user);
    }
    if (sockets > 0) this.counts.inc('switchboard_edge_deliveries_total', batch.from ?? 'live', sockets);
    return { upTo: this.upTo(now), missed: [...missed], skipOnly: [...skipOnly], sockets };
  }

  async typing(gw: string, input: { conv: string; user: string; to: string[] }): Promise<{ sockets: number }> {
    this.name ??= gw;
    return { sockets: relayTyping(this.conns, input) };
  }

  /** Each event to each recipient's sockets but its `skip` device (relays.ts). */
  async receipts(gw: string, events: ReceiptEvent[], to: { user: string; skip?: string }[]): Promise<{ sockets: number }> {
    this.name ??= gw;
    return { sockets: relayReceipts(this.conns, events, to) };
  }

  /**
   * The user's tokens issued before `before` (Unix seconds) were revoked: their sockets here that
   * such a token opened are closed with 4001, and for a while such a token's connect or refresh
   * is refused here even if an isolate's cache let it through.
   */
  async revokeTokens(gw: string, user: string, before: number): Promise<{ closed: number }> {
    this.name ??= gw;
    this.tokens.revoke(user, before, Date.now());
    let closed = 0;
    for (const c of [...(this.conns.of(user)?.values() ?? [])]) {
      if (c.closing || (c.att.iat != null && c.att.iat >= before)) continue;
      c.closing = true;
      this.closeSocket(c, 'unauthorized');
      closed++;
    }
    if (closed > 0) log('info', 'tokens revoked; sockets closed', { gw, user, closed });
    return { closed };
  }

  async sessions(gw: string, user: string): Promise<{ device: string; conn: number; since: number; ready: boolean }[]> {
    this.name ??= gw;
    return [...(this.conns.of(user)?.values() ?? [])].map((c) => ({ device: c.att.device, conn: c.att.conn, since: c.att.at, ready: c.ready }));
  }

  async disconnect(gw: string, input: { user: string; device?: string; reconnect: boolean }): Promise<{ closed: number }> {
    this.name ??= gw;
    let closed = 0;
    for (const c of [...(this.conns.of(input.user)?.values() ?? [])]) {
      if (c.closing || (input.device !== undefined && c.att.device !== input.device)) continue;
      c.closing = true;
      if (input.reconnect) this.closeForRestart(c, 0);
      else this.closeSocket(c, 'disconnected');
      closed++;
    }
    if (closed > 0) log('info', 'disconnected by an operator', { gw, user: input.user, device: input.device, closed, reconnect: input.reconnect });
    return { closed };
  }

  /** Closes a socket with 1012 and when to come back (counted here, so its close event is not counted again). */
  private closeForRestart(c: Conn, retryAfterMs: number): boolean {
    this.counts.inc('switchboard_edge_closes_total', labels(CLOSE_CODES.restart.code, 'server'));
    this.closedHere.add(c.ws);
    try {
      c.ws.close(CLOSE_CODES.restart.code, restartReason(retryAfterMs));
      return true;
    } catch {
      return false; // Already closing.
    }
  }

  async metrics(gw: string): Promise<EdgeSnapshot> {
    this.name ??= gw;
    this.counts.set('switchboard_edge_connections', labels(gw), this.conns.size);
    return this.counts.snapshot();
  }

  async drain(gw: string, input: { spreadMs: number }): Promise<{ sockets: number }> {
    this.name ??= gw;
    let sockets = 0;
    for (const c of [...this.conns.all()]) {
      c.closing = true;
      if (this.closeForRestart(c, Math.floor(Math.random() * Math.max(0, input.spreadMs)))) sockets++;
    }
    if (sockets > 0) log('info', 'gateway drained for a restart', { gw, sockets, spreadMs: input.spreadMs });
    return { sockets };
  }

  async presence(gw: string, events: PresenceEvent[]): Promise<{ sockets: number }> {
    this.name ??= gw;
    return { sockets: relayPresence(this.conns, events) };
  }

  // ---- frames -------------------------------------------------------------------------------

  /** Answers one frame; never rejects (a failure is the frame's typed error). */
  private async run(c: Conn, frame: ClientFrame): Promise<void> {
    try {
      await this.handle(c, frame);
    } catch (err) {
      if (err instanceof ProtocolError) return this.sendError(c.ws, frame.rid, err);
      // A failed call may have broken the stub: the next frame gets a new one.
      if ('conv' in frame) this.conversations.drop(frame.conv);
      log('error', 'frame handler failed', { gw: this.name, user: c.att.user, device: c.att.device, t: frame.t, ...errorFields(err) });
      this.sendError(c.ws, frame.rid, new ProtocolError('internal'));
    }
  }

  private async handle(c: Conn, frame: ClientFrame): Promise<void> {
    const { user, device, gw } = c.att;
    switch (frame.t) {
      case 'send': {
        const span = this.tracer.root();
        const r = await this.conversations.get(frame.conv).send({ from: user, dev: device, gw, cmid: frame.cmid, body: frame.body, ...(span ? { trace: traceparent(span) } : {}) });
        if (r.metrics) this.counts.merge(r.metrics);
        this.tracer.end(span, 'send', { 'switchboard.conv': frame.conv, ...(r.ok ? { 'switchboard.seq': r.seq } : {}) }, r.ok ? undefined : r.code);
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        this.tracker.know(c.key, c.att, frame.conv);
        send(c.ws, { t: 'sent', rid: frame.rid, conv: frame.conv, cmid: frame.cmid, seq: r.seq, ts: r.ts });
        return;
      }
      case 'sync': {
        const r = await this.conversations.get(frame.conv).sync({ user, gw, after: frame.after, limit: frame.limit });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        this.tracker.know(c.key, c.att, frame.conv);
        send(c.ws, { t: 'msgs', rid: frame.rid, conv: frame.conv, msgs: r.msgs, more: r.more });
        return;
      }
      case 'history': {
        const r = await this.conversations.get(frame.conv).history({ user, gw, before: frame.before, limit: frame.limit });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        this.tracker.know(c.key, c.att, frame.conv);
        send(c.ws, { t: 'msgs', rid: frame.rid, conv: frame.conv, msgs: r.msgs, more: r.more });
        return;
      }
      case 'resume':
        return this.resume(c, frame.rid, frame.after);
      case 'read': {
        const r = await this.conversations.get(frame.conv).receipt({ user, device, gw, read: frame.seq });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        this.tracker.know(c.key, c.att, frame.conv);
        return;
      }
      case 'watch':
      case 'unwatch': {
        // This device's `connect` (which ends the previous connection's watches) reached the
        // region before its `hello`, so before this frame.
        const lists = frame.t === 'watch' ? { watch: frame.users } : { unwatch: frame.users };
        let r: WatchResponse;
        try {
          r = await callRegion<WatchResponse>(this.ops.near(), '/internal/watch', { user, device, edge: this.cfg.edgeUrl, gw, ...lists }, undefined, this.counts);
        } catch (err) {
          log('warn', 'watch: region unavailable', { user, ...errorFields(err) });
          throw new ProtocolError('unavailable', 'presence is unavailable; retry later');
        }
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        send(c.ws, { t: 'watching', rid: frame.rid, users: r.users });
        return;
      }
      case 'typing': {
        if (!this.typingLimiter.allow(c.key, frame.conv)) return;
        const r = await this.conversations.get(frame.conv).typing({ user, gw });
        if (!r.ok) throw new ProtocolError(r.code, r.message);
        return;
      }
      case 'refresh':
        return this.refresh(c, frame.rid, frame.token);
      case 'ack':
      case 'ping':
        return; // answered in webSocketMessage
    }
  }

  /** A new token for a live socket: same user and device, not revoked; the socket then lives until its `exp`. */
  private async refresh(c: Conn, rid: string | undefined, token: string): Promise<void> {
    const v = await verifierFor(this.env).verify(token);
    if (v.user !== c.att.user || v.device !== c.att.device) throw new ProtocolError('unauthorized', 'the token names another user or device');
    if (this.tokens.isRevoked(v.user, v.iat, Date.now())) throw new ProtocolError('unauthorized', 'token revoked');
    if (c.closing) return;
    c.att.exp = v.exp;
    c.att.iat = v.iat;
    c.ws.serializeAttachment(c.att);
    // Its deadline only moved later: the alarm, if set for the old one, finds nothing due and re-arms.
    send(c.ws, { t: 'refreshed', rid, exp: v.exp });
  }

  /**
   * A page of the user's conversations with messages this device has not acked. The device's
   * route reached the region before its `hello`, so before this read: any message stored after
   * the read is fanned out to this socket, and any stored before it is listed here (see
   * PROTOCOL.md, "Delivery and catch-up").
   */
  private async resume(c: Conn, rid: string | undefined, after: string): Promise<void> {
    const { user, device } = c.att;
    let page: ConversationsPage;
    try {
      page = await this.resumes.call({ user, device, after, limit: RESUME_PAGE });
    } catch (err) {
      log('warn', 'resume: region unavailable', { user, ...errorFields(err) });
      throw new ProtocolError('unavailable', 'conversation list unavailable; retry later');
    }
    const convs: { conv: string; last: number; acked: number; request?: true }[] = [];
    for (const p of page.convs) {
      this.tracker.seed(c.key, c.att, p.conv, p.acked);
      const acked = this.tracker.cursor(c.key, p.conv);
      if (p.last > acked) convs.push({ conv: p.conv, last: p.last, acked, ...(p.request ? { request: true as const } : {}) });
    }
    send(c.ws, { t: 'changes', rid, convs, ...(page.next ? { next: page.next } : {}) });
  }

  /** Cumulative; a cursor only moves forward. Written to the region, and reported as delivered, in batches. */
  private onAck(c: Conn, conv: string, seq: number, rid: string | undefined): void {
    const moved = this.tracker.ack(c.key, c.att, conv, seq);
    // Nothing of that conversation was pushed to this device, nor did it use it here: nothing is
    // written for it (an ack of a conversation it is not in costs nothing durable).
    if (moved === 'unknown') return this.sendError(c.ws, rid, new ProtocolError('not_member', 'no message of this conversation reached this device: sync or resume it first'));
    if (!moved) return;
    this.reports.note(conv, c.att.user, seq);
    this.reportTimer ??= setTimeout(() => this.reportDelivered(), DELIVERED_REPORT_MS);
    this.scheduleCursorFlush(CURSOR_FLUSH_MS);
  }

  // ---- retransmits, closes ------------------------------------------------------------------

  /** Puts a message in flight to a socket's device (the caller writes it); a full window closes the socket. */
  private track(c: Conn, msg: WireMsg, now: number): 'sent' | 'acked' | 'inflight' | 'lagging' {
    const verdict = this.tracker.track(c.key, c.att, msg, now);
    if (verdict === 'sent') this.scheduleRetransmit(now + this.cfg.retransmitMs);
    else if (verdict === 'lagging') this.dropDevice(c, 'lagging');
    return verdict;
  }

  private scheduleRetransmit(due: number | null): void {
    if (due === null || due >= this.retransmitAt) return;
    if (this.retransmitTimer) clearTimeout(this.retransmitTimer);
    this.retransmitAt = due;
    this.retransmitTimer = setTimeout(() => this.retransmit(), Math.max(0, due - Date.now()));
  }

  /** Sends again what is due, closes devices that stopped acking, and waits for the next due. */
  private retransmit(): void {
    this.retransmitTimer = null;
    this.retransmitAt = Infinity;
    const { resend, stalled } = this.tracker.due(Date.now());
    for (const s of stalled) {
      const c = this.conns.of(s.user)?.get(s.device);
      if (c) this.dropDevice(c, 'stalled');
    }
    for (const r of resend) {
      const c = this.conns.of(r.user)?.get(r.device);
      if (c && !c.ready) continue; // written after its hello
      if (c && write(c.ws, r.msg.text)) this.counts.inc('switchboard_edge_retransmits_total');
      else this.tracker.detach(r.key);
    }
    this.scheduleRetransmit(this.tracker.nextDue());
  }

  private dropDevice(c: Conn, why: 'lagging' | 'stalled'): void {
    log('warn', `device ${why}; closing it so it resumes`, { gw: this.name, user: c.att.user, device: c.att.device, inflight: this.tracker.inflightCount(c.key) });
    c.closing = true;
    this.tracker.detach(c.key);
    this.closeSocket(c, why);
  }

  /** Closes a socket with the code for `why`, counted as closed by the server. */
  private closeSocket(c: Conn, why: 'replaced' | 'lagging' | 'stalled' | 'unauthorized' | 'disconnected' | 'flooding'): void {
    this.counts.inc('switchboard_edge_closes_total', labels(CLOSE_CODES[why].code, 'server'));
    this.closedHere.add(c.ws);
    closeSocket(c, why);
  }

  /** Answers a frame with a typed error, counted by code. */
  private sendError(ws: WebSocket, rid: string | undefined, err: ProtocolError): void {
    this.counts.inc('switchboard_edge_errors_total', labels(err.code, 'frame'));
    sendError(ws, rid, err);
  }

  /** A refusal by a rate limit; a socket refused FLOOD_REFUSALS times in a row is closed as flooding. */
  private limited(c: Conn, rid: string | undefined, err: RateLimited): void {
    this.sendError(c.ws, rid, err);
    if (!this.floods.refused(c)) return;
    log('warn', 'device kept sending after rate_limited; closing it', { gw: this.name, user: c.att.user, device: c.att.device, limit: err.limit });
    c.closing = true;
    // Its user's connects are spent: coming straight back to flood again is refused (connect_user).
    this.limits.exhaust('connect_user', c.att.user);
    this.closeSocket(c, 'flooding');
  }

  /** A refusal by a device's bounds (not a LIMIT_TABLE limit, which counts its own), counted as such. */
  private refuse(ws: WebSocket, rid: string | undefined, err: RateLimited): void {
    this.counts.inc('switchboard_edge_rate_limited_total', err.limit);
    this.sendError(ws, rid, err);
  }

  /** A quota the Worker keeps on this gateway for one of its users or an address hashed to it (limits/quota.ts). */
  async spend(gw: string, spends: LimitSpend[]): Promise<SpendResult> {
    this.name ??= gw;
    return this.limits.spend(spends);
  }

  /** A socket closed: unless a newer one of its device replaced it, the device is gone from here. */
  private socketGone(ws: WebSocket, code: number): void {
    const c = this.conns.forSocket(ws);
    if (!c || !this.conns.remove(c)) return;
    const now = Date.now();
    const { user, device, gw, conn } = c.att;
    log('info', 'socket closed', { gw, user, device, code });
    this.orphans.put(c.key, this.tracker.detach(c.key), now);
    this.closed.add(c.key);
    this.ops.route({ op: 'down', user, device, edge: this.cfg.edgeUrl, gw, conn });
    this.ops.presenceOp({ op: 'down', user, device });
    this.scheduleCursorFlush(CLOSED_CURSOR_FLUSH_MS);
  }

  // ---- batched writes to the region and the conversations ----------------------------------

  private scheduleCursorFlush(ms: number): void {
    const at = Date.now() + ms;
    if (at >= this.cursorAt) return;
    if (this.cursorTimer) clearTimeout(this.cursorTimer);
    this.cursorAt = at;
    this.cursorTimer = setTimeout(() => this.flushCursors(), ms);
  }

  /** Moved cursors go to the region with the next batch; devices gone since the last flush are forgotten. */
  private flushCursors(): void {
    this.cursorTimer = null;
    this.cursorAt = Infinity;
    this.ops.writeCursors(this.tracker.takeDirty());
    for (const key of this.closed) {
      const [user, device] = key.split('\n') as [string, string];
      if (!this.conns.of(user)?.has(device)) this.tracker.release(key);
    }
    this.closed.clear();
  }

  /** One call per conversation with every user of this gateway whose devices acked further. */
  private reportDelivered(): void {
    this.reportTimer = null;
    const gw = this.name;
    if (!gw) return;
    const now = Date.now();
    for (const [conv, reports] of this.reports.take(now)) {
      this.conversations
        .get(conv)
        .delivered({ gw, reports })
        .then((r) => {
          if (r.metrics) this.counts.merge(r.metrics);
          if (r.ok) this.reports.answered(conv, r.reportEveryMs);
          else log('warn', 'delivered report refused', { gw, conv, code: r.code });
        })
        .catch((err: unknown) => {
          this.conversations.drop(conv);
          this.reports.failed(conv, reports);
          log('warn', 'delivered report failed', { gw, conv, ...errorFields(err) });
        });
    }
    // Conversations that asked for quiet report when their quiet ends.
    const quietEnd = this.reports.nextQuietEnd();
    if (quietEnd !== null) this.reportTimer = setTimeout(() => this.reportDelivered(), Math.max(DELIVERED_REPORT_MS, quietEnd - now));
  }

  /**
   * The periodic batch: every socket's heartbeat (its last frame, or the runtime's last answer to
   * its bare ping) each PRESENCE_FLUSH_SECONDS, and every socket's route each
   * ROUTE_REFRESH_SECONDS, in as few region calls as the limits allow. A storage alarm, so it
   * survives hibernation; it stops once no socket is left.
   */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = Date.now();
    const conns = [...this.conns.all()];
    if (conns.length === 0) return;
    this.name ??= conns[0]!.att.gw;
    this.runTokenDeadlines(conns, now);
    // Woken for a token deadline only: the heartbeats and routes wait for their time.
    if (now < this.periodicAt - 1000) return this.armAlarm(now);
    this.periodicAt = now + this.periodMs();
    if (now - this.routesRefreshedAt >= this.cfg.routeRefreshSeconds * 1000 - 1000) {
      this.routesRefreshedAt = now;
      for (const c of conns) this.ops.route(this.routeUp(c));
    }
    for (const c of conns) {
      const auto = this.ctx.getWebSocketAutoResponseTimestamp(c.ws)?.getTime() ?? 0;
      this.ops.presenceOp({ op: 'beat', user: c.att.user, device: c.att.device, age: Math.max(0, now - Math.max(c.lastBeat, auto)) });
    }
    this.orphans.sweep(now);
    await this.limits.sweep(now).catch((err: unknown) => log('warn', 'quota sweep failed', { gw: this.name, ...errorFields(err) }));
    this.flushMetrics(conns.length);
    await this.ops.flush();
    await this.armAlarm(Date.now());
  }

  /** Production: what was counted since the last alarm, to Analytics Engine (binding METRICS). */
  private flushMetrics(sockets: number): void {
    if (!this.env.METRICS || !this.name) return;
    this.counts.set('switchboard_edge_connections', labels(this.name), sockets);
    (this.flusher ??= new AnalyticsFlusher(this.env.METRICS, this.name)).flush(this.counts);
  }

  /** Asks sockets whose token nears its expiry for a new one; closes those past it and the grace (4001). */
  private runTokenDeadlines(conns: Conn[], now: number): void {
    const { notify, expire } = this.tokens.due(conns, now);
    for (const c of notify) send(c.ws, { t: 'reauth', exp: c.att.exp! });
    for (const c of expire) {
      log('info', 'token expired without a refresh; closing socket', { gw: this.name, user: c.att.user, device: c.att.device, exp: c.att.exp });
      c.closing = true;
      this.closeSocket(c, 'unauthorized');
    }
  }

  private periodMs(): number {
    return Math.min(this.cfg.presenceFlushSeconds, this.cfg.routeRefreshSeconds) * 1000;
  }

  /** Sets the alarm for the periodic work or the earliest token deadline (`due`: of every socket unless given). */
  private async armAlarm(now: number, due: number | null = this.tokens.nextDue(this.conns.all())): Promise<void> {
    const periodic = this.periodicAt > now ? this.periodicAt : now + this.periodMs();
    const next = Math.max(now, Math.min(periodic, due ?? Infinity));
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm();
    if (this.alarmAt !== null && this.alarmAt <= next) return;
    this.alarmAt = next;
    await this.ctx.storage.setAlarm(next);
  }

  /**
   * A changed routes epoch means the region lost its routes, so pushes since then may have found
   * no route: every socket's route goes up again and every device is told to resync.
   */
  private onEpoch(region: string, epoch: string): void {
    const previous = this.epochs.get(region);
    this.epochs.set(region, epoch);
    if (previous === undefined || previous === epoch) return;
    log('info', 'routes epoch changed; re-registering and telling devices to resync', { gw: this.name, region, sockets: this.conns.size });
    for (const c of this.conns.all()) {
      this.ops.routeTo(region, this.routeUp(c));
      send(c.ws, { t: 'resync' });
    }
  }

  private routeUp(c: Conn) {
    return { op: 'up' as const, user: c.att.user, device: c.att.device, edge: this.cfg.edgeUrl, gw: c.att.gw, conn: c.att.conn };
  }

  /**
   * Connection ids grow with every socket accepted, and start from the clock (ms × 1024) so they
   * keep growing across restarts and wake-ups of the gateway.
   */
  private nextConn(now: number): number {
    this.lastConn = Math.max(this.lastConn + 1, now * 1024);
    return this.lastConn;
  }

  /** Every socket accepted so far has an id up to this; every later one gets a larger id. */
  private upTo(now: number): number {
    return Math.max(this.lastConn, now * 1024 - 1);
  }
}

/** Resolves when `p` settles or after `ms`, whichever comes first; never rejects. */
function withinMs(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  return Promise.race([p.then(() => {}, () => {}), bound]).finally(() => timer !== null && clearTimeout(timer));
}

/** Resolves after the runtime has had a chance to read its sockets (a timer, not a microtask). */
function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function sendError(ws: WebSocket, rid: string | undefined, err: ProtocolError): void {
  const retry = err instanceof RateLimited ? { retryAfterMs: err.retryAfterMs } : {};
  send(ws, { t: 'error', ...(rid !== undefined ? { rid } : {}), code: err.code, message: err.message, ...retry });
}

function closeSocket(c: Conn, why: 'replaced' | 'lagging' | 'stalled' | 'unauthorized' | 'disconnected' | 'flooding'): void {
  try {
    c.ws.close(CLOSE_CODES[why].code, CLOSE_CODES[why].reason);
  } catch {
    // Already closing.
  }
}
