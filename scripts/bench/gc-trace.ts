/**
 * Reads V8's `--trace-gc` lines from workerd's output (bench:latency with BENCH_GC_TRACE=1 runs
 * the edge with EDGE_V8_FLAGS=--trace-gc) and sums the main-thread pauses per phase.
 *
 * Why it matters here: workerd sets `--noincremental-marking` after applying the config's V8
 * flags (src/workerd/jsg/setup.c++), so every major collection is one atomic stop-the-world
 * mark-compact, and every Durable Object of the local edge shares that one isolate and thread.
 *
 * A line looks like
 *   [6803:0x73c63fa12000]  4401 ms: Scavenge 2.4 (3.6) -> 1.9 (3.1) MB, pooled: 1.0 MB, 3.73 / 0.00 ms (…) allocation failure;
 * Miniflare runs a few isolates of its own besides the Worker's; a phase reports the one that
 * paused longest (the Worker's, which allocates for every message).
 */

export interface PauseStats {
  n: number;
  totalMs: number;
  maxMs: number;
}

export interface GcSummary {
  /** Young-generation collections. */
  scavenge: PauseStats;
  /** Full collections (atomic in workerd). */
  markCompact: PauseStats;
  /** Both kinds together, ms. */
  pausedMs: number;
  /** Old-generation MB left after the last full collection. */
  liveMbAfterLastFull: number | null;
}

const LINE = /^\[\d+:(0x[0-9a-f]+)\]\s+\d+ ms: (Scavenge|Minor Mark-Sweep|Mark-Compact(?: \(reduce\))?) [\d.]+ \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

type IsolateTotals = Omit<GcSummary, 'pausedMs'>;

const empty = (): IsolateTotals => ({ scavenge: { n: 0, totalMs: 0, maxMs: 0 }, markCompact: { n: 0, totalMs: 0, maxMs: 0 }, liveMbAfterLastFull: null });

export class GcTrace {
  private isolates = new Map<string, IsolateTotals>();

  /** Takes one output line; false when it is not a trace-gc line. */
  line(text: string): boolean {
    const m = LINE.exec(text.trim());
    if (!m) return false;
    const [, isolate, kind, afterMb, pauseMs] = m as unknown as [string, string, string, string, string];
    let t = this.isolates.get(isolate);
    if (!t) this.isolates.set(isolate, (t = empty()));
    const full = kind.startsWith('Mark-Compact');
    const s = full ? t.markCompact : t.scavenge;
    const ms = Number(pauseMs);
    s.n++;
    s.totalMs += ms;
    s.maxMs = Math.max(s.maxMs, ms);
    if (full) t.liveMbAfterLastFull = Number(afterMb);
    return true;
  }

  /** The pauses since the last call, of the isolate that paused longest (null: no collection seen). */
  take(): GcSummary | null {
    let best: IsolateTotals | null = null;
    const paused = (t: IsolateTotals) => t.scavenge.totalMs + t.markCompact.totalMs;
    for (const t of this.isolates.values()) if (!best || paused(t) > paused(best)) best = t;
    this.isolates = new Map();
    if (!best) return null;
    const round = (s: PauseStats): PauseStats => ({ n: s.n, totalMs: Math.round(s.totalMs * 10) / 10, maxMs: Math.round(s.maxMs * 10) / 10 });
    return { scavenge: round(best.scavenge), markCompact: round(best.markCompact), pausedMs: Math.round(paused(best) * 10) / 10, liveMbAfterLastFull: best.liveMbAfterLastFull };
  }
}
