import type Database from 'better-sqlite3';
import type { PresenceVisibility } from '@switchboard/protocol';
import type { ConsentStore, StoredRequest } from './consent-store.ts';

/** The consent tables of the embedded storage (one SQLite file, the storage's own connection). */
export class SqliteConsent implements ConsentStore {
  constructor(private readonly db: Database.Database) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS blocks (blocker TEXT NOT NULL, blocked TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (blocker, blocked)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS blocks_by_blocked ON blocks (blocked, blocker);
      CREATE TABLE IF NOT EXISTS presence_settings (user TEXT PRIMARY KEY, visibility TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS consent_requests (user TEXT NOT NULL, conv TEXT NOT NULL, by TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (user, conv)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS consent_requests_by_conv ON consent_requests (conv, user);
    `);
  }

  async block(blocker: string, blocked: string, at: number): Promise<void> {
    this.db.prepare('INSERT INTO blocks (blocker, blocked, at) VALUES (?, ?, ?) ON CONFLICT(blocker, blocked) DO UPDATE SET at = excluded.at').run(blocker, blocked, at);
  }

  async unblock(blocker: string, blocked: string): Promise<void> {
    this.db.prepare('DELETE FROM blocks WHERE blocker = ? AND blocked = ?').run(blocker, blocked);
  }

  async blocksOf(user: string): Promise<{ user: string; at: number }[]> {
    return this.db.prepare('SELECT blocked AS user, at FROM blocks WHERE blocker = ? ORDER BY at DESC, blocked').all(user) as { user: string; at: number }[];
  }

  async blockedBetween(user: string, others: string[]): Promise<Set<string>> {
    const q = this.db.prepare('SELECT 1 FROM blocks WHERE (blocker = ? AND blocked = ?) OR (blocker = ? AND blocked = ?)');
    return new Set([...new Set(others)].filter((o) => q.get(user, o, o, user) !== undefined));
  }

  async setPresenceVisibility(user: string, visibility: PresenceVisibility): Promise<void> {
    this.db.prepare('INSERT INTO presence_settings (user, visibility) VALUES (?, ?) ON CONFLICT(user) DO UPDATE SET visibility = excluded.visibility').run(user, visibility);
  }

  async presenceVisibility(users: string[]): Promise<Map<string, PresenceVisibility>> {
    const q = this.db.prepare('SELECT visibility FROM presence_settings WHERE user = ?');
    const out = new Map<string, PresenceVisibility>();
    for (const u of new Set(users)) {
      const row = q.get(u) as { visibility: PresenceVisibility } | undefined;
      if (row) out.set(u, row.visibility);
    }
    return out;
  }

  async setRequests(requests: StoredRequest[]): Promise<void> {
    const put = this.db.prepare('INSERT OR IGNORE INTO consent_requests (user, conv, by, at) VALUES (?, ?, ?, ?)');
    this.db.transaction(() => {
      for (const r of requests) put.run(r.user, r.conv, r.by, r.at);
    })();
  }

  async clearRequests(conv: string, users: string[]): Promise<void> {
    const del = this.db.prepare('DELETE FROM consent_requests WHERE user = ? AND conv = ?');
    this.db.transaction(() => {
      for (const u of users) del.run(u, conv);
    })();
  }

  async requestsOf(user: string): Promise<StoredRequest[]> {
    return this.db.prepare('SELECT conv, user, by, at FROM consent_requests WHERE user = ? ORDER BY conv').all(user) as StoredRequest[];
  }

  async requestsIn(conv: string): Promise<string[]> {
    return (this.db.prepare('SELECT user FROM consent_requests WHERE conv = ? ORDER BY user').all(conv) as { user: string }[]).map((r) => r.user);
  }
}
