import { limiter } from '../limiter.ts';

/** What became of a run of records: 'done' (may be committed) or 'stopped' (left for the next owner). */
export type Outcome = 'done' | 'stopped';

/**
 * One partition's progress in a Kafka consumer, across its fetched batches. kafkajs fetches a
 * broker's partitions together and fetches again only once every batch of the fetch returned, so a
 * batch that waits for one failing record (retried with backoff for up to a minute) stalls every
 * partition on that broker. Here a batch may return while records of keys whose handler is
 * failing are still being retried: those keep running in the background, later records of the same
 * keys chain behind them (per-key order holds), other keys flow, and the committed offset stays at
 * the oldest record not yet handled, so nothing is skipped if the consumer stops or the partition
 * moves (records after it are delivered again; handlers are idempotent).
 */
export class PartitionProgress {
  /** Each key's newest run: the next run of that key starts after it. */
  readonly tails = new Map<string, Promise<Outcome>>();
  /** Keys whose handler is failing and being retried (their runs may outlive their batch). */
  readonly retrying = new Set<string>();
  /** Runs of different keys handled at once in this partition. */
  readonly slots: ReturnType<typeof limiter>;
  /** Set once the partition was seeked back, revoked or the subscription stopped: nothing more is committed or started. */
  closed = false;
  /** Offsets fetched and not yet committed, in offset order (`head` onwards), each marked once handled. */
  private readonly pending: { offset: bigint; done: boolean }[] = [];
  private readonly byOffset = new Map<string, { offset: bigint; done: boolean }>();
  private head = 0;
  private wanted: bigint | null = null;
  private committing = false;
  private wake: (() => void) | null = null;
  private woken: Promise<void> | null = null;

  constructor(
    readonly partition: number,
    keysInFlight: number,
    /** Commits `next` (the offset of the next record to handle) for this partition. */
    private readonly commit: (next: bigint) => Promise<void>,
    private readonly onCommitError: (err: unknown) => void,
  ) {
    this.slots = limiter(keysInFlight);
  }

  /** Records fetched and not yet committed. */
  get parked(): number {
    return this.pending.length - this.head;
  }

  /** A fetched record, to be marked handled with `finish`. Offsets come in increasing order. */
  track(offset: string): void {
    if (this.byOffset.has(offset)) return;
    const entry = { offset: BigInt(offset), done: false };
    this.pending.push(entry);
    this.byOffset.set(offset, entry);
  }

  /** Records handled (or dead-lettered): the committed offset moves past every handled prefix. */
  finish(offsets: string[]): void {
    if (this.closed) return;
    for (const o of offsets) {
      const entry = this.byOffset.get(o);
      if (entry) entry.done = true;
    }
    let last: bigint | null = null;
    while (this.head < this.pending.length && this.pending[this.head]!.done) {
      const entry = this.pending[this.head++]!;
      this.byOffset.delete(entry.offset.toString());
      last = entry.offset;
    }
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
    this.notify();
    if (last !== null) {
      this.wanted = last + 1n;
      void this.flush();
    }
  }

  /** Whether a key's handler is failing; the batch waiting on it is told. */
  setRetrying(key: string, failing: boolean): void {
    if (failing) this.retrying.add(key);
    else this.retrying.delete(key);
    this.notify();
  }

  /** Resolves at the next change (a run settled, a key started or stopped failing, closed). */
  changed(): Promise<void> {
    this.woken ??= new Promise<void>((r) => (this.wake = r));
    return this.woken;
  }

  notify(): void {
    const wake = this.wake;
    this.wake = null;
    this.woken = null;
    wake?.();
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  /** Commits the newest wanted offset, one commit at a time (a later one supersedes those waiting). */
  private async flush(): Promise<void> {
    if (this.committing) return;
    this.committing = true;
    try {
      while (this.wanted !== null && !this.closed) {
        const next = this.wanted;
        this.wanted = null;
        try {
          await this.commit(next);
        } catch (err) {
          this.onCommitError(err);
        }
      }
    } finally {
      this.committing = false;
    }
  }
}
