import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * Always-on stage timing of the message path: where a message's time goes in the region.
 *
 * - `switchboard_region_message_age_seconds{point}`: a message's age (now − msg.ts, its
 *   sequencing time at the edge's ConversationDO) when it reaches each point of the region's path.
 *   Read in order, the points are a timeline; where the age jumps is where the time goes.
 *   Same-machine clocks only make this exact; across machines it includes their clock skew.
 * - `switchboard_region_operation_duration_seconds{op}`: how long each operation on the path took.
 * - plain counters of the path (requests, messages, fan-out records, deliveries, push jobs).
 */

/** Upper bounds (s) of both histograms: fine enough to interpolate percentiles within ~15 %. */
export const PATH_BUCKETS_S = [
  0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750,
  1000, 1500, 2000, 3000, 5000, 10_000, 30_000,
].map((ms) => ms / 1000);

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
  'fanout_conversation', // the roster lookup in the fan-out handler
  'fanout_routes', // routes.lookup in the fan-out handler
  'deliver', // one record's deliveries to one edge accepted (incl. waiting to share a request)
  'deliver_request', // one HTTP request to an edge's /internal/deliver
  'fanout_handler', // whole fan-out handler, per record
] as const;
export type Op = (typeof OPS)[number];

/** The path's counters: short name → metric name and help. */
export const COUNTERS = {
  events_requests: ['switchboard_region_events_requests_total', 'Internal /internal/events requests handled (edge outbox drains)'],
  events_messages: ['switchboard_region_events_messages_total', 'Messages received in /internal/events'],
  fanout_records: ['switchboard_fanout_records_total', 'Fan-out records handled (retries included)'],
  fanout_failures: ['switchboard_fanout_failures_total', 'Fan-out handler attempts that threw'],
  deliver_calls: ['switchboard_fanout_deliver_calls_total', 'Deliver calls to edges (one per record and edge)'],
  deliver_requests: ['switchboard_fanout_deliver_requests_total', 'HTTP requests to edges carrying those calls (fewer when coalesced)'],
  push_jobs: ['switchboard_fanout_push_jobs_total', 'Push intents enqueued: registered devices of members with no socket'],
  members_cache_misses: ['switchboard_fanout_members_cache_misses_total', 'Fan-out member lookups that reloaded a conversation (new membership version)'],
  fanout_live_skipped: ['switchboard_fanout_live_skipped_total', "Members with a route not delivered to: the edge's live path reached every socket of theirs (or the sender's only one sent it)"],
} as const;
export type CounterName = keyof typeof COUNTERS;

type Child = { observe(v: number): void };

export class MessagePathMetrics {
  readonly ages: Histogram<'point'>;
  readonly ops: Histogram<'op'>;
  readonly counters: Record<CounterName, Counter>;
  private readonly ageOf = new Map<AgePoint, Child>();
  private readonly opOf = new Map<Op, Child>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.ages = new Histogram({ name: 'switchboard_region_message_age_seconds', help: 'Age of a message (now - msg.ts, its edge sequencing time) at each point of the region path', labelNames: ['point'], buckets: PATH_BUCKETS_S, registers });
    this.ops = new Histogram({ name: 'switchboard_region_operation_duration_seconds', help: 'Duration of each operation on the message path', labelNames: ['op'], buckets: PATH_BUCKETS_S, registers });
    for (const p of AGE_POINTS) (this.ages.zero({ point: p }), this.ageOf.set(p, this.ages.labels({ point: p })));
    for (const o of OPS) (this.ops.zero({ op: o }), this.opOf.set(o, this.ops.labels({ op: o })));
    this.counters = Object.fromEntries(Object.entries(COUNTERS).map(([k, [name, help]]) => [k, new Counter({ name, help, registers })])) as Record<CounterName, Counter>;
  }

  /** Records the age of a message sequenced at `ts` (ms since the epoch) at `point`. */
  age(point: AgePoint, ts: number, now = Date.now()): void {
    this.ageOf.get(point)!.observe(Math.max(0, now - ts) / 1000);
  }

  /** Records an operation that started at `startedAt` (a `performance.now()` value). */
  op(op: Op, startedAt: number): void {
    this.opOf.get(op)!.observe(Math.max(0, performance.now() - startedAt) / 1000);
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
    this.counters[name].inc(by);
  }

  /** A counter's value now (tests). */
  async count(name: CounterName): Promise<number> {
    return (await this.counters[name].get()).values[0]?.value ?? 0;
  }
}
