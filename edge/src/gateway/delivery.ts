import type { DeviceCursor } from '@switchboard/protocol';
import type { WireMsg } from './api.ts';

export interface DeliveryOptions {
  /** Unacked messages a device may have outstanding; past this it is `lagging`. */
  window: number;
  /**
   * And their size at most (characters of their frames' JSON, about bytes): 1,000 messages of
   * 64 KiB would be half a Worker's memory for one device. One message larger than this on its
   * own is still pushed. Default 8 MiB.
   */
  windowBytes?: number;
  /** First retransmit after this many ms; doubles per attempt. */
  retransmitMs: number;
  /** Cap of the retransmit interval. */
  maxRetransmitMs: number;
  /** Attempts (the first send included) before a device is given up on as `stalled`. */
  maxAttempts: number;
}

const DEFAULT_WINDOW_BYTES = 8 * 1024 * 1024;
export const DEFAULT_DELIVERY: DeliveryOptions = { window: 1000, windowBytes: DEFAULT_WINDOW_BYTES, retransmitMs: 3000, maxRetransmitMs: 30_000, maxAttempts: 6 };

/** One message in flight to one device. `msg` is shared by every device that has it in flight. */
export interface Entry {
  msg: WireMsg;
  due: number;
  attempts: number;
}

/** A device: `user` and `device` of a socket's verified token. */
export interface DeviceRef {
  user: string;
  device: string;
}

interface DeviceState extends DeviceRef {
  /** conv → seq → entry. */
  window: Map<string, Map<number, Entry>>;
  size: number;
  /** The window's size in characters of frame JSON. */
  bytes: number;
  /** conv → acked seq: acks seen by this gateway (or seeded from the region at resume). */
  cursors: Map<string, number>;
  /** Conversations whose cursor moved since the last `takeDirty`. */
  dirty: Set<string>;
}

/**
 * Per-device delivery state of every device on one gateway, in memory. Contract:
 * - every message pushed to a device stays in flight until that device acks a seq at or above
 *   it in its conversation (acks are cumulative), and is due for retransmit meanwhile, with
 *   doubling intervals; a message already in flight or acked is not pushed again;
 * - a device's window of unacked messages is bounded: `track` refuses past it (`lagging`), and
 *   a device that does not ack after `maxAttempts` sends is `stalled`; the caller then closes
 *   that socket and the device resumes, which is always complete;
 * - a cursor (per device and conversation) only moves forward; `takeDirty` hands the moved ones
 *   to the caller, which makes them durable at the region in batches.
 *
 * Why memory only: the window exists for live sockets, and a socket does not outlive its
 * gateway's memory without the device reconnecting and resuming. Cursors are durable in the
 * region (written in batches per gateway); a gateway lost with unwritten acks only re-sends a few
 * messages the device has, which it drops by (conv, seq).
 */
export class DeliveryTracker {
  private readonly devices = new Map<string, DeviceState>();
  /** Devices with a message in flight (the retransmit scan visits only these). */
  private readonly busy = new Set<string>();

  constructor(private readonly opts: DeliveryOptions = DEFAULT_DELIVERY) {}

  /**
   * Records a push of `msg` to device `key`. `sent`: push it now; `acked`: the device already has
   * it (skip); `inflight`: it was pushed and awaits its ack (skip: the retransmit timer owns it,
   * e.g. when the live path and the region's fan-out both deliver it); `lagging`: its window is
   * full (close it; it resumes by sync).
   */
  track(key: string, ref: DeviceRef, msg: WireMsg, now: number): 'sent' | 'acked' | 'inflight' | 'lagging' {
    const d = this.state(key, ref);
    if (msg.seq <= (d.cursors.get(msg.conv) ?? 0)) return 'acked';
    let conv = d.window.get(msg.conv);
    if (conv?.has(msg.seq)) return 'inflight';
    if (d.size >= this.opts.window) return 'lagging';
    if (d.size > 0 && d.bytes + msg.text.length > (this.opts.windowBytes ?? DEFAULT_WINDOW_BYTES)) return 'lagging';
    if (!conv) d.window.set(msg.conv, (conv = new Map()));
    conv.set(msg.seq, { msg, due: now + this.opts.retransmitMs, attempts: 1 });
    d.size++;
    d.bytes += msg.text.length;
    this.busy.add(key);
    return 'sent';
  }

  /**
   * A cumulative ack: the device has every message of `conv` up to `seq`. True when its cursor
   * moved. `unknown` (nothing moves, nothing is written) for a conversation this gateway never
   * pushed to the device, nor saw it use (`know`, `seed`): an ack of a conversation it is not in
   * costs nothing durable.
   */
  ack(key: string, ref: DeviceRef, conv: string, seq: number): boolean | 'unknown' {
    const known = this.devices.get(key);
    if (!known || (!known.cursors.has(conv) && !known.window.has(conv))) return 'unknown';
    const d = this.state(key, ref);
    const moved = seq > (d.cursors.get(conv) ?? 0);
    if (moved) {
      d.cursors.set(conv, seq);
      d.dirty.add(conv);
    }
    const window = d.window.get(conv);
    if (window) {
      for (const [s, e] of window) {
        if (s > seq) continue;
        window.delete(s);
        d.size--;
        d.bytes -= e.msg.text.length;
      }
      if (window.size === 0) d.window.delete(conv);
      if (d.size === 0) this.busy.delete(key);
    }
    return moved;
  }

  /** Cursors the region has for the device (its resume answer): they only raise what is here. */
  seed(key: string, ref: DeviceRef, conv: string, seq: number): void {
    const d = this.state(key, ref);
    if (!d.cursors.has(conv) || seq > d.cursors.get(conv)!) d.cursors.set(conv, seq);
  }

  /** The device is a member of `conv` (a send, sync, read … of it succeeded): its acks of it count. */
  know(key: string, ref: DeviceRef, conv: string): void {
    this.seed(key, ref, conv, 0);
  }

  cursor(key: string, conv: string): number {
    return this.devices.get(key)?.cursors.get(conv) ?? 0;
  }

  /** Cursors moved since the last call, to be written to the region; they count as written. */
  takeDirty(): DeviceCursor[] {
    const out: DeviceCursor[] = [];
    for (const d of this.devices.values()) {
      for (const conv of d.dirty) out.push({ user: d.user, device: d.device, conv, seq: d.cursors.get(conv)! });
      d.dirty.clear();
    }
    return out;
  }

  /** A write of `cursors` failed: they are dirty again (unless they moved on meanwhile, which is dirty anyway). */
  restoreDirty(cursors: DeviceCursor[]): void {
    for (const c of cursors) {
      const d = this.devices.get(`${c.user}\n${c.device}`);
      if (d && (d.cursors.get(c.conv) ?? 0) <= c.seq) d.dirty.add(c.conv);
    }
  }

  get hasDirty(): boolean {
    for (const d of this.devices.values()) if (d.dirty.size > 0) return true;
    return false;
  }

  /**
   * Messages due for retransmit at `now`, oldest seq first per conversation, rescheduled with
   * doubled intervals; and the devices that exhausted their attempts (their windows are dropped).
   */
  due(now: number): { resend: (DeviceRef & { key: string; msg: WireMsg })[]; stalled: (DeviceRef & { key: string })[] } {
    const stalled: (DeviceRef & { key: string })[] = [];
    const resend: (DeviceRef & { key: string; msg: WireMsg })[] = [];
    for (const key of this.busy) {
      const d = this.devices.get(key)!;
      const ready: Entry[] = [];
      for (const conv of d.window.values()) for (const e of conv.values()) if (e.due <= now) ready.push(e);
      if (ready.some((e) => e.attempts >= this.opts.maxAttempts)) {
        stalled.push({ key, user: d.user, device: d.device });
        this.detach(key);
        continue;
      }
      ready.sort((a, b) => (a.msg.conv < b.msg.conv ? -1 : a.msg.conv > b.msg.conv ? 1 : a.msg.seq - b.msg.seq));
      for (const e of ready) {
        e.due = now + Math.min(this.opts.maxRetransmitMs, this.opts.retransmitMs * 2 ** e.attempts);
        e.attempts++;
        resend.push({ key, user: d.user, device: d.device, msg: e.msg });
      }
    }
    return { resend, stalled };
  }

  /** When the next retransmit is due, or null when nothing is in flight. */
  nextDue(): number | null {
    let next: number | null = null;
    for (const key of this.busy)
      for (const conv of this.devices.get(key)!.window.values()) for (const e of conv.values()) if (next === null || e.due < next) next = e.due;
    return next;
  }

  /** What the device has in flight, oldest seq first per conversation. */
  inflight(key: string): WireMsg[] {
    const d = this.devices.get(key);
    if (!d) return [];
    const out: WireMsg[] = [];
    for (const conv of d.window.values()) for (const e of [...conv.values()].sort((a, b) => a.msg.seq - b.msg.seq)) out.push(e.msg);
    return out;
  }

  /**
   * The device's socket is gone: returns what it had in flight (for its next connection), oldest
   * seq first per conversation, and drops its window. Cursors stay until `release`.
   */
  detach(key: string): WireMsg[] {
    const d = this.devices.get(key);
    if (!d) return [];
    const out = this.inflight(key);
    d.window.clear();
    d.size = 0;
    d.bytes = 0;
    this.busy.delete(key);
    return out;
  }

  /** Forgets a device that has no socket any more, once its moved cursors were taken. */
  release(key: string): void {
    const d = this.devices.get(key);
    if (d && d.size === 0 && d.dirty.size === 0) this.devices.delete(key);
  }

  inflightCount(key: string): number {
    return this.devices.get(key)?.size ?? 0;
  }

  /** Devices with any state (for memory accounting and tests). */
  get deviceCount(): number {
    return this.devices.size;
  }

  private state(key: string, ref: DeviceRef): DeviceState {
    let d = this.devices.get(key);
    if (!d) this.devices.set(key, (d = { user: ref.user, device: ref.device, window: new Map(), size: 0, bytes: 0, cursors: new Map(), dirty: new Set() }));
    return d;
  }
}

/** The tracker's key of a device. */
export function deviceKey(user: string, device: string): string {
  return `${user}\n${device}`;
}
