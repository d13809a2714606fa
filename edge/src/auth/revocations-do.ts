import { DurableObject } from 'cloudflare:workers';
import type { Env } from '../config.ts';
import type { RevocationsRpc } from './revocations-api.ts';

/**
 * Users' token revocation times, in Durable Object storage (they survive restarts): a user's
 * tokens issued before their time are refused everywhere. One object per shard of users
 * (`revocations:<k>`, k = hash(user) mod REVOCATION_SHARDS), not per gateway: a user's sockets
 * may live on gateways of several placements, and HTTP routes touch no gateway at all, while
 * every route and the WebSocket upgrade can reach one fixed object by the user's id. Each Worker
 * isolate caches a shard's whole list briefly when it is short, as it is while revocations are
 * rare (revocations.ts), so verifications cost a call here about once per shard per
 * REVOCATION_CACHE_MS per isolate, not once per user.
 */
export class RevocationsDO extends DurableObject<Env> implements RevocationsRpc {
  private readonly sql: SqlStorage;
  private readonly memo = new Map<string, number>();
  /** The last snapshot answered (this object is the only writer: a revoke drops it). */
  private shard: { max: number; value: Record<string, number> | null } | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS revocations (user TEXT PRIMARY KEY, before INTEGER NOT NULL)');
  }

  async revokedBefore(user: string): Promise<number> {
    const hit = this.memo.get(user);
    if (hit !== undefined) return hit;
    const row = this.sql.exec<{ before: number }>('SELECT before FROM revocations WHERE user = ?', user).toArray()[0];
    const before = row?.before ?? 0;
    if (this.memo.size >= 10_000) this.memo.clear();
    this.memo.set(user, before);
    return before;
  }

  async snapshot(max: number): Promise<Record<string, number> | null> {
    if (this.shard?.max === max) return this.shard.value;
    const rows = this.sql.exec<{ user: string; before: number }>('SELECT user, before FROM revocations LIMIT ?', max + 1).toArray();
    const value = rows.length > max ? null : Object.fromEntries(rows.map((r) => [r.user, r.before]));
    this.shard = { max, value };
    return value;
  }

  async revoke(user: string, before: number): Promise<number> {
    const now = Math.max(await this.revokedBefore(user), before);
    this.sql.exec('INSERT INTO revocations (user, before) VALUES (?, ?) ON CONFLICT (user) DO UPDATE SET before = excluded.before', user, now);
    this.memo.set(user, now);
    this.shard = null;
    return now;
  }
}
