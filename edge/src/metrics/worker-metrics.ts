import { AnalyticsFlusher, type DataPointSink } from './analytics.ts';
import { EdgeMetrics } from './edge-metrics.ts';

/**
 * The stateless Worker's own counts (HTTP errors, the region calls of its routes), one per
 * isolate. Scrapes merge it with every gateway's; in production it is written to Analytics Engine
 * at most once a minute, after a request (ctx.waitUntil), never on a request's path.
 */
export const workerMetrics = new EdgeMetrics();

const FLUSH_EVERY_MS = 60_000;
let flusher: AnalyticsFlusher | null = null;
let lastFlush = Date.now();

/** Whether the last write to Analytics Engine is a minute old. */
export const workerFlushDue = (now = Date.now()) => now - lastFlush >= FLUSH_EVERY_MS;

/** Writes what this isolate counted to `sink` when the last write is a minute old. */
export function flushWorkerMetrics(sink: DataPointSink | undefined, now = Date.now()): void {
  if (!sink || !workerFlushDue(now)) return;
  lastFlush = now;
  flusher ??= new AnalyticsFlusher(sink, 'worker');
  flusher.flush(workerMetrics);
}
