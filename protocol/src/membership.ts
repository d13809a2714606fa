import { z } from 'zod';
import { UserId } from './ids.ts';
import { LIMITS } from './limits.ts';

/**
 * Group membership. Membership changes are sequenced by the ConversationDO like messages: each
 * takes the next seq and appears in the history as a `msg` whose `sys` field says what changed
 * (its `body` is empty). Every message is delivered to exactly the members as of its seq.
 */
export const Role = z.enum(['owner', 'admin', 'member']);
export type Role = z.infer<typeof Role>;

/** What a membership change did: `users` added, removed, or given `role`; `by` made the change. */
export const SysEvent = z.object({
  op: z.enum(['add', 'remove', 'role']),
  by: UserId,
  users: z.array(UserId).min(1).max(LIMITS.maxMembers),
  role: Role.optional(),
});
export type SysEvent = z.infer<typeof SysEvent>;

/**
 * Who may read which seqs. `full`: a member added later reads the whole history; `join`
 * (default): from the seq of the change that added them. A removed member reads up to and
 * including the seq of their removal, never past it.
 */
export const HistoryVisibility = z.enum(['join', 'full']);
export type HistoryVisibility = z.infer<typeof HistoryVisibility>;

// ---- HTTP bodies -----------------------------------------------------------------------------

/** `POST /v1/conversations/:id/members`: add users (as `member` unless the owner says `admin`). */
export const AddMembersRequest = z.object({ users: z.array(UserId).min(1).max(LIMITS.maxMembers), role: z.enum(['admin', 'member']).optional() }).strict();
/** `PATCH /v1/conversations/:id/members/:user`: the owner sets a member's role. */
export const SetRoleRequest = z.object({ role: z.enum(['admin', 'member']) }).strict();
