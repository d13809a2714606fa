import { Hono } from 'hono';
import { CreateConversationRequest, DevTokenRequest, ProtocolError, directConvId, newConvId } from '@switchboard/protocol';
import { ConfigError, config, type Env } from '../config.ts';
import { DEVICE_HEADER, GATEWAY_HEADER, USER_HEADER } from '../gateway/gateway-do.ts';
import { gatewayName, placementOfRequest } from '../gateway/placement.ts';
import { homeRegionFor } from '../regions.ts';
import { gatewayStub } from '../gateway/stub.ts';
import { adminRoutes } from '../internal/admin-routes.ts';
import { internalRoutes } from '../internal/internal-routes.ts';
import { tokenAdminRoutes } from '../auth/admin-routes.ts';
import { publicConfigRoutes } from '../auth/public-config.ts';
import { errorFields, log } from '../log.ts';
import { addressSubject, clientAddress, spendQuota } from '../limits/quota.ts';
import { RateLimited, rateLimitedResponse } from '../limits/refusal.ts';
import { labels } from '../metrics/edge-metrics.ts';
import { flushWorkerMetrics, workerFlushDue, workerMetrics } from '../metrics/worker-metrics.ts';
import { mintToken, tokenFrom } from './auth.ts';
import { verifyToken } from './verify-token.ts';
import { verifierFor } from '../auth/token-verifier.ts';
import { setTokenTimes } from '../gateway/token-expiry.ts';
import { listConversations } from './conversation-list.ts';
import { conversationsApi } from './conversations-api.ts';
import { consentApi, consentCheck } from './consent-api.ts';
import { devicesApi } from './devices-api.ts';
import { deviceLinksApi } from './device-links-api.ts';
import { keysApi } from './keys-api.ts';
import { errorBody, readJson } from './read-json.ts';

type App = { Bindings: Env };

export const app = new Hono<App>();

/** An HTTP error answered, counted by code (switchboard_edge_errors_total). */
const counted = (code: string) => workerMetrics.inc('switchboard_edge_errors_total', labels(code, 'http'));

// Production: this isolate's counts go to Analytics Engine at most once a minute, after the answer.
app.use('*', async (c, next) => {
  await next();
  if (c.env.METRICS && workerFlushDue()) {
    try {
      c.executionCtx.waitUntil(Promise.resolve().then(() => flushWorkerMetrics(c.env.METRICS)));
    } catch {
      flushWorkerMetrics(c.env.METRICS); // no execution context (tests)
    }
  }
});

app.onError((err, c) => {
  counted(err instanceof ProtocolError ? err.code : 'internal');
  if (err instanceof RateLimited) return rateLimitedResponse(err);
  if (err instanceof ProtocolError) return c.json(errorBody(err), err.status as 400);
  // Never a stack trace to a client: log it, answer a typed internal error.
  log('error', err instanceof ConfigError ? 'edge misconfigured' : 'request failed', { path: c.req.path, ...errorFields(err) });
  return c.json(errorBody(new ProtocolError('internal')), 500);
});

/**
 * API paths answer a typed 404. Anything else is the web client's: in production Cloudflare
 * serves those assets before the Worker runs (`run_worker_first` in wrangler.toml); a local
 * runtime that hands every request to the Worker gets them from the assets binding here.
 */
app.notFound((c) => {
  const api = /^\/(v1|internal)\/|^\/healthz$/.test(c.req.path);
  if (!api && c.env.ASSETS && (c.req.method === 'GET' || c.req.method === 'HEAD')) return c.env.ASSETS.fetch(c.req.raw);
  counted('not_found');
  return c.json(errorBody(new ProtocolError('not_found', `no route for ${c.req.method} ${c.req.path}`)), 404);
});

/**
 * 200 while the edge serves; `region` says whether the (primary) regional core answers, and with
 * several, `regions` says it of each (the edge keeps accepting messages without them).
 */
app.get('/healthz', async (c) => {
  const cfg = config(c.env);
  const check = async (url: string): Promise<unknown> => {
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      return res.ok ? await res.json() : { status: 'error', http: res.status };
    } catch {
      return { status: 'unreachable' };
    }
  };
  const names = [...cfg.regions.urls.keys()];
  const answers = await Promise.all(names.map((name) => check(cfg.regions.urls.get(name)!)));
  const ok = answers.every((a) => (a as { status?: string }).status === 'ok');
  const region = answers[0];
  return c.json({ status: ok ? 'ok' : 'degraded', edge: { status: 'ok' }, region, ...(cfg.regions.named ? { regions: Object.fromEntries(names.map((n, i) => [n, answers[i]])) } : {}) });
});

app.post('/v1/dev/token', async (c) => {
  const cfg = config(c.env);
  if (!cfg.devAuth) throw new ProtocolError('not_found', 'dev auth is disabled');
  const req = await readJson(c, DevTokenRequest, 4096);
  return c.json({ token: await mintToken(cfg.authSecret, req, cfg.tokenTtlSeconds) });
});

app.post('/v1/conversations', async (c) => {
  const cfg = config(c.env);
  const me = await verifyToken(c.env, tokenFrom(c.req.raw, false));
  const req = await readJson(c, CreateConversationRequest);
  const members = [...new Set([me.user, ...req.members])];
  if (req.direct && members.length !== 2) throw new ProtocolError('invalid_frame', 'members: a direct conversation has exactly one other member');
  if (members.length > cfg.maxGroupMembers) throw new ProtocolError('group_full', `a group is limited to ${cfg.maxGroupMembers} members`);
  if (req.e2e && members.length > cfg.e2eMaxMembers) throw new ProtocolError('group_full', `an end-to-end encrypted conversation is limited to ${cfg.e2eMaxMembers} members`);
  // Quotas first: a refusal calls and writes nothing.
  await spendQuota(c.env, c.req.raw, me.user, [
    { limit: 'conversation_create', key: me.user, cost: 1 },
    ...(req.direct ? [] : [{ limit: 'member_add' as const, key: me.user, cost: members.length - 1 }]),
  ]);
  // Consent (consent-api.ts): a block either way refuses a direct conversation and leaves the
  // user out of a group; whoever shares no accepted conversation with the creator gets a request.
  const consent = await consentCheck(cfg, me.user, members);
  if (req.direct && consent.blocked.length) throw new ProtocolError('blocked', 'a block between you and this user stops a conversation');
  const invited = members.filter((m) => !consent.blocked.includes(m));
  const conv = req.direct ? await directConvId(members[0]!, members[1]!) : newConvId();
  const stub = c.env.CONVERSATIONS.get(c.env.CONVERSATIONS.idFromName(conv));
  // Its home region: the one asked for, else the creator's nearest (regions.ts).
  const region = homeRegionFor(cfg.regions, req.region, placementOfRequest(cfg.gatewayPlacement, c.req.raw));
  const r = await stub.create({ conv, region, members: invited, title: req.title ?? null, creator: me.user, direct: req.direct === true, requests: consent.requests, ...(req.history && !req.direct ? { history: req.history } : {}), ...(req.e2e ? { e2e: true } : {}) });
  if (!r.ok) throw new ProtocolError(r.code, r.message);
  const requests = consent.requests.filter((u) => r.members.includes(u));
  return c.json({ id: conv, members: r.members, direct: req.direct === true, e2e: req.e2e === true, region: r.region, ...(requests.length ? { requests } : {}) }, r.existed ? 200 : 201);
});

app.get('/v1/conversations', listConversations);

/**
 * WebSocket upgrade: the token is checked here, before any Durable Object is touched; the socket
 * then lives on its user's gateway in the placement the request arrived at.
 */
app.get('/v1/connect', async (c) => {
  const cfg = config(c.env);
  const me = await verifierFor(c.env).verify(tokenFrom(c.req.raw, true));
  if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
    counted('invalid_frame');
    return c.json(errorBody(new ProtocolError('invalid_frame', 'expected a WebSocket upgrade')), 426);
  }
  // Connects per address here (when the request has one: Cloudflare always sets it); per user on
  // the user's gateway, before it accepts the socket.
  const address = clientAddress(c.req.raw);
  if (address !== null) await spendQuota(c.env, c.req.raw, addressSubject(address), [{ limit: 'connect_ip', key: address, cost: 1 }]);
  const gw = gatewayName(placementOfRequest(cfg.gatewayPlacement, c.req.raw), me.user, cfg.gatewayShards);
  const headers = new Headers(c.req.raw.headers);
  headers.set(USER_HEADER, me.user);
  headers.set(DEVICE_HEADER, me.device);
  headers.set(GATEWAY_HEADER, gw);
  setTokenTimes(headers, me);
  return gatewayStub(c.env.GATEWAYS, gw).fetch(new Request(c.req.raw.url, { headers }));
});

/** Membership changes and conversation details (conversations-api.ts). */
app.route('/', conversationsApi);
/** Message requests, blocks and presence visibility (consent-api.ts). */
app.route('/', consentApi);
/** Devices' push registrations (devices-api.ts). */
app.route('/', devicesApi);
/** The key directory: devices' MLS KeyPackages, claims of them, users' devices (keys-api.ts). */
app.route('/', keysApi);
/** Linking and revoking a user's devices for end-to-end encryption (device-links-api.ts). */
app.route('/', deviceLinksApi);
/** Region → edge: deliveries and presence changes (internal/internal-routes.ts). */
app.route('/', internalRoutes);
/** The operator's signed routes: dead letters and the drain (internal/admin-routes.ts). */
app.route('/', adminRoutes);
/** Operator calls, signed: revoking a user's tokens (auth/admin-routes.ts). */
app.route('/', tokenAdminRoutes);
/** How the web client signs in: development or the configured identity provider (auth/public-config.ts). */
app.route('/', publicConfigRoutes);
