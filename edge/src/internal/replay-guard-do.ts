import { DurableObject } from 'cloudflare:workers';
import { SIGNATURE_WINDOW_MS } from '@switchboard/protocol';
import type { Env } from '../config.ts';
import type { ReplayGuardRpc } from './api.ts';

/** Shards of the replay guard; a nonce always lands on the same shard. */
export const REPLAY_SHARDS = 16;

/**
 * Remembers the nonces of signed internal requests for twice the signature window, so a captured
 * request cannot be replayed while its timestamp is still fresh. Worker isolates share no memory,
 * hence a Durable Object.
 */
export class ReplayGuardDO extends DurableObject<Env> implements ReplayGuardRpc {
  private readonly sql: SqlStorage;
  private lastSweep = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, at INTEGER NOT NULL)');
  }

  /** True the first time a nonce is seen; false for a replay. */
  async admit(nonce: string): Promise<boolean> {
    const now = Date.now();
    if (now - this.lastSweep > SIGNATURE_WINDOW_MS) {
      this.sql.exec('DELETE FROM nonces WHERE at < ?', now - 2 * SIGNATURE_WINDOW_MS);
      this.lastSweep = now;
    }
    if (this.sql.exec('SELECT 1 FROM nonces WHERE nonce = ?', nonce).toArray().length > 0) return false;
    this.sql.exec('INSERT INTO nonces (nonce, at) VALUES (?, ?)', nonce, now);
    return true;
  }
}

export function replayShard(nonce: string): string {
  let h = 0;
  for (let i = 0; i < nonce.length; i++) h = (h * 31 + nonce.charCodeAt(i)) >>> 0;
  return `replay-${h % REPLAY_SHARDS}`;
}
