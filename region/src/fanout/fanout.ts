import { MessageEvent, type Delivery } from '@switchboard/protocol';
import type { Logger } from '../log.ts';
import { MembersCache } from './members-cache.ts';
import { MESSAGE_PUSH_TTL_MS, pushIntentId, type PushIntent } from '../push/intents.ts';
import type { PushRegistration } from '../push/provider.ts';
import { RegionMetrics } from '../metrics/region-metrics.ts';
import type { QueueBatchHandler, QueueHandler, QueueRecord } from '../queue/queue.ts';
import type { Route, Routes } from '../routes/routes.ts';
import type { Span } from '@opentelemetry/api';
import type { Tracing } from '../tracing/tracing.ts';
import { membersAt, type Storage } from '../storage/storage.ts';

export interface FanoutDeps {
  storage: Storage;
  routes: Routes;
  log: Logger;
  deliver: (edge: string, deliveries: Delivery[]) => Promise<unknown>;
  /** Stage timing of the message path (default: a private, unread instance). */
  metrics?: RegionMetrics;
  /**
   * Enqueues push intents (the `push` topic), one per registered device of a member (not the
   * sender) that has no route; called after the record's deliveries were accepted. Absent: none.
   */
  enqueuePush?: (intents: PushIntent[]) => Promise<void>;
  /** Members' push registrations (a RegistrationsCache); needed with `enqueuePush`. */
  pushRegistrations?: (users: string[]) => Promise<Map<string, PushRegistration[]>>;
  /** Spans of traced messages (`fanout`, and `deliver` under it); default: off. */
  tracing?: Tracing;
}

/** Deliveries to one edge per request at most; a run of records is delivered in sub-runs within it. */
export const DELIVERIES_PER_REQUEST = 10_000;

interface Resolved {
  msg: MessageEvent['msg'];
  /** A traced message's `fanout` span (null: not traced). */
  span: Span | null;
  members: string[];
  /** Per gateway the edge's live path reached: every socket up to this connection id has the message. */
  live: Map<string, number>;
}

interface Plan {
  msg: MessageEvent['msg'];
  span: Span | null;
  byEdge: Map<string, Delivery[]>;
  intents: PushIntent[];
}

/** The live hints of an event as gateway → the highest `upTo` named for it. */
function liveReached(live: MessageEvent['live']): Map<string, number> {
  const out = new Map<string, number>();
  for (const { gw, upTo } of live ?? []) if (upTo > (out.get(gw) ?? -1)) out.set(gw, upTo);
  return out;
}

/**
 * Whether fan-out delivers `msg` to the device of `route`: not to the device that sent it (it has
 * its `sent`; a membership change goes to it too), and not to a socket the edge's live path
 * reached (its gateway is in `live` with a connection id up to the route's). A socket that
 * connected after the live push (a larger conn) or sits on another gateway still gets it.
 */
export function needsDelivery(msg: MessageEvent['msg'], live: Map<string, number>, route: Route): boolean {
  if (!msg.sys && route.user === msg.from && route.device === msg.dev) return false;
  const upTo = live.get(route.gw);
  return upTo === undefined || route.conn > upTo;
}

/**
 * The fan-out worker's handlers for `fanout` records: resolve the conversation's members, look up
 * where their devices are, and deliver once per (user, gateway) that has a device needing it
 * (`needsDelivery`); the edge hands each to that gateway, which pushes it to the user's live
 * sockets there but `skipDevice` (the sender's, on the sender's deliveries). `one` handles a
 * record; `many` a run of one conversation's consecutive records (the queue's batch), delivering
 * them together: per edge one request (carrying every gateway's recipients), and per (user,
 * gateway) the messages in seq order, so a busy group costs a gateway call per run, not per
 * message. Throwing makes the queue retry; gateways and devices dedupe by (conv, seq).
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
    const span = deps.tracing?.start('fanout', deps.tracing.parent(parsed.data.trace), { 'switchboard.conv': msg.conv, 'switchboard.seq': msg.seq }) ?? null;
    // The members as of this seq (membership is sequenced: see MembersCache and membersAt).
    const roster = await metrics.time('fanout_conversation', () => members.roster(msg.conv, ver, () => metrics.inc('members_cache_misses')));
    if (!roster) {
      const err = new Error(`conversation ${msg.conv} not stored yet`);
      deps.tracing?.end([span], err);
      throw err;
    }
    return { msg, span, members: membersAt(roster, msg.seq), live: liveReached(parsed.data.live) };
  };

  /** Routes of every member of `resolved`, in one lookup: a run of a group's messages asks once, not once per message. */
  const lookup = (resolved: Resolved[]) => {
    const users = new Set<string>();
    for (const r of resolved) for (const u of r.members) users.add(u);
    return metrics.time('fanout_routes', () => deps.routes.lookup([...users]));
  };

  const plan = ({ msg, span, members: convMembers, live }: Resolved, found: Map<string, Route[]>, regs: Map<string, PushRegistration[]>): Plan => {
    const byEdge = new Map<string, Delivery[]>();
    for (const user of convMembers) {
      const list = found.get(user);
      if (!list) continue;
      // Per edge, the gateways holding a device of this member that needs the message: one delivery each.
      const targets = new Map<string, Set<string>>();
      for (const r of list) {
        if (!needsDelivery(msg, live, r)) continue;
        const gws = targets.get(r.edge);
        if (gws) gws.add(r.gw);
        else targets.set(r.edge, new Set([r.gw]));
      }
      if (targets.size === 0) {
        metrics.inc('fanout_live_skipped');
        continue;
      }
      for (const [edge, gws] of targets) {
        const batch = byEdge.get(edge) ?? [];
        if (!byEdge.has(edge)) byEdge.set(edge, batch);
        // The sender's other devices may share the sending device's gateway: it is skipped there.
        for (const gw of gws) batch.push(user === msg.from && !msg.sys ? { user, gw, msg, skipDevice: msg.dev } : { user, gw, msg });
      }
    }
    metrics.age('fanout_resolved', msg.ts);
    // Push intents: one per registered device of a member with no socket (not the sender's, not
    // for system events): the push worker checks again before it sends.
    const intents: PushIntent[] = [];
    if (deps.enqueuePush && !msg.sys)
      for (const user of convMembers) {
        if (user === msg.from) continue;
        const online = new Set((found.get(user) ?? []).map((r) => r.device));
        for (const reg of regs.get(user) ?? []) {
          if (online.has(reg.device)) continue;
          intents.push({ kind: 'push', id: pushIntentId(msg.conv, msg.seq, user, reg.device), user, device: reg.device, conv: msg.conv, seq: msg.seq, from: msg.from, ts: msg.ts, expireAt: msg.ts + MESSAGE_PUSH_TTL_MS, attempts: 0 });
        }
      }
    return { msg, span, byEdge, intents };
  };

  /** Push registrations of the members of `resolved` but their senders (none without enqueuePush). */
  const registrations = async (resolved: Resolved[]): Promise<Map<string, PushRegistration[]>> => {
    if (!deps.enqueuePush || !deps.pushRegistrations) return new Map();
    const users = new Set<string>();
    for (const r of resolved) if (!r.msg.sys) for (const u of r.members) if (u !== r.msg.from) users.add(u);
    return users.size ? deps.pushRegistrations([...users]) : new Map();
  };

  /** Plans of `records` (one conversation, in order), sharing one routes lookup. */
  const plans = async (records: QueueRecord[]): Promise<Plan[]> => {
    const resolved: Resolved[] = [];
    for (const record of records) {
      const r = await resolve(record);
      if (r) resolved.push(r);
    }
    if (resolved.length === 0) return [];
    const [found, regs] = await Promise.all([lookup(resolved), registrations(resolved)]);
    return resolved.map((r) => plan(r, found, regs));
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
    const fanoutSpans = plans.map((p) => p.span);
    const deliverSpans = deps.tracing ? plans.map((p) => deps.tracing!.child('deliver', p.span, { 'switchboard.edges': p.byEdge.size, 'switchboard.deliveries': [...p.byEdge.values()].reduce((n, l) => n + l.length, 0) })) : [];
    let open = [...deliverSpans, ...fanoutSpans];
    try {
      await Promise.all([...byEdge].map(([edge, batch]) => metrics.time('deliver', () => deps.deliver(edge, batch))));
      deps.tracing?.end(deliverSpans);
      open = fanoutSpans;
      for (const p of plans) metrics.age('delivered', p.msg.ts);
      const intents = plans.flatMap((p) => p.intents);
      if (intents.length && deps.enqueuePush) {
        await deps.enqueuePush(intents);
        metrics.inc('push_jobs', intents.length);
      }
    } catch (err) {
      deps.tracing?.end(open, err);
      throw err;
    }
    deps.tracing?.end(fanoutSpans);
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
      const bytes = [...bodies.values()].reduce((a, n) => a + n, 0) + deliveries.length * 96; // a recipient entry names its gateway too
      e.queue.push({ deliveries, bytes, resolve, reject });
      pump(edge);
    });
}
