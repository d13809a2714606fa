import { LIMITS, type Delivery, type LiveDelivered, type Msg } from '@switchboard/protocol';

/** What a member's SessionDO answers to a delivery: `devices`, those online (each has it now). */
export interface LiveTarget {
  deliver(deliveries: Delivery[]): Promise<{ sockets: number; devices: string[] }>;
}

export interface LivePushOptions {
  /** The SessionDO of a user. */
  target: (user: string) => LiveTarget;
  /** A member's SessionDO failed: the region's fan-out covers that member. */
  onError: (user: string, err: unknown) => void;
  /** A member was not reached (no device online, or a failed call): the region's fan-out is due. */
  onMissed?: () => void;
  /** Messages waiting beyond this are left to the region (a stuck SessionDO must not grow memory). */
  maxQueued?: number;
}

interface Queued {
  msg: Msg;
  members: string[];
}

/**
 * The edge's live path of a small conversation: once a message is durable, its ConversationDO
 * hands it straight to the SessionDO of every member (the sender's included, skipping the sending
 * device), without waiting for the region. Contract:
 * - pushes leave in seq order: a batch goes out only after the previous one was answered, so a
 *   member's SessionDO never sees seq n+1 before seq n from this path;
 * - it is an optimisation, never the only path: what it did not deliver (a failed call, a member
 *   with no device online, a full queue, a restart of the object) the region's fan-out delivers,
 *   and `delivered(seq)` tells the drain which members it may skip. It is kept in memory only:
 *   losing it costs a redundant delivery, which devices dedupe by (conv, seq).
 */
export class LivePush {
  private queue: Queued[] = [];
  private running: Promise<void> | null = null;
  /** seq → the members' devices that have the message from this path. */
  private readonly done = new Map<number, LiveDelivered[]>();
  private readonly maxQueued: number;
  /** user → the devices their SessionDO last reported online. */
  private readonly known = new Map<string, string[]>();

  constructor(private readonly opts: LivePushOptions) {
    this.maxQueued = opts.maxQueued ?? 1000;
  }

  /** Queues `msg` for `members` (the membership as of its seq). False when the queue is full. */
  push(msg: Msg, members: string[]): boolean {
    if (this.queue.length >= this.maxQueued) return false;
    this.queue.push({ msg, members });
    if (!this.running) this.running = this.pump().finally(() => (this.running = null));
    return true;
  }

  /** Resolves once everything queued so far was answered, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    if (!this.running) return;
    let timer: ReturnType<typeof setTimeout> | null = null;
    await Promise.race([this.running, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    if (timer !== null) clearTimeout(timer);
  }

  /** The devices that already have `seq` from this path (empty when unknown). */
  delivered(seq: number): LiveDelivered[] {
    return this.done.get(seq) ?? [];
  }

  /** The region has every event up to `seq`: forget what was recorded for them. */
  forget(upToSeq: number): void {
    for (const seq of this.done.keys()) if (seq <= upToSeq) this.done.delete(seq);
  }

  get pending(): number {
    return this.queue.length;
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const perUser = new Map<string, Delivery[]>();
      for (const { msg, members } of batch) {
        for (const user of members) {
          const d: Delivery = user === msg.from ? { user, msg, skipDevice: msg.dev } : { user, msg };
          const list = perUser.get(user);
          if (list) list.push(d);
          else perUser.set(user, [d]);
        }
      }
      await Promise.all(
        [...perUser].map(async ([user, deliveries]) => {
          const record = (devices: string[]) => {
            const entry = { user, devices: devices.slice(0, LIMITS.maxDevicesPerUser) };
            for (const d of deliveries) {
              const list = this.done.get(d.msg.seq);
              if (list) list.push(entry);
              else this.done.set(d.msg.seq, [entry]);
            }
          };
          // A sender whose only device online is the sending one needs no call: that device has
          // its `sent`. Should another have connected since, it is not listed, so the region's
          // fan-out delivers to it.
          const only = this.known.get(user);
          if (only?.length === 1 && deliveries.every((d) => d.skipDevice === only[0])) return record(only);
          try {
            const r = await this.opts.target(user).deliver(deliveries);
            this.known.set(user, r.devices);
            if (r.devices.length > 0) record(r.devices);
            else this.opts.onMissed?.();
          } catch (err) {
            this.opts.onError(user, err);
            this.opts.onMissed?.();
          }
        }),
      );
    }
  }
}
