import type { PositionChange, Positions } from '@switchboard/protocol';
import { hasTable, type SqlLike } from './sequencer.ts';

/**
 * Members' delivered and read positions in one conversation, kept by its ConversationDO. Contract:
 * - a position only moves forward, and read ≤ delivered is never left behind (reading up to a seq
 *   also means it was delivered);
 * - `advance` answers only what changed, at once, from memory: relays go out without waiting for
 *   a commit;
 * - changes are written by `flush` (the table and one `receipts` outbox event, in one
 *   transaction), which the object calls with its next send, so it rides that commit, or within a
 *   second on its own. A crash before that loses at most that second of positions; clients send
 *   `read` again as their users look, and delivered catches up with the next ack.
 */
export class Receipts {
  private readonly cache = new Map<string, Positions>();
  /** Changes not yet written: to the table (every one) and to the region (`outbox`). */
  private readonly dirty = new Map<string, { outbox: boolean }>();

  /** The positions table exists: made by the first `flush` (a conversation nobody created never gets one). */
  private tableMade: boolean;

  constructor(private readonly sql: SqlLike) {
    this.tableMade = hasTable(sql, 'positions');
  }

  get(user: string): Positions {
    const hit = this.cache.get(user);
    if (hit) return hit;
    if (!this.tableMade) return { delivered: 0, read: 0 };
    const row = this.sql.exec('SELECT delivered, read FROM positions WHERE user = ?', user).toArray()[0] as Positions | undefined;
    const p = { delivered: row?.delivered ?? 0, read: row?.read ?? 0 };
    this.cache.set(user, p);
    return p;
  }

  /**
   * Moves `user`'s positions up to the given ones (read also moves delivered). Returns the fields
   * that moved, or null. `outbox: false` for positions the region derives itself (a sender has
   * read their own message: the region learns it from the message).
   */
  advance(user: string, to: { delivered?: number; read?: number }, opts: { outbox: boolean } = { outbox: true }): Omit<PositionChange, 'user'> | null {
    const p = this.get(user);
    const read = to.read !== undefined && to.read > p.read ? to.read : undefined;
    const target = Math.max(to.delivered ?? 0, to.read ?? 0);
    const delivered = target > p.delivered ? target : undefined;
    if (read === undefined && delivered === undefined) return null;
    this.cache.set(user, { delivered: delivered ?? p.delivered, read: read ?? p.read });
    const was = this.dirty.get(user);
    this.dirty.set(user, { outbox: (was?.outbox ?? false) || opts.outbox });
    return { ...(delivered !== undefined ? { delivered } : {}), ...(read !== undefined ? { read } : {}) };
  }

  get pending(): boolean {
    return this.dirty.size > 0;
  }

  /**
   * Writes every changed position and returns the ones the region should hear of (their current
   * values; the caller puts them in its outbox in the same transaction).
   */
  flush(): PositionChange[] {
    const out: PositionChange[] = [];
    if (this.dirty.size > 0 && !this.tableMade) {
      this.sql.exec('CREATE TABLE IF NOT EXISTS positions (user TEXT PRIMARY KEY, delivered INTEGER NOT NULL, read INTEGER NOT NULL)');
      this.tableMade = true;
    }
    for (const [user, { outbox }] of this.dirty) {
      const p = this.cache.get(user)!;
      this.sql.exec(
        `INSERT INTO positions (user, delivered, read) VALUES (?, ?, ?)
         ON CONFLICT(user) DO UPDATE SET delivered = MAX(delivered, excluded.delivered), read = MAX(read, excluded.read)`,
        user,
        p.delivered,
        p.read,
      );
      if (outbox) out.push({ user, delivered: p.delivered, read: p.read });
    }
    this.dirty.clear();
    return out;
  }
}
