import type { Msg } from './frames.ts';

/** What to do with an incoming message for one conversation, given what a device already has. */
export type Verdict =
  | { kind: 'deliver'; msgs: Msg[] }
  | { kind: 'duplicate' }
  | { kind: 'gap'; after: number; upTo: number };

/**
 * Per-conversation in-order, exactly-once release of messages on a device. Messages released
 * to the application run 1, 2, 3 … with nothing skipped and nothing twice. A message beyond the
 * next expected seq is held, and the caller is told the exact missing range to sync.
 */
export class ConversationCursor {
  /** Highest seq released in order. */
  delivered: number;
  private readonly held = new Map<number, Msg>();

  constructor(delivered = 0) {
    this.delivered = delivered;
  }

  accept(msg: Msg): Verdict {
    if (msg.seq <= this.delivered || this.held.has(msg.seq)) return { kind: 'duplicate' };
    if (msg.seq > this.delivered + 1) {
      this.held.set(msg.seq, msg);
      return { kind: 'gap', after: this.delivered, upTo: this.lowestHeld() - 1 };
    }
    const out: Msg[] = [msg];
    this.delivered = msg.seq;
    for (let next = this.held.get(this.delivered + 1); next; next = this.held.get(this.delivered + 1)) {
      this.held.delete(next.seq);
      out.push(next);
      this.delivered = next.seq;
    }
    return { kind: 'deliver', msgs: out };
  }

  /**
   * Moves the cursor forward to `seq` (never back): everything up to it is already had. Held
   * messages are dropped, not released (the caller syncs after the new cursor), so none can be
   * stranded behind a cursor that jumped past its gap.
   */
  advance(seq: number): void {
    if (seq <= this.delivered) return;
    this.delivered = seq;
    this.held.clear();
  }

  /** Seqs waiting behind a gap. */
  get pending(): number {
    return this.held.size;
  }

  private lowestHeld(): number {
    let min = Infinity;
    for (const s of this.held.keys()) if (s < min) min = s;
    return min;
  }
}
