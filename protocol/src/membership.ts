import { z } from 'zod';
import { DeviceId, UserId } from './ids.ts';
import { LIMITS } from './limits.ts';

/**
 * Group membership. Membership changes are sequenced by the ConversationDO like messages: each
 * takes the next seq and appears in the history as a `msg` whose `sys` field says what changed
 * (its `body` is empty). Every message is delivered to exactly the members as of its seq.
 */
export const Role = z.enum(['owner', 'admin', 'member']);
export type Role = z.infer<typeof Role>;

/**
 * What a membership change did: `users` added, removed, or given `role`; `by` made the change.
 * In an end-to-end encrypted conversation a member's devices change too: `link` (a device of
 * `users[0]` linked from another of theirs) and `revoke` (one revoked) name that `device`; they
 * change no membership, only the MLS group. Every change that touches the group forces a key
 * rotation, and `commit` names the device the server asks to commit it (others step in after a
 * while if it does not: see PROTOCOL.md).
 */
export const SysEvent = z.object({
  op: z.enum(['add', 'remove', 'role', 'link', 'revoke']),
  by: UserId,
  users: z.array(UserId).min(1).max(LIMITS.maxMembers),
  role: Role.optional(),
  device: DeviceId.optional(),
  commit: z.object({ user: UserId, device: DeviceId }).optional(),
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

/** Whether a system event changes who the members are or their roles (`link`/`revoke` change devices only). */
export function changesMembership(sys: SysEvent): boolean {
  return sys.op === 'add' || sys.op === 'remove' || sys.op === 'role';
}
