import type { DeviceCursor, PresenceOp, RouteOp } from '@switchboard/protocol';

/** Calls the region's signed internal API (callRegion in production). */
export type RegionCall = <T>(path: string, body: unknown) => Promise<T>;

export interface RegionOpsOptions {
  call: RegionCall;
  /** Queued operations leave this long after the first of them, together. */
  delayMs: number;
  /** The routes registry's epoch, as each routes call answers it. */
  onEpoch?: (epoch: string) => void;
  /** A call failed (logged by the caller). Routes and presence are soft state; cursors are queued again. */
  onError?: (path: string, count: number, err: unknown) => void;
  /** Cursors whose write failed: the owner queues them again with its next flush. */
  onCursorsFailed?: (cursors: DeviceCursor[]) => void;
}

const ROUTES_PER_CALL = 5000;
const PRESENCE_PER_CALL = 5000;
const CURSORS_PER_CALL = 10_000;

/**
 * A gateway's calls to the region, batched: the route, presence and cursor changes of every
 * socket on the gateway leave together, within `delayMs` of the first, in as few calls as the
 * region's limits allow. A connect storm of thousands of sockets is then a few dozen calls, not
 * thousands. Contract:
 * - operations of one kind reach the region in the order they were queued (a device's `up`
 *   before its `down`, its presence `connect` before its `down`);
 * - `flush()` resolves once everything queued before it was sent (answered or failed): callers
 *   whose next step must follow the region's view (a `resume` reading conversations after the
 *   device's route is up, a `watch` after its `connect`) await it first;
 * - `whenSent()` resolves once everything queued before it was sent, with the batch it rides
 *   in (no earlier): a new socket's `hello` waits for its route, so a device that has its
 *   `hello` can be found by the region's fan-out;
 * - one flush runs at a time; what is queued meanwhile goes with the next.
 */
export class RegionOps {
  private routes: RouteOp[] = [];
  private presence: PresenceOp[] = [];
  private cursors: DeviceCursor[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> = Promise.resolve();
  /** Callers of `whenSent` waiting for the next batch. */
  private waiters: (() => void)[] = [];

  constructor(private readonly opts: RegionOpsOptions) {}

  route(op: RouteOp): void {
    this.routes.push(op);
    this.schedule();
  }

  presenceOp(op: PresenceOp): void {
    this.presence.push(op);
    this.schedule();
  }

  writeCursors(list: DeviceCursor[]): void {
    if (list.length === 0) return;
    this.cursors.push(...list);
    this.schedule();
  }

  get pending(): number {
    return this.routes.length + this.presence.length + this.cursors.length;
  }

  /** Resolves once what is queued now has been sent (answered or failed), with its batch. */
  whenSent(): Promise<void> {
    if (this.pending === 0) return this.running;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Sends what is queued now (after any flush already running); resolves once it was sent. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const next = this.running.then(() => this.send());
    this.running = next;
    return next;
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.opts.delayMs);
  }

  /** Never rejects: every failure is reported and the flush goes on. */
  private async send(): Promise<void> {
    const routes = this.routes.splice(0);
    const presence = this.presence.splice(0);
    const cursors = this.cursors.splice(0);
    const waiters = this.waiters.splice(0);
    await Promise.all([
      this.chunks('/internal/routes', routes, ROUTES_PER_CALL, (ops) => ({ ops }), (r: { epoch?: string }) => r.epoch && this.opts.onEpoch?.(r.epoch)),
      this.chunks('/internal/presence', presence, PRESENCE_PER_CALL, (ops) => ({ ops })),
      this.chunks('/internal/cursors', cursors, CURSORS_PER_CALL, (list) => ({ cursors: list }), undefined, (list) => this.opts.onCursorsFailed?.(list)),
    ]);
    for (const w of waiters) w();
  }

  /** Sends `items` in order, `per` at a time, one call after the other. */
  private async chunks<I, R>(
    path: string,
    items: I[],
    per: number,
    body: (chunk: I[]) => unknown,
    onAnswer?: (r: R) => unknown,
    onFail?: (chunk: I[]) => void,
  ): Promise<void> {
    for (let i = 0; i < items.length; i += per) {
      const chunk = items.slice(i, i + per);
      try {
        // Called first: `onAnswer?.(await …)` would skip the call itself when there is no onAnswer.
        const answer = await this.opts.call<R>(path, body(chunk));
        onAnswer?.(answer);
      } catch (err) {
        this.opts.onError?.(path, chunk.length, err);
        onFail?.(chunk);
      }
    }
  }
}
