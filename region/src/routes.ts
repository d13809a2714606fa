/** Where a device is connected: the base URL of its edge. */
export interface Route {
  user: string;
  device: string;
  edge: string;
}

/**
 * Routing registry user → device → edge. Contract, tested by region/test/routes.contract.ts:
 * - `up` creates or refreshes a route that expires `ttlMs` later unless refreshed again;
 * - `down` removes the route only if it still points at that edge (a device that reconnected
 *   elsewhere keeps its newer route);
 * - `lookup` returns only unexpired routes, for many users in one call.
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
