/** One record on a topic. `key` decides ordering: records with the same key are consumed in publish order. */
export interface QueueRecord {
  key: string;
  value: unknown;
}

/** Handles one record; resolving commits it, throwing retries it with backoff. */
export type QueueHandler = (record: QueueRecord) => Promise<void>;

/**
 * Handles several consecutive records of one key at once (publish order); resolving commits them
 * all. If it throws, each of them is handled again on its own by the QueueHandler (with its
 * retries and dead-lettering), so one bad record never takes its neighbours down with it.
 */
export type QueueBatchHandler = (records: QueueRecord[]) => Promise<void>;

export interface SubscribeOptions {
  maxAttempts?: number;
  /**
   * Records of a key that are waiting together (a consumer behind its topic) go to `handler` in
   * runs of at most `max`: a busy key costs one call per run instead of one per record. A run of
   * one goes to the plain handler.
   */
  batch?: { handler: QueueBatchHandler; max: number };
}

export interface Subscription {
  stop(): Promise<void>;
}

/** A consumer group of a topic, as `subscribe` names them (unprefixed). */
export interface ConsumerGroup {
  topic: string;
  group: string;
}

/** Records of `topic` not yet handled by `group` in `partition` (the embedded queue has partition 0). */
export interface QueueLag extends ConsumerGroup {
  partition: number;
  records: number;
}

/** Told of what a queue does, for metrics. */
export interface QueueObserver {
  /** A record of `topic` failed every attempt and went to `<topic>.dlq`. */
  deadLettered(topic: string): void;
}

/**
 * Durable, keyed, at-least-once queue. Contract, tested by region/test/queue/queue.contract.ts:
 * - `publish` resolves once every record is durably accepted (never before);
 * - per key, records reach the handler in publish order, one at a time: the next record of a
 *   key waits until the previous one is handled (its handler resolved, or it was dead-lettered);
 * - a record is committed only after its handler resolves; a throwing handler sees the record
 *   again (with backoff) up to `maxAttempts`, then it goes to the topic's dead-letter topic
 *   (`<topic>.dlq`) with a log line, and the key moves on;
 * - consumers in the same group share the records; each record is handled by one of them;
 * - with `batch`, a key's waiting records may be handled together, in publish order, and the
 *   key's next records wait for that whole run.
 */
export interface Queue {
  readonly name: string;
  init(topics: string[]): Promise<void>;
  publish(topic: string, records: QueueRecord[]): Promise<void>;
  subscribe(topic: string, group: string, handler: QueueHandler, opts?: SubscribeOptions): Promise<Subscription>;
  /**
   * How far behind each of `groups` is, per partition: Kafka reads it from the brokers (whichever
   * process consumes), the embedded queue counts the records its own subscriptions have not handled.
   */
  lag(groups: ConsumerGroup[]): Promise<QueueLag[]>;
  close(): Promise<void>;
}

export const TOPICS = { fanout: 'fanout', push: 'push', pushRetry: 'push.retry' } as const;
/** The consumer groups of the region's workers (fan-out, push, push retries), whose lag /metrics reports. */
export const CONSUMER_GROUPS: ConsumerGroup[] = [
  { topic: TOPICS.fanout, group: 'fanout' },
  { topic: TOPICS.push, group: 'push' },
  { topic: TOPICS.pushRetry, group: 'push-retry' },
];
export const dlqOf = (topic: string) => `${topic}.dlq`;

/** Exponential backoff with jitter, capped. */
export function backoffMs(attempt: number, baseMs = 100, capMs = 10_000): number {
  return Math.min(capMs, baseMs * 2 ** Math.min(attempt, 16)) * (0.5 + Math.random() / 2);
}
