import { z } from 'zod';
import { Cmid, ConvId, DeviceId, Rid, Seq, UserId } from './ids.ts';
import { LIMITS, fitsUtf8 } from './limits.ts';
import { HistoryVisibility, SysEvent } from './membership.ts';
import { PresenceFrame, TypingEventFrame, TypingFrame, UnwatchFrame, WatchFrame, WatchingFrame } from './presence.ts';
import { DeliveredEventFrame, ReadEventFrame, ReadFrame } from './receipts.ts';
import { ReauthFrame, RefreshFrame, RefreshedFrame } from './token-frames.ts';

const Body = z
  .string()
  .refine((b) => fitsUtf8(b, LIMITS.maxBodyBytes), { message: `body exceeds ${LIMITS.maxBodyBytes} bytes` });

// ---- client → server -------------------------------------------------------------------------

export const SendFrame = z.object({ t: z.literal('send'), rid: Rid.optional(), conv: ConvId, cmid: Cmid, body: Body });
export const AckFrame = z.object({ t: z.literal('ack'), rid: Rid.optional(), conv: ConvId, seq: Seq });
export const SyncFrame = z.object({
  t: z.literal('sync'),
  rid: Rid.optional(),
  conv: ConvId,
  after: Seq.default(0),
  limit: z.number().int().min(1).max(LIMITS.maxSyncLimit).default(LIMITS.defaultSyncLimit),
});
/** Older messages, newest first: `before` exclusive (default: from the newest), 50 per page by default. */
export const HistoryFrame = z.object({
  t: z.literal('history'),
  rid: Rid.optional(),
  conv: ConvId,
  before: Seq.optional(),
  limit: z.number().int().min(1).max(LIMITS.maxSyncLimit).default(LIMITS.defaultHistoryLimit),
});
/**
 * Which conversations have messages this device has not acked: pages of the user's conversations
 * (`after` = the previous page's `next`), each with its last seq and this device's acked seq.
 */
export const ResumeFrame = z.object({ t: z.literal('resume'), rid: Rid.optional(), after: z.union([ConvId, z.literal('')]).default('') });
export const PingFrame = z.object({ t: z.literal('ping'), rid: Rid.optional() });

export const ClientFrame = z.discriminatedUnion('t', [
  SendFrame, AckFrame, SyncFrame, HistoryFrame, ResumeFrame, PingFrame,
  // presence and typing (presence.ts)
  WatchFrame, UnwatchFrame, TypingFrame,
  // read receipts (receipts.ts)
  ReadFrame,
  // token refresh (token-frames.ts)
  RefreshFrame,
]);
export type ClientFrame = z.infer<typeof ClientFrame>;
export type SendFrame = z.infer<typeof SendFrame>;
export type AckFrame = z.infer<typeof AckFrame>;
export type SyncFrame = z.infer<typeof SyncFrame>;
export type HistoryFrame = z.infer<typeof HistoryFrame>;
export type ResumeFrame = z.infer<typeof ResumeFrame>;
export const CLIENT_FRAME_TYPES = ['send', 'ack', 'sync', 'history', 'resume', 'ping', 'watch', 'unwatch', 'typing', 'read', 'refresh'] as const;

// ---- server → client -------------------------------------------------------------------------

/** A message as every device sees it. `from`/`dev` are the sender's user and device. */
export const Msg = z.object({
  t: z.literal('msg'),
  conv: ConvId,
  seq: Seq,
  cmid: Cmid,
  from: UserId,
  dev: DeviceId,
  ts: z.number().int(),
  body: z.string(),
  /** Present on system events only: a membership change sequenced at this seq (membership.ts). */
  sys: SysEvent.optional(),
});
export type Msg = z.infer<typeof Msg>;

export const SentFrame = z.object({
  t: z.literal('sent'),
  rid: Rid.optional(),
  conv: ConvId,
  cmid: Cmid,
  seq: Seq,
  ts: z.number().int(),
});
export const MsgsFrame = z.object({ t: z.literal('msgs'), rid: Rid.optional(), conv: ConvId, msgs: z.array(Msg), more: z.boolean() });
/** `retryAfterMs` (on `rate_limited`): the same request is refused until then; send it again after it. */
export const ErrorFrame = z.object({ t: z.literal('error'), rid: Rid.optional(), code: z.string(), message: z.string(), retryAfterMs: z.number().int().nonnegative().optional() });
/**
 * Reply to `ping`. The bare heartbeat `{"t":"ping"}` (exactly those bytes, as the SDK sends it) is
 * answered by the runtime without waking the gateway (`HEARTBEAT_PONG`: no `ts`).
 */
export const PongFrame = z.object({ t: z.literal('pong'), rid: Rid.optional(), ts: z.number().int().optional() });
/** The heartbeat a client sends, byte for byte, and the answer the edge's runtime gives it unaided. */
export const HEARTBEAT_PING = '{"t":"ping"}';
export const HEARTBEAT_PONG = '{"t":"pong"}';
/** `exp`: when the socket's token expires (Unix seconds; see `reauth`). */
export const HelloFrame = z.object({ t: z.literal('hello'), user: UserId, dev: DeviceId, v: z.literal(1), exp: z.number().int().optional() });
export const ChangesFrame = z.object({
  t: z.literal('changes'),
  rid: Rid.optional(),
  /** `request`: a message request the user has not accepted yet (PROTOCOL.md, "Consent"). */
  convs: z.array(z.object({ conv: ConvId, last: Seq, acked: Seq, request: z.literal(true).optional() })),
  next: ConvId.optional(),
});
/** Pushes may have been missed (the region's routes were lost): resume now. */
export const ResyncFrame = z.object({ t: z.literal('resync') });

export const ServerFrame = z.discriminatedUnion('t', [
  Msg, SentFrame, MsgsFrame, ErrorFrame, PongFrame, HelloFrame, ChangesFrame, ResyncFrame,
  // presence and typing (presence.ts)
  PresenceFrame, WatchingFrame, TypingEventFrame,
  // read receipts (receipts.ts)
  ReadEventFrame, DeliveredEventFrame,
  // token refresh (token-frames.ts)
  ReauthFrame, RefreshedFrame,
]);
export type ServerFrame = z.infer<typeof ServerFrame>;
export type SentFrame = z.infer<typeof SentFrame>;
export type MsgsFrame = z.infer<typeof MsgsFrame>;
export type ErrorFrame = z.infer<typeof ErrorFrame>;
export type HelloFrame = z.infer<typeof HelloFrame>;
export type ChangesFrame = z.infer<typeof ChangesFrame>;

// ---- HTTP bodies -----------------------------------------------------------------------------

export const DevTokenRequest = z.object({ user: UserId, device: DeviceId });
/**
 * `direct: true` asks for the one-to-one conversation of the caller and exactly one other user:
 * the same pair always gets the same conversation (200 if it existed, 201 if new).
 */
export const CreateConversationRequest = z
  .object({
    members: z.array(UserId).max(LIMITS.maxMembers),
    title: z.string().max(200).optional(),
    direct: z.boolean().optional(),
    /** Groups only: may members added later read the history before their join (default `join`). */
    history: HistoryVisibility.optional(),
    /** End-to-end encrypted with MLS: the conversation carries MLS messages only (PROTOCOL.md). */
    e2e: z.boolean().optional(),
    /**
     * Its home region (where it is stored and fanned out), one of the deployment's; default the
     * region nearest the creator. A direct conversation asked for again keeps the home it has.
     */
    region: z.string().regex(/^[a-z0-9-]{1,32}$/).optional(),
  })
  .strict();
export type CreateConversationRequest = z.infer<typeof CreateConversationRequest>;

/** An MLSMessage in base64url, up to `max` characters. */
const MlsB64 = (max: number) => z.string().min(8).max(max).regex(/^[A-Za-z0-9_-]+$/, 'base64url');

/**
 * `POST /v1/conversations/:id/mls/commit`: an MLS commit of an end-to-end encrypted conversation,
 * with the group's new GroupInfo and, when it adds devices, their Welcome (up to 4 MiB in all:
 * at 1,000 members the tree alone is ~220 KB).
 */
export const MlsCommitRequest = z
  .object({
    cmid: Cmid,
    commit: MlsB64(1_500_000),
    groupInfo: MlsB64(1_500_000),
    welcome: MlsB64(1_500_000).optional(),
  })
  .strict();
export type MlsCommitRequest = z.infer<typeof MlsCommitRequest>;
