import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { Histogram } from 'prom-client';

/**
 * Times every request into `hist` (`switchboard_region_http_request_duration_seconds{method,
 * route, status}`; its `_count` is the request counter). `route` is the route's pattern (never
 * the path: ids would make a series per user), `unmatched` when no route answered.
 */
export function httpMetrics(hist: Histogram<'method' | 'route' | 'status'>): MiddlewareHandler {
  return async (c, next) => {
    const t0 = performance.now();
    try {
      await next();
    } finally {
      hist.observe({ method: c.req.method, route: routeOf(c), status: String(c.res.status) }, (performance.now() - t0) / 1000);
    }
  };
}

/** The pattern of the handler that answered: the last matched route registered for a method (middleware is `ALL`). */
function routeOf(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) if (routes[i]!.method !== 'ALL') return routes[i]!.path;
  return 'unmatched';
}
