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
 * - `appendMessages` is idempotent on (conversation, seq): writing a message again, even with a
 *   different body, leaves exactly one row, the first one written;
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
