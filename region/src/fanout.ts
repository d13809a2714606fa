import { MessageEvent, type Delivery } from '@switchboard/protocol';
import type { Logger } from './log.ts';
import type { QueueRecord } from './queue.ts';
import type { Routes } from './routes.ts';
import type { Storage } from './storage.ts';

export interface FanoutDeps {
  storage: Storage;
  routes: Routes;
  log: Logger;
  deliver: (edge: string, deliveries: Delivery[]) => Promise<unknown>;
}

/**
 * The fan-out worker's handler for one `fanout` record: resolve the conversation's members,
 * look up where their devices are, and deliver once per (user, edge). The sender's own device is
 * skipped (it has its `sent`); the sender's other devices receive the message like anyone else.
 * Throwing makes the queue retry the record; devices dedupe by (conv, seq).
 */
export function fanoutHandler(deps: FanoutDeps): (record: QueueRecord) => Promise<void> {
  return async (record) => {
    const parsed = MessageEvent.safeParse(record.value);
    if (!parsed.success) {
      deps.log.error('fanout record is not a message event; dropped to the log', { key: record.key });
      return;
    }
    const { msg } = parsed.data;
    const conv = await deps.storage.getConversation(msg.conv);
    if (!conv) throw new Error(`conversation ${msg.conv} not stored yet`);
    const routes = await deps.routes.lookup(conv.members);
    const byEdge = new Map<string, Delivery[]>();
    for (const [user, list] of routes) {
      for (const edge of new Set(list.map((r) => r.edge))) {
        const d: Delivery = user === msg.from ? { user, msg, skipDevice: msg.dev } : { user, msg };
        const batch = byEdge.get(edge);
        if (batch) batch.push(d);
        else byEdge.set(edge, [d]);
      }
    }
    await Promise.all([...byEdge].map(([edge, batch]) => deps.deliver(edge, batch)));
    deps.log.debug('fanned out', { conv: msg.conv, seq: msg.seq, edges: byEdge.size, online: routes.size, members: conv.members.length });
  };
}
