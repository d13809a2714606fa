import type { RouteOp } from '@switchboard/protocol';
import { limiter } from '../limiter.ts';

/**
 * Where a device is connected: the base URL of its edge, the gateway Durable Object holding its
 * socket (`gw:<placement>:<shard>`) and that socket's connection id on the gateway (ids only
 * grow on a gateway, across its restarts too), which names the socket.
 */
export interface Route {
  user: string;
  device: string;
  edge: string;
  gw: string;
  conn: number;
}

/**
 * Routing registry user → device → (edge, gateway, socket). Contract, tested by
 * region/test/routes/routes.contract.ts:
 * - a device has at most one route: `up` creates it or replaces whatever the device had (another
 *   edge, gateway or socket), and it expires `ttlMs` later unless an `up` refreshes it;
 * - `down` removes the device's route only while it still names that socket (the same edge,
 *   gateway and `conn`): a device that reconnected meanwhile (a larger conn, or another gateway)
 *   keeps its newer route;
 * - `lookup` returns only unexpired routes, each with its gateway and conn, for many users in one
 *   call.
 * Calls for one device are not ordered against each other by the registry: a caller that needs
 * `up` then `down` of a device to apply in that order awaits the first (see `applyRouteOps`).
 */
export interface Routes {
  readonly name: string;
  up(route: Route, ttlMs: number): Promise<void>;
  down(route: Route): Promise<void>;
  lookup(users: string[]): Promise<Map<string, Route[]>>;
  /**
   * Identifies the registry's current life: it changes exactly when routes may have been lost
   * (a restarted in-memory registry, a Redis that lost its data). Edges that see it change
   * re-register their devices and tell them to resync, since pushes may have found no route.
   */
  epoch(): Promise<string>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Devices whose ops are being applied at once by one `applyRouteOps` call, at most. */
export const ROUTE_OPS_IN_FLIGHT = 1_000;

/**
 * Applies a gateway's batch of route ops: each device's ops in the order given (its `up` and
 * `down` of one socket, or of two sockets, must not swap), different devices concurrently (a
 * refresh of 5,000 sockets is not 5,000 round trips one after the other). Resolves once every op
 * is applied; rejects with the first failure, after the ops already started have settled.
 */
export async function applyRouteOps(routes: Routes, ops: RouteOp[], ttlMs: number): Promise<void> {
  const byDevice = new Map<string, RouteOp[]>();
  for (const op of ops) {
    const k = `${op.user}\u0000${op.device}`;
    const list = byDevice.get(k);
    if (list) list.push(op);
    else byDevice.set(k, [op]);
  }
  const slot = limiter(ROUTE_OPS_IN_FLIGHT);
  const results = await Promise.allSettled(
    [...byDevice.values()].map((list) =>
      slot(async () => {
        for (const { op, ...route } of list) {
          if (op === 'up') await routes.up(route, ttlMs);
          else await routes.down(route);
        }
      }),
    ),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
