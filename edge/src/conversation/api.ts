import type { HistoryVisibility, MlsView, Msg, Positions } from '@switchboard/protocol';

export type { MlsView };
import type { EdgeSnapshot } from '../metrics/edge-metrics.ts';
import type { DeadLetter } from './dead-letters.ts';
import type { MemberRow, MembershipChange, Result } from './sequencer.ts';

/**
 * A conversation's metrics ride on its answers to gateways (at most every few seconds): the
 * gateway adds them to its own, which are scraped and exported. No call is made for them alone.
 */
export type Riding = { metrics?: EdgeSnapshot };

/**
 * What other parts of the edge call on a conversation (ConversationDO). Calls made for a device
 * carry `gw`, the gateway holding its socket: the conversation remembers where each member is
 * connected, so its live path calls the right gateway.
 */
export interface ConversationRpc {
  /** `requests`: members who get it as a message request (consent.ts). */
  create(input: { conv: string; region?: string; members: string[]; title: string | null; creator: string; direct: boolean; history?: HistoryVisibility; e2e?: boolean; requests?: string[] }): Promise<Result<{ members: string[]; existed: boolean; region: string | null }>>;
  /** `trace`: a traced send's context (W3C traceparent): the message's `sequence` span goes under it. */
  send(input: { from: string; dev: string; gw: string; cmid: string; body: string; trace?: string }): Promise<Result<{ seq: number; ts: number; duplicate: boolean }> & Riding>;
  commit(input: { from: string; dev: string; cmid: string; commit: string; groupInfo: string; welcome?: string }): Promise<Result<{ seq: number; ts: number; duplicate: boolean; epoch: string }>>;
  mlsState(input: { user: string }): Promise<Result<MlsView>>;
  changeDevice(input: { op: 'link' | 'revoke'; user: string; device: string; by: string }): Promise<Result<{ seq: number | null }>>;
  sync(input: { user: string; gw?: string; after: number; limit: number }): Promise<Result<{ msgs: Msg[]; more: boolean }>>;
  history(input: { user: string; gw?: string; before?: number; limit: number }): Promise<Result<{ msgs: Msg[]; more: boolean }>>;
  /** `opts.requests`: users added as a message request; `opts.pair`: a direct conversation's pair leaving or joining again. */
  changeMembers(input: MembershipChange, opts?: { pair?: boolean; requests?: string[] }): Promise<Result<{ seq: number | null; ver: number; users: string[] }>>;
  /** Consent (consent.ts): answering a message request, and a block in a direct conversation. */
  accept(input: { user: string }): Promise<Result<{ accepted: boolean }>>;
  decline(input: { user: string; dev: string }): Promise<Result<{ seq: number | null; by: string }>>;
  block(input: { blocker: string; blocked: string; on: boolean }): Promise<Result<{ applied: boolean }>>;
  /** `user` read up to `read` (from device `device`, whose other devices are told). */
  receipt(input: { user: string; device?: string; gw?: string; read: number }): Promise<Result<{ positions: Positions }>>;
  /**
   * A gateway's delivered reports: each user's devices there acked up to `seq`. `reportEveryMs`
   * asks the gateway to report this conversation at most that often (0: as acks come).
   */
  delivered(input: { gw: string; reports: { user: string; seq: number }[] }): Promise<Result<{ reportEveryMs: number }> & Riding>;
  details(input: { user: string; after: string; limit: number }): Promise<
    Result<{ conv: string; title: string | null; direct: boolean; history: HistoryVisibility; last: number; ver: number; count: number; members: (MemberRow & Positions)[]; next?: string; mls?: { epoch: string; rekeyPending: boolean }; request?: { by: string; at: number } }>
  >;
  typing(input: { user: string; gw: string }): Promise<Result<{ relayed: number }>>;
  /** An operator's view: last seq, membership version and size, outbox backlog, dead letters (null: no such conversation). */
  adminState(): Promise<{ conv: string; direct: boolean; e2e: boolean; lastSeq: number; ver: number; members: number; outbox: { events: number; draining: boolean; failures: number }; deadLetters: number } | null>;
  /** Outbox events the region refused for good (operator's admin API). */
  listDeadLetters(): Promise<DeadLetter[]>;
  replayDeadLetters(input: { oseqs?: number[] }): Promise<{ replayed: number }>;
}
