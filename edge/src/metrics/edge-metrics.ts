import { EDGE_METRICS, type CounterName, type EdgeMetricName, type GaugeName, type HistogramName, type MetricDef } from './catalog.ts';

/** Joins label values in the order the catalog names the labels: `labels('send')`, `labels('4006', 'server')`. */
export const labels = (...values: (string | number)[]): string => values.join('\u001f');
export const splitLabels = (key: string): string[] => (key === '' ? [] : key.split('\u001f'));

/** A counter's or gauge's series: metric name, label values (`labels(...)`), value. */
export interface SeriesValue {
  n: EdgeMetricName;
  k: string;
  v: number;
}

/** A histogram's series: count, sum (seconds) and per-bucket counts (not cumulative; the last is +Inf). */
export interface SeriesHist {
  n: EdgeMetricName;
  k: string;
  count: number;
  sum: number;
  b: number[];
}

/** Plain data, for RPC and for merging. */
export interface EdgeSnapshot {
  c: SeriesValue[];
  g: SeriesValue[];
  h: SeriesHist[];
}

interface Hist {
  counts: number[];
  sum: number;
  count: number;
}

/**
 * One object's (or the Worker isolate's) edge metrics, in memory: counting is a map lookup and
 * an addition, nothing else, so it is cheap enough for every frame. Series are keyed by their
 * label values (`labels(...)`).
 */
export class EdgeMetrics {
  private readonly values = new Map<EdgeMetricName, Map<string, number>>();
  private readonly hists = new Map<EdgeMetricName, Map<string, Hist>>();

  inc(name: CounterName, key = '', by = 1): void {
    let m = this.values.get(name);
    if (!m) this.values.set(name, (m = new Map()));
    m.set(key, (m.get(key) ?? 0) + by);
  }

  set(name: GaugeName, key: string, value: number): void {
    let m = this.values.get(name);
    if (!m) this.values.set(name, (m = new Map()));
    m.set(key, value);
  }

  /** One observation (seconds) of a histogram. */
  observe(name: HistogramName, key: string, seconds: number): void {
    const bounds = EDGE_METRICS[name].buckets;
    let m = this.hists.get(name);
    if (!m) this.hists.set(name, (m = new Map()));
    let h = m.get(key);
    if (!h) m.set(key, (h = { counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 }));
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  get empty(): boolean {
    return this.values.size === 0 && this.hists.size === 0;
  }

  snapshot(): EdgeSnapshot {
    const s: EdgeSnapshot = { c: [], g: [], h: [] };
    for (const [n, m] of this.values) for (const [k, v] of m) (EDGE_METRICS[n].type === 'gauge' ? s.g : s.c).push({ n, k, v });
    for (const [n, m] of this.hists) for (const [k, h] of m) s.h.push({ n, k, count: h.count, sum: h.sum, b: [...h.counts] });
    return s;
  }

  /** Everything counted so far, and starts again from nothing (what a ConversationDO hands to a gateway). */
  take(): EdgeSnapshot {
    const s = this.snapshot();
    this.values.clear();
    this.hists.clear();
    return s;
  }

  /** Adds another snapshot's counters and histograms to these; its gauges replace these series. */
  merge(s: EdgeSnapshot): void {
    for (const { n, k, v } of s.c) if (EDGE_METRICS[n]?.type === 'counter') this.inc(n as CounterName, k, v);
    for (const { n, k, v } of s.g) if (EDGE_METRICS[n]?.type === 'gauge') this.set(n as GaugeName, k, v);
    for (const { n: name, k: key, count, sum, b: counts } of s.h) {
      const bounds = (EDGE_METRICS[name] as MetricDef | undefined)?.buckets;
      if (!bounds || counts.length !== bounds.length + 1) continue;
      let m = this.hists.get(name);
      if (!m) this.hists.set(name, (m = new Map()));
      let h = m.get(key);
      if (!h) m.set(key, (h = { counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 }));
      counts.forEach((n, i) => (h!.counts[i]! += n));
      h.sum += sum;
      h.count += count;
    }
  }
}
