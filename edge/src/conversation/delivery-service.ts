import { fromBase64Url, readMlsHeader, type ErrorCode, type MlsHeader } from '@switchboard/protocol';
import { groupInfoMembers, inspectCommit } from '@switchboard/protocol/mls/inspect';

/**
 * The conversation as MLS's Delivery Service (RFC 9420 §14, RFC 9750): for an end-to-end encrypted
 * conversation the sequencer stores only MLS messages, and decides from their cleartext header
 * alone (no key):
 * - an application message (PrivateMessage) is accepted only at the current epoch, and not while
 *   a rotation is pending (a membership change since the last commit): `stale_epoch`,
 *   `rekey_required`;
 * - a commit (a PublicMessage, so its sender is readable) is accepted only at the current epoch:
 *   the first one sequenced ends the epoch, every later one for that epoch is `stale_epoch`
 *   (exactly one commit per epoch), and it ends a pending rotation;
 * - a member's proposal (PublicMessage) is accepted at the current epoch and changes nothing here;
 * - Welcome, GroupInfo and KeyPackage messages are not conversation messages.
 * The group id of every message must be the conversation's (UTF-8 of its id).
 */
export interface DsState {
  epoch: bigint;
  /** A membership change waits for a commit (set by the sequencer on every change). */
  rekeyPending: boolean;
  /** Hex of the MLS group id: UTF-8 of the conversation id. */
  groupId: string;
}

export type DsVerdict = { ok: true; header: MlsHeader; kind: 'application' | 'commit' | 'proposal' } | { ok: false; code: ErrorCode; message: string };

export function mlsGroupIdHex(conv: string): string {
  return Array.from(new TextEncoder().encode(conv), (b) => b.toString(16).padStart(2, '0')).join('');
}

export function judge(body: string, state: DsState): DsVerdict {
  const bytes = fromBase64Url(body);
  const header = bytes && readMlsHeader(bytes);
  if (!header) return { ok: false, code: 'invalid_frame', message: 'an end-to-end encrypted conversation takes MLS messages (base64url) only' };
  if (header.wireFormat !== 'private' && header.wireFormat !== 'public') return { ok: false, code: 'invalid_frame', message: `an MLS ${header.wireFormat} is not a conversation message` };
  if (header.groupId !== state.groupId) return { ok: false, code: 'invalid_frame', message: 'MLS message of another group' };
  const epoch = header.epoch!;
  if (header.contentType === 'application') {
    if (header.wireFormat !== 'private') return { ok: false, code: 'invalid_frame', message: 'application messages must be encrypted (PrivateMessage)' };
    if (epoch !== state.epoch) return { ok: false, code: 'stale_epoch', message: `message at epoch ${epoch}, conversation at ${state.epoch}` };
    if (state.rekeyPending) return { ok: false, code: 'rekey_required', message: 'membership changed: waiting for a commit that rotates the keys' };
    return { ok: true, header, kind: 'application' };
  }
  if (header.wireFormat !== 'public') return { ok: false, code: 'invalid_frame', message: 'commits and proposals must be PublicMessages (the server reads their epoch and sender)' };
  if (epoch !== state.epoch) return { ok: false, code: 'stale_epoch', message: `${header.contentType} at epoch ${epoch}, conversation at ${state.epoch}` };
  if (header.contentType === 'commit') {
    const s = header.sender?.type;
    if (s !== 'member' && s !== 'new_member_commit') return { ok: false, code: 'invalid_frame', message: 'a commit comes from a member or a joining device' };
    return { ok: true, header, kind: 'commit' };
  }
  if (header.sender?.type !== 'member') return { ok: false, code: 'invalid_frame', message: 'only members send proposals here (the server’s own are sequenced by the server)' };
  return { ok: true, header, kind: 'proposal' };
}

/** What the conversation knows when a commit arrives: the last GroupInfo and the changes waiting for a commit. */
export interface PendingChanges {
  /** base64url GroupInfo of the last commit (null before the first). */
  groupInfo: string | null;
  /** Users added through the API since the last commit: each needs a device added. */
  adds: string[];
  /** Users removed through the API since the last commit: every leaf of theirs must go. */
  removes: string[];
  /** Members' devices linked since the last commit: each must be added. */
  links: { user: string; device: string }[];
  /** Members' devices revoked since the last commit: each one's leaf must go. */
  revokes: { user: string; device: string }[];
  /** Every device revoked in this conversation (for good): none may be added or rejoin. */
  revoked: { user: string; device: string }[];
  /** Current members. */
  isMember: (user: string) => boolean;
  /** Who sends the commit: they may also remove their own devices (a revoked one). */
  committer: string;
  /** The committer's device. */
  committerDevice: string;
  /** The commit's sender type: `new_member_commit` is an external commit (a device joining or rejoining). */
  external: boolean;
}

/** What a commit carries beside itself: the group's new GroupInfo and, when it adds devices, their Welcome (base64url MLSMessages). */
export interface CommitExtras {
  groupInfo: string;
  welcome?: string;
}

/**
 * A commit (already judged one) with its extras, against what waits for it: its GroupInfo and
 * Welcome must be those (a Welcome is required when users were added: `invalid_frame`), and the
 * commit must apply what waits (forced rotation) and nothing it may not (`conflict`): it removes
 * every leaf of the removed users and of revoked devices (as the last GroupInfo's tree lists
 * them), adds a device of every added user and every linked device, adds no device of a
 * non-member nor a revoked one, and removes no leaf but those and the committer's own. Proposals named by reference are refused for now: the server's and members'
 * proposals must be carried in the commit so it can be checked without keys. Accepted, it names
 * the users whose devices it adds (who get its Welcome).
 */
export function judgeCommit(commit: string, extras: CommitExtras, p: PendingChanges): { ok: true; welcomed: string[] } | { ok: false; code: ErrorCode; message: string } {
  const invalid = (message: string) => ({ ok: false as const, code: 'invalid_frame' as const, message });
  const conflict = (message: string) => ({ ok: false as const, code: 'conflict' as const, message });
  const kind = (text: string) => {
    const bytes = fromBase64Url(text);
    return bytes ? readMlsHeader(bytes)?.wireFormat : undefined;
  };
  if (kind(extras.groupInfo) !== 'group_info') return invalid('groupInfo: expected an MLS GroupInfo (base64url)');
  if (extras.welcome !== undefined && kind(extras.welcome) !== 'welcome') return invalid('welcome: expected an MLS Welcome (base64url)');
  if ((p.adds.length > 0 || p.links.length > 0) && extras.welcome === undefined) return invalid('members or devices were added since the last commit: the commit must add their devices and carry their Welcome');
  const summary = inspectCommit(fromBase64Url(commit) ?? new Uint8Array());
  if (!summary) return conflict('not a commit the server can read (send commits as PublicMessages)');
  if (summary.byReference > 0) return conflict('proposals must be carried in the commit, not named by reference');
  if (p.external) {
    // A device (re)joining by itself: only as the device it is, never a revoked one, only the
    // user's own old leaves go, and not while a change waits for a member's commit (that commit comes first).
    if (summary.pathLeaf?.user !== p.committer || summary.pathLeaf.device !== p.committerDevice) return conflict('an external commit joins the device that sends it, as its credential must name it');
    if (p.revoked.some((r) => r.user === p.committer && r.device === p.committerDevice)) return { ok: false, code: 'forbidden', message: `device ${p.committerDevice} was revoked` };
    if (p.adds.length || p.removes.length || p.links.length || p.revokes.length) return { ok: false, code: 'rekey_required', message: 'a membership change waits for a member’s commit: rejoin after it' };
  }
  const members = (p.groupInfo ? groupInfoMembers(fromBase64Url(p.groupInfo) ?? new Uint8Array()) : null)?.members ?? [];
  const byLeaf = new Map(members.map((m) => [m.leaf, m]));
  for (const user of p.removes) {
    const missing = members.filter((m) => m.user === user && !summary.removed.includes(m.leaf)).map((m) => m.leaf);
    if (missing.length) return conflict(`${user} was removed: the commit must remove their leaves ${missing.join(', ')}`);
  }
  for (const r of p.revokes) {
    const missing = members.filter((m) => m.user === r.user && m.device === r.device && !summary.removed.includes(m.leaf)).map((m) => m.leaf);
    if (missing.length) return conflict(`device ${r.device} of ${r.user} was revoked: the commit must remove its leaf ${missing.join(', ')}`);
  }
  for (const leaf of summary.removed) {
    const user = byLeaf.get(leaf)?.user;
    const revoked = p.revokes.some((r) => r.user === user && r.device === byLeaf.get(leaf)?.device);
    if (user !== undefined && user !== p.committer && !p.removes.includes(user) && !revoked) return conflict(`leaf ${leaf} (${user}) may not be removed by this commit`);
  }
  for (const l of p.links) if (!summary.added.some((a) => a.user === l.user && a.device === l.device)) return conflict(`device ${l.device} of ${l.user} was linked: the commit must add it`);
  for (const a of summary.added) if (p.revoked.some((r) => r.user === a.user && r.device === a.device)) return conflict(`device ${a.device} of ${a.user} was revoked: it may not be added`);
  for (const user of p.adds) if (!summary.added.some((a) => a.user === user)) return conflict(`${user} was added: the commit must add their devices`);
  for (const a of summary.added) if (!p.isMember(a.user)) return conflict(`${a.user} is not a member: their device may not be added`);
  return { ok: true, welcomed: [...new Set(summary.added.map((a) => a.user))] };
}
