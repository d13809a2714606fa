import { fromBase64Url, type ConvEvent, type DeviceRef, type ErrorCode, type HistoryVisibility, type Msg, type Role, type SysEvent } from '@switchboard/protocol';
import { groupInfoMembers } from '@switchboard/protocol/mls/inspect';
import { judge, judgeCommit, mlsGroupIdHex, type CommitExtras, type DsState } from './delivery-service.ts';

export type { CommitExtras };

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
  sys: string | null;
}

/** A member as the sequencer keeps it: `leftSeq` is set once removed (the row stays for reads). */
export interface MemberRow {
  user: string;
  role: Role;
  joinedSeq: number;
  leftSeq: number | null;
}

/** A membership change request (see `changeMembers`). */
export interface MembershipChange {
  by: string;
  dev: string;
  op: SysEvent['op'];
  users: string[];
  role?: Role;
}

/**
 * The sequencing state of one conversation, over its own SQLite database. Contract:
 * - seq runs 1, 2, 3 … without gaps;
 * - (sender, cmid) maps to one seq forever: a retry, however late, gets the original seq back
 *   (the dedupe table is never trimmed);
 * - each accepted message and its outbox event are written in one transaction;
 * - the recent window never drops a message the region has not acknowledged.
 * It does no I/O beyond its database: the Durable Object around it owns the network.
 *
 * The object is single-threaded and the only writer of its database, so the hot path reads meta
 * and the current members from memory: both are loaded once, and replaced only after the
 * transaction that changed them committed (a failed one leaves them as they were).
 */
export class Sequencer {
  /** Every meta row (null: not loaded yet). */
  private metaCache: Map<string, string> | null = null;
  /** Meta writes of the running transaction, applied to `metaCache` once it commits. */
  private pendingMeta = new Map<string, string>();
  /** Current members, by id (null: not loaded yet, or changed by the last transaction). */
  private memberCache: string[] | null = null;
  private memberSet: Set<string> | null = null;
  /**
   * The last seq taken (null: not loaded yet). A message does not write it to meta: that was one
   * statement and one page more in every send's commit. It is the newest row of `messages` (the
   * window is trimmed from the old end only), or meta's `last_seq` where that is higher: a new
   * conversation, a membership change, or a trim that took the newest row (`acknowledge` writes
   * it first).
   */
  private lastSeqCache: number | null = null;
  /**
   * The database holds a conversation's tables. Not for an id nobody created: a frame naming one
   * (send, sync, read, a gateway's delivered report …) only reads, finds nothing and writes
   * nothing, so the object it woke has no storage. The tables are made by `create`.
   */
  private hasSchema: boolean;

  constructor(
    private readonly sql: SqlLike,
    private readonly transaction: (fn: () => void) => void,
  ) {
    this.hasSchema = hasTable(sql, 'meta');
    if (this.hasSchema) this.migrate();
  }

  private migrate(): void {
    for (const ddl of SCHEMA) this.sql.exec(ddl);
    // Databases created before membership was sequenced: add the columns they lack.
    for (const ddl of UPGRADES) {
      try {
        this.sql.exec(ddl);
      } catch {
        // The column exists already.
      }
    }
  }

  get conv(): string | null {
    return this.meta('conv');
  }

  get lastSeq(): number {
    const pending = this.pendingMeta.get('last_seq');
    if (pending !== undefined) return Number(pending);
    if (!this.hasSchema) return 0;
    this.lastSeqCache ??= Math.max(Number(this.loadMeta().get('last_seq') ?? '0'), this.all<{ s: number | null }>('SELECT MAX(seq) AS s FROM messages')[0]?.s ?? 0);
    return this.lastSeqCache;
  }

  create(input: { conv: string; region?: string; members: string[]; title: string | null; creator: string; direct: boolean; history?: HistoryVisibility; e2e?: boolean }, now: number): Result<{ members: string[]; existed: boolean; region: string | null }> {
    if (this.conv !== null) {
      if (input.direct && this.meta('direct') === '1') {
        if ((input.e2e === true) !== this.e2e) return fail('conflict', `the direct conversation exists ${this.e2e ? 'with' : 'without'} end-to-end encryption`);
        return { ok: true, members: this.members(), existed: true, region: this.region() };
      }
      return fail('conflict', 'conversation already exists');
    }
    if (!this.hasSchema) {
      this.migrate();
      this.hasSchema = true;
    }
    const event: ConvEvent = { kind: 'created', conv: input.conv, title: input.title, members: input.members, creator: input.creator, ts: now };
    this.tx(() => {
      this.setMeta('conv', input.conv);
      this.setMeta('title', input.title ?? '');
      this.setMeta('direct', input.direct ? '1' : '0');
      this.setMeta('created_at', String(now));
      this.setMeta('last_seq', '0');
      this.setMeta('history', input.history ?? 'join');
      this.setMeta('member_ver', '0');
      if (input.region !== undefined) this.setMeta('region', input.region);
      if (input.e2e) {
        // The creator's device makes the MLS group at epoch 0; its first commit adds the others.
        this.setMeta('e2e', '1');
        this.setMeta('mls_epoch', '0');
        this.setMeta('rekey', input.members.length > 1 ? '1' : '0');
        this.setMeta('pending_adds', JSON.stringify(input.members.filter((m) => m !== input.creator)));
      }
      for (const m of input.members) {
        const role: Role = !input.direct && m === input.creator ? 'owner' : 'member';
        this.sql.exec('INSERT OR IGNORE INTO members (user, joined_seq, role) VALUES (?, 0, ?)', m, role);
      }
      this.sql.exec('INSERT INTO outbox (seq, event) VALUES (NULL, ?)', JSON.stringify(event));
    }, true);
    return { ok: true, members: input.members, existed: false, region: input.region ?? null };
  }

  /** The home region named at creation (null: created before regions were, so the primary). */
  region(): string | null {
    return this.meta('region');
  }

  /**
   * `alsoWrite` runs inside the message's transaction when the message is new (the caller's own
   * writes that should share its commit); a duplicate writes nothing and does not run it.
   */
  send(input: { from: string; dev: string; cmid: string; body: string; mls?: CommitExtras; trace?: string }, now: number, alsoWrite?: () => void): Result<{ seq: number; ts: number; duplicate: boolean }> {
    const conv = this.conv;
    if (conv === null) return fail('not_found', 'no such conversation');
    if (!this.isMember(input.from)) return fail('not_member', 'not a member of this conversation');
    let commitsEpoch = false;
    let welcomed: string[] = [];
    if (this.e2e) {
      // A retry of something already sequenced gets its seq back, whatever the epoch is now.
      const prior = this.sequenced(input.from, input.cmid);
      if (prior) return { ok: true, seq: prior.seq, ts: prior.ts, duplicate: true };
      const verdict = judge(input.body, this.dsState());
      if (!verdict.ok) return verdict;
      if (verdict.kind === 'commit') {
        if (!input.mls) return fail('invalid_frame', 'a commit goes with its GroupInfo: POST /v1/conversations/:id/mls/commit');
        const commit = judgeCommit(input.body, input.mls, {
          groupInfo: this.groupInfo(),
          adds: this.pendingAdds(),
          removes: this.pendingRemoves(),
          links: this.pendingLinks(),
          revokes: this.pendingRevokes(),
          revoked: this.revokedDevices(),
          isMember: (u) => this.isMember(u),
          committer: input.from,
          committerDevice: input.dev,
          external: verdict.header.sender?.type === 'new_member_commit',
        });
        if (!commit.ok) return commit;
        commitsEpoch = true;
        welcomed = commit.welcomed;
      } else if (input.mls) return fail('invalid_frame', 'not a commit');
    } else if (input.mls) return fail('invalid_frame', 'this conversation is not end-to-end encrypted');
    const seq = this.lastSeq + 1;
    const msg: Msg = { t: 'msg', conv, seq, cmid: input.cmid, from: input.from, dev: input.dev, ts: now, body: input.body };
    let prior: { seq: number; ts: number } | undefined;
    this.tx(() => {
      // The dedupe row first: if (sender, cmid) has a seq already, nothing is written.
      if (this.all('INSERT INTO dedupe (sender, cmid, seq, ts) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING seq', msg.from, msg.cmid, seq, now).length === 0) {
        prior = this.sequenced(input.from, input.cmid);
        return;
      }
      this.sql.exec('INSERT INTO messages (seq, cmid, sender, dev, ts, body) VALUES (?, ?, ?, ?, ?, ?)', seq, msg.cmid, msg.from, msg.dev, now, msg.body);
      // A traced message's context goes with it to the region (`trace`: the sequence span).
      this.sql.exec('INSERT INTO outbox (seq, event) VALUES (?, ?)', seq, JSON.stringify({ kind: 'msg', msg, ver: this.memberVersion, ...(input.trace ? { trace: input.trace } : {}) } satisfies ConvEvent));
      if (commitsEpoch) {
        // The first commit of the epoch ends it (and any pending rotation); later ones are stale.
        // Its GroupInfo replaces the last (external joins, the server's proposals); its Welcome
        // waits for the users whose devices it adds (new members, members' new devices), who
        // fetch it from here on.
        this.setMeta('mls_epoch', String(this.mlsEpoch + 1n));
        this.setMeta('rekey', '0');
        this.setMeta('pending_adds', '[]');
        this.setMeta('pending_removes', '[]');
        this.setMeta('pending_links', '[]');
        this.setMeta('pending_revokes', '[]');
        this.setMeta('committer', 'null');
        this.setMeta('group_info', input.mls!.groupInfo);
        if (input.mls!.welcome && welcomed.length) this.sql.exec('INSERT INTO mls_welcomes (seq, users, welcome) VALUES (?, ?, ?)', seq, JSON.stringify(welcomed), input.mls!.welcome);
      }
      alsoWrite?.();
    });
    if (prior) return { ok: true, seq: prior.seq, ts: prior.ts, duplicate: true };
    // Committed: the new row of `messages` is the last seq now.
    this.lastSeqCache = seq;
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
    const rows = this.all<MessageRow>('SELECT seq, cmid, sender, dev, ts, body, sys FROM messages WHERE seq > ? ORDER BY seq LIMIT ?', after, limit);
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
    const rows = this.all<MessageRow>('SELECT seq, cmid, sender, dev, ts, body, sys FROM messages WHERE seq < ? ORDER BY seq DESC LIMIT ?', top, limit);
    const msgs = rows.map((r) => toMsg(conv, r));
    const reached = msgs.at(-1)?.seq ?? top;
    return { msgs, complete: msgs.length === limit || reached === 1 };
  }

  /** A current member (added and not removed since). */
  isMember(user: string): boolean {
    if (!this.hasSchema) return false;
    this.loadMembers();
    return this.memberSet!.has(user);
  }

  /** Current members, by id. */
  members(): string[] {
    return [...this.loadMembers()];
  }

  /**
   * Current members, by id, as the sequencer holds them: the same array until the membership
   * changes (callers may cache work per array), never to be modified.
   */
  memberList(): readonly string[] {
    return this.loadMembers();
  }

  /** The seq of the latest membership change (0: the members the conversation was created with). */
  get memberVersion(): number {
    return Number(this.meta('member_ver') ?? '0');
  }

  get historyVisibility(): HistoryVisibility {
    return this.meta('history') === 'full' ? 'full' : 'join';
  }

  get title(): string | null {
    return this.meta('title') || null;
  }

  get direct(): boolean {
    return this.meta('direct') === '1';
  }

  /** End-to-end encrypted: the conversation carries MLS messages only (delivery-service.ts). */
  get e2e(): boolean {
    return this.meta('e2e') === '1';
  }

  /** The MLS epoch the conversation is at (e2e only): commits sequenced so far. */
  get mlsEpoch(): bigint {
    return BigInt(this.meta('mls_epoch') ?? '0');
  }

  /** A membership change waits for a commit: application messages are refused until then. */
  get rekeyPending(): boolean {
    return this.meta('rekey') === '1';
  }

  /** Users added since the last commit: the next commit must add their devices (with a Welcome). */
  pendingAdds(): string[] {
    return JSON.parse(this.meta('pending_adds') || '[]') as string[];
  }

  /** Users removed since the last commit: the next commit must remove all their leaves. */
  pendingRemoves(): string[] {
    return JSON.parse(this.meta('pending_removes') || '[]') as string[];
  }

  /** Members' devices linked since the last commit: the next commit must add each. */
  pendingLinks(): DeviceRef[] {
    return JSON.parse(this.meta('pending_links') || '[]') as DeviceRef[];
  }

  /** Members' devices revoked since the last commit: the next commit must remove each one's leaf. */
  pendingRevokes(): DeviceRef[] {
    return JSON.parse(this.meta('pending_revokes') || '[]') as DeviceRef[];
  }

  /** The device asked to commit the pending rotation (null: any member's). */
  committer(): DeviceRef | null {
    return (JSON.parse(this.meta('committer') || 'null') as DeviceRef | null) ?? null;
  }

  /** The GroupInfo of the last commit (base64url MLSMessage), null before the first. */
  groupInfo(): string | null {
    return this.meta('group_info') || null;
  }

  /**
   * Welcomes that name `user`, sequenced after their latest join and (for a member since removed)
   * before their removal: a device that had not joined yet when its user was removed can still
   * read what was sent while it was a member. Base64url MLSMessages, oldest first.
   */
  welcomesFor(user: string): { seq: number; welcome: string }[] {
    const m = this.member(user);
    if (!m) return [];
    return this.all<{ seq: number; users: string; welcome: string }>('SELECT seq, users, welcome FROM mls_welcomes WHERE seq > ? AND seq < ? ORDER BY seq', m.joinedSeq, m.leftSeq ?? Number.MAX_SAFE_INTEGER)
      .filter((r) => (JSON.parse(r.users) as string[]).includes(user))
      .map((r) => ({ seq: r.seq, welcome: r.welcome }));
  }

  dsState(): DsState {
    return { epoch: this.mlsEpoch, rekeyPending: this.rekeyPending, groupId: mlsGroupIdHex(this.conv!) };
  }

  member(user: string): MemberRow | null {
    const r = this.all<{ user: string; role: string; joined_seq: number; left_seq: number | null }>(
      'SELECT user, role, joined_seq, left_seq FROM members WHERE user = ?',
      user,
    )[0];
    return r ? { user: r.user, role: r.role as Role, joinedSeq: r.joined_seq, leftSeq: r.left_seq } : null;
  }

  /** A page of current members by id, after `after` (exclusive), at most `limit`. */
  membersPage(after: string, limit: number): MemberRow[] {
    return this.all<{ user: string; role: string; joined_seq: number }>(
      'SELECT user, role, joined_seq FROM members WHERE left_seq IS NULL AND user > ? ORDER BY user LIMIT ?',
      after,
      limit,
    ).map((r) => ({ user: r.user, role: r.role as Role, joinedSeq: r.joined_seq, leftSeq: null }));
  }

  memberCount(): number {
    return this.loadMembers().length;
  }

  /**
   * The seqs `user` may read, inclusive, or null if they never were a member. A current member
   * reads from their join (from 1 if they were a founding member or the group shows full history);
   * a removed one up to and including the seq that removed them.
   */
  readable(user: string): { from: number; to: number } | null {
    const m = this.member(user);
    if (!m) return null;
    const from = m.joinedSeq === 0 || this.historyVisibility === 'full' ? 1 : m.joinedSeq;
    return { from, to: m.leftSeq ?? Number.MAX_SAFE_INTEGER };
  }

  /**
   * A membership change, sequenced like a message: it takes the next seq, is stored in the window
   * as a system event (`msg.sys`) and goes to the outbox with it, in one transaction, and becomes
   * the membership version. Rules: direct conversations have fixed members; only an owner or admin
   * adds or removes others; anyone may remove themselves (leave); an admin cannot remove an owner
   * or another admin; only an owner changes roles, and nobody becomes owner that way. A change
   * that changes nothing is not sequenced (`seq` null).
   */
  /**
   * `opts.pair`: a direct conversation's own pair leaving it (declining its request) or joining
   * it again (asked anew); nobody else, and nothing else, changes a direct conversation.
   */
  changeMembers(input: MembershipChange, now: number, maxMembers: number, opts: { pair?: boolean } = {}): Result<{ seq: number | null; ver: number; users: string[] }> {
    const conv = this.conv;
    if (conv === null) return fail('not_found', 'no such conversation');
    const pair = opts.pair === true && this.direct;
    if (this.direct && (!pair || input.op === 'role' || input.users.some((u) => !this.member(u)))) return fail('forbidden', 'a direct conversation has fixed members');
    const actor = this.member(input.by);
    if (!actor || (actor.leftSeq !== null && !(pair && input.op === 'add'))) return fail('not_member', 'not a member of this conversation');
    const users = [...new Set(input.users)];
    const current = (u: string) => {
      const m = this.member(u);
      return m && m.leftSeq === null ? m : null;
    };
    const isAdmin = pair || actor.role === 'owner' || actor.role === 'admin';
    let changed: string[];
    if (input.op === 'add') {
      if (!isAdmin) return fail('not_admin', 'only an owner or admin may add members');
      if (input.role === 'owner') return fail('forbidden', 'nobody is added as owner');
      if (input.role === 'admin' && actor.role !== 'owner') return fail('not_admin', 'only an owner may add admins');
      changed = users.filter((u) => !current(u));
      if (this.memberCount() + changed.length > maxMembers) return fail('group_full', `the group is limited to ${maxMembers} members`);
    } else if (input.op === 'remove') {
      const leaving = users.length === 1 && users[0] === input.by;
      if (!leaving) {
        if (!isAdmin) return fail('not_admin', 'only an owner or admin may remove members');
        for (const u of users) {
          const m = current(u);
          if (m && u !== input.by && m.role !== 'member' && actor.role !== 'owner') return fail('not_admin', `only an owner may remove ${m.role} ${u}`);
        }
      }
      changed = users.filter((u) => current(u));
    } else {
      if (actor.role !== 'owner') return fail('not_admin', 'only an owner may change roles');
      if (input.role !== 'admin' && input.role !== 'member') return fail('invalid_frame', 'role: expected admin or member');
      for (const u of users) {
        const m = current(u);
        if (!m) return fail('not_found', `${u} is not a member`);
        if (m.role === 'owner') return fail('forbidden', 'an owner keeps their role');
      }
      changed = users.filter((u) => current(u)!.role !== input.role);
    }
    if (changed.length === 0) return { ok: true, seq: null, ver: this.memberVersion, users: [] };
    const seq = this.lastSeq + 1;
    const rotates = this.e2e && input.op !== 'role';
    const sys: SysEvent = {
      op: input.op,
      by: input.by,
      users: changed,
      ...(input.op === 'remove' ? {} : { role: input.role ?? 'member' }),
      // The actor's device commits the rotation (others step in if it does not), unless it is leaving.
      ...(rotates && !(input.op === 'remove' && changed.includes(input.by)) ? { commit: { user: input.by, device: input.dev } } : {}),
    };
    const msg: Msg = { t: 'msg', conv, seq, cmid: `sys-${seq}`, from: input.by, dev: input.dev, ts: now, body: '', sys };
    this.tx(() => {
      for (const u of changed) {
        if (input.op === 'add') {
          this.sql.exec(
            `INSERT INTO members (user, joined_seq, role, left_seq) VALUES (?, ?, ?, NULL)
             ON CONFLICT(user) DO UPDATE SET joined_seq = excluded.joined_seq, role = excluded.role, left_seq = NULL`,
            u,
            seq,
            sys.role,
          );
        } else if (input.op === 'remove') this.sql.exec('UPDATE members SET left_seq = ? WHERE user = ?', seq, u);
        else this.sql.exec('UPDATE members SET role = ? WHERE user = ?', sys.role, u);
      }
      this.sql.exec('INSERT INTO messages (seq, cmid, sender, dev, ts, body, sys) VALUES (?, ?, ?, ?, ?, ?, ?)', seq, msg.cmid, msg.from, msg.dev, now, '', JSON.stringify(sys));
      this.sql.exec('INSERT INTO outbox (seq, event) VALUES (?, ?)', seq, JSON.stringify({ kind: 'msg', msg, ver: seq } satisfies ConvEvent));
      this.setMeta('last_seq', String(seq));
      this.setMeta('member_ver', String(seq));
      // Adds and removals force a key rotation (a role change does not touch the MLS group).
      if (this.e2e && input.op !== 'role') this.setMeta('rekey', '1');
      if (this.e2e && input.op === 'add') this.setMeta('pending_adds', JSON.stringify([...new Set([...this.pendingAdds(), ...changed])]));
      if (rotates) this.setMeta('committer', JSON.stringify(sys.commit ?? null));
      if (this.e2e && input.op === 'remove') {
        // Their devices go with them: linked ones are not added, revoked ones leave with the rest.
        this.setMeta('pending_links', JSON.stringify(this.pendingLinks().filter((d) => !changed.includes(d.user))));
        this.setMeta('pending_revokes', JSON.stringify(this.pendingRevokes().filter((d) => !changed.includes(d.user))));
        this.setMeta('pending_adds', JSON.stringify(this.pendingAdds().filter((u) => !changed.includes(u))));
        this.setMeta('pending_removes', JSON.stringify([...new Set([...this.pendingRemoves(), ...changed])]));
      }
      // Removed and added again before a commit: their old leaves still go (pending_removes stays),
      // and their devices come back with fresh KeyPackages, in that one commit.
    }, true);
    return { ok: true, seq, ver: seq, users: changed };
  }

  /**
   * A member's device linked or revoked (end-to-end encrypted conversations only; anything else
   * changes nothing, `seq` null): sequenced as a system event (`sys.op` link or revoke, naming the
   * device) and a forced rotation: the next commit must add the linked device or remove the
   * revoked one's leaf. Nothing is sequenced for a device already in the group (linked), or one
   * that never was (revoked: if its link still waited, that is dropped). `by` is the user's
   * device that asked, named to commit (others step in if it does not).
   */
  changeDevice(input: { op: 'link' | 'revoke'; user: string; device: string; by: string }, now: number): Result<{ seq: number | null }> {
    const conv = this.conv;
    if (conv === null) return fail('not_found', 'no such conversation');
    if (!this.e2e || !this.isMember(input.user)) return { ok: true, seq: null };
    const same = (d: DeviceRef) => d.user === input.user && d.device === input.device;
    const inGroup = this.groupMembers().some(same);
    const links = this.pendingLinks();
    const revokes = this.pendingRevokes();
    const revoked = this.revokedDevices();
    if (revoked.some(same)) return { ok: true, seq: null }; // revoked for good: nothing more to do, never linked again
    if (input.op === 'link' && (inGroup || links.some(same))) return { ok: true, seq: null };
    // A revoked device that is in the group forces a rotation that removes it; one that is not
    // (its link never committed) is only no longer added. Either way the event tells every device,
    // the revoked one too, and the conversation refuses it from then on (no add, no external join).
    const rotates = input.op === 'link' || inGroup;
    const seq = this.lastSeq + 1;
    const commit = { user: input.user, device: input.by };
    const sys: SysEvent = { op: input.op, by: input.user, users: [input.user], device: input.device, ...(rotates ? { commit } : {}) };
    const msg: Msg = { t: 'msg', conv, seq, cmid: `sys-${seq}`, from: input.user, dev: input.by, ts: now, body: '', sys };
    this.tx(() => {
      this.sql.exec('INSERT INTO messages (seq, cmid, sender, dev, ts, body, sys) VALUES (?, ?, ?, ?, ?, ?, ?)', seq, msg.cmid, msg.from, msg.dev, now, '', JSON.stringify(sys));
      this.sql.exec('INSERT INTO outbox (seq, event) VALUES (?, ?)', seq, JSON.stringify({ kind: 'msg', msg, ver: this.memberVersion } satisfies ConvEvent));
      this.setMeta('last_seq', String(seq));
      const ref = { user: input.user, device: input.device };
      if (input.op === 'link') this.setMeta('pending_links', JSON.stringify([...links, ref]));
      else {
        this.setMeta('revoked_devices', JSON.stringify([...revoked, ref]));
        this.setMeta('pending_links', JSON.stringify(links.filter((d) => !same(d))));
        if (inGroup) this.setMeta('pending_revokes', JSON.stringify([...revokes, ref]));
      }
      if (rotates) {
        this.setMeta('rekey', '1');
        this.setMeta('committer', JSON.stringify(commit));
      }
    });
    return { ok: true, seq };
  }

  /** Members' devices revoked while in this conversation (for good: never added or rejoined again). */
  revokedDevices(): DeviceRef[] {
    return JSON.parse(this.meta('revoked_devices') || '[]') as DeviceRef[];
  }

  /** The devices in the MLS group as the last commit's GroupInfo lists them (none before the first commit). */
  private groupMembers(): DeviceRef[] {
    const gi = this.groupInfo();
    const bytes = gi ? fromBase64Url(gi) : null;
    return (bytes ? groupInfoMembers(bytes)?.members : null) ?? [];
  }

  /** Queues an event for the region that takes no seq (e.g. receipts), after everything queued so far. */
  enqueue(event: ConvEvent): void {
    this.sql.exec('INSERT INTO outbox (seq, event) VALUES (NULL, ?)', JSON.stringify(event));
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

  /** Outbox events after `after` not yet acknowledged by the region, and the oldest one's oseq. */
  outboxBacklog(after = 0): { events: number; oldest: number | null } {
    const r = this.all<{ n: number; o: number | null }>('SELECT COUNT(*) AS n, MIN(oseq) AS o FROM outbox WHERE oseq > ?', after)[0];
    return { events: Number(r?.n ?? 0), oldest: r?.o ?? null };
  }

  /** The region acknowledged every event up to `oseq`: drop them, then trim the window. */
  acknowledge(oseq: number, window: number): void {
    this.sql.exec('DELETE FROM outbox WHERE oseq <= ?', oseq);
    const undrained = this.all<{ s: number | null }>('SELECT MIN(seq) AS s FROM outbox WHERE seq IS NOT NULL')[0]?.s ?? null;
    const last = this.lastSeq;
    const cutoff = Math.min(last - window, (undrained ?? Infinity) - 1);
    if (cutoff <= 0) return;
    // A trim that takes the newest row too (a window of 0) leaves the last seq to meta.
    if (cutoff >= last) {
      this.upsertMeta('last_seq', String(last));
      this.loadMeta().set('last_seq', String(last));
    }
    this.sql.exec('DELETE FROM messages WHERE seq <= ?', cutoff);
  }

  /** The seq and time (sender, cmid) was sequenced at, if it was. */
  sequenced(sender: string, cmid: string): { seq: number; ts: number } | undefined {
    return this.all<{ seq: number; ts: number }>('SELECT seq, ts FROM dedupe WHERE sender = ? AND cmid = ?', sender, cmid)[0];
  }

  /** A read; nothing at all while there are no tables (a conversation nobody created). */
  private all<T>(query: string, ...bindings: unknown[]): T[] {
    if (!this.hasSchema) return [];
    return this.sql.exec(query, ...bindings).toArray() as T[];
  }

  private meta(key: string): string | null {
    return this.pendingMeta.get(key) ?? this.loadMeta().get(key) ?? null;
  }

  private loadMeta(): Map<string, string> {
    if (!this.hasSchema) return new Map();
    this.metaCache ??= new Map(this.all<{ key: string; value: string }>('SELECT key, value FROM meta').map((r) => [r.key, r.value]));
    return this.metaCache;
  }

  /** Inside `tx` only. */
  private setMeta(key: string, value: string): void {
    this.upsertMeta(key, value);
    this.pendingMeta.set(key, value);
  }

  private upsertMeta(key: string, value: string): void {
    this.sql.exec('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', key, value);
  }

  private loadMembers(): string[] {
    if (!this.hasSchema) return [];
    if (!this.memberCache) {
      this.memberCache = this.all<{ user: string }>('SELECT user FROM members WHERE left_seq IS NULL ORDER BY user').map((r) => r.user);
      this.memberSet = new Set(this.memberCache);
    }
    return this.memberCache;
  }

  /** A write transaction; the memory copies follow only once it committed. */
  private tx(fn: () => void, changesMembers = false): void {
    const meta = this.loadMeta();
    this.pendingMeta.clear();
    try {
      this.transaction(fn);
      for (const [k, v] of this.pendingMeta) meta.set(k, v);
      const last = this.pendingMeta.get('last_seq');
      if (last !== undefined) this.lastSeqCache = Number(last);
    } finally {
      this.pendingMeta.clear();
      // Read the members again when next needed (whether or not the change committed).
      if (changesMembers) this.memberCache = this.memberSet = null;
    }
  }
}

function toMsg(conv: string, r: MessageRow): Msg {
  const msg: Msg = { t: 'msg', conv, seq: r.seq, cmid: r.cmid, from: r.sender, dev: r.dev, ts: r.ts, body: r.body };
  if (r.sys) msg.sys = JSON.parse(r.sys) as SysEvent;
  return msg;
}

/** Whether the database has table `name` (a read: it creates nothing). */
export function hasTable(sql: SqlLike, name: string): boolean {
  return sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", name).toArray().length > 0;
}

const SCHEMA = [
  'CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)',
  `CREATE TABLE IF NOT EXISTS members (user TEXT PRIMARY KEY, joined_seq INTEGER NOT NULL,
     role TEXT NOT NULL DEFAULT 'member', left_seq INTEGER)`,
  `CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, cmid TEXT NOT NULL, sender TEXT NOT NULL,
     dev TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL, sys TEXT)`,
  `CREATE TABLE IF NOT EXISTS dedupe (sender TEXT NOT NULL, cmid TEXT NOT NULL, seq INTEGER NOT NULL,
     ts INTEGER NOT NULL, PRIMARY KEY (sender, cmid))`,
  'CREATE TABLE IF NOT EXISTS outbox (oseq INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER, event TEXT NOT NULL)',
  // End-to-end encrypted conversations: each commit's Welcome, for the users it added.
  'CREATE TABLE IF NOT EXISTS mls_welcomes (seq INTEGER PRIMARY KEY, users TEXT NOT NULL, welcome TEXT NOT NULL)',
];

const UPGRADES = [
  "ALTER TABLE members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'",
  'ALTER TABLE members ADD COLUMN left_seq INTEGER',
  'ALTER TABLE messages ADD COLUMN sys TEXT',
];
