import { z } from 'zod';
import { ConvId, DeviceId, GatewayId, Rid, UserId } from './ids.ts';

/** Presence and typing settings every side agrees on (PROTOCOL.md, "Presence and typing"). */
export const PRESENCE = {
  /** Users one device may watch at once (and per `watch`/`unwatch` frame). */
  maxWatch: 200,
  /** A client sends a heartbeat (`ping`, or any frame) at least this often. */
  heartbeatMs: 30_000,
  /** While the user types, the client sends `typing` again this often. */
  typingRenewMs: 3_000,
  /** A receiver shows "typing" this long after the last `typing` event, unless renewed. */
  typingShowMs: 6_000,
  /** The edge relays at most one `typing` per device and conversation per this interval; more are dropped. */
  typingMinIntervalMs: 2_000,
  /** Typing is not relayed in conversations with more members than this. */
  typingMaxMembers: 256,
} as const;

const WatchList = z.array(UserId).min(1).max(PRESENCE.maxWatch);

// ---- client → server -------------------------------------------------------------------------

/** Watch users' presence: replied with `watching` (their current state), then `presence` on every change. */
export const WatchFrame = z.object({ t: z.literal('watch'), rid: Rid.optional(), users: WatchList });
export const UnwatchFrame = z.object({ t: z.literal('unwatch'), rid: Rid.optional(), users: WatchList });
/** "I am typing in conv": relayed to the other members' live devices, never stored. */
export const TypingFrame = z.object({ t: z.literal('typing'), rid: Rid.optional(), conv: ConvId });
export type WatchFrame = z.infer<typeof WatchFrame>;
export type UnwatchFrame = z.infer<typeof UnwatchFrame>;
export type TypingFrame = z.infer<typeof TypingFrame>;

// ---- server → client -------------------------------------------------------------------------

export const PresenceStatus = z.enum(['online', 'offline']);
/** One user's presence. `last_seen` (ms since the epoch) is null while online or if never seen. */
export const PresenceState = z.object({ user: UserId, status: PresenceStatus, last_seen: z.number().int().nullable() });
export type PresenceState = z.infer<typeof PresenceState>;
/** A watched user's status changed. */
export const PresenceFrame = PresenceState.extend({ t: z.literal('presence') });
export type PresenceFrame = z.infer<typeof PresenceFrame>;
/** Reply to `watch` (the current state of each user it names) and to `unwatch` (empty). */
export const WatchingFrame = z.object({ t: z.literal('watching'), rid: Rid.optional(), users: z.array(PresenceState) });
export type WatchingFrame = z.infer<typeof WatchingFrame>;
/** `user` is typing in `conv`: show it for PRESENCE.typingShowMs unless renewed. */
export const TypingEventFrame = z.object({ t: z.literal('typing'), conv: ConvId, user: UserId });
export type TypingEventFrame = z.infer<typeof TypingEventFrame>;

// ---- internal (edge ↔ region) ----------------------------------------------------------------

/**
 * Gateway → region `/internal/presence`: `connect` (a new connection: live now, and the device's
 * earlier watches end), `beat` (alive `age` ms ago), `down` (clean disconnect: offline at once,
 * its watches end). Batched: one call carries the devices of every user on one gateway.
 */
export const PresenceOp = z.object({
  op: z.enum(['connect', 'beat', 'down']),
  user: UserId,
  device: DeviceId,
  age: z.number().int().min(0).max(86_400_000).optional(),
});
export type PresenceOp = z.infer<typeof PresenceOp>;
export const PresenceRequest = z.object({ ops: z.array(PresenceOp).min(1).max(5000) });
export type PresenceRequest = z.infer<typeof PresenceRequest>;

/** Gateway → region `/internal/watch`: one device's watch and/or unwatch; changes go to its gateway `gw` on `edge`. */
export const WatchRequest = z.object({
  user: UserId,
  device: DeviceId,
  edge: z.string().url().max(200),
  gw: GatewayId,
  watch: z.array(UserId).max(PRESENCE.maxWatch).default([]),
  unwatch: z.array(UserId).max(PRESENCE.maxWatch).default([]),
});
export type WatchRequest = z.infer<typeof WatchRequest>;
/** A refusal is an answer, not a failure: `forbidden` (no shared conversation) or `conflict` (over the bound). */
export type WatchResponse = { ok: true; users: PresenceState[] } | { ok: false; code: 'forbidden' | 'conflict'; message: string };

/** Region → edge `/internal/presence`: status changes for the watching devices of user `to` on gateway `gw`. */
export const PresenceEvent = PresenceState.extend({ to: UserId, gw: GatewayId, devices: z.array(DeviceId).min(1).max(1000) });
export type PresenceEvent = z.infer<typeof PresenceEvent>;
export const PresenceDeliverRequest = z.object({ events: z.array(PresenceEvent).min(1).max(5000) });
