import type { PositionChange, PresenceEvent } from '@switchboard/protocol';
import type { LimitSpend, SpendResult } from '../limits/gateway-limits.ts';
import type { EdgeSnapshot } from '../metrics/edge-metrics.ts';

/** A message as a gateway handles it: its place, and its frame serialised once by the caller. */
export interface WireMsg {
  conv: string;
  seq: number;
  /** The `msg` frame's JSON, written to every socket as is. */
  text: string;
}

/** A recipient of a batch: `user`'s sockets on the gateway but device `skip` get message `m`. */
export interface Recipient {
  user: string;
  /** Index into the batch's `msgs`. */
  m: number;
  skip?: string;
}

/** One call's worth of deliveries for one gateway: each message once, then who gets which. */
export interface GatewayBatch {
  msgs: WireMsg[];
  /** In the order the messages must reach each device (seq order per conversation). */
  to: Recipient[];
  /** Who sends it, for the metrics: the region's fan-out, or (absent) a ConversationDO's live path. */
  from?: 'region';
}

export interface DeliverResult {
  /**
   * Every socket of a recipient connected with an id up to this has the batch (pushed and in
   * flight, or acked before); sockets connected later get ids above it (protocol `LiveReached`).
   */
  upTo: number;
  /** Recipients with no socket on this gateway: the region's fan-out (or a push) is their path. */
  missed: string[];
  /** Recipients whose only socket here is the one they skip (a sender with one device online). */
  skipOnly: string[];
  /** Frames written. */
  sockets: number;
}

/** A receipt for members' devices: `user`'s delivered and/or read position moved in `conv`. */
export type ReceiptEvent = PositionChange & { conv: string };

/**
 * What other parts of the edge call on a gateway (GatewayDO). Every method takes the gateway's own
 * name first: an object does not know its name, and the gateway needs it to register routes.
 */
export interface GatewayRpc {
  /** Live path and region fan-out: push each message to its recipients' live sockets, once per device. */
  deliver(gw: string, batch: GatewayBatch): Promise<DeliverResult>;
  /** `user` is typing in `conv`: to every socket of `to`. */
  typing(gw: string, input: { conv: string; user: string; to: string[] }): Promise<{ sockets: number }>;
  /** Receipt events to the sockets of `to` (but each one's `skip` device). */
  receipts(gw: string, events: ReceiptEvent[], to: { user: string; skip?: string }[]): Promise<{ sockets: number }>;
  /** Presence changes from the region, each to the watching devices it names. */
  presence(gw: string, events: PresenceEvent[]): Promise<{ sockets: number }>;
  /** Closes `user`'s sockets opened with tokens issued before `before` (Unix seconds) with 4001 (token-expiry.ts). */
  revokeTokens(gw: string, user: string, before: number): Promise<{ closed: number }>;
  /** The user's live sockets here (operator's lookup). */
  sessions(gw: string, user: string): Promise<{ device: string; conn: number; since: number; ready: boolean }[]>;
  /** Closes the user's sockets here (one device's, with `device`): 4009 for good, or 1012 to reconnect at once. */
  disconnect(gw: string, input: { user: string; device?: string; reconnect: boolean }): Promise<{ closed: number }>;
  /** What the gateway counted (with what its conversations handed it), its connections gauge set now: for a scrape. */
  metrics(gw: string): Promise<EdgeSnapshot>;
  /**
   * Before the runtime restarts (a redeploy): closes every socket with 1012 and a reconnect hint,
   * a delay drawn per socket from 0 to `spreadMs`, so devices come back spread out, not at once.
   */
  drain(gw: string, input: { spreadMs: number }): Promise<{ sockets: number }>;
  /** A quota spend for one of its users or an address hashed to it: all or nothing (limits/quota.ts). */
  spend(gw: string, spends: LimitSpend[]): Promise<SpendResult>;
}
