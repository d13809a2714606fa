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

  /** A frame of `socket` refused by a limit: true when the socket must be closed as flooding. */
  refused(socket: S): boolean {
    const n = (this.streaks.get(socket) ?? 0) + 1;
    this.streaks.set(socket, n);
    return n >= FLOOD_REFUSALS;
  }

  /** A frame of `socket` passed its limits: the streak ends. */
  passed(socket: S): void {
    this.streaks.delete(socket);
  }
}
