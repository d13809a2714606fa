/** A user's presence as watchers see it. `lastSeen` (ms since the epoch) is null while online or never seen. */
export interface PresenceState {
  user: string;
  status: 'online' | 'offline';
  lastSeen: number | null;
}

/** A device proved alive `ageMs` ago (0 = now). */
export interface Beat {
  user: string;
  device: string;
  ageMs?: number;
}

/** A watching device, and where its socket is (the edge, and the gateway on it): where presence changes are pushed. */
export interface Watcher {
  user: string;
  device: string;
  edge: string;
  gw: string;
}

/**
 * Presence registry: per-device TTL entries fed by heartbeats, and who watches whom. Contract,
 * tested by region/test/presence/presence.contract.ts against every implementation:
 * - `beat` makes each device live until `ttlMs - ageMs` from now (never earlier than a deadline
 *   it already has). A user is online while any device is live.
 * - every method that can change a user's status returns the change, exactly once per change
 *   across all callers and processes: `online` when the first live device appears, `offline`
 *   (with `lastSeen`) when the last one goes. Whoever receives a change tells the watchers.
 * - `down` ends a device at once (a clean disconnect); `lastSeen` is then now.
 * - `sweep` ends every device whose deadline has passed and reports the resulting changes, with
 *   `lastSeen` = that device's last heartbeat. Calling it periodically is what bounds how long a
 *   silent (killed) device stays online: TTL + the sweep interval. It never depends on keyspace
 *   notifications, and concurrent or repeated sweeps report each change once.
 * - `state` answers from deadlines, not from the last reported change: a device past its
 *   deadline reads offline even before a sweep has run.
 * - `lastSeen` survives the user going offline; it is kept, not expired.
 * - watches are per watching device: `watch` adds at most `max` watched users per device (false,
 *   and nothing added, when the total would exceed it); `unwatch` removes; `endWatches` removes
 *   all of a device's watches (its connection ended). `watchers` lists who watches a user, each
 *   with the edge and gateway of the latest `watch` that named that user (a device that watched
 *   again from another gateway is pushed to there).
 */
export interface Presence {
  readonly name: string;
  beat(beats: Beat[], ttlMs: number): Promise<PresenceState[]>;
  down(user: string, device: string): Promise<PresenceState | null>;
  /** Ends devices past their deadline, at most `limit` per call: the status changes, and the devices ended. */
  sweep(limit: number): Promise<{ changes: PresenceState[]; ended: { user: string; device: string }[] }>;
  state(users: string[]): Promise<PresenceState[]>;
  watch(watcher: Watcher, users: string[], max: number): Promise<boolean>;
  unwatch(watcher: { user: string; device: string }, users: string[]): Promise<void>;
  endWatches(watcher: { user: string; device: string }): Promise<void>;
  /** The devices watching `user`. */
  watchers(user: string): Promise<Watcher[]>;
  /** Number of users a device watches. */
  watching(watcher: { user: string; device: string }): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
