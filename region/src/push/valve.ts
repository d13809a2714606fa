/**
 * The safety valve on token deletion: when one provider suddenly calls a large share of tokens
 * dead (a wrong APNs environment, a changed FCM project, a provider bug), deleting them would wipe
 * every device's registration. Over a sliding window, once at least `minSends` were answered and
 * more than `ratio` of them said "dead", deletion stops for that provider (the intents go to the
 * dead-letter topic instead, to be replayed) until the share falls back under it.
 */
export class DeadTokenValve {
  private readonly events = new Map<string, { at: number; dead: boolean }[]>();
  private readonly tripped = new Set<string>();

  constructor(
    private readonly opts: { windowMs: number; ratio: number; minSends: number } = { windowMs: 5 * 60_000, ratio: 0.2, minSends: 50 },
    private readonly onChange?: (provider: string, tripped: boolean, share: number) => void,
  ) {}

  /** One answer of `provider`: `dead` when it said the token is dead. */
  record(provider: string, dead: boolean, now = Date.now()): void {
    let list = this.events.get(provider);
    if (!list) this.events.set(provider, (list = []));
    list.push({ at: now, dead });
    while (list.length && list[0]!.at < now - this.opts.windowMs) list.shift();
    const deadCount = list.reduce((n, e) => n + (e.dead ? 1 : 0), 0);
    const share = list.length ? deadCount / list.length : 0;
    const trip = list.length >= this.opts.minSends && share > this.opts.ratio;
    if (trip !== this.tripped.has(provider)) {
      if (trip) this.tripped.add(provider);
      else this.tripped.delete(provider);
      this.onChange?.(provider, trip, share);
    }
  }

  /** Whether a dead token of `provider` may be deleted now. */
  allowsDelete(provider: string): boolean {
    return !this.tripped.has(provider);
  }
}
