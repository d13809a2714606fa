import type { LiveReached, Msg } from '@switchboard/protocol';
import type { DeliverResult, GatewayBatch } from '../gateway/api.ts';

/** What a gateway answers to a delivery (GatewayRpc.deliver). */
export interface LiveTarget {
  deliver(gw: string, batch: GatewayBatch): Promise<DeliverResult>;
}

export interface LivePushOptions {
  /** The gateway named `gw`. */
  target: (gw: string) => LiveTarget;
  /** Members grouped by the gateway holding their sockets (MemberGateways.group). */
  group: (members: readonly string[]) => Map<string, string[]>;
  /** A gateway failed: the region's fan-out covers its members. */
  onError: (gw: string, err: unknown) => void;
  /** A member was not reached (no socket on its gateway, or a failed call): the region's fan-out is due. */
  onMissed?: () => void;
  /** Messages waiting for one gateway beyond this are left to the region (a stuck gateway must not grow memory). */
  maxQueued?: number;
  /** A gateway answered for `msg` at `now` (metrics: the message's age then). */
  onAnswered?: (msg: Msg, now: number) => void;
}

interface Queued {
  msg: Msg;
  text: string;
  users: string[];
}

/** One gateway's queue: a batch goes out only after the previous one was answered. */
interface Lane {
  queue: Queued[];
  running: Promise<void> | null;
}

/** Senders remembered as having only their sending device on their gateway, at most. */
const MAX_SOLO = 10_000;

/**
 * The edge's live path: once a message is durable, its ConversationDO hands it to the gateways of
 * its members, ONE call per gateway carrying the message once and every member there (the
 * sender's included, skipping the sending device), without waiting for the region. Contract:
 * - per gateway, pushes leave in seq order: a batch goes out only after the previous one was
 *   answered, so a gateway never sees seq n+1 before seq n from this path; what queued
 *   meanwhile goes together in the next call;
 * - it is an optimisation, never the only path: what it did not deliver (a failed call, a member
 *   with no socket on the gateway asked, a full queue, a restart of the object) the region's
 *   fan-out delivers, and `reached(seq)` tells the drain which gateways had it, up to which
 *   connection. It is kept in memory only: losing it costs a redundant delivery, which gateways
 *   and devices dedupe by (conv, seq).
 */
export class LivePush {
  private readonly lanes = new Map<string, Lane>();
  /** seq → the gateways that answered for it. */
  private readonly done = new Map<number, LiveReached[]>();
  private readonly maxQueued: number;
  /** sender → the gateway where the sending device was their only socket, at the last answer. */
  private readonly solo = new Map<string, string>();

  constructor(private readonly opts: LivePushOptions) {
    this.maxQueued = opts.maxQueued ?? 1000;
  }

  /**
   * Queues `msg` for `members` (the membership as of its seq), one lane per gateway. False when
   * some gateway's queue was full (its members are left to the region).
   */
  push(msg: Msg, members: readonly string[]): boolean {
    let all = true;
    let text: string | null = null;
    for (const [gw, users] of this.opts.group(members)) {
      // A sender whose only socket on their gateway is the sending one needs no call: that device
      // has its `sent`. Should another have connected since, the region's fan-out reaches it.
      if (users.length === 1 && users[0] === msg.from && this.solo.get(msg.from) === gw) continue;
      let lane = this.lanes.get(gw);
      if (!lane) this.lanes.set(gw, (lane = { queue: [], running: null }));
      if (lane.queue.length >= this.maxQueued) {
        all = false;
        continue;
      }
      lane.queue.push({ msg, text: (text ??= JSON.stringify(msg)), users });
      if (!lane.running) this.start(gw, lane);
    }
    return all;
  }

  /** Resolves once everything queued so far was answered, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    const running = [...this.lanes.values()].flatMap((l) => (l.running ? [l.running] : []));
    if (running.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | null = null;
    await Promise.race([Promise.all(running), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    if (timer !== null) clearTimeout(timer);
  }

  /** The gateways that had `seq` from this path (empty when unknown). */
  reached(seq: number): LiveReached[] {
    return this.done.get(seq) ?? [];
  }

  /** The region has every event up to `seq`: forget what was recorded for them. */
  forget(upToSeq: number): void {
    for (const seq of this.done.keys()) if (seq <= upToSeq) this.done.delete(seq);
  }

  get pending(): number {
    let n = 0;
    for (const l of this.lanes.values()) n += l.queue.length;
    return n;
  }

  private start(gw: string, lane: Lane): void {
    lane.running = this.pump(gw, lane).finally(() => {
      lane.running = null;
      if (lane.queue.length > 0) this.start(gw, lane);
      else this.lanes.delete(gw);
    });
  }

  private async pump(gw: string, lane: Lane): Promise<void> {
    while (lane.queue.length > 0) {
      const batch = lane.queue.splice(0);
      const msgs = batch.map((q) => ({ conv: q.msg.conv, seq: q.msg.seq, text: q.text }));
      const to: GatewayBatch['to'] = [];
      batch.forEach((q, m) => {
        for (const user of q.users) to.push(user === q.msg.from ? { user, m, skip: q.msg.dev } : { user, m });
      });
      try {
        const r = await this.opts.target(gw).deliver(gw, { msgs, to });
        const now = Date.now();
        for (const q of batch) {
          this.opts.onAnswered?.(q.msg, now);
          const list = this.done.get(q.msg.seq);
          if (list) list.push({ gw, upTo: r.upTo });
          else this.done.set(q.msg.seq, [{ gw, upTo: r.upTo }]);
        }
        this.noteSolo(gw, batch, r.skipOnly);
        if (r.missed.length > 0) this.opts.onMissed?.();
      } catch (err) {
        this.opts.onError(gw, err);
        this.opts.onMissed?.();
      }
    }
  }

  private noteSolo(gw: string, batch: Queued[], skipOnly: string[]): void {
    const solo = new Set(skipOnly);
    for (const q of batch) {
      const sender = q.msg.from;
      if (solo.has(sender)) {
        if (this.solo.size >= MAX_SOLO && !this.solo.has(sender)) this.solo.delete(this.solo.keys().next().value!);
        this.solo.set(sender, gw);
      } else if (q.users.includes(sender)) this.solo.delete(sender);
    }
  }
}
