/**
 * Sockets that keep sending after `rate_limited`. A refusal costs the gateway little, but not
 * nothing (decoding the frame, writing the error): a device writing as fast as its socket takes
 * (tens of thousands of frames a second on loopback) outruns its gateway even when every frame
 * is refused, and every other user's frames on that gateway queue behind its flood. A client that
 * honours retry-after (the SDK) is refused at most a few frames in a row (those it had already
 * written); this many refusals by rate limits in a row, with no frame passing its limits between
 * them, close the socket with 4008 `flooding` (reconnect after a backoff: connects are limited
 * too). What it sent after that is dropped unread, which costs next to nothing.
 */
export const FLOOD_REFUSALS = 100;

export class FloodGuard<S extends object> {
  private readonly streaks = new WeakMap<S, number>();
  private readonly flooded = new WeakSet<S>();

  /** A frame of `socket` refused by a limit: true when the socket must be closed as flooding (from then on `flooding`). */
  refused(socket: S): boolean {
    const n = (this.streaks.get(socket) ?? 0) + 1;
    this.streaks.set(socket, n);
    if (n < FLOOD_REFUSALS) return false;
    this.flooded.add(socket);
    return true;
  }

  /** The socket was closed as flooding: what it still sends is dropped unread. */
  flooding(socket: S): boolean {
    return this.flooded.has(socket);
  }

  /** A frame of `socket` passed its limits: the streak ends. */
  passed(socket: S): void {
    this.streaks.delete(socket);
  }
}
