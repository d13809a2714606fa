import type { Hono } from 'hono';
import { PresenceDeliverRequest, parseJsonBody, type PresenceEvent } from '@switchboard/protocol';
import { config, type Env } from './env.ts';
import { verifyInternal } from './internal-auth.ts';

/** Region → edge: presence changes for watching devices, each handed to the watcher's SessionDO. */
export function registerPresenceRoute(app: Hono<{ Bindings: Env }>): void {
  app.post('/internal/presence', async (c) => {
    const cfg = config(c.env);
    const body = await verifyInternal(c.req.raw, c.env, cfg.internalSecret);
    const req = parseJsonBody(body, PresenceDeliverRequest);
    const byUser = new Map<string, PresenceEvent[]>();
    for (const e of req.events) {
      const list = byUser.get(e.to);
      if (list) list.push(e);
      else byUser.set(e.to, [e]);
    }
    const results = await Promise.all([...byUser].map(([user, list]) => c.env.SESSIONS.get(c.env.SESSIONS.idFromName(user)).presence(list)));
    return c.json({ users: byUser.size, sockets: results.reduce((n, r) => n + r.sockets, 0) });
  });
}
