import { Hono } from 'hono';
import { ConvId, DeadLetterReplayRequest, DisconnectRequest, DrainRequest, ProtocolError, parseJsonBody } from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import { gatewaysOf, placementsOf, userGateways } from '../gateway/placement.ts';
import { userParam } from '../http/params.ts';
import { callRegion } from './region-client.ts';
import { gatewayStub } from '../gateway/stub.ts';
import { errorFields, log } from '../log.ts';
import { verifyInternal } from './internal-auth.ts';

/**
 * The operator's routes on the edge, signed like every internal call (an operator's tool signs
 * with the internal secret; never reachable with a device token). Dead letters: outbox events the
 * region refused for good, kept by their conversation until replayed. Drain: before a restart.
 * A user's sockets and what the region knows of them; disconnecting them; a conversation's state.
 * (Revoking a user's tokens: auth/admin-routes.ts.)
 */
export const adminRoutes = new Hono<{ Bindings: Env }>();

function conversation(env: Env, id: string | undefined) {
  const conv = ConvId.safeParse(id);
  if (!conv.success) throw new ProtocolError('invalid_frame', 'conv: not a conversation id');
  return { conv: conv.data, stub: env.CONVERSATIONS.get(env.CONVERSATIONS.idFromName(conv.data)) };
}

/** A conversation's dead letters, oldest first, each with the region's refusal and the event itself. */
adminRoutes.get('/internal/admin/conversations/:conv/dead-letters', async (c) => {
  await verifyInternal(c.req.raw, c.env, config(c.env).internalSecret);
  const { stub } = conversation(c.env, c.req.param('conv'));
  return c.json({ deadLetters: await stub.listDeadLetters() });
});

/** Puts a conversation's dead letters (all, or `oseqs`) back in its outbox, once the region takes them. */
adminRoutes.post('/internal/admin/conversations/:conv/dead-letters/replay', async (c) => {
  const body = await verifyInternal(c.req.raw, c.env, config(c.env).internalSecret);
  const req = parseJsonBody(body || '{}', DeadLetterReplayRequest);
  const { conv, stub } = conversation(c.env, c.req.param('conv'));
  const out = await stub.replayDeadLetters(req);
  log('info', 'dead letters replayed', { conv, replayed: out.replayed });
  return c.json(out);
});

/** Default spread of the reconnect hints of a drain. */
const DRAIN_SPREAD_MS = 5_000;

/**
 * Before the runtime restarts: every gateway of the placements closes its sockets with 1012 and a
 * jittered reconnect hint (GatewayDO.drain). The edge runner calls it on SIGTERM.
 */
adminRoutes.post('/internal/admin/drain', async (c) => {
  const cfg = config(c.env);
  const body = await verifyInternal(c.req.raw, c.env, cfg.internalSecret);
  const req = parseJsonBody(body || '{}', DrainRequest);
  const placements = req.placements ?? placementsOf(cfg.gatewayPlacement);
  const spreadMs = req.spreadMs ?? DRAIN_SPREAD_MS;
  const names = gatewaysOf(placements, cfg.gatewayShards);
  const answers = await Promise.allSettled(names.map((gw) => gatewayStub(c.env.GATEWAYS, gw).drain(gw, { spreadMs })));
  let sockets = 0;
  let failed = 0;
  answers.forEach((a, i) => {
    if (a.status === 'fulfilled') sockets += a.value.sockets;
    else {
      failed++;
      log('warn', 'drain: a gateway did not answer', { gw: names[i], ...errorFields(a.reason) });
    }
  });
  log('info', 'edge drained', { gateways: names.length - failed, failed, sockets, spreadMs });
  return c.json({ gateways: names.length - failed, failed, sockets, spreadMs });
});

/** A user's live sockets on this edge's gateways, and the region's routes, key-directory devices and push registrations. */
adminRoutes.get('/internal/admin/users/:user', async (c) => {
  const cfg = config(c.env);
  await verifyInternal(c.req.raw, c.env, cfg.internalSecret);
  const user = userParam(c.req.param('user'));
  const gws = userGateways(cfg.gatewayPlacement, user, cfg.gatewayShards);
  const [sessions, region] = await Promise.all([
    Promise.all(gws.map(async (gw) => (await gatewayStub(c.env.GATEWAYS, gw).sessions(gw, user)).map((s) => ({ gw, ...s })))),
    callRegion<Record<string, unknown>>(cfg, '/internal/admin/user', { user }),
  ]);
  return c.json({ user, sessions: sessions.flat(), region });
});

/** Closes a user's sockets (one device's with `device`) with 4009, or with 1012 when `reconnect`. */
adminRoutes.post('/internal/admin/users/:user/disconnect', async (c) => {
  const cfg = config(c.env);
  const body = await verifyInternal(c.req.raw, c.env, cfg.internalSecret);
  const user = userParam(c.req.param('user'));
  const req = parseJsonBody(body || '{}', DisconnectRequest);
  const input = { user, reconnect: req.reconnect ?? false, ...(req.device ? { device: req.device } : {}) };
  const closed = await Promise.all(userGateways(cfg.gatewayPlacement, user, cfg.gatewayShards).map((gw) => gatewayStub(c.env.GATEWAYS, gw).disconnect(gw, input)));
  const total = closed.reduce((n, r) => n + r.closed, 0);
  log('info', 'operator disconnect', { user, device: req.device, reconnect: input.reconnect, closed: total });
  return c.json({ closed: total });
});

/** A conversation's state: last seq, membership version and size, outbox backlog, dead letters. */
adminRoutes.get('/internal/admin/conversations/:conv', async (c) => {
  await verifyInternal(c.req.raw, c.env, config(c.env).internalSecret);
  const { stub } = conversation(c.env, c.req.param('conv'));
  const state = await stub.adminState();
  if (!state) throw new ProtocolError('not_found', 'no such conversation');
  return c.json(state);
});
