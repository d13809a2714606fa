import type { Msg } from '@switchboard/protocol';

/** What the list shows of one conversation. */
export interface ConvInfo {
  id: string;
  title: string | null;
  members: string[];
  /** How many members the conversation has (the list API's count; else as many as named). */
  count: number;
  direct: boolean;
  /** End-to-end encrypted (MLS): its log holds ciphertext only this device can turn into text. */
  e2e: boolean;
  /** Highest seq known (from the list API or the live stream). */
  last: number;
  lastMsg: { from: string; body: string; ts: number; seq: number; sealed?: boolean } | null;
  /** A message request this user has not answered (consent): who asked, when. */
  request: { by: string; at: number } | null;
}

/**
 * A message as shown. `sealed`: an encrypted message whose text this device does not have (sent
 * before it joined, or its plaintext never stored here): shown as such, never as ciphertext.
 */
export type ShownMsg = Msg & { sealed?: boolean };

/** A line among a conversation's messages that is no message (a key change, a message that failed to decrypt), after seq `after`. */
export interface Notice {
  after: number;
  text: string;
}

export type SendState = 'pending' | 'failed';
export interface PendingMsg {
  conv: string;
  cmid: string;
  body: string;
  state: SendState;
  /** Restored after a reload without its text (see ShownMsg). */
  sealed?: boolean;
}

/**
 * The web client's view state, without DOM: conversations, messages by (conv, seq) so every
 * message shows once however often it arrives (live push, sync, history, own send), the sends
 * still waiting for their seq, and the highest seq the user has seen per conversation (unread).
 */
export class ChatModel {
  readonly convs = new Map<string, ConvInfo>();
  private readonly msgs = new Map<string, Map<number, ShownMsg>>();
  /** Per conversation: seqs of log entries that show nothing (MLS commits), never unread. */
  private readonly skipped = new Map<string, Set<number>>();
  private readonly notes = new Map<string, Notice[]>();
  private readonly noted = new Set<string>();
  readonly pending = new Map<string, PendingMsg>();
  /** Per conversation: oldest seq loaded and whether older messages exist. */
  readonly history = new Map<string, { oldest: number; more: boolean }>();
  /** Per group whose list entry names only some members: the first page of its roster. */
  readonly rosters = new Map<string, string[]>();

  constructor(readonly me: string, private readonly readSeqs: Record<string, number> = {}) {}

  upsertConv(c: Partial<ConvInfo> & { id: string }): ConvInfo {
    const old = this.convs.get(c.id);
    const merged: ConvInfo = {
      id: c.id,
      title: c.title ?? old?.title ?? null,
      members: c.members?.length ? c.members : (old?.members ?? []),
      count: 0,
      direct: c.direct ?? old?.direct ?? c.id.startsWith('d'),
      e2e: c.e2e === true || old?.e2e === true,
      last: Math.max(c.last ?? 0, old?.last ?? 0),
      lastMsg: newest(old?.lastMsg ?? null, c.lastMsg ?? null),
      request: c.request !== undefined ? c.request : (old?.request ?? null),
    };
    merged.count = Math.max(c.count ?? old?.count ?? 0, merged.members.length);
    this.convs.set(c.id, merged);
    return merged;
  }

  /** Adds a message; false when that (conv, seq) is already here (with its text). Its pending send, if any, is done. */
  addMsg(m: ShownMsg): boolean {
    this.pending.delete(m.cmid);
    let byConv = this.msgs.get(m.conv);
    if (!byConv) this.msgs.set(m.conv, (byConv = new Map()));
    // Once per seq; but its text replaces a sealed placeholder (history read before it was decrypted).
    const had = byConv.get(m.seq);
    if (had && !(had.sealed && !m.sealed)) return false;
    byConv.set(m.seq, m);
    const conv = this.upsertConv({ id: m.conv, last: m.seq, lastMsg: { from: m.from, body: m.body, ts: m.ts, seq: m.seq, ...(m.sealed ? { sealed: true } : {}) } });
    if (conv.members.length === 0 || !conv.members.includes(m.from)) conv.members = [...new Set([...conv.members, m.from])].sort();
    return true;
  }

  /** A log entry that shows nothing (an MLS commit): it moves `last` but is never unread. */
  skip(conv: string, seq: number): void {
    let s = this.skipped.get(conv);
    if (!s) this.skipped.set(conv, (s = new Set()));
    s.add(seq);
    this.upsertConv({ id: conv, last: seq });
  }

  /** Adds a notice after the newest message known; `once`: a key that shows it only the first time. */
  notice(conv: string, text: string, once?: string): boolean {
    if (once !== undefined) {
      if (this.noted.has(`${conv}\n${once}`)) return false;
      this.noted.add(`${conv}\n${once}`);
    }
    const c = this.convs.get(conv) ?? this.upsertConv({ id: conv });
    let list = this.notes.get(conv);
    if (!list) this.notes.set(conv, (list = []));
    list.push({ after: c.last, text });
    return true;
  }

  notices(conv: string): Notice[] {
    return this.notes.get(conv) ?? [];
  }

  /** Everyone known in a conversation: its fetched roster, else the members the list and messages named. */
  members(conv: string): string[] {
    return this.rosters.get(conv) ?? this.convs.get(conv)?.members ?? [];
  }

  /** A direct conversation's other member (undefined for groups, or before the members are known). */
  peer(c: ConvInfo): string | undefined {
    return c.direct ? c.members.find((m) => m !== this.me) : undefined;
  }

  /** Messages of a conversation in seq order. */
  messages(conv: string): ShownMsg[] {
    return [...(this.msgs.get(conv)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
  }

  pendingIn(conv: string): PendingMsg[] {
    return [...this.pending.values()].filter((p) => p.conv === conv);
  }

  readSeq(conv: string): number {
    return this.readSeqs[conv] ?? 0;
  }

  /** Marks everything up to `seq` seen; true when that moved the mark. */
  markRead(conv: string, seq: number): boolean {
    if (seq <= this.readSeq(conv)) return false;
    this.readSeqs[conv] = seq;
    return true;
  }

  readMarks(): Record<string, number> {
    return { ...this.readSeqs };
  }

  /**
   * Unread messages: seqs above the read mark, not counting the user's own messages among those
   * loaded, nor entries that show nothing. Until the server keeps read positions (read receipts), the mark is this browser's.
   */
  unread(conv: string): number {
    const c = this.convs.get(conv);
    if (!c) return 0;
    const read = this.readSeq(conv);
    let own = 0;
    for (const m of this.msgs.get(conv)?.values() ?? []) if (m.seq > read && m.from === this.me) own++;
    for (const seq of this.skipped.get(conv) ?? []) if (seq > read) own++;
    return Math.max(0, c.last - read - own);
  }

  /** Conversations, newest activity first. */
  ordered(): ConvInfo[] {
    return [...this.convs.values()].sort((a, b) => (b.lastMsg?.ts ?? 0) - (a.lastMsg?.ts ?? 0) || a.id.localeCompare(b.id));
  }

  /** How the list and the header name a conversation. */
  name(c: ConvInfo): string {
    if (c.title) return c.title;
    const others = c.members.filter((m) => m !== this.me);
    if (others.length) return others.join(', ');
    return c.direct ? 'Direct conversation' : 'Group';
  }
}

function newest<T extends { seq: number; sealed?: boolean }>(a: T | null, b: T | null): T | null {
  if (!a) return b;
  if (!b) return a;
  // Of one seq, the text wins over a sealed placeholder.
  return b.seq > a.seq || (b.seq === a.seq && a.sealed === true && b.sealed !== true) ? b : a;
}
