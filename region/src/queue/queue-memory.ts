import type { Logger } from '../log.ts';
import { errorFields } from '../log.ts';
import { backoffMs, dlqOf, type ConsumerGroup, type Queue, type QueueHandler, type QueueLag, type QueueObserver, type QueueRecord, type SubscribeOptions, type Subscription } from './queue.ts';

interface Group {
  handler: QueueHandler;
  batch: SubscribeOptions['batch'];
  maxAttempts: number;
  /** Each key's records not yet taken by its running loop. */
  waiting: Map<string, QueueRecord[]>;
  /** Each busy key's loop: it takes the key's waiting records (a run at a time) until none are left. */
  chains: Map<string, Promise<void>>;
  /** Records enqueued and not yet handled or dead-lettered (its lag). */
  pending: number;
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

  constructor(
    private readonly log: Logger,
    private readonly observer?: QueueObserver,
  ) {}

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

  async subscribe(topic: string, group: string, handler: QueueHandler, opts: SubscribeOptions = {}): Promise<Subscription> {
    let groups = this.groups.get(topic);
    if (!groups) this.groups.set(topic, (groups = new Map()));
    if (groups.has(group)) throw new Error(`memory queue: group ${group} already consumes ${topic} in this process`);
    const g: Group = { handler, batch: opts.batch, maxAttempts: opts.maxAttempts ?? 8, waiting: new Map(), chains: new Map(), pending: 0, stopped: false };
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

  async lag(groups: ConsumerGroup[]): Promise<QueueLag[]> {
    const out: QueueLag[] = [];
    for (const { topic, group } of groups) {
      const g = this.groups.get(topic)?.get(group);
      const waiting = this.backlog.get(topic)?.length;
      if (g) out.push({ topic, group, partition: 0, records: g.pending });
      else if (waiting !== undefined) out.push({ topic, group, partition: 0, records: waiting });
    }
    return out;
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
    g.pending++;
    const list = g.waiting.get(record.key);
    if (list) list.push(record);
    else g.waiting.set(record.key, [record]);
    if (g.chains.has(record.key)) return;
    const loop = (async () => {
      // Let the publisher finish its call first: records published together may run together.
      await Promise.resolve();
      for (let run = this.take(g, record.key); run.length > 0 && !g.stopped; run = this.take(g, record.key)) {
        if (run.length === 1) await this.handle(topic, g, run[0]!);
        else {
          try {
            await g.batch!.handler(run);
          } catch (err) {
            this.log.warn('batch failed; handling its records one by one', { topic, key: record.key, records: run.length, ...errorFields(err) });
            for (const r of run) await this.handle(topic, g, r);
          }
        }
        g.pending -= run.length;
      }
    })();
    g.chains.set(record.key, loop);
    void loop.finally(() => {
      if (g.chains.get(record.key) === loop) g.chains.delete(record.key);
      // A record that arrived as the loop ended starts a new one.
      const left = g.waiting.get(record.key);
      if (left?.length && !g.stopped) {
        g.waiting.delete(record.key);
        g.pending -= left.length; // counted again by enqueue
        for (const r of left) this.enqueue(topic, g, r);
      }
    });
  }

  /** The key's next run: up to `batch.max` waiting records (one without batching). */
  private take(g: Group, key: string): QueueRecord[] {
    const list = g.waiting.get(key);
    if (!list?.length) return [];
    const run = list.splice(0, g.batch ? Math.max(1, g.batch.max) : 1);
    if (list.length === 0) g.waiting.delete(key);
    return run;
  }

  private async handle(topic: string, g: Group, record: QueueRecord): Promise<void> {
    for (let attempt = 1; !g.stopped; attempt++) {
      try {
        await g.handler(record);
        return;
      } catch (err) {
        if (attempt >= g.maxAttempts) {
          this.log.error('record failed too often; dead-lettered', { topic, key: record.key, attempts: attempt, ...errorFields(err) });
          this.observer?.deadLettered(topic);
          await this.publish(dlqOf(topic), [record]);
          return;
        }
        await new Promise((r) => setTimeout(r, backoffMs(attempt)));
      }
    }
  }
}
