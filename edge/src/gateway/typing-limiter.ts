import { PRESENCE } from '@switchboard/protocol';

/**
 * Per device and conversation, at most one `typing` per PRESENCE.typingMinIntervalMs is relayed;
 * the rest are dropped without an error (the next allowed one renews the indicator anyway).
 * In memory: after the gateway hibernates it simply starts afresh. `device` is the gateway's
 * device key (user and device: device ids are only unique per user).
 */
export class TypingLimiter {
  private readonly last = new Map<string, number>();

  allow(device: string, conv: string, now = Date.now()): boolean {
    const key = `${device}\n${conv}`;
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < PRESENCE.typingMinIntervalMs) return false;
    this.last.set(key, now);
    if (this.last.size > 1000) for (const [k, t] of this.last) if (now - t >= PRESENCE.typingMinIntervalMs) this.last.delete(k);
    return true;
  }
}
