import type { ConvEvent, ErrorCode, Msg } from '@switchboard/protocol';

/** The part of a Durable Object's `SqlStorage` the sequencer uses (SQLite semantics). */
export interface SqlLike {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  exec(query: string, ...bindings: any[]): { toArray(): unknown[] };
}

export type Result<T> = ({ ok: true } & T) | { ok: false; code: ErrorCode; message: string };

const fail = (code: ErrorCode, message: string) => ({ ok: false as const, code, message });

export interface OutboxRow {
  oseq: number;
  event: ConvEvent;
}

interface MessageRow extends Record<string, unknown> {
  seq: number;
  cmid: string;
  sender: string;
  dev: string;
  ts: number;
  body: string;
}

/**
 * The sequencing state of one conversation, over its own SQLite database. Contract:
 * - seq runs 1, 2, 3 … without gaps;
 * - (sender, cmid) maps to one seq forever: a retry, however late, gets the original seq back
 *   (the dedupe table is never trimmed);
 * - each accepted message and its outbox event are written in one transaction;
 * - the recent window never drops a message the region has not acknowledged.
 * It does no I/O beyond its database: the Durable Object around it owns the network.
 */
export class Sequencer {
  constructor(
    private readonly sql: SqlLike,
    private readonly transaction: (fn: () => void) => void,
  ) {
    for (const ddl of SCHEMA) sql.exec(ddl);
  }

  get conv(): string | null {
    return this.meta('conv');
  }

  get lastSeq(): number {
    return Number(this.meta('last_seq') ?? '0');
  }

  create(input: { conv: string; members: string[]; title: string | null; creator: string; direct: boolean }, now: number): Result<{ members: string[]; existed: boolean }> {
    if (this.conv !== null) {
      if (input.direct && this.meta('direct') === '1') return { ok: true, members: this.members(), existed: true };
      return fail('conflict', 'conversation already exists');
    }
    const event: ConvEvent = { kind: 'created', conv: input.conv, title: input.title, members: input.members, creator: input.creator, ts: now };
    this.transaction(() => {
      this.setMeta('conv', input.conv);
      this.setMeta('title', input.title ?? '');
      this.setMeta('direct', input.direct ? '1' : '0');
      this.setMeta('created_at', String(now));
      this.setMeta('last_seq', '0');
      for (const m of input.members) this.sql.exec('INSERT OR IGNORE INTO members (user, joined_seq) VALUES (?, 0)', m);
      this.sql.exec('INSERT INTO outbox (seq, event) VALUES (NULL, ?)', JSON.stringify(event));
    });
    return { ok: true, members: input.members, existed: false };
  }

  send(input: { from: string; dev: string; cmid: string; body: string }, now: number): Result<{ seq: number; ts: number; duplicate: boolean }> {
    const conv = this.conv;
    if (conv === null) return fail('not_found', 'no such conversation');
    if (!this.isMember(input.from)) return fail('not_member', 'not a member of this conversation');
    const prior = this.all<{ seq: number; ts: number }>('SELECT seq, ts FROM dedupe WHERE sender = ? AND cmid = ?', input.from, input.cmid)[0];
    if (prior) return { ok: true, seq: prior.seq, ts: prior.ts, duplicate: true };
    const seq = this.lastSeq + 1;
    const msg: Msg = { t: 'msg', conv, seq, cmid: input.cmid, from: input.from, dev: input.dev, ts: now, body: input.body };
    this.transaction(() => {
      this.sql.exec('INSERT INTO messages (seq, cmid, sender, dev, ts, body) VALUES (?, ?, ?, ?, ?, ?)', seq, msg.cmid, msg.from, msg.dev, now, msg.body);
      this.sql.exec('INSERT INTO dedupe (sender, cmid, seq, ts) VALUES (?, ?, ?, ?)', msg.from, msg.cmid, seq, now);
      this.sql.exec('INSERT INTO outbox (seq, event) VALUES (?, ?)', seq, JSON.stringify({ kind: 'msg', msg } satisfies ConvEvent));
      this.setMeta('last_seq', String(seq));
    });
    return { ok: true, seq, ts: now, duplicate: false };
  }

  /**
   * Messages after `after` from the recent window, or `null` when the window does not reach back
   * that far (the caller then reads the region, which has every seq older than the window).
   */
  readWindow(after: number, limit: number): { msgs: Msg[]; more: boolean } | null {
    const conv = this.conv!;
    const last = this.lastSeq;
    if (after >= last) return { msgs: [], more: false };
    const oldest = this.all<{ s: number | null }>('SELECT MIN(seq) AS s FROM messages')[0]?.s ?? null;
    if (oldest === null || after + 1 < oldest) return null;
    const rows = this.all<MessageRow>('SELECT seq, cmid, sender, dev, ts, body FROM messages WHERE seq > ? ORDER BY seq LIMIT ?', after, limit);
    const msgs = rows.map((r) => toMsg(conv, r));
    return { msgs, more: (msgs.at(-1)?.seq ?? last) < last };
  }

  /**
   * Up to `limit` messages before `before` (exclusive), newest first, as far back as the recent
   * window reaches. `complete` says the window held every one of them; if not, the older rest is
   * in the region (everything older than the window was drained there before it was trimmed).
   */
  readWindowBefore(before: number, limit: number): { msgs: Msg[]; complete: boolean } {
    const conv = this.conv!;
    const top = Math.min(before, this.lastSeq + 1);
    if (top <= 1) return { msgs: [], complete: true };
    const rows = this.all<MessageRow>('SELECT seq, cmid, sender, dev, ts, body FROM messages WHERE seq < ? ORDER BY seq DESC LIMIT ?', top, limit);
    const msgs = rows.map((r) => toMsg(conv, r));
    const reached = msgs.at(-1)?.seq ?? top;
    return { msgs, complete: msgs.length === limit || reached === 1 };
  }

  isMember(user: string): boolean {
    return this.all('SELECT 1 FROM members WHERE user = ?', user).length > 0;
  }

  members(): string[] {
    return this.all<{ user: string }>('SELECT user FROM members ORDER BY user').map((r) => r.user);
  }

  /**
   * The oldest undelivered outbox events after `after` (an oseq the region already has), in
   * order: at most `limit`, and no more than `maxBytes` of event JSON beyond the first, so a drain
   * request always fits what the region accepts.
   */
  outbox(limit: number, maxBytes = Infinity, after = 0): OutboxRow[] {
    const rows = this.all<{ oseq: number; event: string }>('SELECT oseq, event FROM outbox WHERE oseq > ? ORDER BY oseq LIMIT ?', after, limit);
    const out: OutboxRow[] = [];
    let bytes = 0;
    for (const r of rows) {
      bytes += r.event.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push({ oseq: r.oseq, event: JSON.parse(r.event) as ConvEvent });
    }
    return out;
  }

  /** The region acknowledged every event up to `oseq`: drop them, then trim the window. */
  acknowledge(oseq: number, window: number): void {
    this.sql.exec('DELETE FROM outbox WHERE oseq <= ?', oseq);
    const undrained = this.all<{ s: number | null }>('SELECT MIN(seq) AS s FROM outbox WHERE seq IS NOT NULL')[0]?.s ?? null;
    const cutoff = Math.min(this.lastSeq - window, (undrained ?? Infinity) - 1);
    if (cutoff > 0) this.sql.exec('DELETE FROM messages WHERE seq <= ?', cutoff);
  }

  private all<T>(query: string, ...bindings: unknown[]): T[] {
    return this.sql.exec(query, ...bindings).toArray() as T[];
  }

  private meta(key: string): string | null {
    return this.all<{ value: string }>('SELECT value FROM meta WHERE key = ?', key)[0]?.value ?? null;
  }

  private setMeta(key: string, value: string): void {
    this.sql.exec('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', key, value);
  }
}

function toMsg(conv: string, r: MessageRow): Msg {
  return { t: 'msg', conv, seq: r.seq, cmid: r.cmid, from: r.sender, dev: r.dev, ts: r.ts, body: r.body };
}

const SCHEMA = [
  'CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)',
  'CREATE TABLE IF NOT EXISTS members (user TEXT PRIMARY KEY, joined_seq INTEGER NOT NULL)',
  `CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, cmid TEXT NOT NULL, sender TEXT NOT NULL,
     dev TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS dedupe (sender TEXT NOT NULL, cmid TEXT NOT NULL, seq INTEGER NOT NULL,
     ts INTEGER NOT NULL, PRIMARY KEY (sender, cmid))`,
  'CREATE TABLE IF NOT EXISTS outbox (oseq INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER, event TEXT NOT NULL)',
];
