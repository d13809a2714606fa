import cassandra from 'cassandra-driver';
import type { PresenceVisibility } from '@switchboard/protocol';
import type { ConsentStore, StoredRequest } from './consent-store.ts';

const Long = cassandra.types.Long;
/** Users per `IN` of a read within one partition. */
const IN_LIST = 100;

function statements(ks: string) {
  return {
    insertBlock: `INSERT INTO ${ks}.blocks (user_id, blocked_id, blocked_at) VALUES (?, ?, ?)`,
    insertBlockedBy: `INSERT INTO ${ks}.blocked_by (user_id, blocker_id) VALUES (?, ?)`,
    deleteBlock: `DELETE FROM ${ks}.blocks WHERE user_id = ? AND blocked_id = ?`,
    deleteBlockedBy: `DELETE FROM ${ks}.blocked_by WHERE user_id = ? AND blocker_id = ?`,
    selectBlocks: `SELECT blocked_id, blocked_at FROM ${ks}.blocks WHERE user_id = ?`,
    selectBlocksIn: `SELECT blocked_id FROM ${ks}.blocks WHERE user_id = ? AND blocked_id IN ?`,
    selectBlockedByIn: `SELECT blocker_id FROM ${ks}.blocked_by WHERE user_id = ? AND blocker_id IN ?`,
    upsertVisibility: `INSERT INTO ${ks}.presence_settings (user_id, visibility) VALUES (?, ?)`,
    selectVisibility: `SELECT user_id, visibility FROM ${ks}.presence_settings WHERE user_id IN ?`,
    insertRequestByUser: `INSERT INTO ${ks}.requests_by_user (user_id, conversation_id, requested_by, requested_at) VALUES (?, ?, ?, ?)`,
    insertRequestByConv: `INSERT INTO ${ks}.requests_by_conversation (conversation_id, user_id) VALUES (?, ?)`,
    deleteRequestByUser: `DELETE FROM ${ks}.requests_by_user WHERE user_id = ? AND conversation_id = ?`,
    deleteRequestByConv: `DELETE FROM ${ks}.requests_by_conversation WHERE conversation_id = ? AND user_id = ?`,
    selectRequestsOf: `SELECT conversation_id, requested_by, requested_at FROM ${ks}.requests_by_user WHERE user_id = ?`,
    selectRequestsIn: `SELECT user_id FROM ${ks}.requests_by_conversation WHERE conversation_id = ?`,
  } as const;
}

/** Every row of a one-partition read, page by page. */
async function allRows(client: cassandra.Client, query: string, params: unknown[]): Promise<cassandra.types.Row[]> {
  const out: cassandra.types.Row[] = [];
  let pageState: string | undefined;
  do {
    const rs = await client.execute(query, params, { prepare: true, fetchSize: 1000, ...(pageState ? { pageState } : {}) });
    out.push(...rs.rows);
    pageState = rs.pageState ?? undefined;
  } while (pageState);
  return out;
}

const num = (v: unknown): number => (v == null ? 0 : (v as cassandra.types.Long).toNumber());

/**
 * The consent tables in Cassandra (migration 10). Each user's blocks and requests are one
 * partition; the reverse views (blocked_by, requests_by_conversation) are written beside them,
 * the user's own partition last on a set and first on a clear, so a view never names what its
 * owner's partition lacks for longer than one write. Every statement is an idempotent upsert or
 * delete (no lightweight transactions: a block, unblock and block again must each simply win by
 * write time).
 */
export class CassandraConsent implements ConsentStore {
  private readonly cql: ReturnType<typeof statements>;

  constructor(
    private readonly client: cassandra.Client,
    keyspace: string,
  ) {
    this.cql = statements(keyspace);
  }

  async block(blocker: string, blocked: string, at: number): Promise<void> {
    await this.client.execute(this.cql.insertBlockedBy, [blocked, blocker]);
    await this.client.execute(this.cql.insertBlock, [blocker, blocked, Long.fromNumber(at)]);
  }

  async unblock(blocker: string, blocked: string): Promise<void> {
    await this.client.execute(this.cql.deleteBlock, [blocker, blocked]);
    await this.client.execute(this.cql.deleteBlockedBy, [blocked, blocker]);
  }

  async blocksOf(user: string): Promise<{ user: string; at: number }[]> {
    const out = (await allRows(this.client, this.cql.selectBlocks, [user])).map((r) => ({ user: r.get('blocked_id') as string, at: num(r.get('blocked_at')) }));
    return out.sort((a, b) => b.at - a.at || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  }

  async blockedBetween(user: string, others: string[]): Promise<Set<string>> {
    const unique = [...new Set(others)];
    const reads: Promise<string[]>[] = [];
    for (let i = 0; i < unique.length; i += IN_LIST) {
      const part = unique.slice(i, i + IN_LIST);
      reads.push(this.client.execute(this.cql.selectBlocksIn, [user, part], { fetchSize: IN_LIST }).then((rs) => rs.rows.map((r) => r.get('blocked_id') as string)));
      reads.push(this.client.execute(this.cql.selectBlockedByIn, [user, part], { fetchSize: IN_LIST }).then((rs) => rs.rows.map((r) => r.get('blocker_id') as string)));
    }
    return new Set((await Promise.all(reads)).flat());
  }

  async setPresenceVisibility(user: string, visibility: PresenceVisibility): Promise<void> {
    await this.client.execute(this.cql.upsertVisibility, [user, visibility]);
  }

  async presenceVisibility(users: string[]): Promise<Map<string, PresenceVisibility>> {
    const unique = [...new Set(users)];
    const out = new Map<string, PresenceVisibility>();
    const reads: Promise<cassandra.types.ResultSet>[] = [];
    for (let i = 0; i < unique.length; i += IN_LIST) reads.push(this.client.execute(this.cql.selectVisibility, [unique.slice(i, i + IN_LIST)], { fetchSize: IN_LIST }));
    for (const rs of await Promise.all(reads)) for (const r of rs.rows) out.set(r.get('user_id') as string, r.get('visibility') as PresenceVisibility);
    return out;
  }

  async setRequests(requests: StoredRequest[]): Promise<void> {
    await Promise.all(requests.map((r) => this.client.execute(this.cql.insertRequestByConv, [r.conv, r.user])));
    await Promise.all(requests.map((r) => this.client.execute(this.cql.insertRequestByUser, [r.user, r.conv, r.by, Long.fromNumber(r.at)])));
  }

  async clearRequests(conv: string, users: string[]): Promise<void> {
    await Promise.all(users.map((u) => this.client.execute(this.cql.deleteRequestByUser, [u, conv])));
    await Promise.all(users.map((u) => this.client.execute(this.cql.deleteRequestByConv, [conv, u])));
  }

  async requestsOf(user: string): Promise<StoredRequest[]> {
    const rows = await allRows(this.client, this.cql.selectRequestsOf, [user]);
    return rows.map((r) => ({ conv: r.get('conversation_id') as string, user, by: r.get('requested_by') as string, at: num(r.get('requested_at')) }));
  }

  async requestsIn(conv: string): Promise<string[]> {
    return (await allRows(this.client, this.cql.selectRequestsIn, [conv])).map((r) => r.get('user_id') as string).sort();
  }
}
