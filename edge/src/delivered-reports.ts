/** Conversations remembered as reported before the memory is reset (each costs one entry). */
const MAX_REMEMBERED = 10_000;

/**
 * What one user's SessionDO tells ConversationDOs about delivery: per conversation, the highest
 * seq any of the user's devices acked (acks are cumulative), each value reported once. Reported
 * with the acked cursors' flush, so a conversation hears at most about once a second per user
 * however fast messages arrive. Losing this state (eviction, a failed call) only means a value
 * is reported again or with the next ack: positions at the ConversationDO only move forward.
 */
export class DeliveredReports {
  private readonly pending = new Map<string, number>();
  private readonly reported = new Map<string, number>();
  /** Conversations that asked to hear less often (large groups, where nobody is told): until when. */
  private readonly quietUntil = new Map<string, number>();

  note(conv: string, seq: number): void {
    if (seq > (this.reported.get(conv) ?? 0) && seq > (this.pending.get(conv) ?? 0)) this.pending.set(conv, seq);
  }

  /** The values to report now (a quiet conversation's wait); they count as reported. */
  take(now = Date.now()): [conv: string, seq: number][] {
    const out: [string, number][] = [];
    for (const [conv, seq] of this.pending) {
      const quiet = this.quietUntil.get(conv);
      if (quiet !== undefined && quiet > now) continue;
      this.quietUntil.delete(conv);
      out.push([conv, seq]);
      this.pending.delete(conv);
    }
    if (this.reported.size + out.length > MAX_REMEMBERED) this.reported.clear();
    for (const [conv, seq] of out) this.reported.set(conv, seq);
    return out;
  }

  /**
   * The conversation answered that it wants reports at most every `ms` (0: as they come). A
   * 1,000-member group would otherwise get a call per member per second for positions it only
   * shows on request.
   */
  answered(conv: string, ms: number, now = Date.now()): void {
    if (ms > 0) {
      if (this.quietUntil.size >= MAX_REMEMBERED) this.quietUntil.clear();
      this.quietUntil.set(conv, now + ms);
    } else this.quietUntil.delete(conv);
  }

  /** A report did not arrive: the next ack of `conv` reports again. */
  failed(conv: string, seq: number): void {
    if (this.reported.get(conv) === seq) this.reported.delete(conv);
  }
}
