import { Hono } from 'hono';
import { PresenceDeliverRequest, ProtocolError, deliveriesByGateway, parseDeliverRequest, parseJsonBody, type PresenceEvent } from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import { gatewaysOf } from '../gateway/placement.ts';
import { gatewayStub } from '../gateway/stub.ts';
import { errorFields, log } from '../log.ts';
import { EdgeMetrics } from '../metrics/edge-metrics.ts';
import { renderPrometheus } from '../metrics/prometheus.ts';
import { workerMetrics } from '../metrics/worker-metrics.ts';
import { verifyInternal } from './internal-auth.ts';

/** Placements one scrape may ask for at most (each is GATEWAY_SHARDS gateway calls). */
const MAX_SCRAPE_PLACEMENTS = 16;

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
      return gatewayStub(c.env.GATEWAYS, gw).deliver(gw, { msgs, to: b.to, from: 'region' });
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

/**
 * A signed scrape (`GET`, signed like every internal call; the test stack and a local Prometheus
 * sidecar sign it): the edge's metrics in Prometheus text, this isolate's own merged with every
 * gateway's of the placements asked (`?placements=weur,enam`; default the configured
 * GATEWAY_PLACEMENT), one RPC per gateway. ConversationDOs' counts reach their gateways riding on
 * answers (conversation/api.ts, Riding). Production exports to Analytics Engine instead.
 */
internalRoutes.get('/internal/metrics', async (c) => {
  const cfg = config(c.env);
  await verifyInternal(c.req.raw, c.env, cfg.internalSecret);
  const asked = c.req.query('placements');
  const placements = [...new Set((asked ?? cfg.gatewayPlacement).split(',').map((p) => p.trim()).filter(Boolean))];
  if (placements.length > MAX_SCRAPE_PLACEMENTS || placements.some((p) => !/^[a-z0-9-]{1,32}$/.test(p))) {
    throw new ProtocolError('invalid_frame', `placements: at most ${MAX_SCRAPE_PLACEMENTS} of [a-z0-9-]{1,32}, comma-separated`);
  }
  const names = gatewaysOf(placements, cfg.gatewayShards);
  const merged = new EdgeMetrics();
  merged.merge(workerMetrics.snapshot());
  const answers = await Promise.allSettled(names.map((gw) => gatewayStub(c.env.GATEWAYS, gw).metrics(gw)));
  let failed = 0;
  answers.forEach((a, i) => {
    if (a.status === 'fulfilled') merged.merge(a.value);
    else {
      failed++;
      log('warn', 'metrics: a gateway did not answer', { gw: names[i], ...errorFields(a.reason) });
    }
  });
  return c.text(renderPrometheus(merged.snapshot()), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'x-sb-gateways': `${names.length - failed}/${names.length}` });
});
