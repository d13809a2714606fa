import type { PresenceVisibility } from '@switchboard/protocol';
import type { Storage } from '../storage/storage.ts';

export interface ContactsOptions {
  /** A user's relations are reused this long. Default 60 s. */
  ttlMs?: number;
  /**
   * A visibility setting and a block answer are reused this long: how long another region process
   * may keep serving presence after a block or a narrower setting stored by this one. Default 5 s.
   */
  settingsTtlMs?: number;
  /**
   * A name a cached set would refuse (missing, or related only through a request) is looked up
   * again if the set is older than this (a conversation may be new, a request accepted). Default 1 s.
   */
  recheckMs?: number;
  /** Users whose sets are cached (least recently used go first). Default 10 000. */
  maxUsers?: number;
}

/** How `user` relates to another user, from the conversations they share. */
interface Relation {
  /** They share a conversation in which the other has no unanswered request. */
  open: boolean;
  /** They share a conversation in which neither has an unanswered request (an accepted one). */
  mutual: boolean;
}

interface Cached<T> {
  value: T;
  at: number;
}

/**
 * Who may watch whom (PROTOCOL.md, "Consent"). W may see U's presence when neither blocks the
 * other and U's visibility allows it: `everyone` — they share a conversation U has not left as an
 * unanswered request; `contacts` — they share an accepted conversation (neither has it as a
 * request); `nobody` — never. A user may always watch themself.
 *
 * Relations come from regional storage (the members and unanswered requests of every conversation
 * a user is in), cached per user; settings and blocks are cached too. `forget…` drops what a
 * consent change made stale: this process applies every change it stores at once; another region
 * process sees a block or a setting within `settingsTtlMs`, and an accepted request at the next
 * watch after `recheckMs`.
 */
export class Contacts {
  private readonly relations = new Map<string, Cached<Map<string, Relation>>>();
  /** Loads of relations under way, by user (shared by concurrent checks). */
  private readonly loading = new Map<string, Promise<Map<string, Relation>>>();
  private readonly visibility = new Map<string, Cached<PresenceVisibility>>();
  /** Per user: others known to have (true) or not to have (false) a block with them, either way. */
  private readonly blocks = new Map<string, Cached<Map<string, boolean>>>();
  private readonly ttlMs: number;
  private readonly settingsTtlMs: number;
  private readonly recheckMs: number;
  private readonly maxUsers: number;

  constructor(
    private readonly storage: Storage,
    opts: ContactsOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 60_000;
    this.settingsTtlMs = opts.settingsTtlMs ?? 5_000;
    this.recheckMs = opts.recheckMs ?? 1_000;
    this.maxUsers = opts.maxUsers ?? 10_000;
  }

  /** The users in `users` whose presence `user` may not see. */
  async hidden(user: string, users: string[]): Promise<string[]> {
    const others = [...new Set(users.filter((u) => u !== user))];
    if (!others.length) return [];
    const [rel, vis, blocked] = await Promise.all([this.relationsOf(user, others), this.visibilityOf(others), this.blockedWith(user, others)]);
    return others.filter((u) => {
      if (blocked.has(u)) return true;
      const r = rel.get(u);
      const v = vis.get(u) ?? 'everyone';
      return v === 'nobody' || !r || (v === 'everyone' ? !r.open : !r.mutual);
    });
  }

  /**
   * Of `watchers` (users who watch `user`, each checked when the watch began), those who may still
   * see `user`'s presence now: a block or a narrower setting since then takes effect here.
   */
  async stillVisible(user: string, watchers: string[]): Promise<Set<string>> {
    const others = [...new Set(watchers.filter((w) => w !== user))];
    const out = new Set(watchers.filter((w) => w === user));
    if (!others.length) return out;
    const [vis, blocked] = await Promise.all([this.visibilityOf([user]), this.blockedWith(user, others)]);
    const v = vis.get(user) ?? 'everyone';
    if (v === 'nobody') return out;
    const rel = v === 'contacts' ? await this.relationsOf(user, others) : null;
    for (const w of others) if (!blocked.has(w) && (!rel || rel.get(w)?.mutual)) out.add(w);
    return out;
  }

  /**
   * Before `user` starts a conversation with `others` or adds them: who has a block with `user`
   * (either way), and who shares no accepted conversation with `user` (they get a request).
   */
  async check(user: string, others: string[]): Promise<{ blocked: string[]; requests: string[] }> {
    const list = [...new Set(others.filter((u) => u !== user))];
    if (!list.length) return { blocked: [], requests: [] };
    const [rel, blocked] = await Promise.all([this.relationsOf(user, list), this.storage.blockedBetween(user, list)]);
    return { blocked: list.filter((u) => blocked.has(u)), requests: list.filter((u) => !blocked.has(u) && !rel.get(u)?.mutual) };
  }

  /** Drops the cached relations of `users` (a request was made or answered, someone joined or left). */
  forgetRelations(users: Iterable<string>): void {
    for (const u of users) {
      this.relations.delete(u);
      // A load under way may have read before the change: later checks start their own.
      this.loading.delete(u);
    }
  }

  /**
   * A conversation was stored: each member whose relations are cached learns the others in place,
   * as `load` would have read them (`pending`: members holding an unanswered request). A load
   * already under way may still miss it; its set is then wrong until the next recheck.
   */
  learnConversation(members: string[], pending: Set<string>): void {
    for (const u of members) {
      const hit = this.relations.get(u);
      if (!hit) continue;
      const mine = pending.has(u);
      for (const m of members) {
        if (m === u) continue;
        const r = hit.value.get(m) ?? { open: false, mutual: false };
        if (!pending.has(m)) {
          r.open = true;
          if (!mine) r.mutual = true;
        }
        hit.value.set(m, r);
      }
    }
  }

  /** A visibility setting changed. */
  forgetVisibility(user: string): void {
    this.visibility.delete(user);
  }

  /** A block between `a` and `b` was set or lifted. */
  forgetBlock(a: string, b: string): void {
    this.blocks.get(a)?.value.delete(b);
    this.blocks.get(b)?.value.delete(a);
  }

  private touch<T>(map: Map<string, Cached<T>>, key: string, hit: Cached<T>): void {
    // Re-inserting keeps the map in least-recently-used order.
    map.delete(key);
    map.set(key, hit);
    while (map.size > this.maxUsers) map.delete(map.keys().next().value!);
  }

  private async relationsOf(user: string, others: string[]): Promise<Map<string, Relation>> {
    let hit = this.relations.get(user);
    const now = Date.now();
    const stale = !hit || now - hit.at > this.ttlMs || (now - hit.at > this.recheckMs && others.some((u) => !hit!.value.get(u)?.mutual));
    if (stale) {
      // One load per user at a time: concurrent checks (a user creating many conversations at
      // once) share it; without this each ran its own scan of every conversation of the user, and
      // 2,000 at once exhausted the Cassandra driver's in-flight requests per connection.
      let loading = this.loading.get(user);
      if (!loading) {
        const started: Promise<Map<string, Relation>> = this.load(user).finally(() => {
          if (this.loading.get(user) === started) this.loading.delete(user);
        });
        loading = started;
        this.loading.set(user, loading);
      }
      hit = { value: await loading, at: now };
    }
    this.touch(this.relations, user, hit!);
    return hit!.value;
  }

  private async visibilityOf(users: string[]): Promise<Map<string, PresenceVisibility>> {
    const now = Date.now();
    const out = new Map<string, PresenceVisibility>();
    const missing: string[] = [];
    for (const u of users) {
      const hit = this.visibility.get(u);
      if (hit && now - hit.at <= this.settingsTtlMs) out.set(u, hit.value);
      else missing.push(u);
    }
    if (missing.length) {
      const stored = await this.storage.presenceVisibility(missing);
      for (const u of missing) {
        const v = stored.get(u) ?? 'everyone';
        out.set(u, v);
        this.touch(this.visibility, u, { value: v, at: now });
      }
    }
    return out;
  }

  private async blockedWith(user: string, others: string[]): Promise<Set<string>> {
    const now = Date.now();
    let hit = this.blocks.get(user);
    if (!hit || now - hit.at > this.settingsTtlMs) hit = { value: new Map(), at: now };
    const missing = others.filter((o) => !hit!.value.has(o));
    if (missing.length) {
      const found = await this.storage.blockedBetween(user, missing);
      for (const o of missing) hit.value.set(o, found.has(o));
    }
    this.touch(this.blocks, user, hit);
    return new Set(others.filter((o) => hit!.value.get(o)));
  }

  private async load(user: string): Promise<Map<string, Relation>> {
    const out = new Map<string, Relation>();
    let after = '';
    for (;;) {
      const page = await this.storage.userConversations(user, after, 500);
      for (let i = 0; i < page.length; i += 16) {
        const convs = await Promise.all(
          page.slice(i, i + 16).map(async (c) => {
            const [conv, pending] = await Promise.all([this.storage.getConversation(c.conv), this.storage.requestsIn(c.conv)]);
            return { members: conv?.members ?? [], pending: new Set(pending) };
          }),
        );
        for (const { members, pending } of convs) {
          if (!members.includes(user)) continue; // a conversation they left relates them to nobody
          const mine = pending.has(user);
          for (const m of members) {
            if (m === user) continue;
            const r = out.get(m) ?? { open: false, mutual: false };
            if (!pending.has(m)) {
              r.open = true;
              if (!mine) r.mutual = true;
            }
            out.set(m, r);
          }
        }
      }
      if (page.length < 500) return out;
      after = page.at(-1)!.conv;
    }
  }
}
