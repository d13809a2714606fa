/** (conversation, user) pairs remembered as reported before the memory is reset (each costs one entry). */
const MAX_REMEMBERED = 50_000;

export interface DeliveredReport {
  user: string;
  seq: number;
}

/**
 * What one gateway tells ConversationDOs about delivery: per conversation and user, the highest
 * seq any of the user's devices on this gateway acked (acks are cumulative), each value reported
 * once. Every period the gateway makes one call per conversation carrying all its users' values,
 * so a conversation hears from each gateway about once a second however many members ack.
 * Losing this state (eviction, a failed call) only means a value is reported again or with the
 * next ack: positions at the ConversationDO only move forward.
 */
export class DeliveredReports {
  private readonly pending = new Map<string, Map<string, number>>();
  private readonly reported = new Map<string, number>();
  /** Conversations that asked to hear less often (large groups, where nobody is told): until when. */
  private readonly quietUntil = new Map<string, number>();

  note(conv: string, user: string, seq: number): void {
    if (seq <= (this.reported.get(`${conv}\n${user}`) ?? 0)) return;
    let users = this.pending.get(conv);
    if (!users) this.pending.set(conv, (users = new Map()));
    if (seq > (users.get(user) ?? 0)) users.set(user, seq);
  }

  get size(): number {
    return this.pending.size;
  }

  /** The reports to send now, per conversation (a quiet conversation's wait); they count as reported. */
  take(now = Date.now()): Map<string, DeliveredReport[]> {
    const out = new Map<string, DeliveredReport[]>();
    for (const [conv, users] of this.pending) {
      const quiet = this.quietUntil.get(conv);
      if (quiet !== undefined && quiet > now) continue;
      this.quietUntil.delete(conv);
      out.set(conv, [...users].map(([user, seq]) => ({ user, seq })));
      this.pending.delete(conv);
    }
    let n = 0;
    for (const list of out.values()) n += list.length;
    if (this.reported.size + n > MAX_REMEMBERED) this.reported.clear();
    for (const [conv, list] of out) for (const r of list) this.reported.set(`${conv}\n${r.user}`, r.seq);
    return out;
  }

  /** When the earliest quiet conversation with pending reports may report, or null. */
  nextQuietEnd(): number | null {
    let next: number | null = null;
    for (const conv of this.pending.keys()) {
      const q = this.quietUntil.get(conv);
      if (q !== undefined && (next === null || q < next)) next = q;
    }
    return next;
  }

  /**
   * The conversation answered that it wants reports at most every `ms` (0: as they come). A
   * 1,000-member group would otherwise get a call per gateway per second for positions it only
   * shows on request.
   */
  answered(conv: string, ms: number, now = Date.now()): void {
    if (ms > 0) {
      if (this.quietUntil.size >= MAX_REMEMBERED) this.quietUntil.clear();
      this.quietUntil.set(conv, now + ms);
    } else this.quietUntil.delete(conv);
  }

  /** A report did not arrive: those values are pending again. */
  failed(conv: string, reports: DeliveredReport[]): void {
    for (const r of reports) {
      const k = `${conv}\n${r.user}`;
      if (this.reported.get(k) === r.seq) this.reported.delete(k);
      this.note(conv, r.user, r.seq);
    }
  }
}
