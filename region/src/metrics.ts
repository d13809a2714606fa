/**
 * Always-on, allocation-free stage timing for the message path, in Prometheus text format.
 *
 * Two histogram families, both in milliseconds, with the same fixed buckets:
 * - `sb_region_msg_age_ms{point}`: a message's age (now − msg.ts, its sequencing time at the
 *   edge's ConversationDO) when it reaches each point of the region's path. Read in order, the
 *   points are a timeline; where the age jumps is where the time goes. Same-machine clocks only
 *   make this exact; across machines it includes their clock skew.
 * - `sb_region_op_ms{op}`: how long each operation on the path took.
 * Plus plain counters. Observing is a few array writes: cheap enough to leave on.
 */

/** Upper bounds (ms) of the histogram buckets; fine enough to interpolate percentiles within ~15 %. */
export const BUCKETS_MS = [
  0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750,
  1000, 1500, 2000, 3000, 5000, 10_000, 30_000,
] as const;

/** Points on the region's path, in path order. */
export const AGE_POINTS = [
  /** /internal/events handler entered (edge outbox drain + HTTP + signature check). */
  'region_received',
  /** storage.appendMessages resolved. */
  'stored',
  /** queue.publish resolved: the region answers the edge now. */
  'published',
  /** fan-out handler entered (queue hop: fetch, partition queueing). */
  'fanout_consumed',
  /** members and routes resolved. */
  'fanout_resolved',
  /** every edge's deliver call answered (the edge has handed it to the sockets). */
  'delivered',
] as const;
export type AgePoint = (typeof AGE_POINTS)[number];

export const OPS = [
  'events_request', // whole /internal/events handler
  'store', // storage.appendMessages, per call
  'positions', // storage.setPositions (read receipts), per call
  'publish', // queue.publish, per call
  'fanout_conversation', // storage.getConversation in the fan-out handler
  'fanout_routes', // routes.lookup in the fan-out handler
  'deliver', // one record's deliveries to one edge accepted (incl. waiting to share a request)
  'deliver_request', // one HTTP request to an edge's /internal/deliver
  'fanout_handler', // whole fan-out handler, per record
] as const;
export type Op = (typeof OPS)[number];

export const COUNTERS = {
  events_requests: 'internal /internal/events requests handled',
  events_messages: 'messages received in /internal/events',
  fanout_records: 'fan-out records handled (incl. retries)',
  fanout_failures: 'fan-out handler attempts that threw',
  deliver_calls: 'deliver calls to edges (one per record and edge)',
  push_jobs: 'push intents enqueued: registered devices of members with no socket',
  members_cache_misses: 'fan-out member lookups that reloaded a conversation (new membership version)',
  deliver_requests: 'HTTP requests to edges carrying those calls (fewer when coalesced)',
  fanout_live_skipped: "members with a route not delivered to: the edge's live path reached every socket of theirs (or the sender's only one sent it)",
} as const;
export type CounterName = keyof typeof COUNTERS;

export class Histogram {
  /** counts[i] = observations ≤ BUCKETS_MS[i] and > the previous bound; the last slot is +Inf. */
  readonly counts = new Float64Array(BUCKETS_MS.length + 1);
  sum = 0;
  count = 0;

  observe(ms: number): void {
    const v = ms > 0 ? ms : 0;
    let lo = 0;
    let hi: number = BUCKETS_MS.length; // binary search for the first bound ≥ v
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (BUCKETS_MS[mid]! >= v) hi = mid;
      else lo = mid + 1;
    }
    this.counts[lo]!++;
    this.sum += v;
    this.count++;
  }
}

export class RegionMetrics {
  readonly ages = new Map<AgePoint, Histogram>(AGE_POINTS.map((p) => [p, new Histogram()]));
  readonly ops = new Map<Op, Histogram>(OPS.map((o) => [o, new Histogram()]));
  readonly counters = new Map<CounterName, number>(Object.keys(COUNTERS).map((k) => [k as CounterName, 0]));

  /** Records the age of a message sequenced at `ts` (ms since the epoch) at `point`. */
  age(point: AgePoint, ts: number, now = Date.now()): void {
    this.ages.get(point)!.observe(now - ts);
  }

  /** Records an operation that started at `startedAt` (a `performance.now()` value). */
  op(op: Op, startedAt: number): void {
    this.ops.get(op)!.observe(performance.now() - startedAt);
  }

  /** Times `fn` as `op`, whether it resolves or throws. */
  async time<T>(op: Op, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.op(op, t0);
    }
  }

  inc(name: CounterName, by = 1): void {
    this.counters.set(name, this.counters.get(name)! + by);
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    const out: string[] = [];
    const histogram = (name: string, help: string, label: string, hs: Map<string, Histogram>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      for (const [key, h] of hs) {
        let cum = 0;
        BUCKETS_MS.forEach((le, i) => {
          cum += h.counts[i]!;
          out.push(`${name}_bucket{${label}="${key}",le="${le}"} ${cum}`);
        });
        cum += h.counts[BUCKETS_MS.length]!;
        out.push(`${name}_bucket{${label}="${key}",le="+Inf"} ${cum}`);
        out.push(`${name}_sum{${label}="${key}"} ${round(h.sum)}`, `${name}_count{${label}="${key}"} ${h.count}`);
      }
    };
    histogram('sb_region_msg_age_ms', 'Age of a message (now - msg.ts, its edge sequencing time) at each point of the region path', 'point', this.ages);
    histogram('sb_region_op_ms', 'Duration of each operation on the message path', 'op', this.ops);
    for (const [name, help] of Object.entries(COUNTERS)) {
      out.push(`# HELP sb_region_${name}_total ${help}`, `# TYPE sb_region_${name}_total counter`, `sb_region_${name}_total ${this.counters.get(name as CounterName)}`);
    }
    return out.join('\n') + '\n';
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
