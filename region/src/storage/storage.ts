import type { DeviceCursor, Msg, PositionChange, Positions, Role, SysEvent } from '@switchboard/protocol';
import type { KeyDirectory } from '../keys/directory.ts';
import type { PushRegistrations } from '../push/registrations.ts';
import type { ConsentStore } from '../consent/consent-store.ts';

export interface StoredConversation {
  id: string;
  title: string | null;
  creator: string;
  createdAt: number;
  /** Current members. */
  members: string[];
  /**
   * Every member, current and removed, with the seq range of their membership: a message at seq
   * s is for the users with joinedSeq <= s and (leftSeq null or s <= leftSeq). Filled by
   * getConversation; ignored by saveConversation (the founding members join at 0, the creator as
   * owner).
   */
  roster?: StoredMember[];
}

export interface StoredMember {
  user: string;
  role: Role;
  joinedSeq: number;
  leftSeq: number | null;
}

export interface UserConversation {
  conv: string;
  lastSeq: number;
  lastTs: number | null;
}

/** The users a message at `seq` is for: the members as of that seq. */
export function membersAt(roster: StoredMember[], seq: number): string[] {
  return roster.filter((m) => m.joinedSeq <= seq && (m.leftSeq === null || seq <= m.leftSeq)).map((m) => m.user);
}

/**
 * Durable storage of the regional core. Contract, held by every implementation and tested by
 * the one contract suite (region/test/storage/storage.contract.ts):
 * - `appendMessages` is idempotent on (conversation, seq): writing the same message again leaves
 *   exactly one row. Which write survives a conflicting rewrite is not promised: the sequencer
 *   gives each (conversation, seq) one content forever, so every rewrite is identical;
 * - a promise resolves only once the write is durable at the configured consistency;
 * - `readAfter` is ascending by seq and exclusive of `after`; `readBefore` is descending and
 *   exclusive of `before`; both stop at `limit` and work across any internal partitioning;
 * - `saveConversation` is an idempotent upsert of the conversation and its member set;
 * - `userConversations` lists every conversation the user is or was a member of, each once, with
 *   a `lastSeq` that never goes down, whatever order messages were appended in (for a removed
 *   member, capped at the seq that removed them);
 * - `applyMembership` applies one sequenced membership change (msg.sys at `seq`); the caller
 *   applies a conversation's changes in seq order, and applying one again is harmless;
 * - a message's `sys` is stored and read back with it;
 * - `setPositions` only ever moves a member's delivered/read position forward, whatever order
 *   changes arrive in; `positions` reads them back (zeros when none);
 * - push registrations keep the promises of PushRegistrations (push/registrations.ts);
 * - the key directory keeps the promises of KeyDirectory (keys/directory.ts; its own contract suite,
 *   region/test/keys/directory.contract.ts);
 * - `setDeviceCursors` keeps, per (user, device, conversation), the highest seq it was ever given:
 *   a cursor lower than the stored one changes nothing, whatever order (or how many times)
 *   batches arrive in, concurrent ones too; cursors of two devices of one user never mix.
 *   `deviceCursors` reads one device's back.
 * - consent (blocks, presence visibility, message requests) keeps the promises of ConsentStore
 *   (consent/consent-store.ts; its own contract suite, region/test/consent/consent-store.contract.ts).
 */
export interface Storage extends PushRegistrations, KeyDirectory, ConsentStore {
  readonly name: string;
  init(): Promise<void>;
  saveConversation(c: StoredConversation): Promise<void>;
  getConversation(id: string): Promise<StoredConversation | null>;
  appendMessages(msgs: Msg[]): Promise<void>;
  applyMembership(conv: string, seq: number, sys: SysEvent): Promise<void>;
  readAfter(conv: string, after: number, limit: number): Promise<Msg[]>;
  readBefore(conv: string, before: number, limit: number): Promise<Msg[]>;
  /**
   * The user's conversations with an id after `afterConv` (exclusive; '' for the first page),
   * ordered by id, at most `limit`, each with the highest seq stored for it (0 if none). Resume
   * pages through this to find every conversation with messages a device has not seen.
   * `lastTs` is when that newest message was sent (for a removed member: the one that removed
   * them), the creation time when there is none yet; null when unknown.
   */
  userConversations(user: string, afterConv: string, limit: number): Promise<UserConversation[]>;
  setPositions(conv: string, changes: PositionChange[]): Promise<void>;
  /** The user's positions in the given conversations (absent: zeros). */
  positions(user: string, convs: string[]): Promise<Map<string, Positions>>;
  /**
   * Devices' acked cursors (the highest seq of a conversation each device acked), forward-only;
   * a batch may mix users, devices and conversations (up to 10,000 cursors). Durable once resolved.
   */
  setDeviceCursors(cursors: DeviceCursor[]): Promise<void>;
  /** The cursors `device` of `user` acked in the given conversations (absent: not in the map). */
  deviceCursors(user: string, device: string, convs: string[]): Promise<Map<string, number>>;
  /** Cheap liveness probe for /healthz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
