import { DurableObject } from 'cloudflare:workers';
import { LIMITS, PRESENCE, RECEIPTS, type ConsentChange, type HistoryVisibility, type Msg, type Positions, type ReadResponse } from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import type { ReceiptEvent } from '../gateway/api.ts';
import { placementFor } from '../gateway/placement.ts';
import { gatewayStub } from '../gateway/stub.ts';
import { callRegion, isPermanentRefusal, type RegionError, type RegionTarget } from '../internal/region-client.ts';
import { regionTarget } from '../regions.ts';
import { EdgeTracer, traceparent } from '../tracing/tracing.ts';
import { errorFields, log } from '../log.ts';
import { EdgeMetrics, labels } from '../metrics/edge-metrics.ts';
import { StubCache } from '../stub-cache.ts';
import type { ConversationRpc, MlsView, Riding } from './api.ts';
import { DeadLetters, type DeadLetter } from './dead-letters.ts';
import { LivePush } from './live-push.ts';
import { MemberGateways } from './member-gateways.ts';
import { Receipts } from './receipts.ts';
import { ConsentState } from './consent.ts';
import { Sequencer, type CommitExtras, type MemberRow, type MembershipChange, type OutboxRow, type Result } from './sequencer.ts';

/** Outbox events sent to the region per request. */
const DRAIN_BATCH = 200;
/** Backstop alarm: if a drain is lost (eviction, crash), the alarm resumes it. */
const DRAIN_BACKSTOP_MS = 5_000;
/** Retry interval cap while the region is unreachable: a recovered region is drained within this. */
const MAX_BACKOFF_MS = 15_000;
/** Outbox rows the region acknowledged are deleted with the next send, or after this long. */
const ACK_WRITE_MS = 1000;
/** A drain waits at most this long for the live path, so its events can say who has them already. */
const LIVE_SETTLE_MS = 2000;
/** Moved delivered/read positions are written with the next send, or after this long. */
const RECEIPTS_WRITE_MS = 1000;
/** How often gateways report deliveries in groups too large to relay them to (receipts). */
const QUIET_DELIVERED_REPORTS_MS = 30_000;
/** Positions per `receipts` outbox event. */
const RECEIPTS_PER_EVENT = 500;
/** What this conversation counted rides on an answer to a gateway at most this often (api.ts, Riding). */
const METRICS_RIDE_MS = 5_000;

/**
 * A coalescing wait, drawn from ½× to 1½× `ms` (the same mean). With exact waits, conversations
 * that became busy together (every socket reconnecting after an edge restart, a phase of
 * bench:latency starting) drained at the same instant, and again one period later: in a bench
 * trace every conversation's sends stalled ~100 ms at the first of those bursts.
 */
function jittered(ms: number): number {
  return ms * (0.5 + Math.random());
}

/**
 * THE SEQUENCER of one conversation (state and rules in `Sequencer`). Durable before ack: the
 * runtime's output gate holds every reply until the transaction that produced it is on disk.
 * The outbox drains to the region strictly in order, one drain at a time, retried with backoff
 * until acknowledged — so while the region is down senders still get `sent`, and when it returns
 * everything reaches it in seq order.
 */
export class ConversationDO extends DurableObject<Env> implements ConversationRpc {
  private readonly seq: Sequencer;
  /** Outbox events the region refused for good (dead-letters.ts). */
  private readonly deadLetters: DeadLetters;
  private draining: Promise<void> | null = null;
  private failures = 0;
  private readonly live: LivePush;
  /** The region has every outbox event up to this oseq (in this instance's life). */
  private acked = 0;
  /** `acked` moved since the outbox was last trimmed to it. */
  private ackPending = false;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  /** The alarm as last read or set (undefined: not known yet); saves a storage read per send. */
  private alarmAt: number | null | undefined = undefined;
  /** Members' delivered/read positions (receipts.ts). */
  private readonly receipts: Receipts;
  /** Message requests and direct blocks (consent.ts). */
  private readonly consent: ConsentState;
  private receiptsTimer: ReturnType<typeof setTimeout> | null = null;
  /** The coalescing wait before the next drain (config drainCoalesceMs). */
  private drainTimer: ReturnType<typeof setTimeout> | null = null;
  /** Something queued since the last batch must reach the region at once (a member the live path missed, a membership change). */
  private drainUrgent = false;
  /** Ends a running drain's coalescing wait early (set while it waits). */
  private wakeDrain: (() => void) | null = null;
  /** The gateways its members are connected to (live path, receipts, typing), and where each member is. */
  private readonly gateways;
  private readonly where: MemberGateways;
  /** Counted since it last rode on an answer to a gateway (Riding); lost with the instance otherwise. */
  private readonly counts = new EdgeMetrics();
  /** Spans of traced messages (`sequence`; tracing/tracing.ts). */
  private readonly tracer: EdgeTracer;
  private rodeAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const cfg = config(env);
    this.seq = new Sequencer(ctx.storage.sql, (fn) => ctx.storage.transactionSync(fn));
    this.receipts = new Receipts(ctx.storage.sql);
    this.deadLetters = new DeadLetters(ctx.storage.sql);
    this.tracer = new EdgeTracer(cfg, 'switchboard-edge');
    this.consent = new ConsentState(ctx.storage.sql);
    this.gateways = new StubCache((gw: string) => gatewayStub(env.GATEWAYS, gw));
    this.where = new MemberGateways(placementFor(cfg.gatewayPlacement, undefined), cfg.gatewayShards);
    this.live = new LivePush({
      target: (gw) => this.gateways.get(gw),
      group: (members) => this.where.group(members),
      onError: (gw, err) => {
        this.gateways.drop(gw);
        log('warn', 'live push failed; the region delivers it', { conv: this.seq.conv, gw, ...errorFields(err) });
      },
      onMissed: () => this.scheduleDrain(0),
      onAnswered: (msg, now) => this.counts.observe('switchboard_edge_live_push_age_seconds', '', Math.max(0, now - msg.ts) / 1000),
    });
  }

  /** Where its home region is (regions.ts); the primary for a conversation created before regions. */
  private home(): RegionTarget {
    const cfg = config(this.env);
    return regionTarget(cfg.regions, cfg.internalSecret, this.seq.region() ?? cfg.regions.primary);
  }

  async create(input: { conv: string; region?: string; members: string[]; title: string | null; creator: string; direct: boolean; history?: HistoryVisibility; e2e?: boolean; requests?: string[] }): Promise<Result<{ members: string[]; existed: boolean; region: string | null }>> {
    const now = Date.now();
    const r = this.seq.create(input, now);
    if (!r.ok) return r;
    if (!r.existed) {
      this.queueConsent(this.consent.request(input.requests ?? [], input.creator, now));
      this.scheduleDrain();
      return r;
    }
    // A direct conversation asked for again: whichever of the pair left it (declined) joins it
    // again, the other one as a request when they share no accepted conversation.
    if (input.direct) {
      // Starting the conversation yourself is consent: a request you had in it is accepted.
      if (this.seq.isMember(input.creator)) this.queueConsent([this.consent.answer(input.creator, 'accepted', now)].flatMap((c) => c ?? []));
      for (const u of [input.creator, ...input.members.filter((m) => m !== input.creator)]) {
        if (this.seq.isMember(u)) continue;
        const by = u === input.creator ? u : input.creator;
        const added = await this.changeMembers({ by, dev: 'consent', op: 'add', users: [u] }, { pair: true, requests: input.requests });
        if (!added.ok) return added;
      }
      return { ...r, members: this.seq.members() };
    }
    return r;
  }

  // ---- consent: message requests and direct blocks (consent.ts) ------------------------------

  /** Consent changes for the region, in order with everything else the outbox carries. */
  private queueConsent(changes: ConsentChange[]): void {
    if (!changes.length) return;
    this.seq.enqueue({ kind: 'consent', changes });
    this.scheduleDrain();
  }

  /** `user` accepts their message request (nothing changes when they have none). */
  async accept(input: { user: string }): Promise<Result<{ accepted: boolean }>> {
    if (this.seq.conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    if (!this.seq.isMember(input.user)) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    const change = this.consent.answer(input.user, 'accepted', Date.now());
    if (!change) return { ok: true, accepted: false };
    this.queueConsent([change]);
    // What they had read shows from now on.
    const p = this.receipts.get(input.user);
    if ((p.delivered > 0 || p.read > 0) && this.seq.memberCount() <= RECEIPTS.relayMaxMembers) {
      this.relay([{ conv: this.seq.conv, user: input.user, delivered: p.delivered, read: p.read }], this.seq.memberList().map((user) => ({ user })));
    }
    log('info', 'message request accepted', { conv: this.seq.conv, user: input.user, by: change.by });
    return { ok: true, accepted: true };
  }

  /**
   * `user` declines their message request: they leave the conversation (a sequenced leave, all
   * the asker learns). Only a member with a request may decline; anyone else leaves instead.
   */
  async decline(input: { user: string; dev: string }): Promise<Result<{ seq: number | null; by: string }>> {
    if (this.seq.conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    if (!this.seq.isMember(input.user)) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    const p = this.consent.pending(input.user);
    if (!p) return { ok: false, code: 'conflict', message: 'no message request to decline here; leave the conversation instead' };
    const left = await this.changeMembers({ by: input.user, dev: input.dev, op: 'remove', users: [input.user] }, { pair: true });
    if (!left.ok) return left;
    log('info', 'message request declined', { conv: this.seq.conv, user: input.user, by: p.by });
    return { ok: true, seq: left.seq, by: p.by };
  }

  /**
   * `blocker` blocks (`on`) or unblocks `blocked` in this direct conversation. A conversation that
   * does not exist stays so (nothing is stored).
   */
  async block(input: { blocker: string; blocked: string; on: boolean }): Promise<Result<{ applied: boolean }>> {
    if (this.seq.conv === null || !this.seq.direct) return { ok: true, applied: false };
    if (!this.seq.member(input.blocker) || !this.seq.member(input.blocked)) return { ok: true, applied: false };
    this.consent.setBlock(input.blocker, input.blocked, input.on);
    return { ok: true, applied: true };
  }

  /** Whether `user`'s typing and receipts may reach the others now. */
  private mayShow(user: string): boolean {
    return !this.consent.pending(user) && !(this.seq.direct && this.consent.blocked);
  }

  async send(input: { from: string; dev: string; gw: string; cmid: string; body: string; trace?: string }): Promise<Result<{ seq: number; ts: number; duplicate: boolean }> & Riding> {
    this.where.learn(input.from, input.gw);
    // Consent (consent.ts): a block, an unanswered request, or the asker's allowance used up. A
    // retry of a message already sequenced still gets its seq.
    const refusal = this.seq.conv !== null && this.seq.isMember(input.from) ? this.consent.refuseSend(input.from, this.seq.direct) : null;
    if (refusal && !this.seq.sequenced(input.from, input.cmid)) return this.ride({ ok: false, ...refusal });
    const span = this.tracer.childOf(input.trace);
    const r = this.sequence({ from: input.from, dev: input.dev, cmid: input.cmid, body: input.body, ...(span ? { trace: traceparent(span) } : {}) });
    this.tracer.end(span, 'sequence', { 'switchboard.conv': this.seq.conv ?? '', ...(r.ok ? { 'switchboard.seq': r.seq } : {}) }, r.ok ? undefined : r.code);
    if (r.ok && !r.duplicate && this.seq.direct) this.consent.sent(input.from);
    return this.ride(r);
  }

  /** `r`, with what this conversation counted when it has not ridden for METRICS_RIDE_MS. */
  private ride<T extends object>(r: T): T & Riding {
    const now = Date.now();
    if (this.counts.empty || now - this.rodeAt < METRICS_RIDE_MS) return r;
    this.rodeAt = now;
    return { ...r, metrics: this.counts.take() };
  }

  /**
   * An MLS commit of an end-to-end encrypted conversation (over HTTP: with its GroupInfo and
   * Welcome it is larger than a frame), sequenced like a message: the first for its epoch wins.
   */
  async commit(input: { from: string; dev: string; cmid: string; commit: string; groupInfo: string; welcome?: string }): Promise<Result<{ seq: number; ts: number; duplicate: boolean; epoch: string }>> {
    const r = this.sequence({ from: input.from, dev: input.dev, cmid: input.cmid, body: input.commit, mls: { groupInfo: input.groupInfo, ...(input.welcome ? { welcome: input.welcome } : {}) } });
    return r.ok ? { ...r, epoch: String(this.seq.mlsEpoch) } : r;
  }

  /** What a member's device needs to join or rejoin: the last GroupInfo and the Welcomes naming the user. */
  async mlsState(input: { user: string }): Promise<Result<MlsView>> {
    if (this.seq.conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    // A former member may still fetch the Welcomes of their membership; nothing current.
    const current = this.seq.isMember(input.user);
    if (!current && !this.seq.member(input.user)) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    if (!this.seq.e2e) return { ok: false, code: 'conflict', message: 'this conversation is not end-to-end encrypted' };
    return {
      ok: true,
      epoch: String(this.seq.mlsEpoch),
      rekeyPending: this.seq.rekeyPending,
      pendingAdds: current ? this.seq.pendingAdds() : [],
      pendingRemoves: current ? this.seq.pendingRemoves() : [],
      pendingLinks: current ? this.seq.pendingLinks() : [],
      pendingRevokes: current ? this.seq.pendingRevokes() : [],
      committer: current ? this.seq.committer() : null,
      groupInfo: current ? this.seq.groupInfo() : null,
      welcomes: this.seq.welcomesFor(input.user),
    };
  }

  private sequence(input: { from: string; dev: string; cmid: string; body: string; mls?: CommitExtras; trace?: string }): Result<{ seq: number; ts: number; duplicate: boolean }> {
    this.writeAck();
    // Moved positions ride inside this message's transaction: a statement outside one costs
    // workerd an implicit transaction of its own, several times a statement inside.
    const r = this.seq.send(input, Date.now(), () => this.writeReceipts());
    if (r.ok && !r.duplicate) {
      this.counts.inc('switchboard_edge_messages_sequenced_total');
      // Sending is reading: everything up to one's own message is read. Written with the next
      // send or within RECEIPTS_WRITE_MS; the sender's devices and the region infer it from the
      // message itself, so it takes no outbox event.
      if (this.receipts.advance(input.from, { read: r.seq }, { outbox: false })) this.scheduleReceipts();
      // The runtime holds these calls until the message is on disk: nothing is delivered before it is durable.
      // Membership is sequenced here too, so the members now are the members as of this seq.
      let live = false;
      if (this.seq.memberCount() <= config(this.env).livePushMaxMembers) {
        const msg: Msg = { t: 'msg', conv: this.seq.conv!, seq: r.seq, cmid: input.cmid, from: input.from, dev: input.dev, ts: r.ts, body: input.body };
        live = this.live.push(msg, this.seq.memberList());
      }
      // Members the live path reaches have it already: the region can take it with the next ones.
      this.scheduleDrain(live ? config(this.env).drainCoalesceMs : 0);
    }
    return r;
  }

  /** Messages after `after` (exclusive), ascending: from the recent window, else from the region. */
  async sync(input: { user: string; gw?: string; after: number; limit: number }): Promise<Result<{ msgs: Msg[]; more: boolean }>> {
    this.where.learn(input.user, input.gw);
    const conv = this.seq.conv;
    if (conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    const range = this.seq.readable(input.user);
    if (!range) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    const after = Math.max(input.after, range.from - 1);
    const last = Math.min(this.seq.lastSeq, range.to);
    if (after >= last) return { ok: true, msgs: [], more: false };
    const clamp = (msgs: Msg[]) => {
      const kept = msgs.filter((m) => m.seq <= last);
      return { msgs: kept, more: (kept.at(-1)?.seq ?? last) < last };
    };
    const local = this.seq.readWindow(after, input.limit);
    if (local) return { ok: true, ...clamp(local.msgs) };
    try {
      const page = await callRegion<ReadResponse>(this.home(), '/internal/read', { conv, user: input.user, after, limit: input.limit }, undefined, this.counts);
      return { ok: true, ...clamp(page.msgs) };
    } catch (err) {
      log('warn', 'sync from region failed', { conv, ...errorFields(err) });
      return { ok: false, code: 'unavailable', message: 'history beyond the recent window is unavailable; retry later' };
    }
  }

  /** Older messages, newest first, paging back to seq 1: from the window, else from the region. */
  async history(input: { user: string; gw?: string; before?: number; limit: number }): Promise<Result<{ msgs: Msg[]; more: boolean }>> {
    this.where.learn(input.user, input.gw);
    const conv = this.seq.conv;
    if (conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    const range = this.seq.readable(input.user);
    if (!range) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    // A removed member reads nothing past their removal; an added one nothing before their join.
    const before = Math.min(input.before ?? Number.MAX_SAFE_INTEGER, this.seq.lastSeq + 1, range.to + 1);
    if (before <= range.from) return { ok: true, msgs: [], more: false };
    const local = this.seq.readWindowBefore(before, input.limit);
    const floor = (msgs: Msg[]) => msgs.filter((m) => m.seq >= range.from);
    const more = (msgs: Msg[]) => (msgs.at(-1)?.seq ?? range.from) > range.from;
    const oldestLocal = local.msgs.at(-1)?.seq;
    if (local.complete || (oldestLocal !== undefined && oldestLocal <= range.from)) return { ok: true, msgs: floor(local.msgs), more: more(floor(local.msgs)) };
    try {
      const rest = { conv, user: input.user, before: local.msgs.at(-1)?.seq ?? before, limit: input.limit - local.msgs.length };
      const page = await callRegion<ReadResponse>(this.home(), '/internal/read', rest, undefined, this.counts);
      const msgs = floor([...local.msgs, ...page.msgs]);
      return { ok: true, msgs, more: more(msgs) };
    } catch (err) {
      log('warn', 'history from region failed', { conv, ...errorFields(err) });
      return { ok: false, code: 'unavailable', message: 'history beyond the recent window is unavailable; retry later' };
    }
  }

  // ---- membership (sequenced like messages; rules in Sequencer.changeMembers) ----------------

  async changeMembers(input: MembershipChange, opts: { pair?: boolean; requests?: string[] } = {}): Promise<Result<{ seq: number | null; ver: number; users: string[] }>> {
    const now = Date.now();
    const r = this.seq.changeMembers(input, now, config(this.env).maxGroupMembers, { pair: opts.pair === true });
    if (r.ok && r.seq !== null) {
      // Added as a request (the edge asked the region who shares no accepted conversation with
      // the actor); a member leaving or removed takes their unanswered request with them.
      if (input.op === 'add') this.queueConsent(this.consent.request(r.users.filter((u) => opts.requests?.includes(u)), input.by, now));
      if (input.op === 'remove') this.queueConsent(r.users.flatMap((u) => this.consent.answer(u, 'declined', now) ?? []));
      this.counts.inc('switchboard_edge_messages_sequenced_total');
      // Changing membership is reading too, and the region infers it from the event (its `from`).
      if (this.receipts.advance(input.by, { read: r.seq }, { outbox: false })) this.scheduleReceipts();
      this.scheduleDrain();
    }
    return r;
  }

  /** A member's device linked or revoked (end-to-end encryption): a forced rotation (Sequencer.changeDevice). */
  async changeDevice(input: { op: 'link' | 'revoke'; user: string; device: string; by: string }): Promise<Result<{ seq: number | null }>> {
    const r = this.seq.changeDevice(input, Date.now());
    if (r.ok && r.seq !== null) {
      this.counts.inc('switchboard_edge_messages_sequenced_total');
      this.scheduleDrain();
    }
    return r;
  }

  // ---- receipts (positions in receipts.ts) -------------------------------------------------

  /**
   * `user` has read up to `read` (from `device`): capped at what they may read, moved forward
   * only. What moved goes at once to the user's other devices and, in conversations of at most
   * RECEIPTS.relayMaxMembers, to every member; it is written within RECEIPTS_WRITE_MS and reaches
   * the region with the outbox.
   */
  async receipt(input: { user: string; device?: string; gw?: string; read: number }): Promise<Result<{ positions: Positions }>> {
    this.where.learn(input.user, input.gw);
    const cap = this.readCap(input.user);
    if (!cap.ok) return cap;
    const moved = this.receipts.advance(input.user, { read: Math.min(input.read, cap.cap) });
    if (moved) {
      this.scheduleReceipts();
      // Until a request is accepted (or while a block stands) only the reader's own devices hear of it.
      const everyone = this.seq.memberCount() <= RECEIPTS.relayMaxMembers && this.mayShow(input.user);
      const skip = input.device !== undefined ? { skip: input.device } : {};
      const to = everyone ? this.seq.memberList().map((user) => (user === input.user ? { user, ...skip } : { user })) : [{ user: input.user, ...skip }];
      if (!to.some((r) => r.user === input.user)) to.push({ user: input.user, ...skip });
      this.relay([{ conv: cap.conv, user: input.user, ...moved }], to);
    }
    return { ok: true, positions: this.receipts.get(input.user) };
  }

  /**
   * A gateway's delivered reports: each user's devices there acked up to `seq` (capped at what
   * they may read, forward only). In conversations of at most RECEIPTS.relayMaxMembers the other
   * members are told; in larger ones nobody is, and gateways are asked to report only every
   * QUIET_DELIVERED_REPORTS_MS (the positions show in the conversation details).
   */
  async delivered(input: { gw: string; reports: { user: string; seq: number }[] }): Promise<Result<{ reportEveryMs: number }> & Riding> {
    return this.ride(this.applyDelivered(input));
  }

  private applyDelivered(input: { gw: string; reports: { user: string; seq: number }[] }): Result<{ reportEveryMs: number }> {
    const conv = this.seq.conv;
    if (conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    const everyone = this.seq.memberCount() <= RECEIPTS.relayMaxMembers;
    const events: ReceiptEvent[] = [];
    for (const r of input.reports) {
      this.where.learn(r.user, input.gw);
      const cap = this.readCap(r.user);
      if (!cap.ok) continue;
      const moved = this.receipts.advance(r.user, { delivered: Math.min(r.seq, cap.cap) });
      if (moved && this.mayShow(r.user)) events.push({ conv, user: r.user, ...moved });
      else if (moved) this.scheduleReceipts();
    }
    if (events.length > 0) {
      this.scheduleReceipts();
      if (everyone) this.relay(events, this.seq.memberList().map((user) => ({ user })));
    }
    return { ok: true, reportEveryMs: everyone ? 0 : QUIET_DELIVERED_REPORTS_MS };
  }

  /** The highest seq `user` may read, or why they may not. */
  private readCap(user: string): Result<{ conv: string; cap: number }> {
    const conv = this.seq.conv;
    if (conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    const range = this.seq.readable(user);
    if (!range) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    return { ok: true, conv, cap: Math.min(this.seq.lastSeq, range.to) };
  }

  /** Receipt events to the recipients' sockets, one call per gateway (a user's own devices hear only of reads). */
  private relay(events: ReceiptEvent[], to: { user: string; skip?: string }[]): void {
    const byGateway = new Map<string, { user: string; skip?: string }[]>();
    for (const r of to) {
      const gw = this.where.of(r.user);
      const list = byGateway.get(gw);
      if (list) list.push(r);
      else byGateway.set(gw, [r]);
    }
    for (const [gw, list] of byGateway)
      this.gateways
        .get(gw)
        .receipts(gw, events, list)
        .catch((err: unknown) => {
          this.gateways.drop(gw);
          log('warn', 'receipt relay failed', { conv: this.seq.conv, gw, ...errorFields(err) });
        });
  }

  /**
   * Writes moved positions (and their outbox event) now: inside a send's transaction, so they
   * share its commit, or from the timer. The timer is left running when a send wrote them (it
   * then finds nothing): clearing and setting one per send cost more than the write.
   */
  private writeReceipts(): void {
    if (!this.receipts.pending) return;
    const changes = this.receipts.flush();
    for (let i = 0; i < changes.length; i += RECEIPTS_PER_EVENT) this.seq.enqueue({ kind: 'receipts', positions: changes.slice(i, i + RECEIPTS_PER_EVENT) });
    if (changes.length > 0) this.scheduleDrain(config(this.env).drainCoalesceMs);
  }

  private scheduleReceipts(): void {
    this.receiptsTimer ??= setTimeout(() => {
      this.receiptsTimer = null;
      this.writeReceipts();
    }, RECEIPTS_WRITE_MS);
  }

  /** The conversation as `user` may see it, with a page of current members (by id, after `after`). */
  async details(input: { user: string; after: string; limit: number }): Promise<
    Result<{ conv: string; title: string | null; direct: boolean; history: HistoryVisibility; last: number; ver: number; count: number; members: (MemberRow & Positions)[]; next?: string; mls?: { epoch: string; rekeyPending: boolean }; request?: { by: string; at: number } }>
  > {
    const conv = this.seq.conv;
    if (conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    if (!this.seq.isMember(input.user)) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    const rows = this.seq.membersPage(input.after, input.limit + 1);
    const page = rows.slice(0, input.limit);
    const next = rows.length > input.limit ? page.at(-1)?.user : undefined;
    // Positions of a member who has not accepted show to nobody else (consent.ts).
    const members = page.map((m) => ({ ...m, ...(m.user === input.user || this.mayShow(m.user) ? this.receipts.get(m.user) : { delivered: 0, read: 0 }) }));
    const request = this.consent.pending(input.user);
    return {
      ok: true,
      conv,
      title: this.seq.title,
      direct: this.seq.direct,
      history: this.seq.historyVisibility,
      last: this.seq.lastSeq,
      ver: this.seq.memberVersion,
      count: this.seq.memberCount(),
      members,
      ...(next ? { next } : {}),
      ...(this.seq.e2e ? { mls: { epoch: String(this.seq.mlsEpoch), rekeyPending: this.seq.rekeyPending } } : {}),
      ...(request ? { request: { by: request.by, at: request.at } } : {}),
    };
  }

  /**
   * The backstop: resumes a drain that an eviction or a crash cut short. It returns at once rather
   * than awaiting the drain: awaiting it held the `sent` of sends arriving meanwhile for the whole
   * drain (measured with bench:latency; the likely cause is the alarm write those sends make,
   * which the runtime confirms only once the handler ends). Instead the next backstop is armed
   * first, whenever anything is undrained, so a drain lost again is resumed again.
   */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    if (this.seq.outbox(1, Infinity, this.acked).length > 0) await this.setAlarm(Date.now() + DRAIN_BACKSTOP_MS);
    void this.drain();
  }

  // ---- typing (never stored) ----------------------------------------------------------------

  /** `user` is typing: tell the other members' gateways (one call each), which pass it to their sockets. */
  async typing(input: { user: string; gw: string }): Promise<Result<{ relayed: number }>> {
    this.where.learn(input.user, input.gw);
    const conv = this.seq.conv;
    if (conv === null) return { ok: false, code: 'not_found', message: 'no such conversation' };
    if (!this.seq.isMember(input.user)) return { ok: false, code: 'not_member', message: 'not a member of this conversation' };
    const members = this.seq.memberList();
    if (members.length > PRESENCE.typingMaxMembers || !this.mayShow(input.user)) return { ok: true, relayed: 0 };
    const calls = [...this.where.group(members)].map(async ([gw, users]) => {
      const to = users.filter((u) => u !== input.user);
      if (to.length === 0) return 0;
      try {
        return (await this.gateways.get(gw).typing(gw, { conv, user: input.user, to })).sockets;
      } catch {
        this.gateways.drop(gw);
        return 0;
      }
    });
    return { ok: true, relayed: (await Promise.all(calls)).reduce((a, n) => a + n, 0) };
  }

  /** A drain within `waitMs` (one already waiting for less is kept), and the backstop alarm. */
  private scheduleDrain(waitMs = 0): void {
    // While backing off, the alarm retries: a burst of sends must not turn into a burst of failed
    // attempts that pushes the next retry ever further out. A running drain takes what was added
    // meanwhile with its next batch.
    if (waitMs === 0) {
      this.drainUrgent = true;
      this.wakeDrain?.();
    }
    if (this.failures === 0 && !this.draining) {
      if (waitMs === 0) {
        if (this.drainTimer) clearTimeout(this.drainTimer);
        this.drainTimer = null;
        void this.drain();
      } else
        this.drainTimer ??= setTimeout(() => {
          this.drainTimer = null;
          void this.drain();
        }, jittered(waitMs));
    }
    // Backstop in case this instance dies before the drain finishes.
    if (this.alarmAt === null) void this.setAlarm(Date.now() + DRAIN_BACKSTOP_MS);
    else if (this.alarmAt === undefined)
      void this.ctx.storage.getAlarm().then((at) => {
        this.alarmAt = at;
        if (at === null) return this.setAlarm(Date.now() + DRAIN_BACKSTOP_MS);
      });
  }

  /**
   * Deletes what the region acknowledged and trims the window. Not urgent: it rides along with the
   * next send's commit, or is written on its own within ACK_WRITE_MS. Until then (and after a
   * crash before it) those events stay in the outbox and would only be sent again, which the
   * region applies idempotently.
   */
  private writeAck(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (!this.ackPending) return;
    this.ackPending = false;
    this.seq.acknowledge(this.acked, config(this.env).conversationWindow);
  }

  private setAlarm(at: number): Promise<void> {
    this.alarmAt = at;
    return this.ctx.storage.setAlarm(at);
  }

  private drain(): Promise<void> {
    if (!this.draining) this.draining = this.drainLoop().finally(() => (this.draining = null));
    return this.draining;
  }

  /** The next outbox batch, each message saying which gateways the live path already reached. */
  private async drainBatch() {
    await this.live.settled(LIVE_SETTLE_MS);
    // What is taken now goes with this request: only what is queued after it can be urgent.
    this.drainUrgent = false;
    return this.seq.outbox(DRAIN_BATCH, LIMITS.drainBatchBytes, this.acked).map((row) => {
      if (row.event.kind !== 'msg') return row;
      const live = this.live.reached(row.event.msg.seq);
      return live.length > 0 ? { ...row, event: { ...row.event, live } } : row;
    });
  }

  private async drainLoop(): Promise<void> {
    const cfg = config(this.env);
    for (let rows = await this.drainBatch(); rows.length > 0; rows = await this.drainBatch()) {
      try {
        await callRegion(this.home(), '/internal/events', { conv: this.seq.conv, events: rows.map((r) => r.event) }, undefined, this.counts);
      } catch (err) {
        // Refused for good: find which events the region will never take (one by one), set them
        // aside as dead letters and go on, instead of retrying the same refusal forever.
        const left = isPermanentRefusal(err) ? await this.isolateRefused(rows, err) : { rows, err };
        if (left.rows.length === 0) continue;
        this.counts.inc('switchboard_edge_outbox_drains_total', labels('failed'));
        this.failures++;
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(this.failures, 10)) * (0.5 + Math.random() / 2);
        log('warn', 'outbox drain failed; will retry', { conv: this.seq.conv, pending: left.rows.length, retryInMs: Math.round(delay), ...errorFields(left.err) });
        await this.setAlarm(Date.now() + delay);
        return;
      }
      this.failures = 0;
      this.counts.inc('switchboard_edge_outbox_drains_total', labels('ok'));
      const oldest = rows.find((r) => r.event.kind === 'msg');
      if (oldest?.event.kind === 'msg') this.counts.observe('switchboard_edge_outbox_age_seconds', '', Math.max(0, Date.now() - oldest.event.msg.ts) / 1000);
      this.settled(rows);
      await this.coalesce(cfg.drainCoalesceMs);
    }
  }

  /**
   * After the region refused a batch for good: sends its events one at a time. Those it takes are
   * acknowledged; each one it refuses for good becomes a dead letter (and is acknowledged, so the
   * window trims past it); a transient failure stops there. Returns the rows still to send (none
   * when every event was settled), for the caller's retry.
   */
  private async isolateRefused(rows: OutboxRow[], batchErr: RegionError): Promise<{ rows: OutboxRow[]; err?: unknown }> {
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      let refusal: RegionError = batchErr;
      if (rows.length > 1) {
        try {
          await callRegion(this.home(), '/internal/events', { conv: this.seq.conv, events: [row.event] }, undefined, this.counts);
          this.settled([row]);
          continue;
        } catch (err) {
          if (!isPermanentRefusal(err)) return { rows: rows.slice(i), err };
          refusal = err;
        }
      }
      const reason = refusal.refusal?.message ?? refusal.message;
      const { dropped } = this.deadLetters.add(row, { status: refusal.status, code: refusal.refusal?.code, reason });
      this.counts.inc('switchboard_edge_outbox_dead_letters_total', labels(row.event.kind));
      log('error', 'outbox event refused for good by the region; dead-lettered (replay: POST /internal/admin/conversations/:conv/dead-letters/replay)', {
        conv: this.seq.conv,
        oseq: row.oseq,
        kind: row.event.kind,
        ...(row.event.kind === 'msg' ? { seq: row.event.msg.seq } : {}),
        status: refusal.status,
        code: refusal.refusal?.code,
        reason: reason.slice(0, 200),
        ...(dropped ? { droppedOldest: dropped } : {}),
      });
      this.settled([row]);
    }
    return { rows: [] };
  }

  /** The region has (or has refused for good) every outbox event in `rows`, oldest first. */
  private settled(rows: OutboxRow[]): void {
    this.acked = rows.at(-1)!.oseq;
    this.ackPending = true;
    this.ackTimer ??= setTimeout(() => this.writeAck(), ACK_WRITE_MS);
    const seqs = rows.flatMap((r) => (r.event.kind === 'msg' ? [r.event.msg.seq] : []));
    if (seqs.length > 0) this.live.forget(Math.max(...seqs));
  }

  /** An operator's view of this conversation (admin API); null when it was never created here. */
  async adminState(): Promise<{ conv: string; direct: boolean; e2e: boolean; lastSeq: number; ver: number; members: number; outbox: { events: number; draining: boolean; failures: number }; deadLetters: number } | null> {
    const conv = this.seq.conv;
    if (!conv) return null;
    const backlog = this.seq.outboxBacklog(this.acked);
    return {
      conv,
      direct: this.seq.direct,
      e2e: this.seq.e2e,
      lastSeq: this.seq.lastSeq,
      ver: this.seq.memberVersion,
      members: this.seq.members().length,
      outbox: { events: backlog.events, draining: this.draining !== null, failures: this.failures },
      deadLetters: this.deadLetters.count(),
    };
  }

  /** Dead letters of this conversation (an operator's view, admin API). */
  async listDeadLetters(): Promise<DeadLetter[]> {
    return this.deadLetters.list();
  }

  /** Puts dead letters (all, or those at `oseqs`) back in the outbox and drains it. */
  async replayDeadLetters(input: { oseqs?: number[] }): Promise<{ replayed: number }> {
    const replayed = this.deadLetters.replay(input.oseqs);
    if (replayed > 0) this.scheduleDrain(0);
    return { replayed };
  }

  /**
   * Between two batches of a busy conversation: while everything queued reached its members
   * live, the next request waits `ms` so that it carries that time's messages (without it, each
   * request would carry only what arrived during the previous one, and a slow region would get
   * ever more, ever smaller requests). Anything urgent ends the wait.
   */
  private async coalesce(ms: number): Promise<void> {
    if (ms <= 0 || this.drainUrgent) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => ((this.wakeDrain = null), resolve()), jittered(ms));
      this.wakeDrain = () => {
        clearTimeout(timer);
        this.wakeDrain = null;
        resolve();
      };
    });
  }
}
