import { PRESENCE, type PresenceEvent, type PresenceOp, type PresenceState as WireState, type WatchRequest, type WatchResponse } from '@switchboard/protocol';
import type { Contacts } from './contacts.ts';
import { errorFields, type Logger } from '../log.ts';
import type { PresenceMetrics } from '../metrics/presence-metrics.ts';
import type { Presence, PresenceState } from './presence.ts';

export interface PresenceServiceDeps {
  presence: Presence;
  contacts: Contacts;
  log: Logger;
  /** A device is live this long after its last heartbeat (PRESENCE_TTL_SECONDS). */
  ttlMs: number;
  /** Hands presence events to an edge (signed HTTP in production). */
  push: (edge: string, events: PresenceEvent[]) => Promise<void>;
  /** `switchboard_presence_*` (absent: not counted). */
  metrics?: PresenceMetrics;
}

/** Operations per sweep call; a sweep repeats at once while it finds this many. */
const SWEEP_BATCH = 1000;

const wire = (s: PresenceState): WireState => ({ user: s.user, status: s.status, last_seen: s.lastSeen });

/**
 * The region's presence logic over a `Presence` store: applies the edge's batched heartbeats,
 * checks and registers watches, sweeps expired devices, and pushes every status change to the
 * gateways of the devices watching that user — and to nobody else.
 */
export class PresenceService {
  private sweeper: ReturnType<typeof setTimeout> | null = null;
  private sweeping: Promise<void> | null = null;
  /** Counters for the bench and logs. */
  readonly stats = { beats: 0, changes: 0, pushes: 0, pushFailures: 0 };

  constructor(private readonly deps: PresenceServiceDeps) {}

  /** Who may watch whom: shared with the consent API, which tells it of changes. */
  get contacts(): Contacts {
    return this.deps.contacts;
  }

  /** Applies one batch from an edge, in order per device. */
  async apply(ops: PresenceOp[]): Promise<void> {
    const { presence, ttlMs } = this.deps;
    const changes: PresenceState[] = [];
    let beats: { user: string; device: string; ageMs?: number }[] = [];
    const flush = async () => {
      if (!beats.length) return;
      this.stats.beats += beats.length;
      this.deps.metrics?.heartbeats.inc(beats.length);
      changes.push(...(await presence.beat(beats, ttlMs)));
      beats = [];
    };
    for (const op of ops) {
      if (op.op === 'down') {
        await flush();
        const c = await presence.down(op.user, op.device);
        if (c) changes.push(c);
        await presence.endWatches(op);
        continue;
      }
      // A new connection starts without watches: the previous connection's end with it.
      if (op.op === 'connect') await presence.endWatches(op);
      beats.push({ user: op.user, device: op.device, ageMs: op.age });
    }
    await flush();
    await this.publish(changes);
  }

  /** Watch (only users whose presence the watcher may see, within the bound) and unwatch for one device. */
  async watch(req: WatchRequest): Promise<WatchResponse> {
    const r = await this.watchOnce(req);
    this.deps.metrics?.watches.inc({ result: r.ok ? 'ok' : r.code });
    return r;
  }

  private async watchOnce(req: WatchRequest): Promise<WatchResponse> {
    const { presence, contacts } = this.deps;
    const who = { user: req.user, device: req.device };
    if (req.unwatch.length) await presence.unwatch(who, req.unwatch);
    const users = [...new Set(req.watch)];
    if (!users.length) return { ok: true, users: [] };
    // Consent (contacts.ts): a shared conversation, their visibility setting, and no block either way.
    const hidden = await contacts.hidden(req.user, users);
    if (hidden.length) {
      const names = hidden.slice(0, 5).join(', ') + (hidden.length > 5 ? ` and ${hidden.length - 5} more` : '');
      return { ok: false, code: 'forbidden', message: `you may not see the presence of ${names}` };
    }
    if (!(await presence.watch({ ...who, edge: req.edge, gw: req.gw }, users, PRESENCE.maxWatch))) {
      return { ok: false, code: 'conflict', message: `a device watches at most ${PRESENCE.maxWatch} users; unwatch some first` };
    }
    return { ok: true, users: (await presence.state(users)).map(wire) };
  }

  /** Sweeps every `intervalMs` until `stop()`; the bound on a silent device is TTL + this interval. */
  start(intervalMs: number): void {
    const tick = () => {
      this.sweeping = this.sweepAll()
        .then(() => {})
        .catch((err) => this.deps.log.warn('presence sweep failed', errorFields(err)))
        .finally(() => {
          this.sweeping = null;
          if (this.sweeper) this.sweeper = setTimeout(tick, intervalMs);
        });
    };
    this.sweeper = setTimeout(tick, intervalMs);
  }

  ping(): Promise<void> {
    return this.deps.presence.ping();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearTimeout(this.sweeper);
    this.sweeper = null;
    await this.sweeping;
  }

  /** One sweep: ends every device past its deadline, its watches with it, and publishes the changes. */
  async sweepAll(): Promise<number> {
    const stop = this.deps.metrics?.sweepSeconds.startTimer();
    let ended = 0;
    try {
      for (;;) {
        const r = await this.deps.presence.sweep(SWEEP_BATCH);
        ended += r.ended.length;
        this.deps.metrics?.expired.inc(r.ended.length);
        await Promise.all(r.ended.map((d) => this.deps.presence.endWatches(d)));
        await this.publish(r.changes);
        if (r.ended.length < SWEEP_BATCH) return ended;
      }
    } finally {
      stop?.();
    }
  }

  /**
   * Each change goes to the devices watching that user, one request per edge: an event per
   * (watching user, gateway) naming that user's watching devices on it, so the edge hands each
   * event to one gateway.
   */
  private async publish(changes: PresenceState[]): Promise<void> {
    if (!changes.length) return;
    this.stats.changes += changes.length;
    for (const c of changes) this.deps.metrics?.changes.inc({ status: c.status });
    const byEdge = new Map<string, Map<string, PresenceEvent>>();
    await Promise.all(
      changes.map(async (c) => {
        const watchers = await this.deps.presence.watchers(c.user);
        // A block or a narrower visibility since a watch began stops its pushes (contacts.ts).
        const visible = watchers.length ? await this.deps.contacts.stillVisible(c.user, watchers.map((w) => w.user)) : new Set<string>();
        for (const w of watchers) {
          if (!visible.has(w.user)) continue;
          let events = byEdge.get(w.edge);
          if (!events) byEdge.set(w.edge, (events = new Map()));
          const key = `${w.user}\n${w.gw}\n${c.user}`;
          const e = events.get(key);
          if (e) e.devices.push(w.device);
          else events.set(key, { to: w.user, gw: w.gw, devices: [w.device], ...wire(c) });
        }
      }),
    );
    await Promise.all(
      [...byEdge].map(async ([edge, events]) => {
        const list = [...events.values()];
        for (let i = 0; i < list.length; i += 5000) {
          try {
            await this.deps.push(edge, list.slice(i, i + 5000));
            this.stats.pushes++;
            this.deps.metrics?.pushes.inc({ result: 'ok' });
          } catch (err) {
            // Soft state: a watcher that missed a change reads the truth on its next watch.
            this.stats.pushFailures++;
            this.deps.metrics?.pushes.inc({ result: 'failed' });
            this.deps.log.warn('presence push failed', { edge, events: list.length, ...errorFields(err) });
          }
        }
      }),
    );
  }
}
