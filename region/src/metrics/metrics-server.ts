import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { RegionMetrics } from './region-metrics.ts';

/**
 * A listener serving only `GET /metrics` and `GET /healthz` (METRICS_PORT), for processes that do
 * not serve the internal API (fan-out and push workers): aggregate counters and timings, no ids,
 * no content; `/healthz` answers while the process runs (the container's healthcheck).
 * Resolves with a close function once listening.
 */
export async function serveMetrics(metrics: RegionMetrics, host: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const app = new Hono();
  app.get('/metrics', async (c) => c.text(await metrics.render(), 200, { 'content-type': metrics.contentType }));
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.notFound((c) => c.text('only /metrics and /healthz here\n', 404));
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info) =>
      resolve({ url: `http://${host}:${info.port}`, close: () => new Promise<void>((r) => server.close(() => r())) }),
    );
  });
}
