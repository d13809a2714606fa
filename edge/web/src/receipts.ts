/** A message's state as its sender sees it. */
export type MsgState = 'pending' | 'sent' | 'delivered' | 'read';

interface Pos {
  delivered: number;
  read: number;
}

/**
 * Other members' delivered and read positions per conversation, from the conversation details
 * (`GET /v1/conversations/:id`) and then `delivered` / `read` events. Positions only move forward.
 * A message of mine is `read` once every other member read up to it, `delivered` once every
 * other member has it on some device, else `sent`. In groups larger than the server relays
 * receipts for, only the details fetch moves them.
 */
export class ReceiptsState {
  private readonly byConv = new Map<string, Map<string, Pos>>();

  constructor(private readonly me: string) {}

  /** Positions from the conversation details (merged: never moves a position back). */
  load(conv: string, members: { user: string; delivered: number; read: number }[]): void {
    for (const m of members) {
      this.apply(conv, m.user, 'delivered', m.delivered);
      this.apply(conv, m.user, 'read', m.read);
    }
  }

  /** A `read` or `delivered` event; true when it moved something. */
  apply(conv: string, user: string, kind: 'read' | 'delivered', seq: number): boolean {
    let members = this.byConv.get(conv);
    if (!members) this.byConv.set(conv, (members = new Map()));
    const p = members.get(user) ?? { delivered: 0, read: 0 };
    const next = kind === 'read' ? { delivered: Math.max(p.delivered, seq), read: Math.max(p.read, seq) } : { delivered: Math.max(p.delivered, seq), read: p.read };
    members.set(user, next);
    return next.delivered !== p.delivered || next.read !== p.read;
  }

  position(conv: string, user: string): Pos {
    return this.byConv.get(conv)?.get(user) ?? { delivered: 0, read: 0 };
  }

  /** The state of my message at `seq`, given the conversation's members. */
  state(conv: string, seq: number, members: string[]): Exclude<MsgState, 'pending'> {
    const others = members.filter((m) => m !== this.me);
    if (others.length === 0) return 'sent';
    const positions = others.map((u) => this.position(conv, u));
    if (positions.every((p) => p.read >= seq)) return 'read';
    if (positions.every((p) => p.delivered >= seq)) return 'delivered';
    return 'sent';
  }
}
