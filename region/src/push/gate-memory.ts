import { refill, type PushClaim, type PushGate, type PushRate, type PushTake } from './gate.ts';

/** Embedded gate: in-process maps, for a single region process (`npm start`). */
export class MemoryPushGate implements PushGate {
  readonly name = 'memory';
  private readonly holds = new Map<string, { until: number; owner: string; sent: boolean }>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  async claim(user: string, device: string, holdMs: number, owner: string, now = Date.now()): Promise<PushClaim> {
    const k = `${user}\n${device}`;
    const h = this.holds.get(k);
    if (h && h.until > now) return h.owner !== owner ? 'held' : h.sent ? 'sent' : 'claimed';
    this.holds.set(k, { until: now + holdMs, owner, sent: false });
    if (this.holds.size > 100_000) for (const [key, x] of this.holds) if (x.until <= now) this.holds.delete(key);
    return 'claimed';
  }

  async sent(user: string, device: string, owner: string, now = Date.now()): Promise<void> {
    const h = this.holds.get(`${user}\n${device}`);
    if (h && h.until > now && h.owner === owner) h.sent = true;
  }

  async release(user: string, device: string): Promise<void> {
    this.holds.delete(`${user}\n${device}`);
  }

  async take(user: string, device: string, rate: PushRate, now = Date.now()): Promise<PushTake> {
    const k = `${user}\n${device}`;
    const b = this.buckets.get(k);
    const tokens = b ? refill(b.tokens, now - b.at, rate) : rate.burst;
    if (tokens < 1) return { ok: false, retryAfterMs: Math.ceil(((1 - tokens) * 3_600_000) / rate.perHour) };
    this.buckets.set(k, { tokens: tokens - 1, at: now });
    if (this.buckets.size > 100_000) this.buckets.delete(this.buckets.keys().next().value!);
    return { ok: true };
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}
