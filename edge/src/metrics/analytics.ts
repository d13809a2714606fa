import { EDGE_METRICS, type EdgeMetricName } from './catalog.ts';
import { splitLabels, type EdgeMetrics } from './edge-metrics.ts';

/** What a Workers Analytics Engine dataset binding offers (typed here so Node tests can use a fake). */
export interface DataPointSink {
  writeDataPoint(point: { indexes?: string[]; blobs?: string[]; doubles?: number[] }): void;
}

/** Label values per data point at most (blobs 3.. of the point). */
const MAX_LABELS = 4;

/**
 * Production's export: what an EdgeMetrics counted since the last flush, as Analytics Engine
 * data points (the binding `METRICS`, declared for the production environment in wrangler.toml).
 * One point per series that moved: index = metric name; blobs = [name, source, ...label values];
 * doubles = [increase] for counters, [value] for gauges, [count, sum, ...per-bucket counts] for
 * histograms (bounds in EDGE_METRICS). Query them with SQL (`SELECT blob1, SUM(_sample_interval *
 * double1) … GROUP BY blob1`). Writing is fire-and-forget; nothing waits for it.
 */
export class AnalyticsFlusher {
  /** Per series, what was last written (cumulative values of this EdgeMetrics). */
  private readonly sent = new Map<string, number[]>();

  constructor(
    private readonly sink: DataPointSink,
    /** Who counted (e.g. the gateway's name, `worker`): blob 2 of every point. */
    private readonly source: string,
  ) {}

  flush(metrics: EdgeMetrics): number {
    const s = metrics.snapshot();
    let points = 0;
    const write = (name: EdgeMetricName, key: string, doubles: number[]) => {
      const blobs = [name, this.source, ...splitLabels(key).slice(0, MAX_LABELS)];
      this.sink.writeDataPoint({ indexes: [name], blobs, doubles });
      points++;
    };
    for (const { n: name, k: key, v } of s.c) {
      const id = `${name}\u0000${key}`;
      const before = this.sent.get(id)?.[0] ?? 0;
      if (v > before) write(name, key, [v - before]);
      this.sent.set(id, [v]);
    }
    for (const { n: name, k: key, v } of s.g) write(name, key, [v]);
    for (const { n: name, k: key, count, sum, b: counts } of s.h) {
      const id = `${name}\u0000${key}`;
      const before = this.sent.get(id) ?? [0, 0, ...counts.map(() => 0)];
      if (count > before[0]!) write(name, key, [count - before[0]!, sum - before[1]!, ...counts.map((n, i) => n - (before[i + 2] ?? 0))]);
      this.sent.set(id, [count, sum, ...counts]);
    }
    return points;
  }
}

// Catalog guard: a histogram's point must fit Analytics Engine's 20 doubles.
for (const [name, def] of Object.entries(EDGE_METRICS) as [string, { buckets?: readonly number[] }][]) {
  if (def.buckets && def.buckets.length + 3 > 20) throw new Error(`${name}: too many buckets for an Analytics Engine data point`);
}
