import { DurableObject } from 'cloudflare:workers';
import type { Env } from '../config.ts';
import type { RevocationsRpc } from './revocations-api.ts';

/**
 * Users' token revocation times, in Durable Object storage (they survive restarts): a user's
 * tokens issued before their time are refused everywhere. One object per shard of users
 * (`revocations:<k>`, k = hash(user) mod REVOCATION_SHARDS), not per gateway: a user's sockets
 * may live on gateways of several placements, and HTTP routes touch no gateway at all, while
 * every route and the WebSocket upgrade can reach one fixed object by the user's id. Each Worker
 * isolate caches the answers briefly (revocations.ts), so a verification costs a call here at
 * most once per user per REVOCATION_CACHE_MS per isolate.
 */
export class RevocationsDO extends DurableObject<Env> implements RevocationsRpc {
  private readonly sql: SqlStorage;
  private readonly memo = new Map<string, number>();

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

  async revoke(user: string, before: number): Promise<number> {
    const now = Math.max(await this.revokedBefore(user), before);
    this.sql.exec('INSERT INTO revocations (user, before) VALUES (?, ?) ON CONFLICT (user) DO UPDATE SET before = excluded.before', user, now);
    this.memo.set(user, now);
    return now;
  }
}
