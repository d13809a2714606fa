import type cassandra from 'cassandra-driver';
import type { Logger } from '../log.ts';

/**
 * Messages per bucket: a conversation's messages live in partitions (conversation_id, bucket)
 * with bucket = floor(seq / MESSAGES_PER_BUCKET). Part of the on-disk layout: changing it means
 * rewriting every message, so it is fixed here beside the table it shapes.
 */
export const MESSAGES_PER_BUCKET = 1_000;

/** One schema step. Statements use IF NOT EXISTS so a step cut short can simply run again. */
export interface Migration {
  version: number;
  name: string;
  statements(keyspace: string): string[];
}

/**
 * The schema, as numbered steps applied in order and recorded in `schema_migrations`. Append new
 * steps; never edit or renumber an applied one.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'conversations and members',
    statements: (ks) => [
      `CREATE TABLE IF NOT EXISTS ${ks}.conversations (
        conversation_id text PRIMARY KEY,
        title text,
        creator text,
        created_at timestamp)`,
      // One partition per conversation, one row per member: the fan-out reads it whole.
      `CREATE TABLE IF NOT EXISTS ${ks}.conversation_members (
        conversation_id text,
        user_id text,
        PRIMARY KEY (conversation_id, user_id))`,
    ],
  },
  {
    version: 2,
    name: 'messages in seq buckets, and the bucket index',
    statements: (ks) => [
      /*
       * Partition = (conversation, bucket of 1,000 seqs), clustered by seq. The naive
       * PRIMARY KEY (conversation_id, message_id) puts a conversation's whole history in one
       * partition that grows forever (a busy group's partition reaches gigabytes: slow
       * compaction and repair, hot replicas, reads that scan tombstones and heap).
       *
       * Why buckets of seq, not of time: readers ask by seq ("after seq N" for catch-up,
       * "before seq N" / "the last 50" for scrollback), and bucket = floor(seq / 1000) is
       * computed by the reader without a lookup, so the common page is a single-partition
       * range read. Every bucket holds at most 1,000 rows however busy or quiet the
       * conversation is; time buckets would be huge for a busy group and nearly empty for a
       * quiet one (a reader would walk many empty partitions).
       *
       * Size: a typical row (ids, sender, device, cmid, timestamp, a 100-300 byte body or its
       * base64 ciphertext) is about 0.3-0.6 KB, so a full bucket is about 0.5 MB. The worst case,
       * every body at the 64 KiB limit, is about 64 MB, still under the ~100 MB where
       * partitions start to hurt. A sync page (at most 501 rows) touches at most two buckets.
       *
       * message_id is a TIMEUUID derived deterministically from (sent_at, conversation, seq), so
       * rewriting a message writes identical cells. That makes the plain INSERT idempotent
       * without a lightweight transaction (IF NOT EXISTS costs a Paxos round, four round trips).
       */
      `CREATE TABLE IF NOT EXISTS ${ks}.messages (
        conversation_id text,
        bucket bigint,
        seq bigint,
        message_id timeuuid,
        sender text,
        device text,
        cmid text,
        content text,
        sent_at timestamp,
        PRIMARY KEY ((conversation_id, bucket), seq))
        WITH CLUSTERING ORDER BY (seq ASC)`,
      /*
       * Which buckets of a conversation hold messages, newest first. "The last 50" reads
       * its first row to find the newest bucket; a read that runs past the end of a bucket
       * reads the next buckets from here instead of probing empty partitions. It is written
       * before the messages of a new bucket, so a bucket holding messages is always listed.
       * One row per 1,000 messages: a million-message conversation has 1,000 rows here.
       */
      `CREATE TABLE IF NOT EXISTS ${ks}.message_buckets (
        conversation_id text,
        bucket bigint,
        PRIMARY KEY (conversation_id, bucket))
        WITH CLUSTERING ORDER BY (bucket DESC)`,
    ],
  },
  {
    version: 3,
    name: 'conversations by user, and each conversation\'s last seq',
    statements: (ks) => [
      // A user's conversations, one partition per user: resume pages through it by id.
      `CREATE TABLE IF NOT EXISTS ${ks}.conversations_by_user (
        user_id text,
        conversation_id text,
        PRIMARY KEY (user_id, conversation_id))`,
      // Written USING TIMESTAMP <seq>: the highest seq wins whatever order appends arrive in.
      `CREATE TABLE IF NOT EXISTS ${ks}.conversation_last_seq (
        conversation_id text PRIMARY KEY,
        last_seq bigint)`,
    ],
  },
  {
    version: 4,
    name: 'sequenced membership: member roles and seq ranges, system events on messages',
    statements: (ks) => [
      // A member's seq range: joined_seq (0 for founding members) .. left_seq (null while a
      // member). Fan-out delivers a message at seq s to the members whose range holds s.
      `ALTER TABLE ${ks}.conversation_members ADD IF NOT EXISTS role text`,
      `ALTER TABLE ${ks}.conversation_members ADD IF NOT EXISTS joined_seq bigint`,
      `ALTER TABLE ${ks}.conversation_members ADD IF NOT EXISTS left_seq bigint`,
      // JSON of msg.sys for membership changes; null for messages.
      `ALTER TABLE ${ks}.messages ADD IF NOT EXISTS sys text`,
    ],
  },
  {
    version: 5,
    name: 'read receipts: members\' delivered and read positions; when each conversation was last active',
    statements: (ks) => [
      // One partition per user, like conversations_by_user: the conversation list reads a page of
      // them at once. Each position is written USING TIMESTAMP <its seq>, so it only moves forward.
      `CREATE TABLE IF NOT EXISTS ${ks}.member_positions (
        user_id text,
        conversation_id text,
        delivered_seq bigint,
        read_seq bigint,
        PRIMARY KEY (user_id, conversation_id))`,
      // Written with last_seq (same timestamp): when the newest message was sent, the list's order.
      `ALTER TABLE ${ks}.conversation_last_seq ADD IF NOT EXISTS last_ts timestamp`,
    ],
  },
  {
    version: 6,
    name: 'devices\' acked cursors',
    statements: (ks) => [
      /*
       * One partition per device, one row per conversation it acked in: a resume reads the
       * cursors of a page of the user's conversations (ordered by id, as conversations_by_user)
       * from one partition, and a gateway's flush writes each device's cursors as one mutation.
       * A device in 10,000 conversations is 10,000 small rows, well under a megabyte.
       *
       * acked_seq is written USING TIMESTAMP <acked_seq> (storage-cassandra.ts), so the highest
       * seq wins whatever order writes arrive in. Every write here must do the same: a write at
       * a real clock timestamp (about 1.7e15 µs) would win over every seq forever, and so would a
       * DELETE; clearing a device's cursors needs USING TIMESTAMP above any seq.
       */
      `CREATE TABLE IF NOT EXISTS ${ks}.device_cursors (
        user_id text,
        device_id text,
        conversation_id text,
        acked_seq bigint,
        PRIMARY KEY ((user_id, device_id), conversation_id))`,
    ],
  },
  {
    version: 7,
    name: 'push registrations',
    statements: (ks) => [
      /*
       * A user's devices' push tokens in one partition (fan-out reads a member's whole list), and
       * each token's owner by (service, token), so registering a token another device holds
       * finds that device. Every cell is written USING TIMESTAMP registered_at (µs), and a
       * registration is deleted USING TIMESTAMP its own registered_at: a tombstone then removes
       * exactly that registration and older ones, and a device that registered again since
       * keeps its newer one, with no lightweight transaction (storage-cassandra.ts). (`token` is
       * a CQL keyword, hence push_token.)
       */
      `CREATE TABLE IF NOT EXISTS ${ks}.push_devices (
        user_id text,
        device_id text,
        service text,
        push_token text,
        env text,
        topic text,
        registered_at bigint,
        PRIMARY KEY (user_id, device_id))`,
      `CREATE TABLE IF NOT EXISTS ${ks}.push_tokens (
        service text,
        push_token text,
        user_id text,
        device_id text,
        registered_at bigint,
        PRIMARY KEY ((service, push_token)))`,
    ],
  },
  {
    version: 8,
    name: 'key directory: devices\' MLS KeyPackages',
    statements: (ks) => [
      /*
       * A user's devices in the key directory, one partition per user (the device list and a
       * claim's first read are one partition read): the identity key of the device's latest
       * upload, when that was, and its one last-resort KeyPackage (replaced by the next, never
       * consumed). A user has at most 100 devices here (KEY_LIMITS.maxDevicesPerUser).
       */
      `CREATE TABLE IF NOT EXISTS ${ks}.key_devices (
        user_id text,
        device_id text,
        identity_key text,
        uploaded_at bigint,
        last_resort blob,
        last_resort_not_after bigint,
        PRIMARY KEY (user_id, device_id))`,
      /*
       * A device's one-time KeyPackages, one partition per device (at most 100 live rows of about
       * 0.5 KB), clustered by expiry then ref (hex SHA-256 of the bytes, so a retried upload
       * rewrites the same row): a claim reads the soonest-expiring live ones with
       * `not_after >= now` and takes one with `DELETE … IF EXISTS` (a lightweight transaction),
       * which only one of any number of concurrent claimers sees applied. Rows are written with
       * a TTL ending at their not_after, so expired packages leave by themselves. Each consumed
       * package leaves a tombstone that claims read past until compaction drops it (gc_grace,
       * 10 days): a device claimed thousands of times within that would make its claims slow.
       */
      `CREATE TABLE IF NOT EXISTS ${ks}.key_packages (
        user_id text,
        device_id text,
        not_after bigint,
        ref text,
        package blob,
        PRIMARY KEY ((user_id, device_id), not_after, ref))
        WITH CLUSTERING ORDER BY (not_after ASC, ref ASC)`,
    ],
  },
  {
    version: 9,
    name: 'key directory: revoked devices and device links',
    statements: (ks) => [
      /* Devices revoked by their user, for good (an upload of theirs is refused): one partition per user. */
      `CREATE TABLE IF NOT EXISTS ${ks}.revoked_devices (
        user_id text,
        device_id text,
        revoked_at bigint,
        PRIMARY KEY (user_id, device_id))`,
      /*
       * A sealed identity key waiting for a user's new device (at most 5 per user, 10 minutes
       * each, written with a TTL so they leave by themselves), taken once with `DELETE … IF
       * EXISTS`. The envelope is ciphertext: its key is in the code the user carries between
       * their devices, never here.
       */
      `CREATE TABLE IF NOT EXISTS ${ks}.device_links (
        user_id text,
        link_id text,
        from_device text,
        envelope text,
        expires_at bigint,
        PRIMARY KEY (user_id, link_id))`,
    ],
  },
  {
    version: 10,
    name: 'consent: blocks, presence visibility, message requests',
    statements: (ks) => [
      // Whom a user blocks (their list), and who blocks a user (checked both ways at once).
      `CREATE TABLE IF NOT EXISTS ${ks}.blocks (
        user_id text,
        blocked_id text,
        blocked_at bigint,
        PRIMARY KEY (user_id, blocked_id))`,
      `CREATE TABLE IF NOT EXISTS ${ks}.blocked_by (
        user_id text,
        blocker_id text,
        PRIMARY KEY (user_id, blocker_id))`,
      `CREATE TABLE IF NOT EXISTS ${ks}.presence_settings (
        user_id text PRIMARY KEY,
        visibility text)`,
      // Unanswered message requests, by user (their list) and by conversation (who in it has not accepted).
      `CREATE TABLE IF NOT EXISTS ${ks}.requests_by_user (
        user_id text,
        conversation_id text,
        requested_by text,
        requested_at bigint,
        PRIMARY KEY (user_id, conversation_id))`,
      `CREATE TABLE IF NOT EXISTS ${ks}.requests_by_conversation (
        conversation_id text,
        user_id text,
        PRIMARY KEY (conversation_id, user_id))`,
    ],
  },
];

/**
 * Creates the keyspace if missing and applies every migration not yet recorded, in order.
 * Idempotent; safe to run at every start. Run `npm run migrate` once per deploy so that many
 * region processes starting together do not race on schema changes.
 */
export async function applyMigrations(
  client: cassandra.Client,
  keyspace: string,
  replication: Record<string, number>,
  log: Logger,
): Promise<{ applied: number[]; version: number }> {
  // NetworkTopologyStrategy: a region per datacenter, each with its replicas (CASSANDRA_REPLICATION);
  // writes at LOCAL_QUORUM wait for the local datacenter only and reach the others asynchronously.
  // An existing keyspace is left as it is (an operator changes replication with ALTER KEYSPACE).
  const dcs = Object.entries(replication).map(([dc, n]) => `'${dc}': ${n}`).join(', ');
  await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'NetworkTopologyStrategy', ${dcs}}`);
  await client.execute(`CREATE TABLE IF NOT EXISTS ${keyspace}.schema_migrations (version int PRIMARY KEY, name text, applied_at timestamp)`);
  const done = new Set<number>();
  const rows = await client.execute(`SELECT version FROM ${keyspace}.schema_migrations`, [], { prepare: true });
  for (const row of rows.rows) done.add(row.get('version') as number);

  const applied: number[] = [];
  for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
    if (done.has(m.version)) continue;
    const started = Date.now();
    log.info('applying migration', { keyspace, version: m.version, migration: m.name });
    for (const cql of m.statements(keyspace)) await client.execute(cql);
    await client.execute(
      `INSERT INTO ${keyspace}.schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
      [m.version, m.name, new Date()],
      { prepare: true },
    );
    applied.push(m.version);
    log.info('applied migration', { keyspace, version: m.version, ms: Date.now() - started });
  }
  const version = Math.max(0, ...MIGRATIONS.map((m) => m.version));
  log.info('schema up to date', { keyspace, version, applied: applied.length });
  return { applied, version };
}
