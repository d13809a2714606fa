import type { DeviceCursor, GatewayBatchResponse, PresenceOp, RouteOp } from '@switchboard/protocol';

/** Calls the region's signed internal API (callRegion in production). */
export type RegionCall = <T>(path: string, body: unknown) => Promise<T>;

export interface RegionOpsOptions {
  call: RegionCall;
  /** An idle RegionOps waits this long for more before it sends (default 0: the same turn only). */
  gatherMs?: number;
  /** The routes registry's epoch, as each batch with routes answers it. */
  onEpoch?: (epoch: string) => void;
  /** A batch failed (logged by the caller). Routes and presence are soft state; cursors are handed back. */
  onError?: (path: string, count: number, err: unknown) => void;
  /** Cursors whose write failed: the owner queues them again with its next flush. */
  onCursorsFailed?: (cursors: DeviceCursor[]) => void;
  /** A batch was answered. */
  onAnswered?: () => void;
}

const ROUTES_PER_CALL = 5000;
const PRESENCE_PER_CALL = 5000;
const CURSORS_PER_CALL = 10_000;

/**
 * A gateway's calls to the region, batched: the route, presence and cursor changes of every
 * socket on the gateway leave together, in one `/internal/gateway` call (more only past the
 * region's limits of a list). An idle
 * gateway sends what is queued at once (with whatever was queued in the same turn of the event
 * loop); while a batch is on its way, what is queued waits and leaves with the next, as soon as
 * it is answered. So a lone connect waits one round trip, and a connect storm of thousands of
 * sockets is a few dozen calls, not thousands. Contract:
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
  /** A batch is on its way: what is queued now leaves when it is answered. */
  private busy = false;
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
    if (this.busy) return;
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.opts.gatherMs ?? 0);
  }

  /**
   * One `/internal/gateway` call per batch (more only past the region's limits of a list), each
   * list in order. Never rejects: a failure is reported, and cursors are handed back.
   */
  private async send(): Promise<void> {
    const routes = this.routes.splice(0);
    const presence = this.presence.splice(0);
    const cursors = this.cursors.splice(0);
    const waiters = this.waiters.splice(0);
    this.busy = true;
    for (let i = 0; ; i++) {
      const batch = {
        routes: routes.slice(i * ROUTES_PER_CALL, (i + 1) * ROUTES_PER_CALL),
        presence: presence.slice(i * PRESENCE_PER_CALL, (i + 1) * PRESENCE_PER_CALL),
        cursors: cursors.slice(i * CURSORS_PER_CALL, (i + 1) * CURSORS_PER_CALL),
      };
      const n = batch.routes.length + batch.presence.length + batch.cursors.length;
      if (n === 0) break;
      try {
        const answer = await this.opts.call<GatewayBatchResponse>('/internal/gateway', batch);
        if (answer.epoch) this.opts.onEpoch?.(answer.epoch);
        this.opts.onAnswered?.();
      } catch (err) {
        this.opts.onError?.('/internal/gateway', n, err);
        if (batch.cursors.length) this.opts.onCursorsFailed?.(batch.cursors);
      }
    }
    this.busy = false;
    for (const w of waiters) w();
    if (this.pending > 0) this.schedule();
  }
}
