import { Counter, Gauge, type Registry } from 'prom-client';
import type { ConsumerGroup, QueueLag, QueueObserver } from '../queue/queue.ts';

/** A lag reading is reused for scrapes this close together (each Kafka reading is two admin calls per group). */
const LAG_CACHE_MS = 5_000;

/**
 * The queue's metrics: records waiting per consumer group and partition (Kafka: the group's
 * committed offset behind the partition's end; embedded: records published and not yet handled),
 * read when scraped; and records dead-lettered. Implements the queue's observer.
 */
export class QueueMetrics implements QueueObserver {
  readonly lag: Gauge<'topic' | 'group' | 'partition'>;
  readonly deadLetters: Counter<'topic'>;
  private source: (() => Promise<QueueLag[]>) | null = null;
  private cacheMs = LAG_CACHE_MS;
  private cached: { at: number; rows: Promise<QueueLag[]> } | null = null;

  constructor(registry: Registry) {
    const read = () => this.read();
    this.lag = new Gauge({
      name: 'switchboard_queue_lag_records',
      help: "Records not yet handled, per topic, consumer group and partition (Kafka: end offset minus the group's committed offset)",
      labelNames: ['topic', 'group', 'partition'],
      registers: [registry],
      async collect() {
        const rows = await read();
        this.reset();
        for (const r of rows) this.set({ topic: r.topic, group: r.group, partition: String(r.partition) }, r.records);
      },
    });
    this.deadLetters = new Counter({ name: 'switchboard_queue_dead_letters_total', help: "Records that failed every attempt and went to their topic's dead-letter topic", labelNames: ['topic'], registers: [registry] });
  }

  /** Where lag is read from when scraped (queue.lag over the consumer groups to report); a reading is reused for `cacheMs`. */
  readLagFrom(queue: { lag(groups: ConsumerGroup[]): Promise<QueueLag[]> }, groups: ConsumerGroup[], cacheMs = LAG_CACHE_MS): void {
    this.source = () => queue.lag(groups);
    this.cacheMs = cacheMs;
    this.cached = null;
  }

  deadLettered(topic: string): void {
    this.deadLetters.inc({ topic });
  }

  private read(): Promise<QueueLag[]> {
    if (!this.source) return Promise.resolve([]);
    const now = Date.now();
    if (!this.cached || now - this.cached.at >= this.cacheMs) this.cached = { at: now, rows: this.source().catch(() => []) };
    return this.cached.rows;
  }
}
