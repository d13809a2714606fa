import type { Logger } from './log.ts';
import { errorFields } from './log.ts';
import { backoffMs, dlqOf, type Queue, type QueueHandler, type QueueRecord, type Subscription } from './queue.ts';

interface Group {
  handler: QueueHandler;
  maxAttempts: number;
  /** Tail of each key's chain: the key's next record starts after it settles. */
  chains: Map<string, Promise<void>>;
  stopped: boolean;
}

/**
 * Embedded queue: in-process, keyed chains. It keeps the ordering and retry contract, but its
 * durability is the process lifetime: records in flight are lost with the process. The stored
 * messages are not, and devices recover them by sync; Kafka is the durable implementation.
 */
export class MemoryQueue implements Queue {
  readonly name = 'memory';
  private readonly groups = new Map<string, Map<string, Group>>();
  /** Records published before any group subscribed, handed to the first one that does. */
  private readonly backlog = new Map<string, QueueRecord[]>();

  constructor(private readonly log: Logger) {}

  async init(): Promise<void> {}

  async publish(topic: string, records: QueueRecord[]): Promise<void> {
    const groups = this.groups.get(topic);
    if (!groups || groups.size === 0) {
      const list = this.backlog.get(topic) ?? [];
      list.push(...records.map((r) => structuredClone(r)));
      this.backlog.set(topic, list);
      return;
    }
    for (const g of groups.values()) for (const r of records) this.enqueue(topic, g, structuredClone(r));
  }

  async subscribe(topic: string, group: string, handler: QueueHandler, opts: { maxAttempts?: number } = {}): Promise<Subscription> {
    let groups = this.groups.get(topic);
    if (!groups) this.groups.set(topic, (groups = new Map()));
    if (groups.has(group)) throw new Error(`memory queue: group ${group} already consumes ${topic} in this process`);
    const g: Group = { handler, maxAttempts: opts.maxAttempts ?? 8, chains: new Map(), stopped: false };
    groups.set(group, g);
    const pending = this.backlog.get(topic);
    if (pending) {
      this.backlog.delete(topic);
      for (const r of pending) this.enqueue(topic, g, r);
    }
    return {
      stop: async () => {
        g.stopped = true;
        groups.delete(group);
        await Promise.allSettled([...g.chains.values()]);
      },
    };
  }

  async close(): Promise<void> {
    const all: Promise<unknown>[] = [];
    for (const groups of this.groups.values()) for (const g of groups.values()) {
      g.stopped = true;
      all.push(...g.chains.values());
    }
    await Promise.allSettled(all);
    this.groups.clear();
  }

  private enqueue(topic: string, g: Group, record: QueueRecord): void {
    const prev = g.chains.get(record.key) ?? Promise.resolve();
    const next = prev.then(() => this.handle(topic, g, record));
    g.chains.set(record.key, next);
    void next.finally(() => {
      if (g.chains.get(record.key) === next) g.chains.delete(record.key);
    });
  }

  private async handle(topic: string, g: Group, record: QueueRecord): Promise<void> {
    for (let attempt = 1; !g.stopped; attempt++) {
      try {
        await g.handler(record);
        return;
      } catch (err) {
        if (attempt >= g.maxAttempts) {
          this.log.error('record failed too often; dead-lettered', { topic, key: record.key, attempts: attempt, ...errorFields(err) });
          await this.publish(dlqOf(topic), [record]);
          return;
        }
        await new Promise((r) => setTimeout(r, backoffMs(attempt)));
      }
    }
  }
}
