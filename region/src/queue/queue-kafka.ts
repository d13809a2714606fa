import { Kafka, Partitioners, logLevel, type Admin, type Consumer, type KafkaMessage, type LogEntry, type Producer } from 'kafkajs';
import type { RegionConfig } from '../config.ts';
import { errorFields, type Logger } from '../log.ts';
import { backoffMs, dlqOf, type ConsumerGroup, type Queue, type QueueHandler, type QueueLag, type QueueObserver, type QueueRecord, type SubscribeOptions, type Subscription } from './queue.ts';
import { PartitionProgress, type Outcome } from './kafka-partition.ts';

type KafkaConfig = NonNullable<RegionConfig['kafka']>;

/** How long `subscribe` waits for the group join and partition assignment. */
const JOIN_TIMEOUT_MS = 60_000;
/** Handlers in flight at once per partition (each of a different key). */
const KEYS_IN_FLIGHT_PER_PARTITION = 16;
/**
 * A batch may leave records of failing keys running in the background (PartitionProgress) while
 * its partition holds at most this many fetched, uncommitted records; past it, it waits for them.
 */
const MAX_PARKED_PER_PARTITION = 5_000;
/** How long `init` waits for new topics to have leaders before it gives up. */
const TOPICS_READY_MS = 60_000;
/** Publishes that wait for the producer go out together, up to this many value and key bytes. */
const PUBLISH_BATCH_BYTES = 512 * 1024;
/** A lag reading (admin calls to the brokers) gives up after this long. */
const LAG_TIMEOUT_MS = 3_000;

interface PendingPublish {
  topic: string;
  messages: { key: string; value: string }[];
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** kafkajs's own log lines, WARN and above, as our structured lines. */
function logCreatorFor(log: Logger) {
  return () =>
    ({ namespace, level, log: entry }: LogEntry) => {
      const { message, timestamp: _ts, logger: _logger, stack: _stack, ...extra } = entry;
      const fields = { kafkajs: namespace, ...extra };
      // Connection-level error responses (e.g. "group is rebalancing") are retried inside
      // kafkajs; the failures that matter reach us as thrown errors, logged where they land.
      if (level === logLevel.ERROR && namespace !== 'Connection') log.error(message, fields);
      else if (level <= logLevel.WARN) log.warn(message, fields);
      else log.debug(message, fields);
    };
}

/**
 * Kafka queue. Every topic and group name gets `topicPrefix`. The record key (the conversation
 * id) picks the partition, so one key's records stay in one partition, in publish order. The
 * producer is idempotent with acks from all in-sync replicas, so a retried send neither
 * duplicates nor reorders. Within a partition, consumers run different keys' records
 * concurrently (as the memory queue does) and each key's records one at a time, in offset order;
 * offsets are committed as the prefix of records whose handler resolved (or that went to the DLQ),
 * so nothing is committed before it was handled, and a consumer that dies leaves its successor to
 * start at the first record it had not finished (records after it may then be handled twice).
 */
export class KafkaQueue implements Queue {
  readonly name = 'kafka';
  private readonly kafka: Kafka;
  private readonly producer: Producer;
  private readonly admin: Admin;
  private connecting: Promise<void> | null = null;
  private readonly known = new Set<string>();
  private readonly subs = new Set<{ stop(): Promise<void> }>();
  private readonly pendingPublishes: PendingPublish[] = [];
  private publishing = false;

  constructor(
    private readonly cfg: KafkaConfig,
    private readonly log: Logger,
    private readonly observer?: QueueObserver,
  ) {
    this.kafka = new Kafka({
      clientId: cfg.clientId,
      brokers: cfg.brokers,
      logLevel: logLevel.WARN,
      logCreator: logCreatorFor(log),
    });
    this.producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner, // murmur2, the Java client's partitioning
    });
    this.admin = this.kafka.admin();
  }

  private topicName(topic: string): string {
    return `${this.cfg.topicPrefix}${topic}`;
  }

  private connect(): Promise<void> {
    this.connecting ??= Promise.all([this.producer.connect(), this.admin.connect()]).then(
      () => this.log.info('connected', { brokers: this.cfg.brokers }),
      (err) => {
        this.connecting = null;
        throw err;
      },
    );
    return this.connecting;
  }

  /** Creates the (prefixed) topics that do not exist yet; existing ones are left as they are. */
  async init(topics: string[]): Promise<void> {
    await this.connect();
    const missing = [...new Set(topics)].filter((t) => !this.known.has(t));
    if (missing.length === 0) return;
    const rf = this.cfg.replicationFactor;
    const names = missing.map((t) => this.topicName(t));
    // A broker busy creating many topics at once (processes starting together) can answer a
    // metadata request for a topic it has not finished creating with UNKNOWN_TOPIC_OR_PARTITION
    // or LEADER_NOT_AVAILABLE: retriable, so this waits (up to TOPICS_READY_MS) until every
    // partition of every topic has a leader, instead of failing the process's start.
    const deadline = Date.now() + TOPICS_READY_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        try {
          await this.admin.createTopics({
            waitForLeaders: true,
            topics: names.map((topic) => ({
              topic,
              numPartitions: this.cfg.partitions,
              replicationFactor: rf,
              // With acks=all, a write survives the loss of one replica once there are 3.
              configEntries: [{ name: 'min.insync.replicas', value: String(rf >= 3 ? 2 : 1) }],
            })),
          });
        } catch (err) {
          if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw err;
        }
        const meta = await this.admin.fetchTopicMetadata({ topics: names });
        const leaderless = meta.topics.filter((t) => t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0)).map((t) => t.name);
        if (leaderless.length === 0) break;
        throw Object.assign(new Error(`topics without a leader yet: ${leaderless.join(', ')}`), { retriable: true });
      } catch (err) {
        const retriable = (err as { retriable?: boolean }).retriable === true || ['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE'].includes((err as { type?: string }).type ?? '');
        if (!retriable || Date.now() > deadline) throw err;
        this.log.warn('topics not ready yet; retrying', { topics: names, attempt, ...errorFields(err) });
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
    for (const t of missing) this.known.add(t);
    this.log.info('topics ready', { topics: missing.map((t) => this.topicName(t)), partitions: this.cfg.partitions, replicationFactor: rf });
  }

  async publish(topic: string, records: { key: string; value: unknown }[]): Promise<void> {
    if (records.length === 0) return;
    await this.connect();
    const messages = records.map((r) => ({ key: r.key, value: JSON.stringify(r.value) }));
    const bytes = messages.reduce((n, m) => n + m.key.length + m.value.length, 0);
    await new Promise<void>((resolve, reject) => {
      this.pendingPublishes.push({ topic: this.topicName(topic), messages, bytes, resolve, reject });
      void this.sendPending();
    });
  }

  /**
   * The idempotent producer has one request in flight at a time, so concurrent publishes would
   * queue for it one by one; instead, whatever is waiting goes out in the next request (up to
   * PUBLISH_BATCH_BYTES; a larger publish alone), each publish's records in its own order. Every
   * publish in a request resolves once the broker acknowledged all of it, or throws if it did not.
   */
  private async sendPending(): Promise<void> {
    if (this.publishing) return;
    this.publishing = true;
    try {
      while (this.pendingPublishes.length > 0) {
        const group: PendingPublish[] = [];
        let bytes = 0;
        while (this.pendingPublishes.length > 0 && (group.length === 0 || bytes + this.pendingPublishes[0]!.bytes <= PUBLISH_BATCH_BYTES)) {
          const p = this.pendingPublishes.shift()!;
          group.push(p);
          bytes += p.bytes;
        }
        // One entry per topic: kafkajs keeps only the last entry of a repeated topic.
        const byTopic = new Map<string, { key: string; value: string }[]>();
        for (const p of group) {
          const list = byTopic.get(p.topic);
          if (list) list.push(...p.messages);
          else byTopic.set(p.topic, [...p.messages]);
        }
        try {
          await this.producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
          for (const p of group) p.resolve();
        } catch (err) {
          for (const p of group) p.reject(err);
        }
      }
    } finally {
      this.publishing = false;
    }
  }

  /**
   * Joins `group` on `topic` and resolves once the group has been joined and partitions assigned.
   * A new group starts from the earliest offset. Retries use `backoffMs`; after `maxAttempts`
   * the record goes to `<topic>.dlq` and its offset is committed.
   */
  async subscribe(topic: string, group: string, handler: QueueHandler, opts: SubscribeOptions = {}): Promise<Subscription> {
    await this.init([topic, dlqOf(topic)]);
    const maxAttempts = opts.maxAttempts ?? 8;
    const name = this.topicName(topic);
    const groupId = this.topicName(group);
    const log = this.log.child({ topic: name, group: groupId });
    // A consumer that dies without leaving (kill -9) holds its partitions until its session times
    // out: 10 s, not kafkajs's 30 s, bounds how long a crashed worker delays delivery.
    const consumer: Consumer = this.kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1_000, maxWaitTimeInMs: 1_000 });

    /** Each assigned partition's progress in this generation (PartitionProgress). */
    const progress = new Map<number, PartitionProgress>();
    const partitionOf = (partition: number): PartitionProgress => {
      let part = progress.get(partition);
      if (!part || part.closed) {
        part = new PartitionProgress(
          partition,
          KEYS_IN_FLIGHT_PER_PARTITION,
          (next) => consumer.commitOffsets([{ topic: name, partition, offset: next.toString() }]),
          (err) => log.warn('offset commit failed; a later one covers it', { partition, ...errorFields(err) }),
        );
        progress.set(partition, part);
      }
      return part;
    };

    // stop() must not wait for a stuck handler or a long backoff: both race against it, and the
    // record is then left uncommitted for the next owner of its partition.
    let stopped = false;
    const onStop = new Set<() => void>();
    const unlessStopped = <T>(p: Promise<T>) =>
      new Promise<T | 'stopped'>((resolve, reject) => {
        if (stopped) return resolve('stopped');
        const cancel = () => resolve('stopped');
        onStop.add(cancel);
        p.then(
          (v) => (onStop.delete(cancel), resolve(v)),
          (e) => (onStop.delete(cancel), reject(e)),
        );
      });
    const wait = (ms: number) => {
      let timer: NodeJS.Timeout | undefined;
      return unlessStopped(new Promise<'waited'>((r) => (timer = setTimeout(() => r('waited'), ms)))).finally(() => clearTimeout(timer));
    };

    /**
     * Runs the handler with retries; 'done' when the record may be committed, 'stopped' if not
     * (the subscription stopped, or its partition was closed: `halted`). While it fails, its key is
     * marked retrying in the partition's progress, so the batch need not wait for it.
     */
    const handle = async (message: KafkaMessage, part: PartitionProgress, halted: () => boolean, heartbeat: () => Promise<void>): Promise<Outcome> => {
      const key = message.key?.toString() ?? '';
      let value: unknown;
      try {
        value = JSON.parse(message.value?.toString() ?? 'null');
      } catch (err) {
        await this.deadLetter(topic, message, part.partition, 0, err, log);
        return 'done';
      }
      try {
        for (let attempt = 1; ; attempt++) {
          if (halted()) return 'stopped';
          try {
            const outcome = await unlessStopped(handler({ key, value }).then(() => 'handled' as const));
            return outcome === 'stopped' ? 'stopped' : 'done';
          } catch (err) {
            if (stopped) return 'stopped';
            if (attempt >= maxAttempts) {
              await this.deadLetter(topic, message, part.partition, attempt, err, log);
              return 'done';
            }
            part.setRetrying(key, true);
            log.warn('handler failed; will retry', { key, partition: part.partition, offset: message.offset, attempt, ...errorFields(err) });
            if ((await wait(backoffMs(attempt))) === 'stopped') return 'stopped';
            await heartbeat();
          }
        }
      } finally {
        part.setRetrying(key, false);
      }
    };

    /**
     * A run of one key's consecutive records: the batch handler once, and if it throws (or a value
     * does not parse), each record on its own through `handle`. 'done' when all may be committed.
     */
    const handleRun = async (messages: KafkaMessage[], part: PartitionProgress, halted: () => boolean, heartbeat: () => Promise<void>): Promise<Outcome> => {
      if (messages.length === 1 || !opts.batch) return handle(messages[0]!, part, halted, heartbeat);
      let records: QueueRecord[] | null = null;
      try {
        records = messages.map((m) => ({ key: m.key?.toString() ?? '', value: JSON.parse(m.value?.toString() ?? 'null') as unknown }));
      } catch {
        // One of them does not parse: `handle` dead-letters it, the others are handled.
      }
      if (records) {
        try {
          const outcome = await unlessStopped(opts.batch.handler(records).then(() => 'handled' as const));
          return outcome === 'stopped' ? 'stopped' : 'done';
        } catch (err) {
          if (stopped) return 'stopped';
          log.warn('batch failed; handling its records one by one', { key: records[0]!.key, partition: part.partition, records: records.length, ...errorFields(err) });
        }
      }
      for (const m of messages) if ((await handle(m, part, halted, heartbeat)) === 'stopped') return 'stopped';
      return 'done';
    };

    let joinTimer: NodeJS.Timeout | undefined;
    const joined = new Promise<void>((resolve, reject) => {
      joinTimer = setTimeout(() => reject(new Error(`kafka: ${groupId} did not join within ${JOIN_TIMEOUT_MS} ms`)), JOIN_TIMEOUT_MS);
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        // A new generation starts every partition from its committed offset: what the last one
        // still had running is not committed by it and is handled again (by whoever owns it now).
        for (const part of progress.values()) part.close();
        progress.clear();
        clearTimeout(joinTimer);
        log.debug('joined group', { assignment: e.payload.memberAssignment });
        resolve();
      });
    });
    consumer.on(consumer.events.CRASH, (e) => log.error('consumer crashed', { restart: e.payload.restart, ...errorFields(e.payload.error) }));

    const stop = async () => {
      if (stopped) return;
      stopped = true;
      for (const part of progress.values()) part.close();
      for (const cancel of onStop) cancel();
      onStop.clear();
      this.subs.delete(sub);
      await consumer.disconnect();
    };
    const sub = { stop };
    this.subs.add(sub);

    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [name], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: Math.min(Math.max(1, this.cfg.partitions), 32),
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          // Each key's records in offset order, one run at a time; different keys concurrently (at
          // most KEYS_IN_FLIGHT_PER_PARTITION handlers). A key waits only for its own previous
          // record, not for the records of other keys or for offset commits; commits follow the
          // handled prefix (PartitionProgress). The batch returns once every run settled, or once
          // only runs of keys whose handler is failing are left: those go on in the background
          // (so one bad record delays its own key, not the broker's other partitions).
          // A failed heartbeat (the group is rebalancing) starts nothing new and, thrown out of
          // the batch once the running handlers settled, makes kafkajs rejoin. A handler retrying
          // with backoff gives up its record (uncommitted) at its next heartbeat.
          const part = partitionOf(batch.partition);
          let interrupted: unknown = null;
          let inBatch = true;
          const beat = async () => {
            if (!inBatch) return; // in the background: the runner heartbeats between fetches
            try {
              await heartbeat();
            } catch (err) {
              interrupted ??= err;
              throw err;
            }
          };
          const halted = () => stopped || part.closed || interrupted !== null || !isRunning() || (inBatch && isStale());
          // A key's records in this batch, in runs of consecutive ones (of that key) up to the
          // batch size; without `batch`, runs of one.
          const maxRun = opts.batch ? Math.max(1, opts.batch.max) : 1;
          const runs: { key: string; messages: KafkaMessage[] }[] = [];
          const open = new Map<string, KafkaMessage[]>();
          for (const message of batch.messages) {
            const key = message.key?.toString() ?? '';
            part.track(message.offset);
            let run = open.get(key);
            if (!run || run.length >= maxRun) {
              open.set(key, (run = []));
              runs.push({ key, messages: run });
            }
            run.push(message);
          }
          const settled = runs.map(() => false);
          let failure: unknown = null;
          const running = runs.map(({ key, messages }, i) => {
            const run = (part.tails.get(key) ?? Promise.resolve<Outcome>('done'))
              .then((prev) => (prev === 'stopped' || halted() ? ('stopped' as const) : part.slots(() => (halted() ? Promise.resolve('stopped' as const) : handleRun(messages, part, halted, beat)))))
              .then(
                (outcome) => {
                  if (outcome === 'done') part.finish(messages.map((m) => m.offset));
                  return outcome;
                },
                (err: unknown) => {
                  // Dead-lettering or a heartbeat failed: nothing after this run may be committed.
                  // Outside a rebalance, the partition is read again from the run's first record.
                  if (!part.closed) {
                    part.close();
                    if (interrupted === null && !stopped) {
                      log.error('a run of records failed outside its handler; reading the partition again from it', { key, partition: batch.partition, offset: messages[0]!.offset, ...errorFields(err) });
                      try {
                        consumer.seek({ topic: batch.topic, partition: batch.partition, offset: messages[0]!.offset });
                      } catch (seekErr) {
                        log.error('seek failed', { partition: batch.partition, ...errorFields(seekErr) });
                      }
                    }
                  }
                  failure ??= err;
                  return 'stopped' as const;
                },
              )
              .finally(() => {
                settled[i] = true;
                if (part.tails.get(key) === run) part.tails.delete(key);
                part.notify();
              });
            part.tails.set(key, run);
            return run;
          });
          let background = false;
          for (;;) {
            const left = runs.filter((_, i) => !settled[i]);
            if (left.length === 0 || halted()) break;
            if (part.parked <= MAX_PARKED_PER_PARTITION && left.every((r) => part.retrying.has(r.key))) {
              background = true;
              break;
            }
            // A change wakes it (a run settled, a key started or stopped failing); the timer
            // bounds the wait for what does not notify (the batch going stale).
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([part.changed(), new Promise<void>((r) => (timer = setTimeout(r, 1_000)))]);
            clearTimeout(timer);
          }
          if (background) {
            inBatch = false;
            log.debug('records of failing keys go on retrying in the background; the partition reads on', { partition: batch.partition, keys: [...part.retrying].slice(0, 10), parked: part.parked });
            resolveOffset(batch.messages.at(-1)!.offset);
            return;
          }
          // Stopped or rebalancing: nothing of this batch may still be running when it is left.
          await Promise.allSettled(running);
          inBatch = false;
          if (interrupted !== null) throw interrupted;
          if (part.closed || halted()) return;
          if (failure !== null) throw failure;
          resolveOffset(batch.messages.at(-1)!.offset);
        },
      });
      await joined;
    } catch (err) {
      clearTimeout(joinTimer);
      joined.catch(() => {});
      await stop().catch(() => {});
      throw err;
    }
    log.info('subscribed', { maxAttempts });
    return sub;
  }

  /**
   * Each group's lag per partition, from the brokers: the partition's end offset minus the group's
   * committed offset (the partition's start when it has none). Any process can read it, whether
   * or not it consumes; it throws when the brokers do not answer within LAG_TIMEOUT_MS.
   */
  async lag(groups: ConsumerGroup[]): Promise<QueueLag[]> {
    const read = async (): Promise<QueueLag[]> => {
      await this.connect();
      const out: QueueLag[] = [];
      const ends = new Map<string, Promise<{ partition: number; high: string; low: string }[]>>();
      for (const { topic, group } of groups) {
        const name = this.topicName(topic);
        if (!ends.has(name)) ends.set(name, this.admin.fetchTopicOffsets(name));
        const [end, committed] = await Promise.all([ends.get(name)!, this.admin.fetchOffsets({ groupId: this.topicName(group), topics: [name] })]);
        const at = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
        for (const p of end) {
          const low = Number(p.low);
          const c = at.get(p.partition) ?? -1;
          out.push({ topic, group, partition: p.partition, records: Math.max(0, Number(p.high) - (c >= 0 ? Math.max(c, low) : low)) });
        }
      }
      return out;
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([read(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`kafka: no lag reading within ${LAG_TIMEOUT_MS} ms`)), LAG_TIMEOUT_MS)))]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async deadLetter(topic: string, message: KafkaMessage, partition: number, attempts: number, err: unknown, log: Logger): Promise<void> {
    const dlq = this.topicName(dlqOf(topic));
    log.error('record failed too often; dead-lettered', { key: message.key?.toString(), partition, offset: message.offset, attempts, dlq, ...errorFields(err) });
    this.observer?.deadLettered(topic);
    await this.producer.send({
      topic: dlq,
      acks: -1,
      messages: [
        {
          key: message.key,
          value: message.value,
          headers: {
            'x-error': err instanceof Error ? err.message : String(err),
            'x-attempts': String(attempts),
            'x-source-topic': this.topicName(topic),
            'x-source-partition': String(partition),
            'x-source-offset': message.offset,
          },
        },
      ],
    });
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.subs].map((s) => s.stop()));
    if (this.connecting) await this.connecting.catch(() => {});
    await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect()]);
  }
}
