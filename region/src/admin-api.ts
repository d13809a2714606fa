import type { Hono } from 'hono';
import { AdminUserRequest, parseJsonBody } from '@switchboard/protocol';
import type { Routes } from './routes/routes.ts';
import type { Storage } from './storage/storage.ts';

type Env = { Variables: { rawBody: string } };

/**
 * The operator's view of a user from the region (signed like every internal call; the edge's
 * `GET /internal/admin/users/:user` adds the gateways' live sockets): where each of the user's
 * devices is connected (routes), the devices in the key directory and their push registrations
 * (provider and time only: tokens never leave the region).
 */
export function registerAdminApi(app: Hono<Env>, deps: { storage: Storage; routes: Routes }): void {
  app.post('/internal/admin/user', async (c) => {
    const req = parseJsonBody(c.get('rawBody'), AdminUserRequest);
    const [routes, devices, push] = await Promise.all([
      deps.routes.lookup([req.user]),
      deps.storage.devicesOf(req.user),
      deps.storage.pushRegistrations([req.user]),
    ]);
    return c.json({
      user: req.user,
      routes: (routes.get(req.user) ?? []).map((r) => ({ device: r.device, edge: r.edge, gw: r.gw, conn: r.conn })),
      devices,
      push: (push.get(req.user) ?? []).map((r) => ({ device: r.device, provider: r.service, registeredAt: r.registeredAt, ...(r.env ? { env: r.env } : {}) })),
    });
  });
}
