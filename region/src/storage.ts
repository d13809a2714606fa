import type { Msg } from '@switchboard/protocol';

export interface StoredConversation {
  id: string;
  title: string | null;
  creator: string;
  createdAt: number;
  members: string[];
}

/**
 * Durable storage of the regional core. Contract, held by every implementation and tested by
 * the one contract suite (region/test/storage.contract.ts):
 * - `appendMessages` is idempotent on (conversation, seq): writing the same message again leaves
 *   exactly one row. Which write survives a conflicting rewrite is not promised: the sequencer
 *   gives each (conversation, seq) one content forever, so every rewrite is identical;
 * - a promise resolves only once the write is durable at the configured consistency;
 * - `readAfter` is ascending by seq and exclusive of `after`; `readBefore` is descending and
 *   exclusive of `before`; both stop at `limit` and work across any internal partitioning;
 * - `saveConversation` is an idempotent upsert of the conversation and its member set;
 * - `userConversations` lists every conversation the user is a member of, each once, with a
 *   `lastSeq` that never goes down, whatever order messages were appended in.
 */
export interface Storage {
  readonly name: string;
  init(): Promise<void>;
  saveConversation(c: StoredConversation): Promise<void>;
  getConversation(id: string): Promise<StoredConversation | null>;
  appendMessages(msgs: Msg[]): Promise<void>;
  readAfter(conv: string, after: number, limit: number): Promise<Msg[]>;
  readBefore(conv: string, before: number, limit: number): Promise<Msg[]>;
  /**
   * The user's conversations with an id after `afterConv` (exclusive; '' for the first page),
   * ordered by id, at most `limit`, each with the highest seq stored for it (0 if none). Resume
   * pages through this to find every conversation with messages a device has not seen.
   */
  userConversations(user: string, afterConv: string, limit: number): Promise<{ conv: string; lastSeq: number }[]>;
  /** Cheap liveness probe for /healthz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
