import type { Storage } from '../storage/storage.ts';

export interface ContactsOptions {
  /** A user's contact set is reused this long. Default 60 s. */
  ttlMs?: number;
  /** A name missing from a cached set is looked up again if the set is older than this (a conversation may be new). Default 1 s. */
  recheckMs?: number;
  /** Users whose sets are cached (least recently used go first). Default 10 000. */
  maxUsers?: number;
}

/**
 * Who may watch whom: users who share a conversation. A user's contacts are the union of the
 * members of every conversation they are in (from regional storage), cached per user.
 */
export class Contacts {
  private readonly cache = new Map<string, { users: Set<string>; at: number }>();
  private readonly ttlMs: number;
  private readonly recheckMs: number;
  private readonly maxUsers: number;

  constructor(
    private readonly storage: Storage,
    opts: ContactsOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 60_000;
    this.recheckMs = opts.recheckMs ?? 1_000;
    this.maxUsers = opts.maxUsers ?? 10_000;
  }

  /** The users in `users` that `user` shares no conversation with (a user may always watch themself). */
  async strangers(user: string, users: string[]): Promise<string[]> {
    const others = users.filter((u) => u !== user);
    if (!others.length) return [];
    let hit = this.cache.get(user);
    const now = Date.now();
    if (!hit || now - hit.at > this.ttlMs || (now - hit.at > this.recheckMs && others.some((u) => !hit!.users.has(u)))) {
      hit = { users: await this.load(user), at: now };
    }
    // Re-inserting keeps the map in least-recently-used order.
    this.cache.delete(user);
    this.cache.set(user, hit);
    while (this.cache.size > this.maxUsers) this.cache.delete(this.cache.keys().next().value!);
    return others.filter((u) => !hit.users.has(u));
  }

  private async load(user: string): Promise<Set<string>> {
    const out = new Set<string>();
    let after = '';
    for (;;) {
      const page = await this.storage.userConversations(user, after, 500);
      for (let i = 0; i < page.length; i += 16) {
        const convs = await Promise.all(page.slice(i, i + 16).map((c) => this.storage.getConversation(c.conv)));
        for (const c of convs) for (const m of c?.members ?? []) out.add(m);
      }
      if (page.length < 500) return out;
      after = page.at(-1)!.conv;
    }
  }
}
