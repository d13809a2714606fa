import type { ConvEvent } from '@switchboard/protocol';
import type { OutboxRow } from './sequencer.ts';

/** The SQL surface a dead-letter store needs (Durable Object SQLite, or the tests' adapter). */
interface SqlLike {
  exec(query: string, ...bindings: unknown[]): { toArray(): Record<string, unknown>[] };
}

/** One outbox event the region refused for good, kept whole so an operator can replay it. */
export interface DeadLetter {
  /** Its place in the outbox when it was refused. */
  oseq: number;
  /** The message's seq (null for other events). */
  seq: number | null;
  kind: ConvEvent['kind'];
  /** The region's answer: HTTP status, and its typed error when it gave one. */
  status: number;
  code: string | null;
  reason: string;
  at: number;
  event: ConvEvent;
}

/** Dead letters one conversation keeps at most; the oldest go first past it (counted as dropped). */
export const MAX_DEAD_LETTERS = 1_000;

/**
 * A conversation's dead letters: outbox events the region refused with a permanent 4xx (a schema
 * refusal after a version skew, a body the region will never take). They leave the outbox so the
 * conversation keeps draining and its window keeps trimming, and are kept here, in the same
 * database, until an operator replays them (`replay` puts them back at the end of the outbox:
 * the region applies events idempotently and stores messages by seq, so late is safe).
 * The table is created on the first dead letter: a conversation that never has one pays nothing.
 */
export class DeadLetters {
  private ready = false;

  constructor(private readonly sql: SqlLike) {}

  /** Moves `row` out of the outbox into the dead letters (the caller acknowledges its oseq). */
  add(row: OutboxRow, refusal: { status: number; code?: string; reason: string }, now = Date.now()): { dropped: number } {
    this.ensure();
    const seq = row.event.kind === 'msg' ? row.event.msg.seq : null;
    this.sql.exec(
      'INSERT OR REPLACE INTO dead_letters (oseq, seq, kind, status, code, reason, at, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      row.oseq,
      seq,
      row.event.kind,
      refusal.status,
      refusal.code ?? null,
      refusal.reason.slice(0, 500),
      now,
      JSON.stringify(row.event),
    );
    const over = this.count() - MAX_DEAD_LETTERS;
    if (over > 0) this.sql.exec('DELETE FROM dead_letters WHERE oseq IN (SELECT oseq FROM dead_letters ORDER BY oseq LIMIT ?)', over);
    return { dropped: Math.max(0, over) };
  }

  /** Every dead letter, oldest first. */
  list(): DeadLetter[] {
    if (!this.exists()) return [];
    return this.sql
      .exec('SELECT oseq, seq, kind, status, code, reason, at, event FROM dead_letters ORDER BY oseq')
      .toArray()
      .map((r) => ({
        oseq: Number(r.oseq),
        seq: r.seq === null ? null : Number(r.seq),
        kind: r.kind as ConvEvent['kind'],
        status: Number(r.status),
        code: (r.code as string | null) ?? null,
        reason: String(r.reason),
        at: Number(r.at),
        event: JSON.parse(String(r.event)) as ConvEvent,
      }));
  }

  count(): number {
    if (!this.exists()) return 0;
    return Number(this.sql.exec('SELECT COUNT(*) AS n FROM dead_letters').toArray()[0]?.n ?? 0);
  }

  /**
   * Puts dead letters (all, or those at `oseqs`) back at the end of the outbox, in their original
   * order, and forgets them. Returns how many went back.
   */
  replay(oseqs?: number[]): number {
    const chosen = this.list().filter((d) => !oseqs || oseqs.includes(d.oseq));
    for (const d of chosen) {
      this.sql.exec('INSERT INTO outbox (seq, event) VALUES (?, ?)', d.seq, JSON.stringify(d.event));
      this.sql.exec('DELETE FROM dead_letters WHERE oseq = ?', d.oseq);
    }
    return chosen.length;
  }

  private exists(): boolean {
    if (this.ready) return true;
    this.ready = this.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'dead_letters'").toArray().length > 0;
    return this.ready;
  }

  private ensure(): void {
    if (this.ready) return;
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS dead_letters (oseq INTEGER PRIMARY KEY, seq INTEGER, kind TEXT NOT NULL,
         status INTEGER NOT NULL, code TEXT, reason TEXT NOT NULL, at INTEGER NOT NULL, event TEXT NOT NULL)`,
    );
    this.ready = true;
  }
}
