import type { WireMsg } from './api.ts';

/**
 * What devices had in flight when their sockets closed, kept for their next connection to this
 * gateway: a device that reconnects gets those messages again at once, before it even resumes,
 * however soon it comes back (the region's copy of them may still be on its way, so its resume
 * could not have listed them yet). Memory only and bounded: entries older than `ttlMs` are
 * dropped, and past `maxMsgs` the oldest devices' go first. Losing them costs time, not
 * messages: the region's fan-out delivers to any socket that connected after a live push, and
 * resume lists every conversation the region has newer messages of.
 */
export class Orphans {
  /** key → messages and when they were put; insertion order is age order. */
  private readonly held = new Map<string, { msgs: WireMsg[]; at: number; bytes: number }>();
  private bytes = 0;

  constructor(
    private readonly ttlMs = 120_000,
    private readonly maxBytes = 32 * 1024 * 1024,
  ) {}

  put(key: string, msgs: WireMsg[], now: number): void {
    if (msgs.length === 0) return;
    const prior = this.take(key, now);
    const all = prior.length > 0 ? merge(prior, msgs) : msgs;
    const bytes = all.reduce((n, m) => n + m.text.length, 0);
    this.held.set(key, { msgs: all, at: now, bytes });
    this.bytes += bytes;
    this.sweep(now);
  }

  /** The device's held messages (removed), oldest seq first per conversation; [] when none or expired. */
  take(key: string, now: number): WireMsg[] {
    const h = this.held.get(key);
    if (!h) return [];
    this.held.delete(key);
    this.bytes -= h.bytes;
    return now - h.at <= this.ttlMs ? h.msgs : [];
  }

  sweep(now: number): void {
    for (const [key, h] of this.held) {
      if (now - h.at <= this.ttlMs && this.bytes <= this.maxBytes) break;
      this.held.delete(key);
      this.bytes -= h.bytes;
    }
  }

  /** Frame bytes held (each message counted once per device holding it). */
  get size(): number {
    return this.bytes;
  }
}

/** Two lists of messages as one, each (conv, seq) once, seq order per conversation. */
function merge(a: WireMsg[], b: WireMsg[]): WireMsg[] {
  const seen = new Map<string, WireMsg>();
  for (const m of [...a, ...b]) seen.set(`${m.conv}\n${m.seq}`, m);
  return [...seen.values()].sort((x, y) => (x.conv < y.conv ? -1 : x.conv > y.conv ? 1 : x.seq - y.seq));
}
