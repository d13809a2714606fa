import { MessageEvent, type Delivery } from '@switchboard/protocol';
import type { Logger } from './log.ts';
import { RegionMetrics } from './metrics.ts';
import type { QueueRecord } from './queue.ts';
import type { Routes } from './routes.ts';
import type { Storage } from './storage.ts';

export interface FanoutDeps {
  storage: Storage;
  routes: Routes;
  log: Logger;
  deliver: (edge: string, deliveries: Delivery[]) => Promise<unknown>;
  /** Stage timing of the message path (default: a private, unread instance). */
  metrics?: RegionMetrics;
}

/**
 * The fan-out worker's handler for one `fanout` record: resolve the conversation's members,
 * look up where their devices are, and deliver once per (user, edge). The sender's own device is
 * skipped (it has its `sent`); the sender's other devices receive the message like anyone else.
 * Throwing makes the queue retry the record; devices dedupe by (conv, seq).
 */
export function fanoutHandler(deps: FanoutDeps): (record: QueueRecord) => Promise<void> {
  const metrics = deps.metrics ?? new RegionMetrics();
  const handle = async (record: QueueRecord) => {
    const parsed = MessageEvent.safeParse(record.value);
    if (!parsed.success) {
      deps.log.error('fanout record is not a message event; dropped to the log', { key: record.key });
      return;
    }
    const { msg } = parsed.data;
    metrics.age('fanout_consumed', msg.ts);
    const conv = await metrics.time('fanout_conversation', () => deps.storage.getConversation(msg.conv));
    if (!conv) throw new Error(`conversation ${msg.conv} not stored yet`);
    const routes = await metrics.time('fanout_routes', () => deps.routes.lookup(conv.members));
    metrics.age('fanout_resolved', msg.ts);
    const byEdge = new Map<string, Delivery[]>();
    for (const [user, list] of routes) {
      for (const edge of new Set(list.map((r) => r.edge))) {
        const d: Delivery = user === msg.from ? { user, msg, skipDevice: msg.dev } : { user, msg };
        const batch = byEdge.get(edge);
        if (batch) batch.push(d);
        else byEdge.set(edge, [d]);
      }
    }
    metrics.inc('deliver_calls', byEdge.size);
    await Promise.all([...byEdge].map(([edge, batch]) => metrics.time('deliver', () => deps.deliver(edge, batch))));
    metrics.age('delivered', msg.ts);
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
