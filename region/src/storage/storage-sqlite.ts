import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { KEY_LIMITS, LINK_LIMITS, type PresenceVisibility, type DeviceCursor, type DeviceRef, type KeyDevice, type KeyPackageCount, type Msg, type PositionChange, type Positions, type Role, type SysEvent } from '@switchboard/protocol';
import { revokedDevice, tooManyDevices, tooManyLinks, tooManyPackages, tooManyUserDevices, type ClaimOptions, type DeviceLink, type KeyClaim, type StoredKeyPackage } from '../keys/directory.ts';
import type { PushRegistration, PushService } from '../push/provider.ts';
import type { PushRegistrationRequest } from '../push/registrations.ts';
import type { Storage, StoredConversation, StoredMember, UserConversation } from './storage.ts';
import { SqliteConsent } from '../consent/consent-sqlite.ts';
import type { StoredRequest } from '../consent/consent-store.ts';

interface MessageRow {
  conv: string;
  seq: number;
  cmid: string;
  sender: string;
  dev: string;
  ts: number;
  body: string;
  sys: string | null;
}

interface PushRow {
  user: string;
  device: string;
  service: string;
  token: string;
  env: string | null;
  topic: string | null;
  registered_at: number;
}

const toRegistration = (r: PushRow): PushRegistration => ({
  user: r.user,
  device: r.device,
  service: r.service as PushService,
  token: r.token,
  ...(r.env ? { env: r.env as 'sandbox' | 'production' } : {}),
  ...(r.topic ? { topic: r.topic } : {}),
  registeredAt: r.registered_at,
});

interface KeyDeviceRow {
  device: string;
  last_resort: Buffer | null;
  last_resort_not_after: number | null;
}

const toMsg = (r: MessageRow): Msg => {
  const m: Msg = { t: 'msg', conv: r.conv, seq: r.seq, cmid: r.cmid, from: r.sender, dev: r.dev, ts: r.ts, body: r.body };
  if (r.sys) m.sys = JSON.parse(r.sys) as SysEvent;
  return m;
};

/** Embedded storage: one SQLite file (WAL, synchronous=FULL so a resolved write survives a crash). */
export class SqliteStorage implements Storage {
  readonly name = 'sqlite';
  private db!: Database.Database;
  private consent!: SqliteConsent;

  constructor(private readonly file: string) {}

  async init(): Promise<void> {
    if (this.file !== ':memory:') fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.db = new Database(this.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS conversations (
        id TEXT PRIMARY KEY, title TEXT, creator TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS members (conv TEXT NOT NULL, user TEXT NOT NULL, role TEXT, joined_seq INTEGER NOT NULL DEFAULT 0,
        left_seq INTEGER, PRIMARY KEY (conv, user));
      CREATE INDEX IF NOT EXISTS members_by_user ON members (user, conv);
      CREATE TABLE IF NOT EXISTS messages (
        conv TEXT NOT NULL, seq INTEGER NOT NULL, cmid TEXT NOT NULL, sender TEXT NOT NULL,
        dev TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL, sys TEXT, PRIMARY KEY (conv, seq)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS positions (user TEXT NOT NULL, conv TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
        read INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (user, conv)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS device_cursors (user TEXT NOT NULL, device TEXT NOT NULL, conv TEXT NOT NULL,
        seq INTEGER NOT NULL, PRIMARY KEY (user, device, conv)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS push_devices (user TEXT NOT NULL, device TEXT NOT NULL, service TEXT NOT NULL,
        token TEXT NOT NULL, env TEXT, topic TEXT, registered_at INTEGER NOT NULL, PRIMARY KEY (user, device)) WITHOUT ROWID;
      CREATE UNIQUE INDEX IF NOT EXISTS push_devices_by_token ON push_devices (service, token);
      CREATE TABLE IF NOT EXISTS key_devices (user TEXT NOT NULL, device TEXT NOT NULL, identity_key TEXT NOT NULL,
        uploaded_at INTEGER NOT NULL, last_resort BLOB, last_resort_not_after INTEGER, PRIMARY KEY (user, device)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS key_packages (user TEXT NOT NULL, device TEXT NOT NULL, ref TEXT NOT NULL, bytes BLOB NOT NULL,
        not_after INTEGER NOT NULL, PRIMARY KEY (user, device, ref)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS revoked_devices (user TEXT NOT NULL, device TEXT NOT NULL, revoked_at INTEGER NOT NULL, PRIMARY KEY (user, device)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS device_links (user TEXT NOT NULL, id TEXT NOT NULL, from_device TEXT NOT NULL, envelope TEXT NOT NULL,
        expires_at INTEGER NOT NULL, PRIMARY KEY (user, id)) WITHOUT ROWID;
    `);
    // Files created before membership was sequenced: add the columns they lack.
    for (const ddl of ['ALTER TABLE members ADD COLUMN role TEXT', 'ALTER TABLE members ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0', 'ALTER TABLE members ADD COLUMN left_seq INTEGER', 'ALTER TABLE messages ADD COLUMN sys TEXT']) {
      try {
        this.db.exec(ddl);
      } catch {
        // Present already.
      }
    }
    this.consent = new SqliteConsent(this.db);
  }

  // ---- consent (consent/consent-sqlite.ts) ---------------------------------------------------

  block(blocker: string, blocked: string, at: number) { return this.consent.block(blocker, blocked, at); }
  unblock(blocker: string, blocked: string) { return this.consent.unblock(blocker, blocked); }
  blocksOf(user: string) { return this.consent.blocksOf(user); }
  blockedBetween(user: string, others: string[]) { return this.consent.blockedBetween(user, others); }
  setPresenceVisibility(user: string, visibility: PresenceVisibility) { return this.consent.setPresenceVisibility(user, visibility); }
  presenceVisibility(users: string[]) { return this.consent.presenceVisibility(users); }
  setRequests(requests: StoredRequest[]) { return this.consent.setRequests(requests); }
  clearRequests(conv: string, users: string[]) { return this.consent.clearRequests(conv, users); }
  requestsOf(user: string) { return this.consent.requestsOf(user); }
  requestsIn(conv: string) { return this.consent.requestsIn(conv); }

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
    const rows = this.db.prepare('SELECT user, role, joined_seq, left_seq FROM members WHERE conv = ? ORDER BY user').all(id) as
      { user: string; role: string | null; joined_seq: number; left_seq: number | null }[];
    const roster: StoredMember[] = rows.map((r) => ({ user: r.user, role: (r.role ?? (r.user === row.creator ? 'owner' : 'member')) as Role, joinedSeq: r.joined_seq, leftSeq: r.left_seq }));
    const members = roster.filter((m) => m.leftSeq === null).map((m) => m.user);
    return { id: row.id, title: row.title, creator: row.creator, createdAt: row.created_at, members, roster };
  }

  async appendMessages(msgs: Msg[]): Promise<void> {
    const insert = this.db.prepare('INSERT OR IGNORE INTO messages (conv, seq, cmid, sender, dev, ts, body, sys) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    this.db.transaction(() => {
      for (const m of msgs) insert.run(m.conv, m.seq, m.cmid, m.from, m.dev, m.ts, m.body, m.sys ? JSON.stringify(m.sys) : null);
    })();
  }

  async applyMembership(conv: string, seq: number, sys: SysEvent): Promise<void> {
    const add = this.db.prepare(
      'INSERT INTO members (conv, user, role, joined_seq, left_seq) VALUES (?, ?, ?, ?, NULL) ON CONFLICT(conv, user) DO UPDATE SET role = excluded.role, joined_seq = excluded.joined_seq, left_seq = NULL',
    );
    const remove = this.db.prepare('UPDATE members SET left_seq = ? WHERE conv = ? AND user = ?');
    const role = this.db.prepare('UPDATE members SET role = ? WHERE conv = ? AND user = ?');
    this.db.transaction(() => {
      for (const u of sys.users) {
        if (sys.op === 'add') add.run(conv, u, sys.role ?? 'member', seq);
        else if (sys.op === 'remove') remove.run(seq, conv, u);
        else role.run(sys.role ?? 'member', conv, u);
      }
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

  async userConversations(user: string, afterConv: string, limit: number): Promise<UserConversation[]> {
    const rows = this.db
      .prepare(
        `SELECT m.conv AS conv, MIN(COALESCE((SELECT MAX(seq) FROM messages WHERE conv = m.conv), 0), COALESCE(m.left_seq, ${Number.MAX_SAFE_INTEGER})) AS lastSeq
         FROM members m WHERE m.user = ? AND m.conv > ? ORDER BY m.conv LIMIT ?`,
      )
      .all(user, afterConv, limit) as { conv: string; lastSeq: number }[];
    const ts = this.db.prepare('SELECT ts FROM messages WHERE conv = ? AND seq = ?');
    const created = this.db.prepare('SELECT created_at AS ts FROM conversations WHERE id = ?');
    const at = (r: { conv: string; lastSeq: number }) => ((r.lastSeq > 0 ? ts.get(r.conv, r.lastSeq) : created.get(r.conv)) as { ts: number } | undefined)?.ts ?? null;
    return rows.map((r) => ({ ...r, lastTs: at(r) }));
  }

  async setPositions(conv: string, changes: PositionChange[]): Promise<void> {
    const upsert = this.db.prepare(
      `INSERT INTO positions (user, conv, delivered, read) VALUES (?, ?, ?, ?)
       ON CONFLICT(user, conv) DO UPDATE SET delivered = MAX(delivered, excluded.delivered), read = MAX(read, excluded.read)`,
    );
    this.db.transaction(() => {
      for (const c of changes) upsert.run(c.user, conv, c.delivered ?? 0, c.read ?? 0);
    })();
  }

  async positions(user: string, convs: string[]): Promise<Map<string, Positions>> {
    const one = this.db.prepare('SELECT delivered, read FROM positions WHERE user = ? AND conv = ?');
    const out = new Map<string, Positions>();
    for (const conv of convs) {
      const row = one.get(user, conv) as Positions | undefined;
      if (row) out.set(conv, row);
    }
    return out;
  }

  /** One transaction; each cursor an upsert that keeps the larger seq, so a lower one changes nothing. */
  async setDeviceCursors(cursors: DeviceCursor[]): Promise<void> {
    const upsert = this.db.prepare(
      `INSERT INTO device_cursors (user, device, conv, seq) VALUES (?, ?, ?, ?)
       ON CONFLICT(user, device, conv) DO UPDATE SET seq = MAX(seq, excluded.seq)`,
    );
    this.db.transaction(() => {
      for (const c of cursors) upsert.run(c.user, c.device, c.conv, c.seq);
    })();
  }

  async deviceCursors(user: string, device: string, convs: string[]): Promise<Map<string, number>> {
    const one = this.db.prepare('SELECT seq FROM device_cursors WHERE user = ? AND device = ? AND conv = ?');
    const out = new Map<string, number>();
    for (const conv of convs) {
      const row = one.get(user, device, conv) as { seq: number } | undefined;
      if (row) out.set(conv, row.seq);
    }
    return out;
  }

  // ---- push registrations (push/registrations.ts) ------------------------------------------

  async registerPush(reg: PushRegistrationRequest, at: number): Promise<void> {
    this.db.transaction(() => {
      // One owner per token: whoever held it gives it up.
      this.db.prepare('DELETE FROM push_devices WHERE service = ? AND token = ? AND NOT (user = ? AND device = ?)').run(reg.service, reg.token, reg.user, reg.device);
      this.db
        .prepare(
          `INSERT INTO push_devices (user, device, service, token, env, topic, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(user, device) DO UPDATE SET service = excluded.service, token = excluded.token, env = excluded.env,
             topic = excluded.topic, registered_at = excluded.registered_at`,
        )
        .run(reg.user, reg.device, reg.service, reg.token, reg.env ?? null, reg.topic ?? null, at);
    })();
  }

  async unregisterPush(user: string, device: string): Promise<void> {
    this.db.prepare('DELETE FROM push_devices WHERE user = ? AND device = ?').run(user, device);
  }

  async pushRegistration(user: string, device: string): Promise<PushRegistration | null> {
    const row = this.db.prepare('SELECT * FROM push_devices WHERE user = ? AND device = ?').get(user, device) as PushRow | undefined;
    return row ? toRegistration(row) : null;
  }

  async pushRegistrations(users: string[]): Promise<Map<string, PushRegistration[]>> {
    const q = this.db.prepare('SELECT * FROM push_devices WHERE user = ? ORDER BY device');
    const out = new Map<string, PushRegistration[]>();
    for (const user of new Set(users)) {
      const rows = q.all(user) as PushRow[];
      if (rows.length) out.set(user, rows.map(toRegistration));
    }
    return out;
  }

  async invalidatePush(reg: { user: string; device: string; token: string }, before?: number): Promise<boolean> {
    const r = this.db
      .prepare('DELETE FROM push_devices WHERE user = ? AND device = ? AND token = ? AND registered_at < ?')
      .run(reg.user, reg.device, reg.token, before ?? Number.MAX_SAFE_INTEGER);
    return r.changes > 0;
  }

  // ---- key directory (keys/directory.ts) ----------------------------------------------------
  // Every operation is one transaction: a package is consumed by exactly one claim, and a refused
  // upload changes nothing.

  async uploadKeyPackages(user: string, device: string, identityKey: string, packages: StoredKeyPackage[], lastResort: StoredKeyPackage | null, at: number): Promise<KeyPackageCount> {
    return this.db.transaction(() => {
      if (this.db.prepare('SELECT 1 FROM revoked_devices WHERE user = ? AND device = ?').get(user, device)) throw revokedDevice(device);
      const known = this.db.prepare('SELECT identity_key FROM key_devices WHERE user = ? AND device = ?').get(user, device) as { identity_key: string } | undefined;
      if (!known) {
        const { n } = this.db.prepare('SELECT COUNT(*) AS n FROM key_devices WHERE user = ?').get(user) as { n: number };
        if (n >= KEY_LIMITS.maxDevicesPerUser) throw tooManyUserDevices();
      } else if (known.identity_key !== identityKey) {
        // Certified by an identity key the user no longer uses: none of it is handed out again.
        this.db.prepare('DELETE FROM key_packages WHERE user = ? AND device = ?').run(user, device);
        this.db.prepare('UPDATE key_devices SET last_resort = NULL, last_resort_not_after = NULL WHERE user = ? AND device = ?').run(user, device);
      }
      // Expired packages go first, so that they never count against the limit.
      this.db.prepare('DELETE FROM key_packages WHERE user = ? AND device = ? AND not_after < ?').run(user, device, at);
      const held = new Set((this.db.prepare('SELECT ref FROM key_packages WHERE user = ? AND device = ?').all(user, device) as { ref: string }[]).map((r) => r.ref));
      const fresh = new Set(packages.map((p) => p.ref).filter((ref) => !held.has(ref)));
      if (held.size + fresh.size > KEY_LIMITS.maxKeyPackagesPerDevice) throw tooManyPackages(held.size, fresh.size);
      const insert = this.db.prepare('INSERT OR IGNORE INTO key_packages (user, device, ref, bytes, not_after) VALUES (?, ?, ?, ?, ?)');
      for (const p of packages) insert.run(user, device, p.ref, Buffer.from(p.bytes), p.notAfter);
      this.db
        .prepare(
          `INSERT INTO key_devices (user, device, identity_key, uploaded_at, last_resort, last_resort_not_after) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT(user, device) DO UPDATE SET identity_key = excluded.identity_key, uploaded_at = excluded.uploaded_at,
             last_resort = COALESCE(excluded.last_resort, last_resort), last_resort_not_after = COALESCE(excluded.last_resort_not_after, last_resort_not_after)`,
        )
        .run(user, device, identityKey, at, lastResort ? Buffer.from(lastResort.bytes) : null, lastResort?.notAfter ?? null);
      return this.keyCount(user, device, at);
    })();
  }

  async countKeyPackages(user: string, device: string, now: number): Promise<KeyPackageCount> {
    return this.keyCount(user, device, now);
  }

  private keyCount(user: string, device: string, now: number): KeyPackageCount {
    const { n } = this.db.prepare('SELECT COUNT(*) AS n FROM key_packages WHERE user = ? AND device = ? AND not_after >= ?').get(user, device, now) as { n: number };
    const lr = this.db.prepare('SELECT last_resort_not_after AS at FROM key_devices WHERE user = ? AND device = ? AND last_resort IS NOT NULL').get(user, device) as { at: number } | undefined;
    return { count: n, lastResort: lr !== undefined && lr.at >= now };
  }

  async claimKeyPackages(users: string[], now: number, opts: ClaimOptions = {}): Promise<KeyClaim> {
    const listDevices = this.db.prepare('SELECT device, last_resort, last_resort_not_after FROM key_devices WHERE user = ? ORDER BY device');
    const dropExpired = this.db.prepare('DELETE FROM key_packages WHERE user = ? AND device = ? AND not_after < ?');
    // The package expiring soonest first: it would be the first wasted.
    const first = this.db.prepare('SELECT ref, bytes FROM key_packages WHERE user = ? AND device = ? ORDER BY not_after, ref LIMIT 1');
    const consume = this.db.prepare('DELETE FROM key_packages WHERE user = ? AND device = ? AND ref = ?');
    return this.db.transaction(() => {
      const devices: (KeyDeviceRow & { user: string })[] = [];
      for (const user of new Set(users)) {
        for (const d of listDevices.all(user) as KeyDeviceRow[]) {
          if (opts.skip && opts.skip.user === user && opts.skip.device === d.device) continue;
          if (opts.only && !opts.only.some((o) => o.user === user && o.device === d.device)) continue;
          devices.push({ ...d, user });
        }
      }
      if (opts.maxDevices !== undefined && devices.length > opts.maxDevices) throw tooManyDevices(devices.length, opts.maxDevices);
      const out: KeyClaim = { packages: [], missing: [] };
      for (const d of devices) {
        dropExpired.run(d.user, d.device, now);
        const row = first.get(d.user, d.device) as { ref: string; bytes: Buffer } | undefined;
        if (row) {
          consume.run(d.user, d.device, row.ref);
          out.packages.push({ user: d.user, device: d.device, bytes: new Uint8Array(row.bytes), lastResort: false });
        } else if (d.last_resort && d.last_resort_not_after !== null && d.last_resort_not_after >= now) {
          out.packages.push({ user: d.user, device: d.device, bytes: new Uint8Array(d.last_resort), lastResort: true });
        } else out.missing.push({ user: d.user, device: d.device });
      }
      return out;
    })();
  }

  async devicesOf(user: string): Promise<KeyDevice[]> {
    const rows = this.db.prepare('SELECT device, identity_key, uploaded_at FROM key_devices WHERE user = ? ORDER BY device').all(user) as { device: string; identity_key: string; uploaded_at: number }[];
    return rows.map((r) => ({ device: r.device, identityKey: r.identity_key, uploadedAt: r.uploaded_at }));
  }

  async removeDevice(user: string, device: string): Promise<void> {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM key_packages WHERE user = ? AND device = ?').run(user, device);
      this.db.prepare('DELETE FROM key_devices WHERE user = ? AND device = ?').run(user, device);
    })();
  }

  async revokeDevice(user: string, device: string, at: number): Promise<void> {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM key_packages WHERE user = ? AND device = ?').run(user, device);
      this.db.prepare('DELETE FROM key_devices WHERE user = ? AND device = ?').run(user, device);
      this.db.prepare('INSERT INTO revoked_devices (user, device, revoked_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(user, device, at);
    })();
  }

  async isRevoked(user: string, device: string): Promise<boolean> {
    return this.db.prepare('SELECT 1 FROM revoked_devices WHERE user = ? AND device = ?').get(user, device) !== undefined;
  }

  async putLink(user: string, link: DeviceLink, now: number): Promise<void> {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM device_links WHERE user = ? AND expires_at <= ?').run(user, now);
      const { n } = this.db.prepare('SELECT COUNT(*) AS n FROM device_links WHERE user = ?').get(user) as { n: number };
      if (n >= LINK_LIMITS.maxOpenLinks) throw tooManyLinks(LINK_LIMITS.maxOpenLinks);
      this.db.prepare('INSERT OR REPLACE INTO device_links (user, id, from_device, envelope, expires_at) VALUES (?, ?, ?, ?, ?)').run(user, link.id, link.fromDevice, link.envelope, link.expiresAt);
    })();
  }

  async takeLink(user: string, id: string, now: number): Promise<DeviceLink | null> {
    const row = this.db.prepare('DELETE FROM device_links WHERE user = ? AND id = ? RETURNING from_device, envelope, expires_at').get(user, id) as
      | { from_device: string; envelope: string; expires_at: number }
      | undefined;
    return row && row.expires_at > now ? { id, fromDevice: row.from_device, envelope: row.envelope, expiresAt: row.expires_at } : null;
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    this.db?.close();
  }
}
