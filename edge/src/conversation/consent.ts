import { CONSENT, type ConsentChange, type ErrorCode } from '@switchboard/protocol';
import type { SqlLike } from './sequencer.ts';

/** An unanswered request: who asked, when, and how many messages they have sent since. */
export interface PendingRequest {
  by: string;
  at: number;
  sent: number;
}

/**
 * One conversation's consent state, kept by its ConversationDO (PROTOCOL.md, "Consent"):
 * - members with an unanswered message request (made when the conversation was created with
 *   them, or they were added, by someone they share no accepted conversation with). Until they
 *   accept: their typing, read and delivered receipts reach nobody but their own devices, their
 *   positions show as 0 to others, they may not send, and in a direct conversation the one who
 *   asked may send `CONSENT.requestMaxMessages` messages;
 * - in a direct conversation, blocks between its two members: while one is in place neither
 *   may send (`blocked`), and neither sees the other's typing or receipts.
 * Its tables are created with the first request or block; what is read is kept in memory (the
 * object is the only writer of its tables).
 */
export class ConsentState {
  private requests: Map<string, PendingRequest> | null = null;
  private blocks: Set<string> | null = null;
  private tables = false;

  constructor(private readonly sql: SqlLike) {}

  /** The tables, created with the first write: an object that never holds a request or a block stores nothing for them. */
  private ensureTables(): void {
    if (this.tables) return;
    this.sql.exec('CREATE TABLE IF NOT EXISTS consent_requests (user TEXT PRIMARY KEY, by TEXT NOT NULL, at INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0)');
    this.sql.exec('CREATE TABLE IF NOT EXISTS consent_blocks (blocker TEXT NOT NULL, blocked TEXT NOT NULL, PRIMARY KEY (blocker, blocked))');
    this.tables = true;
  }

  /** Rows of a read; none while the tables do not exist yet. */
  private rows<T>(query: string): T[] {
    try {
      return this.sql.exec(query).toArray() as T[];
    } catch (err) {
      if (/no such table/i.test(String((err as Error)?.message ?? err))) return [];
      throw err;
    }
  }

  /** `user`'s unanswered request, if any. */
  pending(user: string): PendingRequest | undefined {
    return this.loadRequests().get(user);
  }

  /** Some member has a block with the other (direct conversations only hold any). */
  get blocked(): boolean {
    return this.loadBlocks().size > 0;
  }

  /** Records requests for `users` from `by`; the consent changes for the region. */
  request(users: string[], by: string, at: number): ConsentChange[] {
    const out: ConsentChange[] = [];
    for (const user of users) {
      if (user === by || this.pending(user)) continue;
      this.ensureTables();
      this.sql.exec('INSERT OR REPLACE INTO consent_requests (user, by, at, sent) VALUES (?, ?, ?, 0)', user, by, at);
      this.loadRequests().set(user, { by, at, sent: 0 });
      out.push({ user, state: 'request', by, ts: at });
    }
    return out;
  }

  /** `user` answered their request (`accepted` or `declined`); null when they had none. */
  answer(user: string, state: 'accepted' | 'declined', at: number): ConsentChange | null {
    const p = this.pending(user);
    if (!p) return null;
    this.sql.exec('DELETE FROM consent_requests WHERE user = ?', user);
    this.loadRequests().delete(user);
    return { user, state, by: p.by, ts: at };
  }

  /**
   * Whether `from` may send now: a block (direct), their own unanswered request, or the asker's
   * allowance in a direct conversation used up. Null when they may.
   */
  refuseSend(from: string, direct: boolean): { code: ErrorCode; message: string } | null {
    if (direct && this.blocked) return { code: 'blocked', message: 'a block between the two of you stops messages in this conversation' };
    if (this.pending(from)) return { code: 'request_pending', message: 'accept the message request before sending' };
    if (direct) {
      for (const p of this.loadRequests().values()) {
        if (p.by === from && p.sent >= CONSENT.requestMaxMessages) {
          return { code: 'request_pending', message: `at most ${CONSENT.requestMaxMessages} messages until the request is accepted` };
        }
      }
    }
    return null;
  }

  /** `from` sent a message: counted against the requests they made. */
  sent(from: string): void {
    for (const [user, p] of this.loadRequests()) {
      if (p.by !== from) continue;
      p.sent++;
      this.sql.exec('UPDATE consent_requests SET sent = ? WHERE user = ?', p.sent, user);
    }
  }

  /** `blocker` blocks (`on`) or unblocks `blocked`. */
  setBlock(blocker: string, blocked: string, on: boolean): void {
    const key = `${blocker}\n${blocked}`;
    if (on === this.loadBlocks().has(key)) return;
    this.ensureTables();
    if (on) this.sql.exec('INSERT OR IGNORE INTO consent_blocks (blocker, blocked) VALUES (?, ?)', blocker, blocked);
    else this.sql.exec('DELETE FROM consent_blocks WHERE blocker = ? AND blocked = ?', blocker, blocked);
    if (on) this.loadBlocks().add(key);
    else this.loadBlocks().delete(key);
  }

  private loadRequests(): Map<string, PendingRequest> {
    if (this.requests) return this.requests;
    this.requests = new Map();
    for (const r of this.rows<{ user: string; by: string; at: number; sent: number }>('SELECT user, by, at, sent FROM consent_requests')) {
      this.requests.set(r.user, { by: r.by, at: r.at, sent: r.sent });
    }
    return this.requests;
  }

  private loadBlocks(): Set<string> {
    if (this.blocks) return this.blocks;
    this.blocks = new Set();
    for (const r of this.rows<{ blocker: string; blocked: string }>('SELECT blocker, blocked FROM consent_blocks')) this.blocks.add(`${r.blocker}\n${r.blocked}`);
    return this.blocks;
  }
}
