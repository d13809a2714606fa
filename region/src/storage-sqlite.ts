import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Msg } from '@switchboard/protocol';
import type { Storage, StoredConversation } from './storage.ts';

interface MessageRow {
  conv: string;
  seq: number;
  cmid: string;
  sender: string;
  dev: string;
  ts: number;
  body: string;
}

const toMsg = (r: MessageRow): Msg => ({ t: 'msg', conv: r.conv, seq: r.seq, cmid: r.cmid, from: r.sender, dev: r.dev, ts: r.ts, body: r.body });

/** Embedded storage: one SQLite file (WAL, synchronous=FULL so a resolved write survives a crash). */
export class SqliteStorage implements Storage {
  readonly name = 'sqlite';
  private db!: Database.Database;

  constructor(private readonly file: string) {}

  async init(): Promise<void> {
    if (this.file !== ':memory:') fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.db = new Database(this.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS conversations (
        id TEXT PRIMARY KEY, title TEXT, creator TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS members (conv TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (conv, user));
      CREATE INDEX IF NOT EXISTS members_by_user ON members (user, conv);
      CREATE TABLE IF NOT EXISTS messages (
        conv TEXT NOT NULL, seq INTEGER NOT NULL, cmid TEXT NOT NULL, sender TEXT NOT NULL,
        dev TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (conv, seq)) WITHOUT ROWID;
    `);
  }

  async saveConversation(c: StoredConversation): Promise<void> {
    const tx = this.db.transaction(() => {
      this.db
        .prepare('INSERT INTO conversations (id, title, creator, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET title = excluded.title')
        .run(c.id, c.title, c.creator, c.createdAt);
      const add = this.db.prepare('INSERT OR IGNORE INTO members (conv, user) VALUES (?, ?)');
      for (const m of c.members) add.run(c.id, m);
    });
    tx();
  }

  async getConversation(id: string): Promise<StoredConversation | null> {
    const row = this.db.prepare('SELECT id, title, creator, created_at FROM conversations WHERE id = ?').get(id) as
      | { id: string; title: string | null; creator: string; created_at: number }
      | undefined;
    if (!row) return null;
    const members = (this.db.prepare('SELECT user FROM members WHERE conv = ? ORDER BY user').all(id) as { user: string }[]).map((r) => r.user);
    return { id: row.id, title: row.title, creator: row.creator, createdAt: row.created_at, members };
  }

  async appendMessages(msgs: Msg[]): Promise<void> {
    const insert = this.db.prepare('INSERT OR IGNORE INTO messages (conv, seq, cmid, sender, dev, ts, body) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.db.transaction(() => {
      for (const m of msgs) insert.run(m.conv, m.seq, m.cmid, m.from, m.dev, m.ts, m.body);
    })();
  }

  async readAfter(conv: string, after: number, limit: number): Promise<Msg[]> {
    const rows = this.db.prepare('SELECT * FROM messages WHERE conv = ? AND seq > ? ORDER BY seq ASC LIMIT ?').all(conv, after, limit) as MessageRow[];
    return rows.map(toMsg);
  }

  async readBefore(conv: string, before: number, limit: number): Promise<Msg[]> {
    const rows = this.db.prepare('SELECT * FROM messages WHERE conv = ? AND seq < ? ORDER BY seq DESC LIMIT ?').all(conv, before, limit) as MessageRow[];
    return rows.map(toMsg);
  }

  async userConversations(user: string, afterConv: string, limit: number): Promise<{ conv: string; lastSeq: number }[]> {
    const rows = this.db
      .prepare(
        `SELECT m.conv AS conv, COALESCE((SELECT MAX(seq) FROM messages WHERE conv = m.conv), 0) AS lastSeq
         FROM members m WHERE m.user = ? AND m.conv > ? ORDER BY m.conv LIMIT ?`,
      )
      .all(user, afterConv, limit) as { conv: string; lastSeq: number }[];
    return rows;
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    this.db?.close();
  }
}
