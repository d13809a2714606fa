import type { PresenceVisibility } from '@switchboard/protocol';

/** An unanswered message request: `user` was put in `conv` by `by` at `at` and has not accepted. */
export interface StoredRequest {
  conv: string;
  user: string;
  by: string;
  at: number;
}

/**
 * The durable consent state of the region (part of Storage; contract in
 * region/test/consent/consent-store.contract.ts, run against every engine):
 * - blocks: `block` is an idempotent upsert (the latest time is kept), `unblock` removes; neither
 *   fails when there is nothing to do. `blocksOf` lists whom a user blocks; `blockedBetween`
 *   answers, of `others`, those with a block between them and `user` in either direction.
 * - presence visibility: `presenceVisibility` answers the stored setting of each user asked for
 *   (absent: never set, which means `everyone`); setting it again replaces it.
 * - requests: `setRequests` records unanswered requests (idempotent), `clearRequests` removes
 *   them (accepted, declined, or the member left); `requestsOf` lists a user's by conversation,
 *   `requestsIn` the users with one in a conversation. Both views always agree.
 */
export interface ConsentStore {
  block(blocker: string, blocked: string, at: number): Promise<void>;
  unblock(blocker: string, blocked: string): Promise<void>;
  blocksOf(user: string): Promise<{ user: string; at: number }[]>;
  blockedBetween(user: string, others: string[]): Promise<Set<string>>;
  setPresenceVisibility(user: string, visibility: PresenceVisibility): Promise<void>;
  presenceVisibility(users: string[]): Promise<Map<string, PresenceVisibility>>;
  setRequests(requests: StoredRequest[]): Promise<void>;
  clearRequests(conv: string, users: string[]): Promise<void>;
  requestsOf(user: string): Promise<StoredRequest[]>;
  requestsIn(conv: string): Promise<string[]>;
}
