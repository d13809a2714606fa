import { z } from 'zod';
import { ConnId, ConvId, DeviceId, GATEWAY_ID_PATTERN, GatewayId, PRINCIPAL_ID_PATTERN, Seq, UserId } from './ids.ts';
import { LIMITS } from './limits.ts';
import { parseJsonBody } from './decode.ts';
import { Msg } from './frames.ts';
import { PresenceOp } from './presence.ts';
import { PositionChange } from './receipts.ts';
import { ConsentEvent, RequestMark } from './consent.ts';

/**
 * Bodies of the signed internal API between edge and region. Both sides validate them: a signed
 * request from a buggy peer still never reaches storage unchecked.
 */

export const ConversationCreated = z.object({
  kind: z.literal('created'),
  conv: ConvId,
  title: z.string().max(200).nullable(),
  members: z.array(UserId).min(1).max(LIMITS.maxMembers),
  creator: UserId,
  ts: z.number().int(),
});
export type ConversationCreated = z.infer<typeof ConversationCreated>;

/**
 * What the edge's live path did with a message on one gateway: every socket of the message's
 * members connected to gateway `gw` with a connection id up to `upTo` has it (pushed and in
 * flight, or already acked). A socket that connected later (a larger id, or a gateway restarted
 * since) may not have it.
 */
export const LiveReached = z.object({ gw: GatewayId, upTo: ConnId });
export type LiveReached = z.infer<typeof LiveReached>;

/**
 * One sequenced entry: a message, or a membership change (`msg.sys`). `ver` is the conversation's
 * membership version as of this seq (the seq of the latest membership change at or before it, 0
 * for the members it was created with): fan-out caches members by it. `live`: the gateways the
 * edge's live path reached (see edge/src/conversation/live-push.ts); the fan-out worker does not
 * deliver again to a member's device whose route names one of them with a connection id up to its
 * `upTo`, and does to every other device with a route (one that connected meanwhile, or is on
 * another gateway). Absent or partial is always safe: a gateway pushes a (conv, seq) to a device
 * once while it is in flight or acked, and devices dedupe too.
 */
/** A W3C trace context (`traceparent`): version 00, trace id, parent span id, flags. */
export const Traceparent = z.string().regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);

export const MessageEvent = z.object({
  kind: z.literal('msg'),
  msg: Msg,
  ver: Seq.optional(),
  live: z.array(LiveReached).max(4096).optional(),
  /** A traced message's context (W3C traceparent of the span that continues it; OTEL_EXPORTER_OTLP_ENDPOINT set). */
  trace: Traceparent.optional(),
});
export type MessageEvent = z.infer<typeof MessageEvent>;

/**
 * Members' delivered/read positions moved (edge/src/receipts.ts). Positions only move forward,
 * so applying an older event again, or these out of order with messages, is harmless. A
 * message's sender has read up to it: that position is implied by the `msg` event, not sent.
 */
export const ReceiptsEvent = z.object({ kind: z.literal('receipts'), positions: z.array(PositionChange).min(1).max(LIMITS.maxMembers) });
export type ReceiptsEvent = z.infer<typeof ReceiptsEvent>;

export const ConvEvent = z.discriminatedUnion('kind', [ConversationCreated, MessageEvent, ReceiptsEvent, ConsentEvent]);
export type ConvEvent = z.infer<typeof ConvEvent>;

/** ConversationDO → region: one conversation's outbox, oldest first. Applying it twice is harmless. */
export const EventsRequest = z.object({ conv: ConvId, events: z.array(ConvEvent).min(1).max(500) });
export type EventsRequest = z.infer<typeof EventsRequest>;

/**
 * ConversationDO → region, for a member: messages after `after` (exclusive) ascending, or, with
 * `before`, messages before it (exclusive) newest first. Exactly one of the two.
 */
export const ReadRequest = z
  .object({
    conv: ConvId,
    user: UserId,
    after: Seq.optional(),
    before: Seq.optional(),
    limit: z.number().int().min(1).max(LIMITS.maxSyncLimit),
  })
  .refine((r) => (r.after === undefined) !== (r.before === undefined), { message: 'exactly one of after and before' });
export type ReadRequest = z.infer<typeof ReadRequest>;
export const ReadResponse = z.object({ msgs: z.array(Msg), more: z.boolean() });
export type ReadResponse = z.infer<typeof ReadResponse>;

/**
 * Gateway → region: a device's route appeared (or is refreshed) or went away. `conn` names the
 * socket: `down` removes the route only while it still names that socket, so a device that
 * reconnected meanwhile keeps its newer route.
 */
export const RouteOp = z.object({
  op: z.enum(['up', 'down']),
  user: UserId,
  device: DeviceId,
  edge: z.string().url().max(200),
  gw: GatewayId,
  conn: ConnId,
});
export type RouteOp = z.infer<typeof RouteOp>;
/** One call per gateway and period: a gateway refreshes every socket it holds in calls of at most this many. */
export const RoutesRequest = z.object({ ops: z.array(RouteOp).min(1).max(5000) });

/** Region → edge: deliver each message to the live devices of `user` on gateway `gw`, except `skipDevice`. */
export const Delivery = z.object({ user: UserId, gw: GatewayId, msg: Msg, skipDevice: DeviceId.optional() });
export type Delivery = z.infer<typeof Delivery>;
/**
 * The wire form of a batch of deliveries: each message once, and per recipient the index of its
 * message (a 1,000-member group's message would otherwise carry its body 1,000 times).
 */
export const DeliverRequest = z
  .object({
    msgs: z.array(Msg).min(1).max(1000),
    to: z.array(z.object({ user: UserId, gw: GatewayId, m: z.number().int().min(0), skip: DeviceId.optional() })).min(1).max(20_000),
  })
  .refine((r) => r.to.every((t) => t.m < r.msgs.length), { message: 'to[].m: no such message' });
export type DeliverRequest = z.infer<typeof DeliverRequest>;

const DeliverMsgs = z.array(Msg).min(1).max(1000);

/**
 * `DeliverRequest` of a parsed body, with its recipients (up to 20,000, one per member of a
 * large group) checked by hand rather than by the schema, entry by entry; the messages still go
 * through the schema. Contract: the same verdict and value as `DeliverRequest.safeParse`; null
 * means "ask the schema" (for its error), never "valid".
 */
export function fastDeliverRequest(value: unknown): DeliverRequest | null {
  if (typeof value !== 'object' || value === null) return null;
  const { msgs, to } = value as { msgs?: unknown; to?: unknown };
  if (!Array.isArray(to) || to.length < 1 || to.length > 20_000) return null;
  const parsed = DeliverMsgs.safeParse(msgs);
  if (!parsed.success) return null;
  const count = parsed.data.length;
  const out: DeliverRequest['to'] = new Array(to.length);
  for (let i = 0; i < to.length; i++) {
    const t = to[i] as { user?: unknown; gw?: unknown; m?: unknown; skip?: unknown } | null;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) return null;
    const { user, gw, m, skip } = t;
    if (typeof user !== 'string' || !PRINCIPAL_ID_PATTERN.test(user) || typeof m !== 'number' || !Number.isInteger(m) || m < 0 || m >= count) return null;
    if (typeof gw !== 'string' || !GATEWAY_ID_PATTERN.test(gw)) return null;
    if (skip !== undefined && (typeof skip !== 'string' || !PRINCIPAL_ID_PATTERN.test(skip))) return null;
    out[i] = skip === undefined ? { user, gw, m } : { user, gw, m, skip };
  }
  return { msgs: parsed.data, to: out };
}

/** A `/internal/deliver` body: the fast check, else the schema's verdict (`bad_json`, `invalid_frame`). */
export function parseDeliverRequest(text: string): DeliverRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  return fastDeliverRequest(value) ?? parseJsonBody(text, DeliverRequest);
}

/** Deliveries → their wire form (messages shared by identity or by (conv, seq) are sent once). */
export function packDeliveries(deliveries: Delivery[]): DeliverRequest {
  const index = new Map<string, number>();
  const msgs: Msg[] = [];
  const to = deliveries.map((d) => {
    const k = `${d.msg.conv}\u0000${d.msg.seq}`;
    let m = index.get(k);
    if (m === undefined) {
      index.set(k, (m = msgs.length));
      msgs.push(d.msg);
    }
    return { user: d.user, gw: d.gw, m, ...(d.skipDevice !== undefined ? { skip: d.skipDevice } : {}) };
  });
  return { msgs, to };
}

/**
 * The wire form → one batch per gateway: the messages that gateway needs (each once, as indexes
 * into `req.msgs`) and its recipients, each pointing at its message by index into that batch's
 * `msgs`, in the order sent.
 */
export function deliveriesByGateway(req: DeliverRequest): Map<string, { msgs: number[]; to: { user: string; m: number; skip?: string }[] }> {
  const out = new Map<string, { msgs: number[]; to: { user: string; m: number; skip?: string }[]; index: Map<number, number> }>();
  for (const t of req.to) {
    let batch = out.get(t.gw);
    if (!batch) out.set(t.gw, (batch = { msgs: [], to: [], index: new Map() }));
    let m = batch.index.get(t.m);
    if (m === undefined) {
      batch.index.set(t.m, (m = batch.msgs.length));
      batch.msgs.push(t.m);
    }
    batch.to.push(t.skip !== undefined ? { user: t.user, m, skip: t.skip } : { user: t.user, m });
  }
  return new Map([...out].map(([gw, b]) => [gw, { msgs: b.msgs, to: b.to }]));
}

/**
 * A device's `resume`: a page of the user's conversations (by id, after `after`) with their last
 * seqs and the cursor `device` acked in each (0 when none is stored).
 */
export const ConversationsPageRequest = z.object({
  user: UserId,
  device: DeviceId,
  after: z.union([ConvId, z.literal('')]).default(''),
  limit: z.number().int().min(1).max(1000),
});
export type ConversationsPageRequest = z.infer<typeof ConversationsPageRequest>;
export const ConversationsPage = z.object({
  /** `request`: the user has not accepted this conversation yet (consent.ts). */
  convs: z.array(z.object({ conv: ConvId, last: Seq, acked: Seq, request: z.literal(true).optional() })),
  /** The id to pass as `after` for the next page; absent on the last page. */
  next: ConvId.optional(),
});
export type ConversationsPage = z.infer<typeof ConversationsPage>;
/**
 * Gateway → region: the resume pages of many devices at once (a gateway batches the resumes that
 * arrive together: after a reconnect storm, thousands), answered in the same order.
 */
export const ConversationsRequest = z.object({ pages: z.array(ConversationsPageRequest).min(1).max(200) });
export type ConversationsRequest = z.infer<typeof ConversationsRequest>;
export const ConversationsResponse = z.object({ pages: z.array(ConversationsPage) });
export type ConversationsResponse = z.infer<typeof ConversationsResponse>;

/**
 * Gateway → region: devices' acked cursors (the highest seq of `conv` a device acked; acks are
 * cumulative). Forward-only: a cursor lower than the stored one changes nothing, so batches may
 * arrive in any order or twice. One call per gateway per flush period, and when sockets close.
 */
export const DeviceCursor = z.object({ user: UserId, device: DeviceId, conv: ConvId, seq: Seq });
export type DeviceCursor = z.infer<typeof DeviceCursor>;
export const CursorsRequest = z.object({ cursors: z.array(DeviceCursor).min(1).max(10_000) });
export type CursorsRequest = z.infer<typeof CursorsRequest>;

/** A conversation list names at most this many members of each conversation. */
export const LIST_MEMBERS = 20;

/**
 * Edge → region, for `GET /v1/conversations`: a page of the user's conversations, newest
 * activity first. `after` is the previous page's `next` (an opaque cursor), '' for the first.
 */
/** A page cursor of the conversation list: `<activity ms>~<conversation id>` of the previous page's last entry. */
export const InboxCursor = z.string().regex(/^\d{1,16}~[A-Za-z0-9_-]{1,64}$/, 'expected the `next` of the previous page');
export const InboxRequest = z.object({
  user: UserId,
  after: z.union([InboxCursor, z.literal('')]).default(''),
  limit: z.number().int().min(1).max(200),
});
export type InboxRequest = z.infer<typeof InboxRequest>;
export const InboxEntry = z.object({
  id: ConvId,
  title: z.string().nullable(),
  direct: z.boolean(),
  /** At most `LIST_MEMBERS` of them (sorted); `memberCount` is the whole count. */
  members: z.array(UserId),
  memberCount: z.number().int().min(0),
  createdAt: z.number().int(),
  /** When the newest message the user may read was sent (createdAt when there is none): the order of the list. */
  activity: z.number().int(),
  /** The newest seq the user may read (a removed member's ends at their removal). */
  last: Seq,
  /** The newest stored message the user may read, for a preview; null when none. */
  lastMsg: Msg.nullable(),
  /** The user's positions: delivered to any of their devices, and read. */
  delivered: Seq,
  read: Seq,
  /** Entries after `read` the user may read (receipts.ts `unreadCount`). */
  unread: z.number().int().min(0),
  /** Present while the user has not accepted this conversation: a message request (consent.ts). */
  request: RequestMark.optional(),
});
export type InboxEntry = z.infer<typeof InboxEntry>;
export const InboxResponse = z.object({ convs: z.array(InboxEntry), next: z.string().optional() });
export type InboxResponse = z.infer<typeof InboxResponse>;

/**
 * Gateway → region `/internal/gateway`: one batch of everything a gateway has for the region — route
 * changes (as `/internal/routes`), presence ops (as `/internal/presence`) and acked cursors (as
 * `/internal/cursors`) — so a connect storm costs a gateway one call per batch, not three. Each
 * list keeps its own order; the lists are independent of each other. Answered with the routes
 * epoch when it carried routes.
 */
export const GatewayBatchRequest = z
  .object({
    routes: z.array(RouteOp).max(5000).default([]),
    presence: z.array(PresenceOp).max(5000).default([]),
    cursors: z.array(DeviceCursor).max(10_000).default([]),
  })
  .refine((b) => b.routes.length + b.presence.length + b.cursors.length > 0, { message: 'an empty batch' });
export type GatewayBatchRequest = z.infer<typeof GatewayBatchRequest>;
export type GatewayBatchResponse = { applied: { routes: number; presence: number; cursors: number }; epoch?: string };

/** Operator → edge: put a conversation's dead letters back in its outbox (all, or those at `oseqs`). */
export const DeadLetterReplayRequest = z.object({ oseqs: z.array(z.number().int().positive()).max(1000).optional() }).strict();
export type DeadLetterReplayRequest = z.infer<typeof DeadLetterReplayRequest>;

/**
 * Operator (or the edge runner on SIGTERM) → edge: close every socket of the gateways of
 * `placements` (default the edge's GATEWAY_PLACEMENT) with 1012 and a reconnect hint drawn per
 * socket from 0 to `spreadMs` (default 5 s).
 */
export const DrainRequest = z
  .object({
    placements: z.array(z.string().regex(/^[a-z0-9-]{1,32}$/)).min(1).max(16).optional(),
    spreadMs: z.number().int().min(0).max(60_000).optional(),
  })
  .strict();
export type DrainRequest = z.infer<typeof DrainRequest>;

/** Operator (through the edge) → region: what the region knows of one user. */
export const AdminUserRequest = z.object({ user: UserId }).strict();
export type AdminUserRequest = z.infer<typeof AdminUserRequest>;

/** Operator → edge: close a user's sockets (one device's, with `device`); `reconnect` closes with 1012 instead of 4008. */
export const DisconnectRequest = z.object({ device: DeviceId.optional(), reconnect: z.boolean().optional() }).strict();
export type DisconnectRequest = z.infer<typeof DisconnectRequest>;
