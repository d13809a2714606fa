import { DurableObject } from 'cloudflare:workers';
import { LIMITS, PRESENCE, type Msg, type ReadResponse } from '@switchboard/protocol';
import { config, type Env } from './env.ts';
import { errorFields, log } from './log.ts';
import { callRegion } from './region-client.ts';
import { Sequencer, type Result } from './sequencer.ts';

/** Outbox events sent to the region per request. */
const DRAIN_BATCH = 200;
/** Backstop alarm: if a drain is lost (eviction, crash), the alarm resumes it. */
const DRAIN_BACKSTOP_MS = 5_000;
/** Retry interval cap while the region is unreachable: a recovered region is drained within this. */
const MAX_BACKOFF_MS = 15_000;

/**
 * THE SEQUENCER of one conversation (state and rules in `Sequencer`). Durable before ack: the
 * runtime's output gate holds every reply until the transaction that produced it is on disk.
 * The outbox drains to the region strictly in order, one drain at a time, retried with backoff
 * until acknowledged — so while the region is down senders still get `sent`, and when it returns
 * everything reaches it in seq order.
 */
export class ConversationDO extends DurableObject<Env> {
  private readonly seq: Sequencer;
  private draining: Promise<void> | null = null;
  private failures = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.seq = new Sequencer(ctx.storage.sql, (fn) => ctx.storage.transactionSync(fn));
  }

  async create(input: { conv: string; members: string[]; title: string | null; creator: string; direct: boolean }): Promise<Result<{ members: string[]; existed: boolean }>> {
    const r = this.seq.create(input, Date.now());
    if (r.ok && !r.existed) this.scheduleDrain();
    return r;
  }

  async send(input: { from: string; dev: string; cmid: string; body: string }): Promise<Result<{ seq: number; ts: number; duplicate: boolean }>> {
    const r = this.seq.send(input, Date.now());
    if (r.ok && !r.duplicate) this.scheduleDrain();
    return r;
  }

  /** Messages after `after` (exclusive), ascending: from the recent window, else from the region. */
  async sync(input: { user: string; after: number; limit: number }): Promise<Result<{ msgs: Msg[]; more: boolean }>> {
    const conv = this.seq.conv;
    if (conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    if (!this.seq.isMember(input.user)) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    const local = this.seq.readWindow(input.after, input.limit);
    if (local) return { ok: true, ...local };
    try {
      const page = await callRegion<ReadResponse>(config(this.env), '/internal/read', { conv, user: input.user, after: input.after, limit: input.limit });
      return { ok: true, msgs: page.msgs, more: (page.msgs.at(-1)?.seq ?? this.seq.lastSeq) < this.seq.lastSeq };
    } catch (err) {
      log('warn', 'sync from region failed', { conv, ...errorFields(err) });
      return { ok: false, code: 'unavailable', message: 'history beyond the recent window is unavailable; retry later' };
    }
  }

  /** Older messages, newest first, paging back to seq 1: from the window, else from the region. */
  async history(input: { user: string; before?: number; limit: number }): Promise<Result<{ msgs: Msg[]; more: boolean }>> {
    const conv = this.seq.conv;
    if (conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    if (!this.seq.isMember(input.user)) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    const before = Math.min(input.before ?? Number.MAX_SAFE_INTEGER, this.seq.lastSeq + 1);
    const local = this.seq.readWindowBefore(before, input.limit);
    const more = (msgs: Msg[]) => (msgs.at(-1)?.seq ?? 1) > 1;
    if (local.complete) return { ok: true, msgs: local.msgs, more: more(local.msgs) };
    try {
      const rest = { conv, user: input.user, before: local.msgs.at(-1)?.seq ?? before, limit: input.limit - local.msgs.length };
      const page = await callRegion<ReadResponse>(config(this.env), '/internal/read', rest);
      const msgs = [...local.msgs, ...page.msgs];
      return { ok: true, msgs, more: more(msgs) };
    } catch (err) {
      log('warn', 'history from region failed', { conv, ...errorFields(err) });
      return { ok: false, code: 'unavailable', message: 'history beyond the recent window is unavailable; retry later' };
    }
  }

  override async alarm(): Promise<void> {
    await this.drain();
  }

  // ---- typing (never stored) ----------------------------------------------------------------

  /** `user` is typing: tell the other members' SessionDOs, which pass it to their live sockets. */
  async typing(input: { user: string }): Promise<Result<{ relayed: number }>> {
    const conv = this.seq.conv;
    if (conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    if (!this.seq.isMember(input.user)) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    const others = this.seq.members().filter((m) => m !== input.user);
    if (others.length + 1 > PRESENCE.typingMaxMembers) return { ok: true, relayed: 0 };
    const results = await Promise.allSettled(others.map((m) => this.env.SESSIONS.get(this.env.SESSIONS.idFromName(m)).typing({ conv, user: input.user })));
    return { ok: true, relayed: results.filter((r) => r.status === 'fulfilled').length };
  }

  private scheduleDrain(): void {
    // While backing off, the alarm retries: a burst of sends must not turn into a burst of failed
    // attempts that pushes the next retry ever further out.
    if (this.failures === 0) void this.drain();
    // Backstop in case this instance dies before the drain finishes.
    void this.ctx.storage.getAlarm().then((at) => {
      if (at === null) return this.ctx.storage.setAlarm(Date.now() + DRAIN_BACKSTOP_MS);
    });
  }

  private drain(): Promise<void> {
    if (!this.draining) this.draining = this.drainLoop().finally(() => (this.draining = null));
    return this.draining;
  }

  private drainBatch() {
    return this.seq.outbox(DRAIN_BATCH, LIMITS.drainBatchBytes);
  }

  private async drainLoop(): Promise<void> {
    const cfg = config(this.env);
    for (let rows = this.drainBatch(); rows.length > 0; rows = this.drainBatch()) {
      try {
        await callRegion(cfg, '/internal/events', { conv: this.seq.conv, events: rows.map((r) => r.event) });
      } catch (err) {
        this.failures++;
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(this.failures, 10)) * (0.5 + Math.random() / 2);
        log('warn', 'outbox drain failed; will retry', { conv: this.seq.conv, pending: rows.length, retryInMs: Math.round(delay), ...errorFields(err) });
        await this.ctx.storage.setAlarm(Date.now() + delay);
        return;
      }
      this.failures = 0;
      this.seq.acknowledge(rows.at(-1)!.oseq, cfg.conversationWindow);
    }
  }
}
