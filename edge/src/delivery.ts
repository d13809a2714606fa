import type { Msg } from '@switchboard/protocol';
import type { SqlLike } from './sequencer.ts';

export interface DeliveryOptions {
  /** Unacked messages a device may have outstanding; past this it is `lagging`. */
  window: number;
  /** First retransmit after this many ms; doubles per attempt. */
  retransmitMs: number;
  /** Cap of the retransmit interval. */
  maxRetransmitMs: number;
  /** Attempts (the first send included) before a device is given up on as `stalled`. */
  maxAttempts: number;
}

export const DEFAULT_DELIVERY: DeliveryOptions = { window: 1000, retransmitMs: 3000, maxRetransmitMs: 30_000, maxAttempts: 6 };

export interface Inflight {
  device: string;
  conv: string;
  seq: number;
  msg: Msg;
  attempts: number;
}

interface Entry {
  msg: Msg;
  due: number;
  attempts: number;
}

const key = (a: string, b: string | number) => `${a}\u0000${b}`;

/**
 * Per-device delivery state of one user. Contract:
 * - every message pushed to a device stays in flight until that device acks a seq at or above
 *   it in its conversation (acks are cumulative), and is due for retransmit meanwhile, with
 *   doubling intervals; a message already in flight or acked is not pushed again;
 * - a device's window of unacked messages is bounded: `track` refuses past it (`lagging`), and
 *   a device that does not ack after `maxAttempts` sends is `stalled`; the caller then closes
 *   that socket and the device resumes by sync, which is always complete;
 * - the delivered cursor per (device, conversation) only moves forward; `flush` makes it durable
 *   (the caller flushes within a second of an ack, and before answering a resume).
 *
 * Where each part lives, and why: the in-flight window is memory only. It exists for live
 * sockets, and a socket does not outlive its object's memory without the device reconnecting and
 * resuming, so persisting it would buy nothing but a storage commit per push. Cursors are read
 * from SQLite once and then served from memory; acks only mark them dirty, and one flush writes
 * them together. A crash loses at most the last second of acks: the device is then re-sent a
 * few messages it has, which it drops by (conv, seq).
 */
export class DeliveryTracker {
  /** device → `conv\0seq` → entry. */
  private readonly inflight = new Map<string, Map<string, Entry>>();
  /** `device\0conv` → acked seq (loaded or acked). */
  private readonly cursorCache = new Map<string, number>();
  private readonly dirty = new Set<string>();

  constructor(
    private readonly sql: SqlLike,
    private readonly opts: DeliveryOptions = DEFAULT_DELIVERY,
  ) {
    sql.exec(`CREATE TABLE IF NOT EXISTS cursors (
      device TEXT NOT NULL, conv TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (device, conv))`);
    // Earlier versions kept the in-flight window here; it is memory only now.
    sql.exec('DROP TABLE IF EXISTS inflight');
  }

  /**
   * Records a push of `msg` to `device`. `sent`: push it now; `acked`: the device already has
   * it (skip); `inflight`: it was pushed and awaits its ack (skip: the retransmit timer owns it,
   * e.g. when the live path and the region's fan-out both deliver it); `lagging`: its window is
   * full (close it; it resumes by sync).
   */
  track(device: string, msg: Msg, now: number): 'sent' | 'acked' | 'inflight' | 'lagging' {
    if (msg.seq <= this.cursor(device, msg.conv)) return 'acked';
    let window = this.inflight.get(device);
    const k = key(msg.conv, msg.seq);
    if (window?.has(k)) return 'inflight';
    if ((window?.size ?? 0) >= this.opts.window) return 'lagging';
    if (!window) this.inflight.set(device, (window = new Map()));
    window.set(k, { msg, due: now + this.opts.retransmitMs, attempts: 1 });
    return 'sent';
  }

  /** A cumulative ack: the device has every message of `conv` up to `seq`. */
  ack(device: string, conv: string, seq: number): void {
    const ck = key(device, conv);
    if (seq > this.cursor(device, conv)) {
      this.cursorCache.set(ck, seq);
      this.dirty.add(ck);
    }
    const window = this.inflight.get(device);
    if (!window) return;
    for (const [k, e] of window) if (e.msg.conv === conv && e.msg.seq <= seq) window.delete(k);
    if (window.size === 0) this.inflight.delete(device);
  }

  cursor(device: string, conv: string): number {
    const ck = key(device, conv);
    const hit = this.cursorCache.get(ck);
    if (hit !== undefined) return hit;
    const seq = this.one<{ seq: number }>('SELECT seq FROM cursors WHERE device = ? AND conv = ?', device, conv)?.seq ?? 0;
    this.cursorCache.set(ck, seq);
    return seq;
  }

  /** Cursors of `device` for the given conversations (absent = 0). */
  cursors(device: string, convs: string[]): Map<string, number> {
    const out = new Map<string, number>();
    for (let i = 0; i < convs.length; i += 100) {
      const chunk = convs.slice(i, i + 100);
      const rows = this.all<{ conv: string; seq: number }>(
        `SELECT conv, seq FROM cursors WHERE device = ? AND conv IN (${chunk.map(() => '?').join(',')})`,
        device,
        ...chunk,
      );
      for (const r of rows) out.set(r.conv, r.seq);
    }
    // Acks not flushed yet are newer than what is stored.
    for (const conv of convs) {
      const cached = this.cursorCache.get(key(device, conv));
      if (cached !== undefined && cached > (out.get(conv) ?? 0)) out.set(conv, cached);
    }
    return out;
  }

  /** Whether acks wait to be written. */
  get needsFlush(): boolean {
    return this.dirty.size > 0;
  }

  /** Writes every cursor moved since the last flush (one statement each, one commit). */
  flush(): number {
    const n = this.dirty.size;
    for (const ck of this.dirty) {
      const [device, conv] = ck.split('\u0000') as [string, string];
      this.sql.exec(
        `INSERT INTO cursors (device, conv, seq) VALUES (?, ?, ?)
         ON CONFLICT(device, conv) DO UPDATE SET seq = MAX(seq, excluded.seq)`,
        device,
        conv,
        this.cursorCache.get(ck)!,
      );
    }
    this.dirty.clear();
    return n;
  }

  /**
   * Messages due for retransmit at `now`, oldest seq first per conversation, rescheduled with
   * doubled intervals; and the devices that exhausted their attempts (their windows are dropped).
   */
  due(now: number): { resend: Inflight[]; stalled: string[] } {
    const stalled: string[] = [];
    const resend: Inflight[] = [];
    for (const device of [...this.inflight.keys()].sort()) {
      const window = this.inflight.get(device)!;
      const ready = [...window.values()].filter((e) => e.due <= now);
      if (ready.some((e) => e.attempts >= this.opts.maxAttempts)) {
        stalled.push(device);
        this.forget(device);
        continue;
      }
      ready.sort((a, b) => (a.msg.conv < b.msg.conv ? -1 : a.msg.conv > b.msg.conv ? 1 : a.msg.seq - b.msg.seq));
      for (const e of ready) {
        e.due = now + Math.min(this.opts.maxRetransmitMs, this.opts.retransmitMs * 2 ** e.attempts);
        e.attempts++;
        resend.push({ device, conv: e.msg.conv, seq: e.msg.seq, msg: e.msg, attempts: e.attempts });
      }
    }
    return { resend, stalled };
  }

  /** When the next retransmit is due, or null when nothing is in flight. */
  nextDue(): number | null {
    let next: number | null = null;
    for (const window of this.inflight.values()) for (const e of window.values()) if (next === null || e.due < next) next = e.due;
    return next;
  }

  /** Drops a device's in-flight messages (its socket closed: it resumes by sync). Cursors stay. */
  forget(device: string): void {
    this.inflight.delete(device);
  }

  inflightCount(device: string): number {
    return this.inflight.get(device)?.size ?? 0;
  }

  private all<T>(query: string, ...bindings: unknown[]): T[] {
    return this.sql.exec(query, ...bindings).toArray() as T[];
  }

  private one<T>(query: string, ...bindings: unknown[]): T | undefined {
    return this.all<T>(query, ...bindings)[0];
  }
}
