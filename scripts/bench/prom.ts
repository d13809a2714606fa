/**
 * Reading the region's `GET /metrics` (Prometheus text): histograms by label, the difference of
 * two scrapes (what happened between them), and percentiles interpolated inside buckets the way
 * Prometheus' histogram_quantile does.
 */

import { COUNTERS } from '../../region/src/metrics/message-path.ts';

export interface Hist {
  /** Cumulative counts per upper bound, ascending; the last bound is Infinity. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

export interface Scrape {
  /** `family{label="value"}` → histogram, e.g. `switchboard_region_message_age_seconds{point="stored"}`. */
  hists: Map<string, Hist>;
  counters: Map<string, number>;
}

const LINE = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)$/;

export function parseProm(text: string): Scrape {
  const hists = new Map<string, Hist>();
  const counters = new Map<string, number>();
  const hist = (key: string) => {
    let h = hists.get(key);
    if (!h) hists.set(key, (h = { buckets: [], sum: 0, count: 0 }));
    return h;
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const [, name, labelText = '', valueText] = m;
    const value = Number(valueText);
    const labels = new Map<string, string>();
    for (const lm of labelText.matchAll(/(\w+)="([^"]*)"/g)) labels.set(lm[1]!, lm[2]!);
    const le = labels.get('le');
    labels.delete('le');
    const rest = [...labels].map(([k, v]) => `${k}="${v}"`).join(',');
    if (name!.endsWith('_bucket') && le !== undefined) {
      hist(`${name!.slice(0, -7)}{${rest}}`).buckets.push({ le: le === '+Inf' ? Infinity : Number(le), count: value });
    } else if (name!.endsWith('_sum') && hists.has(`${name!.slice(0, -4)}{${rest}}`)) {
      hist(`${name!.slice(0, -4)}{${rest}}`).sum = value;
    } else if (name!.endsWith('_count') && hists.has(`${name!.slice(0, -6)}{${rest}}`)) {
      hist(`${name!.slice(0, -6)}{${rest}}`).count = value;
    } else counters.set(rest ? `${name}{${rest}}` : name!, value);
  }
  for (const h of hists.values()) h.buckets.sort((a, b) => a.le - b.le);
  return { hists, counters };
}

/** What was observed between `before` and `after`. */
export function diffScrape(before: Scrape, after: Scrape): Scrape {
  const hists = new Map<string, Hist>();
  for (const [key, a] of after.hists) {
    const b = before.hists.get(key);
    hists.set(key, {
      buckets: a.buckets.map((x, i) => ({ le: x.le, count: x.count - (b?.buckets[i]?.count ?? 0) })),
      sum: a.sum - (b?.sum ?? 0),
      count: a.count - (b?.count ?? 0),
    });
  }
  const counters = new Map<string, number>();
  for (const [key, v] of after.counters) counters.set(key, v - (before.counters.get(key) ?? 0));
  return { hists, counters };
}

/** The q-quantile (0..1), linearly interpolated inside its bucket; NaN when empty. */
export function quantile(h: Hist, q: number): number {
  if (h.count <= 0) return NaN;
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const { le, count } of h.buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe; // beyond the last finite bound: report that bound
      const inBucket = count - prevCount;
      return inBucket <= 0 ? le : prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/** The region's message-age histogram at `point` (seconds since the message was sequenced). */
export const regionAge = (point: string) => `switchboard_region_message_age_seconds{point="${point}"}`;
/** The region's duration histogram of operation `op` (seconds). */
export const regionOp = (op: string) => `switchboard_region_operation_duration_seconds{op="${op}"}`;
const SHORT = new Map<string, string>(Object.entries(COUNTERS).map(([short, [metric]]) => [metric, short]));
/** A region path counter's short name (`events_requests`, `deliver_calls`, `fanout_records` …) from its metric name; null for others. */
export function regionCounterName(metric: string): string | null {
  return SHORT.get(metric) ?? null;
}

/** A histogram in seconds as the same histogram in milliseconds (the benches print ms). */
export function inMs(h: Hist | undefined): Hist | undefined {
  return h && { buckets: h.buckets.map((b) => ({ le: b.le * 1000, count: b.count })), sum: h.sum * 1000, count: h.count };
}

export interface HistSummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
}

export function summarizeHist(h: Hist | undefined): HistSummary | null {
  if (!h || h.count <= 0) return null;
  const r = (x: number) => Math.round(x * 100) / 100;
  return { count: h.count, meanMs: r(h.sum / h.count), p50Ms: r(quantile(h, 0.5)), p95Ms: r(quantile(h, 0.95)), p99Ms: r(quantile(h, 0.99)) };
}
