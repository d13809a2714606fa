import { Hono } from 'hono';
import type { ZodType, ZodTypeDef } from 'zod';
import {
  ConversationsRequest,
  GatewayBatchRequest,
  type GatewayBatchResponse,
  type PresenceOp,
  type ConversationsPage,
  type ConversationsPageRequest,
  CursorsRequest,
  EventsRequest,
  InboxRequest,
  LIMITS,
  ProtocolError,
  changesMembership,
  ReadRequest,
  RoutesRequest,
  parseJsonBody,
  type MessageEvent,
} from '@switchboard/protocol';
import { inboxPage } from './inbox.ts';
import { limiter } from './limiter.ts';
import { internalAuth } from './internal-auth.ts';
import { errorFields, type Logger } from './log.ts';
import { httpMetrics } from './metrics/http-metrics.ts';
import { RegionMetrics } from './metrics/region-metrics.ts';
import { registerPresenceApi } from './presence/presence-api.ts';
import { Contacts } from './presence/contacts.ts';
import { applyConsentChanges, applyEarlyRequests, forgetConversation, registerConsentApi } from './consent/consent-api.ts';
import type { PresenceService } from './presence/presence-service.ts';
import { TOPICS, type Queue } from './queue/queue.ts';
import { applyRouteOps, type Routes } from './routes/routes.ts';
import type { Storage } from './storage/storage.ts';
import { registerAdminApi } from './admin-api.ts';
import type { Tracing } from './tracing/tracing.ts';
import { registerKeysApi, type KeysApiDeps } from './keys/keys-api.ts';
import { registerPushApi, type PushApiDeps } from './push/push-api.ts';
import type { PushMetrics } from './push/push-metrics.ts';
import type { PushProvider, PushService } from './push/provider.ts';

export interface AppDeps {
  /** This region's name (REGION_NAME), reported by /healthz. */
  region?: string;
  storage: Storage;
  queue: Queue;
  routes: Routes;
  log: Logger;
  internalSecret: string;
  routeTtlMs: number;
  /** The process's metrics, served as /metrics (default: an instance of its own). */
  metrics?: RegionMetrics;
  /** Presence and watches (`/internal/presence`, `/internal/watch`); absent → those routes 404. */
  presence?: PresenceService;
  /** Push registrations and the workers' state (`/internal/push/*`, /healthz, /metrics); absent → those routes 404. */
  push?: Omit<PushApiDeps, 'storage'> & { metrics: PushMetrics; providers: PushProvider[] };
  /** The key directory's claim rate and clock (`/internal/keys/*`, always served; defaults: KEY_LIMITS, Date.now). */
  keys?: Omit<KeysApiDeps, 'directory'>;
  /** Spans of traced messages (`store`); default: off. */
  tracing?: Tracing;
}

type Env = { Variables: { rawBody: string } };

function parse<T>(text: string, schema: ZodType<T, ZodTypeDef, unknown>): T {
  if (text.length > LIMITS.maxInternalBodyBytes) throw new ProtocolError('too_large');
  return parseJsonBody(text, schema);
}

/** Each push service: which provider serves it and its state (`off` when none does). */
function pushHealth(providers: PushProvider[]): Record<PushService, { provider: string | null; status: string; detail?: string }> {
  const of = (s: PushService) => {
    const p = [...providers].reverse().find((x) => x.serves.includes(s));
    return p ? { provider: p.name, ...p.health() } : { provider: null, status: 'off', detail: 'not configured' };
  };
  return { apns: of('apns'), fcm: of('fcm') };
}

/** The region's HTTP surface: health, and the signed internal API the edge calls. */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const { storage, queue, routes, log } = deps;
  const metrics = deps.metrics ?? new RegionMetrics();
  const consent = { storage, log, contacts: deps.presence?.contacts ?? new Contacts(storage) };

  app.onError((err, c) => {
    if (err instanceof ProtocolError) return c.json({ error: { code: err.code, message: err.message } }, err.status as 400);
    log.error('request failed', { path: c.req.path, ...errorFields(err) });
    return c.json({ error: { code: 'unavailable', message: 'the region could not complete the request' } }, 503);
  });
  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route for ${c.req.method} ${c.req.path}` } }, 404));
  app.use('*', httpMetrics(metrics.http));

  app.get('/healthz', async (c) => {
    const checks = await Promise.allSettled([storage.ping(), routes.ping(), ...(deps.presence ? [deps.presence.ping()] : [])]);
    const ok = checks.every((r) => r.status === 'fulfilled');
    return c.json({ status: ok ? 'ok' : 'degraded', region: deps.region ?? 'primary', storage: storage.name, queue: queue.name, routes: routes.name, ...(deps.push ? { push: pushHealth(deps.push.providers) } : {}) }, ok ? 200 : 503);
  });

  // Unsigned on purpose, for a scraper on the same host: aggregate timings and counters only (no
  // ids, no content). The region listens on 127.0.0.1 by default; an operator exposing HOST
  // beyond loopback should keep /metrics behind the network boundary like /healthz.
  app.get('/metrics', async (c) => {
    const own = deps.push && deps.push.metrics.registry !== metrics.registry ? await deps.push.metrics.render() : '';
    return c.text((await metrics.render()) + own, 200, { 'content-type': metrics.contentType });
  });

  app.use('/internal/*', internalAuth(deps.internalSecret));

  /** Devices that connected will sync: the next message may wake each of them again (push gate). */
  async function connected(ops: PresenceOp[]): Promise<void> {
    if (!deps.push) return;
    await Promise.all(ops.filter((o) => o.op === 'connect').map((o) => deps.push!.gate.release(o.user, o.device)));
  }

  /**
   * A conversation's outbox, in order: store, then publish for fan-out; then the members'
   * positions it moved (receipts, and each sender's own read); 200 only after all of them.
   */
  app.post('/internal/events', async (c) => {
    const t0 = performance.now();
    const req = parse(c.get('rawBody'), EventsRequest);
    const msgs: MessageEvent[] = [];
    // Every position the request moves, merged per user (the highest of each), written once.
    const positions = new Map<string, { delivered: number; read: number }>();
    const advance = (user: string, delivered: number, read: number) => {
      const p = positions.get(user);
      if (p) {
        if (delivered > p.delivered) p.delivered = delivered;
        if (read > p.read) p.read = read;
      } else positions.set(user, { delivered, read });
    };
    const now = Date.now();
    for (const e of req.events) if (e.kind === 'msg') metrics.age('region_received', e.msg.ts, now);
    // Requests this batch makes are stored before the conversation or membership they come with,
    // so a list never shows a request unmarked (applied again, in order, below: idempotent).
    await applyEarlyRequests(consent, req.conv, req.events);
    for (const e of req.events) {
      if (e.kind === 'created') {
        if (e.conv !== req.conv) throw new ProtocolError('invalid_frame', 'event for another conversation');
        if (msgs.length) await flush();
        await storage.saveConversation({ id: e.conv, title: e.title, creator: e.creator, createdAt: e.ts, members: e.members });
        // Its members relate now (presence, consent): cached relation sets learn it in place (a
        // forget made every check of a user creating many conversations rescan all of them).
        const pending = new Set(req.events.flatMap((x) => (x.kind === 'consent' ? x.changes.filter((c) => c.state === 'request').map((c) => c.user) : [])));
        consent.contacts.learnConversation(e.members, pending);
      } else if (e.kind === 'consent') {
        // Requests made or answered (consent/consent-api.ts), after the membership they concern.
        if (msgs.length) await flush();
        await applyConsentChanges(consent, req.conv, e.changes);
      } else if (e.kind === 'receipts') {
        // Positions only move forward: no ordering with the messages around them is needed, so
        // they are merged and written once, after the messages.
        for (const p of e.positions) advance(p.user, p.delivered ?? 0, p.read ?? 0);
      } else {
        if (e.msg.conv !== req.conv) throw new ProtocolError('invalid_frame', 'message for another conversation');
        // Sending is reading (PROTOCOL.md), and so is changing the membership: the sender (for a
        // membership change, its actor) has read, and so has been delivered, up to this seq.
        advance(e.msg.from, e.msg.seq, e.msg.seq);
        if (e.msg.sys && changesMembership(e.msg.sys)) {
          // Membership as of this seq is stored before the change (and anything after it) is
          // published, so fan-out of a later seq always finds it.
          if (msgs.length) await flush();
          await storage.applyMembership(req.conv, e.msg.seq, e.msg.sys);
          await forgetConversation(consent, req.conv, e.msg.sys.users);
        }
        msgs.push(e);
      }
    }
    await flush();
    if (positions.size) {
      const changes = [...positions].map(([user, p]) => ({ user, ...(p.delivered ? { delivered: p.delivered } : {}), ...(p.read ? { read: p.read } : {}) }));
      await metrics.time('positions', () => storage.setPositions(req.conv, changes));
    }
    metrics.op('events_request', t0);
    metrics.inc('events_requests');
    return c.json({ stored: req.events.length });

    async function flush(): Promise<void> {
      if (!msgs.length) return;
      const events = msgs.splice(0);
      const batch = events.map((e) => e.msg);
      metrics.inc('events_messages', batch.length);
      // Traced messages: a `store` span each (storing and queueing), which the fan-out continues.
      const spans = events.map((e) => deps.tracing?.start('store', deps.tracing.parent(e.trace), { 'switchboard.conv': e.msg.conv, 'switchboard.seq': e.msg.seq }) ?? null);
      try {
        await metrics.time('store', () => storage.appendMessages(batch));
        let now = Date.now();
        for (const m of batch) metrics.age('stored', m.ts, now);
        // The event goes on whole: `ver` and `live` are for the fan-out, `trace` now names the store span.
        const records = events.map((e, i) => ({ key: e.msg.conv, value: spans[i] ? { ...e, trace: deps.tracing!.traceparent(spans[i]!) } : e }));
        await metrics.time('publish', () => queue.publish(TOPICS.fanout, records));
        now = Date.now();
        for (const m of batch) metrics.age('published', m.ts, now);
      } catch (err) {
        deps.tracing?.end(spans, err);
        throw err;
      }
      deps.tracing?.end(spans);
    }
  });

  /** Messages beyond the edge's window, either direction, for a member only. */
  app.post('/internal/read', async (c) => {
    const req = parse(c.get('rawBody'), ReadRequest);
    const conv = await storage.getConversation(req.conv);
    if (!conv) throw new ProtocolError('not_found', 'no such conversation');
    // Former members too: the ConversationDO has already bounded the range they may read.
    if (!(conv.roster?.some((m) => m.user === req.user) ?? conv.members.includes(req.user))) throw new ProtocolError('not_member');
    const msgs =
      req.before !== undefined ? await storage.readBefore(req.conv, req.before, req.limit + 1) : await storage.readAfter(req.conv, req.after!, req.limit + 1);
    return c.json({ msgs: msgs.slice(0, req.limit), more: msgs.length > req.limit });
  });

  /**
   * For devices' resumes: per request, a page of the user's conversations by id, each with its
   * last seq and the cursor that device acked in it (0 when none is stored), in request order.
   * `acked` may exceed `last` for a while: a device acks what the live path pushed before the
   * outbox drains it to the region.
   */
  app.post('/internal/conversations', async (c) => {
    const req = parse(c.get('rawBody'), ConversationsRequest);
    const slot = limiter(16);
    const pages = await Promise.all(req.pages.map((p) => slot(() => conversationsPage(p))));
    return c.json({ pages });
  });

  async function conversationsPage(req: ConversationsPageRequest): Promise<ConversationsPage> {
    const rows = await storage.userConversations(req.user, req.after, req.limit + 1);
    const page = rows.slice(0, req.limit);
    const next = rows.length > req.limit ? page.at(-1)?.conv : undefined;
    const [acked, requests] = page.length
      ? await Promise.all([storage.deviceCursors(req.user, req.device, page.map((r) => r.conv)), storage.requestsOf(req.user)])
      : [new Map<string, number>(), []];
    // Message requests (consent) are marked; a user has few, so all of theirs are read at once.
    const pending = new Set(requests.map((r) => r.conv));
    return { convs: page.map((r) => ({ conv: r.conv, last: r.lastSeq, acked: acked.get(r.conv) ?? 0, ...(pending.has(r.conv) ? { request: true as const } : {}) })), ...(next ? { next } : {}) };
  }

  /** Devices' acked cursors, forward-only (storage.setDeviceCursors): any order, or twice, is harmless. 200 once stored. */
  app.post('/internal/cursors', async (c) => {
    const req = parse(c.get('rawBody'), CursorsRequest);
    await storage.setDeviceCursors(req.cursors);
    return c.json({ applied: req.cursors.length });
  });

  /** The user's conversation list, newest activity first (inbox.ts). */
  app.post('/internal/inbox', async (c) => {
    const req = parse(c.get('rawBody'), InboxRequest);
    return c.json(await inboxPage(storage, req));
  });

  /** A gateway's route ops: each device's in order, devices concurrently (routes.ts, applyRouteOps); 200 once all are applied. */
  app.post('/internal/routes', async (c) => {
    const req = parse(c.get('rawBody'), RoutesRequest);
    await applyRouteOps(routes, req.ops, deps.routeTtlMs);
    return c.json({ applied: req.ops.length, epoch: await routes.epoch() });
  });

  /**
   * A gateway's batch (protocol GatewayBatchRequest): its route changes, presence ops and acked
   * cursors in one call, each applied as its own route would (each list in order; the lists
   * independently). 200 once all are applied.
   */
  app.post('/internal/gateway', async (c) => {
    const req = parse(c.get('rawBody'), GatewayBatchRequest);
    if (req.presence.length && !deps.presence) throw new ProtocolError('not_found', 'presence is not served here');
    await Promise.all([
      req.routes.length ? applyRouteOps(routes, req.routes, deps.routeTtlMs) : null,
      req.presence.length ? deps.presence!.apply(req.presence) : null,
      req.cursors.length ? storage.setDeviceCursors(req.cursors) : null,
      connected(req.presence),
    ]);
    const body: GatewayBatchResponse = { applied: { routes: req.routes.length, presence: req.presence.length, cursors: req.cursors.length } };
    if (req.routes.length) body.epoch = await routes.epoch();
    return c.json(body);
  });

  if (deps.presence) registerPresenceApi(app, deps.presence, connected);
  registerConsentApi(app, consent);
  if (deps.push) registerPushApi(app, { storage, ...deps.push });
  registerKeysApi(app, { directory: storage, ...deps.keys });
  registerAdminApi(app, { storage, routes });

  return app;
}
