import type { Beat, Presence, PresenceState, Watcher } from './presence.ts';

interface UserEntry {
  /** device → deadline and last heartbeat (ms). */
  devices: Map<string, { deadline: number; beatAt: number }>;
  /** Whether watchers were last told online. */
  online: boolean;
  lastSeen: number | null;
}

const wkey = (w: { user: string; device: string }) => `${w.user}\n${w.device}`;

/** Embedded presence: in-process maps, for a single region process. */
export class MemoryPresence implements Presence {
  readonly name = 'memory';
  private readonly users = new Map<string, UserEntry>();
  /** watched user → watcher key → watcher. */
  private readonly watchersOf = new Map<string, Map<string, Watcher>>();
  /** watcher key → watched users. */
  private readonly watchedBy = new Map<string, Set<string>>();

  constructor(private readonly clock: () => number = Date.now) {}

  async beat(beats: Beat[], ttlMs: number): Promise<PresenceState[]> {
    const now = this.clock();
    const changes: PresenceState[] = [];
    for (const b of beats) {
      let e = this.users.get(b.user);
      if (!e) this.users.set(b.user, (e = { devices: new Map(), online: false, lastSeen: null }));
      const beatAt = now - (b.ageMs ?? 0);
      const deadline = beatAt + ttlMs;
      const cur = e.devices.get(b.device);
      if (deadline <= now) continue;
      if (!cur || cur.deadline < deadline) e.devices.set(b.device, { deadline, beatAt });
      if (!e.online) {
        e.online = true;
        changes.push({ user: b.user, status: 'online', lastSeen: null });
      }
    }
    return changes;
  }

  async down(user: string, device: string): Promise<PresenceState | null> {
    const e = this.users.get(user);
    if (!e || !e.devices.delete(device)) return null;
    return this.settle(user, e, this.clock());
  }

  async sweep(limit: number): Promise<{ changes: PresenceState[]; ended: { user: string; device: string }[] }> {
    const now = this.clock();
    const changes: PresenceState[] = [];
    const ended: { user: string; device: string }[] = [];
    let n = 0;
    for (const [user, e] of this.users) {
      let last = -1;
      for (const [device, d] of e.devices) {
        if (d.deadline > now) continue;
        e.devices.delete(device);
        ended.push({ user, device });
        last = Math.max(last, d.beatAt);
        n++;
      }
      if (last >= 0) {
        const c = this.settle(user, e, last);
        if (c) changes.push(c);
      }
      if (n >= limit) break;
    }
    return { changes, ended };
  }

  /** After a device went: offline (once) when none is left. */
  private settle(user: string, e: UserEntry, seenAt: number): PresenceState | null {
    const now = this.clock();
    for (const d of e.devices.values()) if (d.deadline > now) return null;
    if (!e.online) return null;
    e.online = false;
    e.lastSeen = Math.max(seenAt, e.lastSeen ?? 0);
    return { user, status: 'offline', lastSeen: e.lastSeen };
  }

  async state(users: string[]): Promise<PresenceState[]> {
    const now = this.clock();
    return users.map((user) => {
      const e = this.users.get(user);
      if (!e) return { user, status: 'offline', lastSeen: null };
      let live = false;
      let seen = e.lastSeen;
      for (const d of e.devices.values()) {
        if (d.deadline > now) live = true;
        else seen = Math.max(seen ?? 0, d.beatAt);
      }
      return live ? { user, status: 'online', lastSeen: null } : { user, status: 'offline', lastSeen: seen };
    });
  }

  async watch(w: Watcher, users: string[], max: number): Promise<boolean> {
    const k = wkey(w);
    const set = this.watchedBy.get(k) ?? new Set<string>();
    const added = users.filter((u) => !set.has(u));
    if (set.size + new Set(added).size > max) return false;
    this.watchedBy.set(k, set);
    for (const u of users) {
      set.add(u);
      let m = this.watchersOf.get(u);
      if (!m) this.watchersOf.set(u, (m = new Map()));
      m.set(k, { ...w });
    }
    return true;
  }

  async unwatch(w: { user: string; device: string }, users: string[]): Promise<void> {
    const k = wkey(w);
    const set = this.watchedBy.get(k);
    for (const u of users) {
      set?.delete(u);
      const m = this.watchersOf.get(u);
      m?.delete(k);
      if (m?.size === 0) this.watchersOf.delete(u);
    }
    if (set?.size === 0) this.watchedBy.delete(k);
  }

  async endWatches(w: { user: string; device: string }): Promise<void> {
    await this.unwatch(w, [...(this.watchedBy.get(wkey(w)) ?? [])]);
  }

  async watchers(user: string): Promise<Watcher[]> {
    return [...(this.watchersOf.get(user)?.values() ?? [])].map((w) => ({ ...w }));
  }

  async watching(w: { user: string; device: string }): Promise<number> {
    return this.watchedBy.get(wkey(w))?.size ?? 0;
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {
    this.users.clear();
    this.watchersOf.clear();
    this.watchedBy.clear();
  }
}
