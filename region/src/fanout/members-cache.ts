import type { Storage, StoredMember } from '../storage/storage.ts';

/**
 * Fan-out's view of each conversation's roster, keyed by membership version. Every fan-out event
 * carries the version as of its seq; a cached roster of another version is never used (a miss
 * reloads from storage, which the region has already brought up to at least that version), so a
 * membership change is respected from exactly its seq. Bounded: past `max` conversations the
 * oldest entries are dropped.
 */
export class MembersCache {
  private readonly entries = new Map<string, { ver: number; roster: StoredMember[] }>();
  constructor(
    private readonly storage: Pick<Storage, 'getConversation'>,
    private readonly max = 10_000,
  ) {}

  /** The roster for `conv` at version `ver` (undefined: an event without a version, always reloaded). */
  async roster(conv: string, ver: number | undefined, onMiss?: () => void): Promise<StoredMember[] | null> {
    const hit = this.entries.get(conv);
    if (hit && ver !== undefined && hit.ver === ver) return hit.roster;
    onMiss?.();
    const c = await this.storage.getConversation(conv);
    if (!c) return null;
    const roster = c.roster ?? c.members.map((user) => ({ user, role: 'member' as const, joinedSeq: 0, leftSeq: null }));
    if (ver !== undefined) {
      this.entries.delete(conv);
      this.entries.set(conv, { ver, roster });
      if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
    }
    return roster;
  }
}
