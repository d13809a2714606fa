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
 * - `saveConversation` is an idempotent upsert of the conversation and its member set.
 */
export interface Storage {
  readonly name: string;
  init(): Promise<void>;
  saveConversation(c: StoredConversation): Promise<void>;
  getConversation(id: string): Promise<StoredConversation | null>;
  appendMessages(msgs: Msg[]): Promise<void>;
  readAfter(conv: string, after: number, limit: number): Promise<Msg[]>;
  readBefore(conv: string, before: number, limit: number): Promise<Msg[]>;
  /** Cheap liveness probe for /healthz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
