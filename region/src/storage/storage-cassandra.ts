import { createHash } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { KEY_LIMITS, LINK_LIMITS, type PresenceVisibility, type DeviceCursor, type DeviceRef, type KeyDevice, type KeyPackageCount, type Msg, type PositionChange, type Positions, type Role, type SysEvent } from '@switchboard/protocol';
import type { RegionConfig } from '../config.ts';
import { limiter } from '../limiter.ts';
import type { Logger } from '../log.ts';
import { MESSAGES_PER_BUCKET, applyMigrations } from './migrations-cassandra.ts';
import { revokedDevice, tooManyDevices, tooManyLinks, tooManyPackages, tooManyUserDevices, type ClaimOptions, type ClaimedPackage, type DeviceLink, type KeyClaim, type StoredKeyPackage } from '../keys/directory.ts';
import type { PushRegistration, PushService } from '../push/provider.ts';
import type { PushRegistrationRequest } from '../push/registrations.ts';
import type { Storage, StoredConversation, StoredMember, UserConversation } from './storage.ts';
import { CassandraConsent } from '../consent/consent-cassandra.ts';
import type { StoredRequest } from '../consent/consent-store.ts';

const { Client, concurrent, policies, types } = cassandra;
type Row = cassandra.types.Row;
type CassandraConfig = NonNullable<RegionConfig['cassandra']>;

const Long = types.Long;
const bucketOf = (seq: number) => Math.floor(seq / MESSAGES_PER_BUCKET);
/** A write timestamp (µs) from a time in ms. */
const micros = (ms: number) => Long.fromNumber(ms).multiply(1000);

function pushRow(r: Row): PushRegistration {
  const env = r.get('env') as string | null;
  const topic = r.get('topic') as string | null;
  return {
    user: r.get('user_id') as string,
    device: r.get('device_id') as string,
    service: r.get('service') as PushService,
    token: r.get('push_token') as string,
    ...(env ? { env: env as 'sandbox' | 'production' } : {}),
    ...(topic ? { topic } : {}),
    registeredAt: num(r.get('registered_at')) ?? 0,
  };
}
/** A claim reads this many of a device's soonest-expiring packages at a time, and reads again at most CLAIM_ROUNDS times. */
const CLAIM_CANDIDATES = 8;
const CLAIM_ROUNDS = 4;
/** Cassandra's largest TTL (20 years), in seconds. */
const MAX_TTL_S = 630_720_000;

/** A TTL (s) that ends a row at `notAfter` (ms), as seen at `at`; at least 1 s. */
function ttlUntil(notAfter: number, at: number): number {
  return Math.min(MAX_TTL_S, Math.max(1, Math.ceil((notAfter - at) / 1000)));
}

/** `rows` in a random order (Fisher-Yates on a copy). */
function shuffled<T>(rows: T[]): T[] {
  const out = [...rows];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A lightweight transaction that timed out: whether it applied is unknown. */
function casTimedOut(err: unknown): boolean {
  if (!(err instanceof cassandra.errors.ResponseError)) return false;
  const codes = types.responseErrorCodes;
  return (err.code === codes.writeTimeout && (err as { writeType?: string }).writeType === 'CAS') || err.code === codes.readTimeout;
}

/** Largest exclusive upper bound a read binds; every seq is at most MAX_SAFE_INTEGER. */
const SEQ_CEILING = Number.MAX_SAFE_INTEGER + 1;
const MEMBERS_PER_BATCH = 50;
const KNOWN_BUCKETS_MAX = 100_000;

/** Upper bound of a message batch's estimated size: under the default batch_size_warn_threshold (5 KiB). */
export const BATCH_BYTES = 4_096;
/** Estimated bytes of a message row beyond its text fields: keys, ids, timestamps, cell overhead. */
const ROW_OVERHEAD_BYTES = 150;
/** Estimated bytes of a device cursor row beyond its ids: the seq, its timestamp, cell overhead. */
const CURSOR_OVERHEAD_BYTES = 60;
/** Writes of one appendMessages (or setDeviceCursors) in flight at once. */
const WRITE_CONCURRENCY = 64;
/** Conversations per `IN` of a read by (partition, conversation). */
const IN_LIST = 100;

/** A message's estimated size in a batch: its text fields in UTF-8 plus the row overhead. */
export function rowBytes(m: Msg): number {
  return ROW_OVERHEAD_BYTES + Buffer.byteLength(m.body) + m.cmid.length + m.from.length + m.dev.length + (m.sys ? JSON.stringify(m.sys).length : 0);
}

/** A device cursor's estimated size in a batch (ids are ASCII: one byte a character). */
export function cursorBytes(c: DeviceCursor): number {
  return CURSOR_OVERHEAD_BYTES + c.user.length + c.device.length + c.conv.length;
}

/** `items` grouped by `partition` (in first-seen order), each group cut, in order, into runs of at most BATCH_BYTES by `bytes`. */
function partitionRuns<T>(items: T[], partition: (x: T) => string, bytes: (x: T) => number): T[][] {
  const groups = new Map<string, T[]>();
  for (const x of items) {
    const k = partition(x);
    const g = groups.get(k);
    if (g) g.push(x);
    else groups.set(k, [x]);
  }
  const out: T[][] = [];
  for (const g of groups.values()) {
    let run: T[] = [];
    let size = 0;
    for (const x of g) {
      const b = bytes(x);
      if (run.length > 0 && size + b > BATCH_BYTES) {
        out.push(run);
        run = [];
        size = 0;
      }
      run.push(x);
      size += b;
    }
    if (run.length > 0) out.push(run);
  }
  return out;
}

/**
 * The messages grouped by partition (conversation, bucket), each group cut, in order, into runs
 * whose estimated size stays within BATCH_BYTES; a message larger than that is a run of its own.
 */
export function partitionChunks(msgs: Msg[]): Msg[][] {
  return partitionRuns(msgs, (m) => `${m.conv}\u0000${bucketOf(m.seq)}`, rowBytes);
}

/**
 * Device cursors grouped by partition (user, device), the highest of each conversation only,
 * each group cut into runs whose estimated size stays within BATCH_BYTES.
 */
export function cursorChunks(cursors: DeviceCursor[]): DeviceCursor[][] {
  const highest = new Map<string, DeviceCursor>();
  for (const c of cursors) {
    const k = `${c.user}\u0000${c.device}\u0000${c.conv}`;
    if (c.seq >= (highest.get(k)?.seq ?? -1)) highest.set(k, c);
  }
  return partitionRuns([...highest.values()], (c) => `${c.user}\u0000${c.device}`, cursorBytes);
}

/** "LOCAL_QUORUM" → types.consistencies.localQuorum. */
function consistencyOf(name: string): number {
  const key = name.toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof typeof types.consistencies;
  const value = types.consistencies[key];
  if (value === undefined) throw new Error(`unknown Cassandra consistency ${name}`);
  return value;
}

/**
 * The message's TIMEUUID: its time is the message's ts, and its sub-millisecond ticks, clock
 * and node bytes come from a hash of (conversation, seq). Rewriting a message therefore writes
 * the same id, and two messages in one millisecond still get distinct ids.
 */
export function messageId(conv: string, seq: number, ts: number): cassandra.types.TimeUuid {
  const h = createHash('sha256').update(`${conv}\u0000${seq}`).digest();
  return types.TimeUuid.fromDate(new Date(ts), h.readUInt16BE(0) % 10_000, h.subarray(2, 8), h.subarray(8, 10));
}

const toMsg = (conv: string, r: Row): Msg => {
  const m: Msg = {
    t: 'msg',
    conv,
    seq: (r.get('seq') as cassandra.types.Long).toNumber(),
    cmid: r.get('cmid') as string,
    from: r.get('sender') as string,
    dev: r.get('device') as string,
    ts: (r.get('sent_at') as Date).getTime(),
    body: (r.get('content') as string | null) ?? '',
  };
  const sys = r.get('sys') as string | null;
  if (sys) m.sys = JSON.parse(sys) as SysEvent;
  return m;
};
const num = (v: unknown): number | null => (v == null ? null : (v as cassandra.types.Long).toNumber());

function statements(ks: string) {
  const cols = 'seq, cmid, sender, device, sent_at, content, sys';
  return {
    insertMessage: `INSERT INTO ${ks}.messages (conversation_id, bucket, seq, message_id, sender, device, cmid, content, sent_at, sys) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    insertBucket: `INSERT INTO ${ks}.message_buckets (conversation_id, bucket) VALUES (?, ?)`,
    readAsc: `SELECT ${cols} FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq > ? ORDER BY seq ASC LIMIT ?`,
    readDesc: `SELECT ${cols} FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
    bucketsAbove: `SELECT bucket FROM ${ks}.message_buckets WHERE conversation_id = ? AND bucket > ? ORDER BY bucket ASC`,
    bucketsBelow: `SELECT bucket FROM ${ks}.message_buckets WHERE conversation_id = ? AND bucket < ?`,
    bucketsAll: `SELECT bucket FROM ${ks}.message_buckets WHERE conversation_id = ?`,
    insertConversation: `INSERT INTO ${ks}.conversations (conversation_id, title, creator, created_at) VALUES (?, ?, ?, ?)`,
    insertMember: `INSERT INTO ${ks}.conversation_members (conversation_id, user_id) VALUES (?, ?)`,
    selectConversation: `SELECT title, creator, created_at FROM ${ks}.conversations WHERE conversation_id = ?`,
    selectMembers: `SELECT user_id, role, joined_seq, left_seq FROM ${ks}.conversation_members WHERE conversation_id = ?`,
    selectMemberLeft: `SELECT left_seq FROM ${ks}.conversation_members WHERE conversation_id = ? AND user_id = ?`,
    addMember: `INSERT INTO ${ks}.conversation_members (conversation_id, user_id, role, joined_seq, left_seq) VALUES (?, ?, ?, ?, null)`,
    removeMember: `UPDATE ${ks}.conversation_members SET left_seq = ? WHERE conversation_id = ? AND user_id = ?`,
    setMemberRole: `UPDATE ${ks}.conversation_members SET role = ? WHERE conversation_id = ? AND user_id = ?`,
    insertUserConversation: `INSERT INTO ${ks}.conversations_by_user (user_id, conversation_id) VALUES (?, ?)`,
    selectUserConversations: `SELECT conversation_id FROM ${ks}.conversations_by_user WHERE user_id = ? AND conversation_id > ? LIMIT ?`,
    setLastSeq: `UPDATE ${ks}.conversation_last_seq USING TIMESTAMP ? SET last_seq = ?, last_ts = ? WHERE conversation_id = ?`,
    selectLastSeq: `SELECT last_seq, last_ts FROM ${ks}.conversation_last_seq WHERE conversation_id = ?`,
    selectSentAt: `SELECT sent_at FROM ${ks}.messages WHERE conversation_id = ? AND bucket = ? AND seq = ?`,
    setDelivered: `UPDATE ${ks}.member_positions USING TIMESTAMP ? SET delivered_seq = ? WHERE user_id = ? AND conversation_id = ?`,
    setRead: `UPDATE ${ks}.member_positions USING TIMESTAMP ? SET read_seq = ? WHERE user_id = ? AND conversation_id = ?`,
    selectPositions: `SELECT conversation_id, delivered_seq, read_seq FROM ${ks}.member_positions WHERE user_id = ? AND conversation_id IN ?`,
    setDeviceCursor: `UPDATE ${ks}.device_cursors USING TIMESTAMP ? SET acked_seq = ? WHERE user_id = ? AND device_id = ? AND conversation_id = ?`,
    selectDeviceCursors: `SELECT conversation_id, acked_seq FROM ${ks}.device_cursors WHERE user_id = ? AND device_id = ? AND conversation_id IN ?`,
    insertPushDevice: `INSERT INTO ${ks}.push_devices (user_id, device_id, service, push_token, env, topic, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`,
    insertPushToken: `INSERT INTO ${ks}.push_tokens (service, push_token, user_id, device_id, registered_at) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?`,
    selectPushDevice: `SELECT user_id, device_id, service, push_token, env, topic, registered_at FROM ${ks}.push_devices WHERE user_id = ? AND device_id = ?`,
    selectPushDevices: `SELECT user_id, device_id, service, push_token, env, topic, registered_at FROM ${ks}.push_devices WHERE user_id = ?`,
    selectPushToken: `SELECT user_id, device_id, registered_at FROM ${ks}.push_tokens WHERE service = ? AND push_token = ?`,
    deletePushDevice: `DELETE FROM ${ks}.push_devices USING TIMESTAMP ? WHERE user_id = ? AND device_id = ?`,
    deletePushToken: `DELETE FROM ${ks}.push_tokens USING TIMESTAMP ? WHERE service = ? AND push_token = ?`,
    selectKeyDeviceIds: `SELECT device_id, identity_key FROM ${ks}.key_devices WHERE user_id = ?`,
    selectKeyDevices: `SELECT device_id, identity_key, uploaded_at FROM ${ks}.key_devices WHERE user_id = ?`,
    selectKeyDevicesLastResort: `SELECT device_id, last_resort, last_resort_not_after FROM ${ks}.key_devices WHERE user_id = ?`,
    selectLastResortExpiry: `SELECT last_resort_not_after FROM ${ks}.key_devices WHERE user_id = ? AND device_id = ?`,
    upsertKeyDevice: `INSERT INTO ${ks}.key_devices (user_id, device_id, identity_key, uploaded_at) VALUES (?, ?, ?, ?)`,
    upsertKeyDeviceLastResort: `INSERT INTO ${ks}.key_devices (user_id, device_id, identity_key, uploaded_at, last_resort, last_resort_not_after) VALUES (?, ?, ?, ?, ?, ?)`,
    clearLastResort: `UPDATE ${ks}.key_devices SET last_resort = null, last_resort_not_after = null WHERE user_id = ? AND device_id = ?`,
    deleteKeyDevice: `DELETE FROM ${ks}.key_devices WHERE user_id = ? AND device_id = ?`,
    insertKeyPackage: `INSERT INTO ${ks}.key_packages (user_id, device_id, not_after, ref, package) VALUES (?, ?, ?, ?, ?) USING TTL ?`,
    selectKeyPackageRefs: `SELECT ref FROM ${ks}.key_packages WHERE user_id = ? AND device_id = ? AND not_after >= ?`,
    selectKeyPackages: `SELECT not_after, ref, package FROM ${ks}.key_packages WHERE user_id = ? AND device_id = ? AND not_after >= ? LIMIT ?`,
    consumeKeyPackage: `DELETE FROM ${ks}.key_packages WHERE user_id = ? AND device_id = ? AND not_after = ? AND ref = ? IF EXISTS`,
    deleteKeyPackages: `DELETE FROM ${ks}.key_packages WHERE user_id = ? AND device_id = ?`,
    insertRevokedDevice: `INSERT INTO ${ks}.revoked_devices (user_id, device_id, revoked_at) VALUES (?, ?, ?)`,
    selectRevokedDevice: `SELECT revoked_at FROM ${ks}.revoked_devices WHERE user_id = ? AND device_id = ?`,
    insertDeviceLink: `INSERT INTO ${ks}.device_links (user_id, link_id, from_device, envelope, expires_at) VALUES (?, ?, ?, ?, ?) USING TTL ?`,
    selectDeviceLinks: `SELECT link_id, expires_at FROM ${ks}.device_links WHERE user_id = ?`,
    selectDeviceLink: `SELECT from_device, envelope, expires_at FROM ${ks}.device_links WHERE user_id = ? AND link_id = ?`,
    takeDeviceLink: `DELETE FROM ${ks}.device_links WHERE user_id = ? AND link_id = ? IF EXISTS`,
    ping: 'SELECT release_version FROM system.local',
  } as const;
}

/**
 * Storage in Cassandra. Messages are partitioned by (conversation, seq bucket) (see
 * migrations-cassandra.ts for the layout and its sizing). Every statement is prepared, runs at
 * the configured consistency, and is idempotent, so the driver may retry or speculate freely.
 */
export class CassandraStorage implements Storage {
  readonly name = 'cassandra';
  private readonly client: cassandra.Client;
  private readonly ks: string;
  /** Buckets this process has already listed in message_buckets; a miss costs one idempotent write. */
  private readonly knownBuckets = new Set<string>();
  private readonly cql: ReturnType<typeof statements>;
  private readonly consent: CassandraConsent;

  constructor(
    private readonly cfg: CassandraConfig,
    private readonly log: Logger,
  ) {
    this.ks = cfg.keyspace;
    this.cql = statements(cfg.keyspace);
    this.client = new Client({
      contactPoints: cfg.contactPoints,
      localDataCenter: cfg.localDataCenter,
      // Token-aware over DC-aware: each statement goes straight to a replica in the local DC.
      policies: {
        loadBalancing: new policies.loadBalancing.TokenAwarePolicy(new policies.loadBalancing.DCAwareRoundRobinPolicy(cfg.localDataCenter)),
      },
      queryOptions: { consistency: consistencyOf(cfg.consistency), prepare: true, isIdempotent: true },
    });
    this.consent = new CassandraConsent(this.client, cfg.keyspace);
  }

  async init(): Promise<void> {
    await this.client.connect();
    this.log.info('connected', { contactPoints: this.cfg.contactPoints, localDataCenter: this.cfg.localDataCenter, keyspace: this.ks, consistency: this.cfg.consistency });
    await applyMigrations(this.client, this.ks, this.cfg.replication, this.log);
  }

  /** Members first, the conversation row last: a conversation that reads back has all its members. */
  async saveConversation(c: StoredConversation): Promise<void> {
    const members = [...new Set(c.members)];
    const batches: Promise<unknown>[] = [];
    for (let i = 0; i < members.length; i += MEMBERS_PER_BATCH) {
      // Unlogged batch into one partition: applied as one mutation, no batchlog.
      const queries = members.slice(i, i + MEMBERS_PER_BATCH).map((m) => ({ query: this.cql.insertMember, params: [c.id, m] }));
      batches.push(this.client.batch(queries, { logged: false }));
    }
    // One partition per user here, so no batch: concurrent single-partition writes.
    const byUser = members.map((m) => [m, c.id]);
    batches.push(concurrent.executeConcurrent(this.client, this.cql.insertUserConversation, byUser, { concurrencyLevel: 64, raiseOnFirstError: true }));
    // Activity starts at creation; written at timestamp 0, so any message's row (timestamp = its seq) wins.
    batches.push(this.client.execute(this.cql.setLastSeq, [Long.ZERO, Long.ZERO, new Date(c.createdAt), c.id]));
    await Promise.all(batches);
    await this.client.execute(this.cql.insertConversation, [c.id, c.title, c.creator, new Date(c.createdAt)]);
  }

  async getConversation(id: string): Promise<StoredConversation | null> {
    const [conv, memberRows] = await Promise.all([
      this.client.execute(this.cql.selectConversation, [id]),
      this.client.execute(this.cql.selectMembers, [id], { fetchSize: 5_000 }),
    ]);
    const row = conv.first();
    if (!row) return null;
    const creator = row.get('creator') as string;
    const roster: StoredMember[] = [];
    for await (const m of memberRows) {
      const user = m.get('user_id') as string;
      const role = ((m.get('role') as string | null) ?? (user === creator ? 'owner' : 'member')) as Role;
      roster.push({ user, role, joinedSeq: num(m.get('joined_seq')) ?? 0, leftSeq: num(m.get('left_seq')) });
    }
    return {
      id,
      title: (row.get('title') as string | null) ?? null,
      creator,
      createdAt: (row.get('created_at') as Date).getTime(),
      members: roster.filter((m) => m.leftSeq === null).map((m) => m.user),
      roster,
    };
  }

  async applyMembership(conv: string, seq: number, sys: SysEvent): Promise<void> {
    const s = Long.fromNumber(seq);
    const role = sys.role ?? 'member';
    const params = sys.users.map((u) => (sys.op === 'add' ? [conv, u, role, s] : sys.op === 'remove' ? [s, conv, u] : [role, conv, u]));
    const query = sys.op === 'add' ? this.cql.addMember : sys.op === 'remove' ? this.cql.removeMember : this.cql.setMemberRole;
    await concurrent.executeConcurrent(this.client, query, params, { concurrencyLevel: 64, raiseOnFirstError: true });
    if (sys.op === 'add') {
      await concurrent.executeConcurrent(this.client, this.cql.insertUserConversation, sys.users.map((u) => [u, conv]), { concurrencyLevel: 64, raiseOnFirstError: true });
    }
  }

  /**
   * Plain INSERTs, last write wins per cell: a (conversation, seq) always carries the same
   * content from the sequencer and the same derived message_id, so a rewrite leaves the one row
   * unchanged. A new bucket is listed in message_buckets before any message lands in it.
   *
   * The messages of one partition (conversation, bucket) go as unlogged batches: one mutation on
   * one replica set, no batchlog. Each batch is kept within BATCH_BYTES by an estimate of its
   * size, under the default batch_size_warn_threshold of 5 KiB (Cassandra checks that only for
   * batches spanning partitions, but it keeps each mutation small all the same); a message too
   * large to share goes alone as a plain INSERT. A batch is as idempotent as its INSERTs.
   */
  async appendMessages(msgs: Msg[]): Promise<void> {
    if (msgs.length === 0) return;
    const newBuckets = new Map<string, [string, cassandra.types.Long]>();
    for (const m of msgs) {
      const b = bucketOf(m.seq);
      const k = `${m.conv}\u0000${b}`;
      if (!this.knownBuckets.has(k)) newBuckets.set(k, [m.conv, Long.fromNumber(b)]);
    }
    if (newBuckets.size) {
      await Promise.all([...newBuckets.values()].map((params) => this.client.execute(this.cql.insertBucket, params)));
      if (this.knownBuckets.size + newBuckets.size > KNOWN_BUCKETS_MAX) this.knownBuckets.clear();
      for (const k of newBuckets.keys()) this.knownBuckets.add(k);
    }
    const writes: (() => Promise<unknown>)[] = [];
    for (const chunk of partitionChunks(msgs)) {
      const params = chunk.map((m) => this.insertParams(m));
      if (params.length === 1) writes.push(() => this.client.execute(this.cql.insertMessage, params[0]));
      else {
        const queries = params.map((p) => ({ query: this.cql.insertMessage, params: p }));
        // Consistency, prepare and idempotence are the client's queryOptions, as for every statement.
        writes.push(() => this.client.batch(queries, { logged: false }));
      }
    }
    const slot = limiter(WRITE_CONCURRENCY);
    await Promise.all(writes.map((write) => slot(write)));
    // After the messages: a last_seq that is visible has its messages stored.
    const last = new Map<string, Msg>();
    for (const m of msgs) if (m.seq > (last.get(m.conv)?.seq ?? 0)) last.set(m.conv, m);
    await Promise.all([...last].map(([conv, m]) => this.client.execute(this.cql.setLastSeq, [Long.fromNumber(m.seq), Long.fromNumber(m.seq), new Date(m.ts), conv])));
  }

  private insertParams(m: Msg): unknown[] {
    return [
      m.conv,
      Long.fromNumber(bucketOf(m.seq)),
      Long.fromNumber(m.seq),
      messageId(m.conv, m.seq, m.ts),
      m.from,
      m.dev,
      m.cmid,
      m.body,
      new Date(m.ts),
      m.sys ? JSON.stringify(m.sys) : null,
    ];
  }

  async userConversations(user: string, afterConv: string, limit: number): Promise<UserConversation[]> {
    const rs = await this.client.execute(this.cql.selectUserConversations, [user, afterConv, limit]);
    const convs = rs.rows.map((r) => r.get('conversation_id') as string);
    return Promise.all(
      convs.map(async (conv) => {
        const [last, member] = await Promise.all([this.client.execute(this.cql.selectLastSeq, [conv]), this.client.execute(this.cql.selectMemberLeft, [conv, user])]);
        const lastSeq = num(last.first()?.get('last_seq')) ?? 0;
        const lastTs = (last.first()?.get('last_ts') as Date | null | undefined)?.getTime() ?? null;
        // A removed member's conversation ends, for them, at the seq that removed them.
        const left = num(member.first()?.get('left_seq'));
        if (left === null || left >= lastSeq) return { conv, lastSeq, lastTs };
        const at = await this.client.execute(this.cql.selectSentAt, [conv, Long.fromNumber(bucketOf(left)), Long.fromNumber(left)]);
        return { conv, lastSeq: left, lastTs: (at.first()?.get('sent_at') as Date | undefined)?.getTime() ?? null };
      }),
    );
  }

  /** Each position a cell written at timestamp = its value: the highest always wins. */
  async setPositions(conv: string, changes: PositionChange[]): Promise<void> {
    const writes: [string, unknown[]][] = [];
    for (const c of changes) {
      if (c.delivered) writes.push([this.cql.setDelivered, [Long.fromNumber(c.delivered), Long.fromNumber(c.delivered), c.user, conv]]);
      if (c.read) writes.push([this.cql.setRead, [Long.fromNumber(c.read), Long.fromNumber(c.read), c.user, conv]]);
    }
    await Promise.all(writes.map(([q, params]) => this.client.execute(q, params)));
  }

  async positions(user: string, convs: string[]): Promise<Map<string, Positions>> {
    const out = new Map<string, Positions>();
    for (let i = 0; i < convs.length; i += 100) {
      const rs = await this.client.execute(this.cql.selectPositions, [user, convs.slice(i, i + 100)], { fetchSize: 100 });
      for (const r of rs.rows) out.set(r.get('conversation_id') as string, { delivered: num(r.get('delivered_seq')) ?? 0, read: num(r.get('read_seq')) ?? 0 });
    }
    return out;
  }

  /**
   * Forward-only without a read: Cassandra has no conditional "set to the max" (only a
   * lightweight transaction, a Paxos round per cell), so each cell is written USING TIMESTAMP
   * <its seq> and last-write-wins by timestamp keeps the highest seq, whatever order the writes
   * arrive or are retried in, concurrent ones too; an equal timestamp carries the equal value.
   * A device's cursors go as unlogged batches into its one partition (user, device), each
   * within BATCH_BYTES, like the message writes; a batch carries each conversation once.
   */
  async setDeviceCursors(cursors: DeviceCursor[]): Promise<void> {
    const writes: (() => Promise<unknown>)[] = [];
    for (const chunk of cursorChunks(cursors)) {
      const params = chunk.map((c) => [Long.fromNumber(c.seq), Long.fromNumber(c.seq), c.user, c.device, c.conv]);
      if (params.length === 1) writes.push(() => this.client.execute(this.cql.setDeviceCursor, params[0]));
      else writes.push(() => this.client.batch(params.map((p) => ({ query: this.cql.setDeviceCursor, params: p })), { logged: false }));
    }
    const slot = limiter(WRITE_CONCURRENCY);
    await Promise.all(writes.map((write) => slot(write)));
  }

  // ---- push registrations (push/registrations.ts) ------------------------------------------
  // Written at timestamp registered_at and deleted at the timestamp of the registration being
  // removed (migrations-cassandra.ts, version 7): a device that registered again since keeps it.

  async registerPush(reg: PushRegistrationRequest, at: number): Promise<void> {
    const [owner, mine] = await Promise.all([
      this.client.execute(this.cql.selectPushToken, [reg.service, reg.token]).then((r) => r.first()),
      this.pushRegistration(reg.user, reg.device),
    ]);
    const removals: Promise<unknown>[] = [];
    // One owner per token: the device that held it gives it up (that registration only).
    if (owner && (owner.get('user_id') !== reg.user || owner.get('device_id') !== reg.device)) {
      removals.push(this.client.execute(this.cql.deletePushDevice, [micros(num(owner.get('registered_at')) ?? 0), owner.get('user_id'), owner.get('device_id')]));
    }
    // This device's earlier token is no longer its.
    if (mine && (mine.token !== reg.token || mine.service !== reg.service)) {
      removals.push(this.client.execute(this.cql.deletePushToken, [micros(mine.registeredAt), mine.service, mine.token]));
    }
    await Promise.all(removals);
    const ts = micros(at);
    await Promise.all([
      this.client.execute(this.cql.insertPushToken, [reg.service, reg.token, reg.user, reg.device, Long.fromNumber(at), ts]),
      this.client.execute(this.cql.insertPushDevice, [reg.user, reg.device, reg.service, reg.token, reg.env ?? null, reg.topic ?? null, Long.fromNumber(at), ts]),
    ]);
  }

  async unregisterPush(user: string, device: string): Promise<void> {
    const mine = await this.pushRegistration(user, device);
    if (mine) await this.removePush(mine);
  }

  async pushRegistration(user: string, device: string): Promise<PushRegistration | null> {
    const row = (await this.client.execute(this.cql.selectPushDevice, [user, device])).first();
    return row ? pushRow(row) : null;
  }

  async pushRegistrations(users: string[]): Promise<Map<string, PushRegistration[]>> {
    const unique = [...new Set(users)];
    const slot = limiter(WRITE_CONCURRENCY);
    const lists = await Promise.all(unique.map((u) => slot(async () => (await this.client.execute(this.cql.selectPushDevices, [u])).rows.map(pushRow))));
    const out = new Map<string, PushRegistration[]>();
    unique.forEach((u, i) => lists[i]!.length && out.set(u, lists[i]!));
    return out;
  }

  async invalidatePush(reg: { user: string; device: string; token: string }, before?: number): Promise<boolean> {
    const mine = await this.pushRegistration(reg.user, reg.device);
    if (!mine || mine.token !== reg.token || (before !== undefined && mine.registeredAt >= before)) return false;
    await this.removePush(mine);
    return true;
  }

  /** Deletes exactly this registration (and older cells): one registered again since is kept. */
  private async removePush(reg: PushRegistration): Promise<void> {
    const ts = micros(reg.registeredAt);
    await Promise.all([
      this.client.execute(this.cql.deletePushDevice, [ts, reg.user, reg.device]),
      this.client.execute(this.cql.deletePushToken, [ts, reg.service, reg.token]),
    ]);
  }

  // ---- key directory (keys/directory.ts) ----------------------------------------------------
  // Plain writes, except the claim of a one-time package: a lightweight transaction (`DELETE …
  // IF EXISTS`) that exactly one claimer sees applied (migrations-cassandra.ts, version 8).

  /**
   * The limits are checked against what the store held when the upload began: a device's own
   * concurrent uploads (it has no reason to make them) could together pass the limit once.
   */
  async uploadKeyPackages(user: string, device: string, identityKey: string, packages: StoredKeyPackage[], lastResort: StoredKeyPackage | null, at: number): Promise<KeyPackageCount> {
    const [devices, held, revoked] = await Promise.all([
      this.client.execute(this.cql.selectKeyDeviceIds, [user], { fetchSize: 1_000 }),
      this.heldRefs(user, device, at),
      this.isRevoked(user, device),
    ]);
    if (revoked) throw revokedDevice(device);
    const mine = devices.rows.find((r) => r.get('device_id') === device);
    if (!mine && devices.rowLength >= KEY_LIMITS.maxDevicesPerUser) throw tooManyUserDevices();
    const changed = mine !== undefined && mine.get('identity_key') !== identityKey;
    if (changed) held.clear();
    const fresh = new Set(packages.map((p) => p.ref).filter((ref) => !held.has(ref)));
    if (held.size + fresh.size > KEY_LIMITS.maxKeyPackagesPerDevice) throw tooManyPackages(held.size, fresh.size);
    if (changed) {
      // Certified by an identity key the user no longer uses: none of it is handed out again.
      // Awaited first: the writes below then carry later timestamps and survive these deletes.
      await Promise.all([this.client.execute(this.cql.deleteKeyPackages, [user, device]), this.client.execute(this.cql.clearLastResort, [user, device])]);
    }
    const slot = limiter(WRITE_CONCURRENCY);
    await Promise.all(
      packages.map((p) =>
        slot(() => this.client.execute(this.cql.insertKeyPackage, [user, device, Long.fromNumber(p.notAfter), p.ref, Buffer.from(p.bytes), ttlUntil(p.notAfter, at)])),
      ),
    );
    // The listing last: a device listed has its packages stored.
    await (lastResort
      ? this.client.execute(this.cql.upsertKeyDeviceLastResort, [user, device, identityKey, Long.fromNumber(at), Buffer.from(lastResort.bytes), Long.fromNumber(lastResort.notAfter)])
      : this.client.execute(this.cql.upsertKeyDevice, [user, device, identityKey, Long.fromNumber(at)]));
    return this.countKeyPackages(user, device, at);
  }

  /** The refs of the device's unexpired one-time packages. */
  private async heldRefs(user: string, device: string, now: number): Promise<Set<string>> {
    const rs = await this.client.execute(this.cql.selectKeyPackageRefs, [user, device, Long.fromNumber(now)], { fetchSize: 1_000 });
    const refs = new Set<string>();
    for await (const r of rs) refs.add(r.get('ref') as string);
    return refs;
  }

  async countKeyPackages(user: string, device: string, now: number): Promise<KeyPackageCount> {
    const [held, lr] = await Promise.all([this.heldRefs(user, device, now), this.client.execute(this.cql.selectLastResortExpiry, [user, device])]);
    const until = num(lr.first()?.get('last_resort_not_after'));
    return { count: held.size, lastResort: until !== null && until >= now };
  }

  async claimKeyPackages(users: string[], now: number, opts: ClaimOptions = {}): Promise<KeyClaim> {
    const unique = [...new Set(users)];
    const slot = limiter(WRITE_CONCURRENCY);
    const lists = await Promise.all(unique.map((u) => slot(async () => (await this.client.execute(this.cql.selectKeyDevicesLastResort, [u], { fetchSize: 1_000 })).rows)));
    const devices = unique.flatMap((user, i) =>
      lists[i]!.map((r) => ({ user, device: r.get('device_id') as string, lastResort: r.get('last_resort') as Buffer | null, until: num(r.get('last_resort_not_after')) })),
    )
      .filter((d) => !(opts.skip && opts.skip.user === d.user && opts.skip.device === d.device))
      .filter((d) => !opts.only || opts.only.some((o) => o.user === d.user && o.device === d.device));
    if (opts.maxDevices !== undefined && devices.length > opts.maxDevices) throw tooManyDevices(devices.length, opts.maxDevices);
    const taken = await Promise.all(devices.map((d) => slot(() => this.claimOne(d.user, d.device, now))));
    const out: KeyClaim = { packages: [], missing: [] };
    devices.forEach((d, i) => {
      const bytes = taken[i];
      const ref: DeviceRef = { user: d.user, device: d.device };
      let claimed: ClaimedPackage | null = null;
      if (bytes) claimed = { ...ref, bytes, lastResort: false };
      else if (d.lastResort && d.until !== null && d.until >= now) claimed = { ...ref, bytes: new Uint8Array(d.lastResort), lastResort: true };
      if (claimed) out.packages.push(claimed);
      else out.missing.push(ref);
    });
    return out;
  }

  /**
   * One one-time package of the device, consumed, or null when it has none left. Concurrent
   * claimers read the same candidates: each tries the soonest-expiring one, then the others in
   * its own random order (fewer of them collide on one row); a candidate another claimer took is
   * not applied, and the next is tried, then the candidates read again. All of a device's claims are Paxos rounds on its one
   * partition: under heavy contention a round can time out, and its package may then be taken
   * by it or not: it is skipped either way (possibly lost, never handed out twice).
   */
  private async claimOne(user: string, device: string, now: number): Promise<Uint8Array | null> {
    for (let round = 0; round < CLAIM_ROUNDS; round++) {
      const rs = await this.client.execute(this.cql.selectKeyPackages, [user, device, Long.fromNumber(now), CLAIM_CANDIDATES], { fetchSize: CLAIM_CANDIDATES });
      if (rs.rowLength === 0) return null;
      // The soonest-expiring first (it would be the first wasted); once that is contended, the rest
      // in a random order.
      for (const r of [rs.rows[0]!, ...shuffled(rs.rows.slice(1))]) {
        if (await this.consume(user, device, r.get('not_after') as cassandra.types.Long, r.get('ref') as string)) return new Uint8Array(r.get('package') as Buffer);
      }
    }
    return null;
  }

  private async consume(user: string, device: string, notAfter: cassandra.types.Long, ref: string): Promise<boolean> {
    try {
      // Not idempotent: a retried round would report "not applied" for the package it took.
      const rs = await this.client.execute(this.cql.consumeKeyPackage, [user, device, notAfter, ref], { isIdempotent: false, serialConsistency: types.consistencies.localSerial });
      return rs.wasApplied();
    } catch (err) {
      if (casTimedOut(err)) {
        this.log.warn('key package claim: a Paxos round timed out; skipping that package', { user, device });
        return false;
      }
      throw err;
    }
  }

  async devicesOf(user: string): Promise<KeyDevice[]> {
    const rs = await this.client.execute(this.cql.selectKeyDevices, [user], { fetchSize: 1_000 });
    return rs.rows.map((r) => ({ device: r.get('device_id') as string, identityKey: r.get('identity_key') as string, uploadedAt: num(r.get('uploaded_at')) ?? 0 }));
  }

  async removeDevice(user: string, device: string): Promise<void> {
    await Promise.all([this.client.execute(this.cql.deleteKeyPackages, [user, device]), this.client.execute(this.cql.deleteKeyDevice, [user, device])]);
  }

  /** The revocation first: once it is written, no upload of the device gets past its check. */
  async revokeDevice(user: string, device: string, at: number): Promise<void> {
    await this.client.execute(this.cql.insertRevokedDevice, [user, device, Long.fromNumber(at)]);
    await this.removeDevice(user, device);
  }

  async isRevoked(user: string, device: string): Promise<boolean> {
    return (await this.client.execute(this.cql.selectRevokedDevice, [user, device])).rowLength > 0;
  }

  /** Rows live until expiresAt by TTL; the count of a user's waiting links is one partition read. */
  async putLink(user: string, link: DeviceLink, now: number): Promise<void> {
    const rs = await this.client.execute(this.cql.selectDeviceLinks, [user], { fetchSize: 100 });
    const open = rs.rows.filter((r) => r.get('link_id') !== link.id && (num(r.get('expires_at')) ?? 0) > now).length;
    if (open >= LINK_LIMITS.maxOpenLinks) throw tooManyLinks(LINK_LIMITS.maxOpenLinks);
    const ttl = Math.max(1, Math.ceil((link.expiresAt - now) / 1000));
    await this.client.execute(this.cql.insertDeviceLink, [user, link.id, link.fromDevice, link.envelope, Long.fromNumber(link.expiresAt), ttl]);
  }

  /** Read, then `DELETE … IF EXISTS`: of concurrent takers exactly one sees it applied and gets the link. */
  async takeLink(user: string, id: string, now: number): Promise<DeviceLink | null> {
    const rs = await this.client.execute(this.cql.selectDeviceLink, [user, id]);
    const row = rs.first();
    if (!row) return null;
    // Not idempotent: a retried round would report "not applied" for the link it took.
    const taken = await this.client.execute(this.cql.takeDeviceLink, [user, id], { isIdempotent: false, serialConsistency: types.consistencies.localSerial });
    if (!taken.wasApplied()) return null;
    const expiresAt = num(row.get('expires_at')) ?? 0;
    return expiresAt > now ? { id, fromDevice: row.get('from_device') as string, envelope: row.get('envelope') as string, expiresAt } : null;
  }

  /** One partition; the conversations asked IN_LIST at a time, those reads at once. */
  async deviceCursors(user: string, device: string, convs: string[]): Promise<Map<string, number>> {
    const unique = [...new Set(convs)];
    const reads: Promise<cassandra.types.ResultSet>[] = [];
    for (let i = 0; i < unique.length; i += IN_LIST) {
      reads.push(this.client.execute(this.cql.selectDeviceCursors, [user, device, unique.slice(i, i + IN_LIST)], { fetchSize: IN_LIST }));
    }
    const out = new Map<string, number>();
    for (const rs of await Promise.all(reads)) {
      for (const r of rs.rows) {
        const seq = num(r.get('acked_seq'));
        if (seq !== null) out.set(r.get('conversation_id') as string, seq);
      }
    }
    return out;
  }

  /**
   * Usually one partition: the bucket of after+1. Catch-up mostly reads the tail, where that
   * bucket comes back short and the question is whether later buckets exist, so the listing of
   * later buckets is asked at the same time: one round trip either way.
   */
  async readAfter(conv: string, after: number, limit: number): Promise<Msg[]> {
    const first = Math.max(0, Math.floor(after) + 1);
    if (limit <= 0 || !(first <= Number.MAX_SAFE_INTEGER)) return [];
    const bound = Long.fromNumber(first - 1);
    const start = bucketOf(first);
    const [out, later] = await Promise.all([
      this.readBucket('readAsc', conv, start, bound, limit),
      this.client.execute(this.cql.bucketsAbove, [conv, Long.fromNumber(start)], { fetchSize: 16 }),
    ]);
    if (out.length >= limit) return out;
    for await (const row of later) {
      const bucket = (row.get('bucket') as cassandra.types.Long).toNumber();
      out.push(...(await this.readBucket('readAsc', conv, bucket, bound, limit - out.length)));
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * From the bucket of before-1 downwards. With before past every possible seq ("the last N"),
   * the newest bucket comes from message_buckets, whose clustering order puts it first.
   */
  async readBefore(conv: string, before: number, limit: number): Promise<Msg[]> {
    if (limit <= 0 || !(before > 0)) return [];
    const ceiling = Math.min(Math.ceil(before), SEQ_CEILING);
    const bound = Long.fromNumber(ceiling);
    const out: Msg[] = [];
    let listing: cassandra.types.ResultSet;
    if (ceiling >= SEQ_CEILING) {
      listing = await this.client.execute(this.cql.bucketsAll, [conv], { fetchSize: 16 });
    } else {
      const start = bucketOf(ceiling - 1);
      out.push(...(await this.readBucket('readDesc', conv, start, bound, limit)));
      if (out.length >= limit) return out;
      listing = await this.client.execute(this.cql.bucketsBelow, [conv, Long.fromNumber(start)], { fetchSize: 16 });
    }
    for await (const row of listing) {
      const bucket = (row.get('bucket') as cassandra.types.Long).toNumber();
      out.push(...(await this.readBucket('readDesc', conv, bucket, bound, limit - out.length)));
      if (out.length >= limit) break;
    }
    return out;
  }

  private async readBucket(which: 'readAsc' | 'readDesc', conv: string, bucket: number, bound: cassandra.types.Long, limit: number): Promise<Msg[]> {
    // LIMIT bounds the rows; fetchSize only pages them, so ask for all of them in one page.
    const rs = await this.client.execute(this.cql[which], [conv, Long.fromNumber(bucket), bound, limit], { fetchSize: Math.max(limit, 1) });
    return rs.rows.map((r) => toMsg(conv, r));
  }

  async ping(): Promise<void> {
    await this.client.execute(this.cql.ping, [], { consistency: types.consistencies.localOne });
  }

  // ---- consent (consent/consent-cassandra.ts) ------------------------------------------------

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

  async close(): Promise<void> {
    await this.client.shutdown();
  }
}
