/** How long a device gathers acks of one conversation into one: the SDK's default, and what the benches do. */
export const ACK_COALESCE_MS = 250;

export interface AckTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: AckTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Cumulative acks of a device, at most one per conversation per `delayMs`. The first ack after a
 * quiet spell leaves at once; those that follow within the window are folded into one that leaves
 * when it ends, naming the highest seq. Every seq is still acked (the server keeps each message in
 * flight until then, and retransmits only after seconds), at a fraction of the frames: each frame
 * is an event in the device's gateway. A seq at or below one already sent is not sent again,
 * except through `now` (a retransmit shows the last ack may have been lost).
 */
export class AckCoalescer {
  private readonly windows = new Map<string, { timer: unknown; sent: number; pending: number }>();

  constructor(
    private readonly send: (conv: string, seq: number) => void,
    private readonly delayMs = ACK_COALESCE_MS,
    private readonly timers: AckTimers = realTimers,
  ) {}

  ack(conv: string, seq: number): void {
    if (this.delayMs <= 0) return this.send(conv, seq);
    const w = this.windows.get(conv);
    if (!w) {
      this.send(conv, seq);
      this.open(conv, seq);
    } else if (seq > w.pending) w.pending = seq;
  }

  /** Sends `seq` at once (and folds what was pending into it when higher). */
  now(conv: string, seq: number): void {
    const w = this.windows.get(conv);
    const top = Math.max(seq, w?.pending ?? 0);
    this.send(conv, top);
    if (w) w.sent = w.pending = top;
  }

  /** Forgets every window (the client closed). */
  clear(): void {
    for (const w of this.windows.values()) this.timers.clear(w.timer);
    this.windows.clear();
  }

  private open(conv: string, sent: number): void {
    const w = { sent, pending: sent, timer: null as unknown };
    w.timer = this.timers.set(() => {
      this.windows.delete(conv);
      if (w.pending > w.sent) {
        this.send(conv, w.pending);
        // A steady stream keeps being folded: the next window starts with this ack.
        this.open(conv, w.pending);
      }
    }, this.delayMs);
    this.windows.set(conv, w);
  }
}
