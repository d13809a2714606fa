import { MessageEvent, type Delivery } from '@switchboard/protocol';
import type { Logger } from './log.ts';
import { MembersCache } from './members-cache.ts';
import { pushJobId, type PushJob } from './push-jobs.ts';
import { RegionMetrics } from './metrics.ts';
import type { QueueRecord } from './queue.ts';
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

/**
 * The fan-out worker's handler for one `fanout` record: resolve the conversation's members,
 * look up where their devices are, and deliver once per (user, edge). The sender's own device is
 * skipped (it has its `sent`); the sender's other devices receive the message like anyone else.
 * Throwing makes the queue retry the record; devices dedupe by (conv, seq).
 */
export function fanoutHandler(deps: FanoutDeps): (record: QueueRecord) => Promise<void> {
  const metrics = deps.metrics ?? new RegionMetrics();
  const members = new MembersCache(deps.storage);
  const handle = async (record: QueueRecord) => {
    const parsed = MessageEvent.safeParse(record.value);
    if (!parsed.success) {
      deps.log.error('fanout record is not a message event; dropped to the log', { key: record.key });
      return;
    }
    const { msg, ver } = parsed.data;
    metrics.age('fanout_consumed', msg.ts);
    // The members as of this seq (membership is sequenced: see MembersCache and membersAt).
    const roster = await metrics.time('fanout_conversation', () => members.roster(msg.conv, ver, () => metrics.inc('members_cache_misses')));
    if (!roster) throw new Error(`conversation ${msg.conv} not stored yet`);
    const conv = { members: membersAt(roster, msg.seq) };
    const found = await metrics.time('fanout_routes', () => deps.routes.lookup(conv.members));
    // Devices the edge's live path already pushed it to are not delivered to again; a member's
    // other device (one that connected since) still is.
    const live = new Map((parsed.data.delivered ?? []).map((d) => [d.user, new Set(d.devices)]));
    const routes = new Map<string, Route[]>();
    for (const [user, list] of found) {
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
    metrics.inc('deliver_calls', byEdge.size);
    await Promise.all([...byEdge].map(([edge, batch]) => metrics.time('deliver', () => deps.deliver(edge, batch))));
    metrics.age('delivered', msg.ts);
    // ---- push jobs: one per member with no live device (not the sender, not for system events)
    if (deps.enqueuePush && !msg.sys) {
      const jobs: PushJob[] = conv.members
        .filter((user) => user !== msg.from && !found.has(user))
        .map((user) => ({ kind: 'push', id: pushJobId(msg.conv, msg.seq, user), user, conv: msg.conv, seq: msg.seq, from: msg.from, ts: msg.ts }));
      if (jobs.length) {
        await deps.enqueuePush(jobs);
        metrics.inc('push_jobs', jobs.length);
      }
    }
    deps.log.debug('fanned out', { conv: msg.conv, seq: msg.seq, edges: byEdge.size, online: routes.size, members: conv.members.length });
  };
  return async (record) => {
    const t0 = performance.now();
    metrics.inc('fanout_records');
    try {
      await handle(record);
    } catch (err) {
      metrics.inc('fanout_failures');
      throw err;
    } finally {
      metrics.op('fanout_handler', t0);
    }
  };
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
  const maxDeliveries = opts.maxDeliveries ?? 5000;
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
