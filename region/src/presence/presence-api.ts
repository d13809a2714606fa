import type { Hono } from 'hono';
import { LIMITS, PresenceRequest, ProtocolError, WatchRequest, parseJsonBody, type PresenceOp } from '@switchboard/protocol';
import type { PresenceService } from './presence-service.ts';

type Env = { Variables: { rawBody: string } };

function body(c: { get(key: 'rawBody'): string }): string {
  const text = c.get('rawBody');
  if (text.length > LIMITS.maxInternalBodyBytes) throw new ProtocolError('too_large');
  return text;
}

/**
 * The signed presence API the edge calls (behind the app's internal auth):
 * `/internal/presence` batched heartbeats, connects and disconnects; `/internal/watch` one device's
 * watch/unwatch, answered with the current state or a refusal (`{ok:false,code,message}`).
 */
export function registerPresenceApi(app: Hono<Env>, service: PresenceService, connected?: (ops: PresenceOp[]) => Promise<void>): void {
  app.post('/internal/presence', async (c) => {
    const req = parseJsonBody(body(c), PresenceRequest);
    await Promise.all([service.apply(req.ops), connected?.(req.ops)]);
    return c.json({ applied: req.ops.length });
  });

  app.post('/internal/watch', async (c) => {
    const req = parseJsonBody(body(c), WatchRequest);
    return c.json(await service.watch(req));
  });
}
