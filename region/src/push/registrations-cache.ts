import type { PushRegistration } from './provider.ts';
import type { PushRegistrations } from './registrations.ts';

/**
 * Fan-out's view of members' push registrations: a large group's offline members are looked up
 * per message, so their registrations are cached for `ttlMs` (a device registered a moment ago
 * may miss a notification that long; one unregistered is skipped by the push worker, which reads
 * the registration again before it sends). Registrations changed through this process are
 * forgotten at once. Bounded: past `max` users the oldest go.
 */
export class RegistrationsCache {
  private readonly entries = new Map<string, { regs: PushRegistration[]; at: number }>();

  constructor(
    private readonly store: Pick<PushRegistrations, 'pushRegistrations'>,
    private readonly ttlMs = 15_000,
    private readonly max = 100_000,
  ) {}

  /** Registrations of `users` (absent: none), reading the store once for every user not cached. */
  async of(users: string[], now = Date.now()): Promise<Map<string, PushRegistration[]>> {
    const out = new Map<string, PushRegistration[]>();
    const missing: string[] = [];
    for (const u of new Set(users)) {
      const e = this.entries.get(u);
      if (e && now - e.at < this.ttlMs) {
        if (e.regs.length) out.set(u, e.regs);
      } else missing.push(u);
    }
    if (missing.length) {
      const found = await this.store.pushRegistrations(missing);
      for (const u of missing) {
        const regs = found.get(u) ?? [];
        this.entries.delete(u);
        this.entries.set(u, { regs, at: now });
        if (regs.length) out.set(u, regs);
      }
      while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
    }
    return out;
  }

  forget(user: string): void {
    this.entries.delete(user);
  }
}
