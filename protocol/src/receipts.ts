import { z } from 'zod';
import { ConvId, Rid, Seq, UserId } from './ids.ts';

/** Receipt settings every side agrees on (PROTOCOL.md, "Read receipts"). */
export const RECEIPTS = {
  /**
   * Other members are sent `read`/`delivered` events only in conversations of at most this many
   * members; in larger groups only the user's own devices hear of their reads, and the positions
   * of everyone are in the conversation details (`GET /v1/conversations/:id`).
   */
  relayMaxMembers: 32,
  /** A client sends `read` at most this often per conversation while new messages are shown. */
  clientMinIntervalMs: 500,
} as const;

// ---- client → server -------------------------------------------------------------------------

/**
 * "I have read `conv` up to `seq`" (cumulative; it only moves forward, and is capped at the last
 * seq this user may read). Also marks everything up to `seq` delivered. No reply but `error`.
 */
export const ReadFrame = z.object({ t: z.literal('read'), rid: Rid.optional(), conv: ConvId, seq: Seq });
export type ReadFrame = z.infer<typeof ReadFrame>;

// ---- server → client -------------------------------------------------------------------------

/** `user` has read `conv` up to `seq`: to the reader's devices and (small conversations) the other members. */
export const ReadEventFrame = z.object({ t: z.literal('read'), conv: ConvId, user: UserId, seq: Seq });
export type ReadEventFrame = z.infer<typeof ReadEventFrame>;
/** A device of `user` has every message of `conv` up to `seq` (small conversations only). */
export const DeliveredEventFrame = z.object({ t: z.literal('delivered'), conv: ConvId, user: UserId, seq: Seq });
export type DeliveredEventFrame = z.infer<typeof DeliveredEventFrame>;

// ---- shared shapes ---------------------------------------------------------------------------

/** A member's positions in a conversation: delivered to any of their devices, and read. */
export const Positions = z.object({ delivered: Seq, read: Seq });
export type Positions = z.infer<typeof Positions>;

/** A change of one member's positions (either or both), as the edge reports it to the region. */
export const PositionChange = z.object({ user: UserId, delivered: Seq.optional(), read: Seq.optional() });
export type PositionChange = z.infer<typeof PositionChange>;

/**
 * Unread messages for a member: sequenced entries after their read position (membership changes
 * count; their own sends move their read position, so they never count). Never negative.
 */
export function unreadCount(last: number, read: number): number {
  return Math.max(0, last - read);
}
