import { MessageEvent, type Delivery } from '@switchboard/protocol';
import type { Logger } from './log.ts';
import { MembersCache } from './members-cache.ts';
import { pushJobId, type PushJob } from './push-jobs.ts';
import { RegionMetrics } from './metrics.ts';
import type { QueueBatchHandler, QueueHandler, QueueRecord } from './queue.ts';
import type { Route, Routes } from './routes.ts';
import { membersAt, type Storage } from './storage.ts';

export interface FanoutDeps {
  storage: Storage;
  routes: Routes;
  log: Logger;
  deliver: (edge: string, deliveries: Delivery[]) => Promise<unknown>;
  /** Stage timing of the message path (default: a private, unread instance). */
  metrics?: RegionMetrics;
  /**
   * Enqueues push jobs (the `push` topic) for members with no live device; called after the
   * record's deliveries were accepted. Absent: no push jobs.
   */
  enqueuePush?: (jobs: PushJob[]) => Promise<void>;
}

/** Deliveries to one edge per request at most; a run of records is delivered in sub-runs within it. */
export const DELIVERIES_PER_REQUEST = 10_000;

interface Resolved {
  msg: MessageEvent['msg'];
  members: string[];
  delivered: NonNullable<MessageEvent['delivered']>;
}

interface Plan {
  msg: MessageEvent['msg'];
  byEdge: Map<string, Delivery[]>;
  jobs: PushJob[];
}

/**
 * The fan-out worker's handlers for `fanout` records: resolve the conversation's members, look up
 * where their devices are, and deliver once per (user, edge). The sender's own device is skipped
 * (it has its `sent`); the sender's other devices receive the message like anyone else. `one`
 * handles a record; `many` a run of one conversation's consecutive records (the queue's batch),
 * delivering them together: per edge one request, and per user one call carrying their messages
 * in seq order, so a busy group costs a SessionDO call per run, not per message. Throwing makes
 * the queue retry; devices dedupe by (conv, seq).
 */
export function fanoutHandlers(deps: FanoutDeps): { one: QueueHandler; many: QueueBatchHandler } {
  const metrics = deps.metrics ?? new RegionMetrics();
  const members = new MembersCache(deps.storage);

  /** A record's message and its members as of its seq; null for a record that is not a message event. */
  const resolve = async (record: QueueRecord): Promise<Resolved | null> => {
    const parsed = MessageEvent.safeParse(record.value);
    if (!parsed.success) {
      deps.log.error('fanout record is not a message event; dropped to the log', { key: record.key });
      return null;
    }
    const { msg, ver } = parsed.data;
    metrics.age('fanout_consumed', msg.ts);
    // The members as of this seq (membership is sequenced: see MembersCache and membersAt).
    const roster = await metrics.time('fanout_conversation', () => members.roster(msg.conv, ver, () => metrics.inc('members_cache_misses')));
    if (!roster) throw new Error(`conversation ${msg.conv} not stored yet`);
    return { msg, members: membersAt(roster, msg.seq), delivered: parsed.data.delivered ?? [] };
  };

  /** Routes of every member of `resolved`, in one lookup: a run of a group's messages asks once, not once per message. */
  const lookup = (resolved: Resolved[]) => {
    const users = new Set<string>();
    for (const r of resolved) for (const u of r.members) users.add(u);
    return metrics.time('fanout_routes', () => deps.routes.lookup([...users]));
  };

  const plan = ({ msg, members: convMembers, delivered }: Resolved, found: Map<string, Route[]>): Plan => {
    // Devices the edge's live path already pushed it to are not delivered to again; a member's
    // other device (one that connected since) still is.
    const live = new Map(delivered.map((d) => [d.user, new Set(d.devices)]));
    const routes = new Map<string, Route[]>();
    for (const user of convMembers) {
      const list = found.get(user);
      if (!list) continue;
      const had = live.get(user);
      // The sending device has its `sent` (it is skipped at the edge): no call for it alone. A
      // system event goes to it too.
      const rest = list.filter((r) => !had?.has(r.device) && (msg.sys || !(user === msg.from && r.device === msg.dev)));
      if (rest.length > 0) routes.set(user, rest);
      else metrics.inc('fanout_live_skipped');
    }
    metrics.age('fanout_resolved', msg.ts);
    const byEdge = new Map<string, Delivery[]>();
    for (const [user, list] of routes) {
      for (const edge of new Set(list.map((r) => r.edge))) {
        // A system event (membership change) also reaches the device that made it.
        const d: Delivery = user === msg.from && !msg.sys ? { user, msg, skipDevice: msg.dev } : { user, msg };
        const batch = byEdge.get(edge);
        if (batch) batch.push(d);
        else byEdge.set(edge, [d]);
      }
    }
    // Push jobs: one per member with no live device (not the sender, not for system events).
    const jobs: PushJob[] =
      deps.enqueuePush && !msg.sys
        ? convMembers
            .filter((user) => user !== msg.from && !found.has(user))
            .map((user) => ({ kind: 'push', id: pushJobId(msg.conv, msg.seq, user), user, conv: msg.conv, seq: msg.seq, from: msg.from, ts: msg.ts }))
        : [];
    return { msg, byEdge, jobs };
  };

  /** Plans of `records` (one conversation, in order), sharing one routes lookup. */
  const plans = async (records: QueueRecord[]): Promise<Plan[]> => {
    const resolved: Resolved[] = [];
    for (const record of records) {
      const r = await resolve(record);
      if (r) resolved.push(r);
    }
    if (resolved.length === 0) return [];
    const found = await lookup(resolved);
    return resolved.map((r) => plan(r, found));
  };

  /** Delivers plans (one conversation, seq order) together, then queues their push jobs. */
  const send = async (plans: Plan[]): Promise<void> => {
    const byEdge = new Map<string, Delivery[]>();
    for (const p of plans)
      for (const [edge, list] of p.byEdge) {
        const all = byEdge.get(edge);
        if (all) all.push(...list);
        else byEdge.set(edge, [...list]);
      }
    metrics.inc('deliver_calls', byEdge.size);
    await Promise.all([...byEdge].map(([edge, batch]) => metrics.time('deliver', () => deps.deliver(edge, batch))));
    for (const p of plans) metrics.age('delivered', p.msg.ts);
    const jobs = plans.flatMap((p) => p.jobs);
    if (jobs.length && deps.enqueuePush) {
      await deps.enqueuePush(jobs);
      metrics.inc('push_jobs', jobs.length);
    }
    for (const p of plans) deps.log.debug('fanned out', { conv: p.msg.conv, seq: p.msg.seq, edges: p.byEdge.size });
  };

  const timed = async (records: number, fn: () => Promise<void>) => {
    const t0 = performance.now();
    metrics.inc('fanout_records', records);
    try {
      await fn();
    } catch (err) {
      metrics.inc('fanout_failures');
      throw err;
    } finally {
      metrics.op('fanout_handler', t0);
    }
  };

  return {
    one: (record) =>
      timed(1, async () => {
        const ps = await plans([record]);
        if (ps.length) await send(ps);
      }),
    // Sub-runs keep each request within DELIVERIES_PER_REQUEST per edge; they go one after the
    // other, so every user still gets the conversation's messages in seq order.
    many: (records) =>
      timed(records.length, async () => {
        let run: Plan[] = [];
        const size = new Map<string, number>();
        for (const p of await plans(records)) {
          const over = [...p.byEdge].some(([edge, list]) => (size.get(edge) ?? 0) + list.length > DELIVERIES_PER_REQUEST);
          if (over && run.length > 0) {
            await send(run);
            run = [];
            size.clear();
          }
          run.push(p);
          for (const [edge, list] of p.byEdge) size.set(edge, (size.get(edge) ?? 0) + list.length);
        }
        if (run.length > 0) await send(run);
      }),
  };
}

/** The single-record handler (tests, tools). */
export function fanoutHandler(deps: FanoutDeps): QueueHandler {
  return fanoutHandlers(deps).one;
}

/**
 * Wraps `deliver` so that calls to one edge made while earlier ones are in flight travel
 * together: at most `maxInFlight` requests per edge at a time, each carrying every delivery queued
 * when it starts (up to `maxDeliveries` and about `maxBytes` of JSON; a larger call goes alone, as
 * it would have anyway). An idle edge gets each call at once, unchanged; a busy
 * one gets fewer, larger requests instead of a queue of small ones. Each caller resolves or
 * throws with the request that carried its deliveries, so a record is still handled only once its
 * own deliveries were accepted, and a key's next record still waits for it (order unchanged).
 */
export function coalescingDeliver(
  deliver: (edge: string, deliveries: Delivery[]) => Promise<unknown>,
  opts: { maxInFlight?: number; maxDeliveries?: number; maxBytes?: number; metrics?: RegionMetrics } = {},
): (edge: string, deliveries: Delivery[]) => Promise<void> {
  const maxInFlight = opts.maxInFlight ?? 4;
  const maxDeliveries = opts.maxDeliveries ?? DELIVERIES_PER_REQUEST;
  const maxBytes = opts.maxBytes ?? 1024 * 1024;
  interface Waiter {
    deliveries: Delivery[];
    bytes: number;
    resolve: () => void;
    reject: (err: unknown) => void;
  }
  const edges = new Map<string, { queue: Waiter[]; inFlight: number }>();

  const pump = (edge: string) => {
    const e = edges.get(edge)!;
    while (e.inFlight < maxInFlight && e.queue.length > 0) {
      const take: Waiter[] = [];
      let n = 0;
      let bytes = 0;
      const fits = (w: Waiter) => n + w.deliveries.length <= maxDeliveries && bytes + w.bytes <= maxBytes;
      while (e.queue.length > 0 && (take.length === 0 || fits(e.queue[0]!))) {
        const w = e.queue.shift()!;
        take.push(w);
        n += w.deliveries.length;
        bytes += w.bytes;
      }
      e.inFlight++;
      const t0 = performance.now();
      opts.metrics?.inc('deliver_requests');
      deliver(edge, take.flatMap((w) => w.deliveries)).then(
        () => take.forEach((w) => w.resolve()),
        (err) => take.forEach((w) => w.reject(err)),
      ).finally(() => {
        opts.metrics?.op('deliver_request', t0);
        e.inFlight--;
        if (e.queue.length > 0) pump(edge);
        else if (e.inFlight === 0) edges.delete(edge);
      });
    }
  };

  return (edge, deliveries) =>
    new Promise<void>((resolve, reject) => {
      let e = edges.get(edge);
      if (!e) edges.set(edge, (e = { queue: [], inFlight: 0 }));
      // Each message travels once per request (packDeliveries), each recipient as a short entry:
      // roughly, enough to keep requests within the edge's limits.
      const bodies = new Map(deliveries.map((d) => [`${d.msg.conv}\u0000${d.msg.seq}`, d.msg.body.length + 256]));
      const bytes = [...bodies.values()].reduce((a, n) => a + n, 0) + deliveries.length * 64;
      e.queue.push({ deliveries, bytes, resolve, reject });
      pump(edge);
    });
}
