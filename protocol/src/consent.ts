import { z } from 'zod';
import { UserId } from './ids.ts';
import { LIMITS } from './limits.ts';

/**
 * Consent (PROTOCOL.md, "Consent"): message requests, who sees a user's presence, and blocks.
 * Shared by the client SDK, the edge and the region.
 */
export const CONSENT = {
  /**
   * In a direct conversation the other member has not accepted yet, its creator may send this
   * many messages; more are refused with `request_pending` until they accept.
   */
  requestMaxMessages: 3,
  /** Users one user may block. */
  maxBlocks: 10_000,
} as const;

/**
 * Who sees a user's presence and last-seen time:
 * - `everyone` (the default): anyone they share a conversation with that they have not left as
 *   an unanswered request (a request they received does not count until they accept it);
 * - `contacts`: only users they share an accepted conversation with (neither side has it as an
 *   unanswered request);
 * - `nobody`.
 * A block, either way, hides presence whatever the setting.
 */
export const PresenceVisibility = z.enum(['everyone', 'contacts', 'nobody']);
export type PresenceVisibility = z.infer<typeof PresenceVisibility>;

// ---- HTTP bodies (client → edge) --------------------------------------------------------------

/** `PUT /v1/settings/presence`. */
export const PresenceSettingsRequest = z.object({ visibility: PresenceVisibility }).strict();
export type PresenceSettingsRequest = z.infer<typeof PresenceSettingsRequest>;
/** `GET`/`PUT /v1/settings/presence` answer. */
export interface PresenceSettings {
  visibility: PresenceVisibility;
}

/** `POST /v1/conversations/:id/decline`: `block` also blocks whoever sent the request. */
export const DeclineRequest = z.object({ block: z.boolean().optional() }).strict();
export type DeclineRequest = z.infer<typeof DeclineRequest>;

/** A conversation the user has not accepted yet: who asked (created it, or added them), and when. */
export const RequestMark = z.object({ by: UserId, at: z.number().int() });
export type RequestMark = z.infer<typeof RequestMark>;

/** `GET /v1/blocks` answer: whom the caller blocks, newest first. */
export interface BlocksList {
  blocks: { user: string; at: number }[];
}

// ---- internal (edge ↔ region) -----------------------------------------------------------------

/**
 * ConversationDO → region outbox event: members' request state changed. `request`: `user` now
 * has an unanswered request in this conversation from `by`; `accepted` / `declined`: it was
 * answered (a decline is also a sequenced leave).
 */
export const ConsentChange = z.object({ user: UserId, state: z.enum(['request', 'accepted', 'declined']), by: UserId, ts: z.number().int() });
export type ConsentChange = z.infer<typeof ConsentChange>;
export const ConsentEvent = z.object({ kind: z.literal('consent'), changes: z.array(ConsentChange).min(1).max(LIMITS.maxMembers) });
export type ConsentEvent = z.infer<typeof ConsentEvent>;

/**
 * Edge → region before creating a conversation or adding members: of `others`, who has a block
 * with `user` either way (`blocked`), and who shares no accepted conversation with `user`
 * (`requests`: they get it as a request).
 */
export const ConsentCheckRequest = z.object({ user: UserId, others: z.array(UserId).min(1).max(LIMITS.maxMembers) });
export type ConsentCheckRequest = z.infer<typeof ConsentCheckRequest>;
export interface ConsentCheckResponse {
  blocked: string[];
  requests: string[];
}

/** Edge → region: `user` blocks (`on`) or unblocks `other`. */
export const BlockRequest = z.object({ user: UserId, other: UserId, on: z.boolean() });
export type BlockRequest = z.infer<typeof BlockRequest>;
/** Edge → region: the blocks of `user`. */
export const BlocksRequest = z.object({ user: UserId });
export type BlocksRequest = z.infer<typeof BlocksRequest>;

/** Edge → region: read (no `visibility`) or set a user's presence visibility. */
export const VisibilityRequest = z.object({ user: UserId, visibility: PresenceVisibility.optional() });
export type VisibilityRequest = z.infer<typeof VisibilityRequest>;
