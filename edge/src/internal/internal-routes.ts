import { Hono } from 'hono';
import { PresenceDeliverRequest, deliveriesByGateway, parseDeliverRequest, parseJsonBody, type PresenceEvent } from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import { gatewayStub } from '../gateway/stub.ts';
import { verifyInternal } from './internal-auth.ts';

/** The signed routes the region calls: each hands its batch to the gateways it names, one call per gateway. */
export const internalRoutes = new Hono<{ Bindings: Env }>();

/** Region → edge: messages for users' live sockets; each message is serialised once per request. */
internalRoutes.post('/internal/deliver', async (c) => {
  const cfg = config(c.env);
  const req = parseDeliverRequest(await verifyInternal(c.req.raw, c.env, cfg.internalSecret));
  const texts = req.msgs.map((m) => JSON.stringify(m));
  const batches = deliveriesByGateway(req);
  const results = await Promise.all(
    [...batches].map(([gw, b]) => {
      const msgs = b.msgs.map((i) => ({ conv: req.msgs[i]!.conv, seq: req.msgs[i]!.seq, text: texts[i]! }));
      return gatewayStub(c.env.GATEWAYS, gw).deliver(gw, { msgs, to: b.to });
    }),
  );
  return c.json({ gateways: batches.size, sockets: results.reduce((n, r) => n + r.sockets, 0) });
});

/** Region → edge: presence changes for watching devices, grouped by the watchers' gateways. */
internalRoutes.post('/internal/presence', async (c) => {
  const cfg = config(c.env);
  const req = parseJsonBody(await verifyInternal(c.req.raw, c.env, cfg.internalSecret), PresenceDeliverRequest);
  const byGateway = new Map<string, PresenceEvent[]>();
  for (const e of req.events) {
    const list = byGateway.get(e.gw);
    if (list) list.push(e);
    else byGateway.set(e.gw, [e]);
  }
  const results = await Promise.all([...byGateway].map(([gw, events]) => gatewayStub(c.env.GATEWAYS, gw).presence(gw, events)));
  return c.json({ gateways: byGateway.size, sockets: results.reduce((n, r) => n + r.sockets, 0) });
});
