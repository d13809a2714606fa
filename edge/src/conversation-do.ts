import { DurableObject } from 'cloudflare:workers';
import type { ConvEvent, ErrorCode, Msg, ReadResponse } from '@switchboard/protocol';
import { config, type Env } from './env.ts';
import { errorFields, log } from './log.ts';
import { callRegion } from './region-client.ts';

export type Result<T> = ({ ok: true } & T) | { ok: false; code: ErrorCode; message: string };

const fail = (code: ErrorCode, message: string): { ok: false; code: ErrorCode; message: string } => ({ ok: false, code, message });

/** Outbox rows sent to the region per request. */
const DRAIN_BATCH = 200;
/** Backstop alarm: if a drain is lost (eviction, crash), the alarm resumes it. */
const DRAIN_BACKSTOP_MS = 5_000;
const MAX_BACKOFF_MS = 60_000;

/**
 * THE SEQUENCER of one conversation. Contract:
 * - seq runs 1, 2, 3 … without gaps, assigned only here;
 * - (sender, cmid) maps to one seq forever: a retry, however late, gets the original seq back;
 * - a message is in this object's durable storage before `send` returns (the runtime's output
 *   gate holds the reply until the write is confirmed);
 * - every event enters a durable outbox in the same transaction, and the outbox is drained to the
 *   region strictly in order, one drain at a time, retried with backoff until acknowledged.
 */
export class ConversationDO extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private draining: Promise<void> | null = null;
  private failures = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS members (user TEXT PRIMARY KEY, joined_seq INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY, cmid TEXT NOT NULL, sender TEXT NOT NULL, dev TEXT NOT NULL,
        ts INTEGER NOT NULL, body TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS dedupe (
        sender TEXT NOT NULL, cmid TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
        PRIMARY KEY (sender, cmid));
      CREATE TABLE IF NOT EXISTS outbox (oseq INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER, event TEXT NOT NULL);
    `);
  }

  /**
   * Creates the conversation once. For a direct conversation a repeat is the same conversation
   * (`existed`); for any other id a repeat is a conflict.
   */
  async create(input: { conv: string; members: string[]; title: string | null; creator: string; direct: boolean }): Promise<Result<{ conv: string; members: string[]; existed: boolean }>> {
    if (this.meta('conv') !== null) {
      if (input.direct && this.meta('direct') === '1') return { ok: true, conv: input.conv, members: (await this.members()) ?? [], existed: true };
      return fail('conflict', 'conversation already exists');
    }
    const ts = Date.now();
    const event: ConvEvent = { kind: 'created', conv: input.conv, title: input.title, members: input.members, creator: input.creator, ts };
    this.ctx.storage.transactionSync(() => {
      this.setMeta('conv', input.conv);
      this.setMeta('title', input.title ?? '');
      this.setMeta('direct', input.direct ? '1' : '0');
      this.setMeta('created_at', String(ts));
      this.setMeta('last_seq', '0');
      for (const m of input.members) this.sql.exec('INSERT OR IGNORE INTO members (user, joined_seq) VALUES (?, 0)', m);
      this.sql.exec('INSERT INTO outbox (seq, event) VALUES (NULL, ?)', JSON.stringify(event));
    });
    this.scheduleDrain();
    return { ok: true, conv: input.conv, members: input.members, existed: false };
  }

  /** Sequences one message; idempotent on (from, cmid). */
  async send(input: { from: string; dev: string; cmid: string; body: string }): Promise<Result<{ seq: number; ts: number; duplicate: boolean }>> {
    const conv = this.meta('conv');
    if (conv === null) return fail('not_found', 'no such conversation');
    if (!this.isMember(input.from)) return fail('not_member', 'not a member of this conversation');
    const prior = this.sql.exec<{ seq: number; ts: number }>('SELECT seq, ts FROM dedupe WHERE sender = ? AND cmid = ?', input.from, input.cmid).toArray()[0];
    if (prior) return { ok: true, seq: prior.seq, ts: prior.ts, duplicate: true };

    const seq = Number(this.meta('last_seq') ?? '0') + 1;
    const ts = Date.now();
    const msg: Msg = { t: 'msg', conv, seq, cmid: input.cmid, from: input.from, dev: input.dev, ts, body: input.body };
    this.ctx.storage.transactionSync(() => {
      this.sql.exec('INSERT INTO messages (seq, cmid, sender, dev, ts, body) VALUES (?, ?, ?, ?, ?, ?)', seq, input.cmid, input.from, input.dev, ts, input.body);
      this.sql.exec('INSERT INTO dedupe (sender, cmid, seq, ts) VALUES (?, ?, ?, ?)', input.from, input.cmid, seq, ts);
      this.sql.exec('INSERT INTO outbox (seq, event) VALUES (?, ?)', seq, JSON.stringify({ kind: 'msg', msg } satisfies ConvEvent));
      this.setMeta('last_seq', String(seq));
    });
    this.scheduleDrain();
    return { ok: true, seq, ts, duplicate: false };
  }

  /** Messages after `after` (exclusive), ascending: from the recent window, else from the region. */
  async sync(input: { user: string; after: number; limit: number }): Promise<Result<{ msgs: Msg[]; more: boolean }>> {
    const conv = this.meta('conv');
    if (conv === null) return fail('not_found', 'no such conversation');
    if (!this.isMember(input.user)) return fail('not_member', 'not a member of this conversation');
    const last = Number(this.meta('last_seq') ?? '0');
    if (input.after >= last) return { ok: true, msgs: [], more: false };
    const oldest = this.sql.exec<{ s: number | null }>('SELECT MIN(seq) AS s FROM messages').one().s;
    if (oldest !== null && input.after + 1 >= oldest) {
      const rows = this.sql
        .exec<MessageRow>('SELECT seq, cmid, sender, dev, ts, body FROM messages WHERE seq > ? ORDER BY seq LIMIT ?', input.after, input.limit)
        .toArray();
      const msgs = rows.map((r) => toMsg(conv, r));
      return { ok: true, msgs, more: (msgs.at(-1)?.seq ?? last) < last };
    }
    // Older than the window: every trimmed seq was drained first, so the region has it.
    try {
      const page = await callRegion<ReadResponse>(config(this.env), '/internal/read', { conv, user: input.user, after: input.after, limit: input.limit });
      return { ok: true, msgs: page.msgs, more: (page.msgs.at(-1)?.seq ?? last) < last };
    } catch (err) {
      log('warn', 'sync from region failed', { conv, ...errorFields(err) });
      return fail('unavailable', 'history beyond the recent window is unavailable; retry later');
    }
  }

  /** Members, for the edge's own checks. */
  async members(): Promise<string[] | null> {
    if (this.meta('conv') === null) return null;
    return this.sql.exec<{ user: string }>('SELECT user FROM members ORDER BY user').toArray().map((r) => r.user);
  }

  override async alarm(): Promise<void> {
    await this.drain();
  }

  // ---- outbox -------------------------------------------------------------------------------

  private scheduleDrain(): void {
    if (!this.draining) this.draining = this.drainLoop().finally(() => (this.draining = null));
    // Backstop in case this instance dies before the drain finishes.
    void this.ctx.storage.getAlarm().then((at) => {
      if (at === null) return this.ctx.storage.setAlarm(Date.now() + DRAIN_BACKSTOP_MS);
    });
  }

  private drain(): Promise<void> {
    if (!this.draining) this.draining = this.drainLoop().finally(() => (this.draining = null));
    return this.draining;
  }

  private async drainLoop(): Promise<void> {
    const cfg = config(this.env);
    for (;;) {
      const rows = this.sql.exec<{ oseq: number; event: string }>('SELECT oseq, event FROM outbox ORDER BY oseq LIMIT ?', DRAIN_BATCH).toArray();
      const conv = this.meta('conv');
      if (rows.length === 0 || conv === null) {
        this.failures = 0;
        return;
      }
      try {
        await callRegion(cfg, '/internal/events', { conv, events: rows.map((r) => JSON.parse(r.event) as ConvEvent) });
      } catch (err) {
        this.failures++;
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(this.failures, 10)) * (0.5 + Math.random() / 2);
        log('warn', 'outbox drain failed; will retry', { conv, pending: rows.length, retryInMs: Math.round(delay), ...errorFields(err) });
        await this.ctx.storage.setAlarm(Date.now() + delay);
        return;
      }
      this.failures = 0;
      const lastOseq = rows.at(-1)!.oseq;
      this.sql.exec('DELETE FROM outbox WHERE oseq <= ?', lastOseq);
      this.trimWindow(cfg.conversationWindow);
    }
  }

  /** Drops messages older than the window, but never one the region has not acknowledged yet. */
  private trimWindow(window: number): void {
    const last = Number(this.meta('last_seq') ?? '0');
    const undrained = this.sql.exec<{ s: number | null }>('SELECT MIN(seq) AS s FROM outbox WHERE seq IS NOT NULL').one().s;
    const cutoff = Math.min(last - window, (undrained ?? Infinity) - 1);
    if (cutoff > 0) this.sql.exec('DELETE FROM messages WHERE seq <= ?', cutoff);
  }

  // ---- small helpers --------------------------------------------------------------------------

  private isMember(user: string): boolean {
    return this.sql.exec('SELECT 1 FROM members WHERE user = ?', user).toArray().length > 0;
  }

  private meta(key: string): string | null {
    const row = this.sql.exec<{ value: string }>('SELECT value FROM meta WHERE key = ?', key).toArray()[0];
    return row ? row.value : null;
  }

  private setMeta(key: string, value: string): void {
    this.sql.exec('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', key, value);
  }
}

interface MessageRow extends Record<string, SqlStorageValue> {
  seq: number;
  cmid: string;
  sender: string;
  dev: string;
  ts: number;
  body: string;
}

function toMsg(conv: string, r: MessageRow): Msg {
  return { t: 'msg', conv, seq: r.seq, cmid: r.cmid, from: r.sender, dev: r.dev, ts: r.ts, body: r.body };
}
