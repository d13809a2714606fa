import { ProtocolError, type PresenceOp, type PresenceState, type WatchResponse } from '@switchboard/protocol';
import type { EdgeConfig } from './env.ts';
import { errorFields, log } from './log.ts';
import { callRegion } from './region-client.ts';
import type { SqlLike } from './sequencer.ts';

/**
 * A SessionDO's side of presence. Every frame a device sends is a heartbeat (`beat`, one SQLite
 * upsert, surviving hibernation); every PRESENCE_FLUSH_SECONDS the alarm sends the region ONE
 * signed call with every device of this user that beat since the previous flush, each with the
 * age of its last beat, so the region's deadline counts from the beat itself. Connects and clean
 * disconnects go at once. All calls to the region go one at a time, in order, so a `watch` never
 * overtakes the `connect` that ends the previous connection's watches.
 */
export class PresenceRelay {
  private chain: Promise<unknown> = Promise.resolve();
  /** device → when its last beat was written (memory only: after a wake-up the next beat writes). */
  private readonly written = new Map<string, number>();

  constructor(
    private readonly sql: SqlLike,
    private readonly cfg: () => EdgeConfig,
  ) {
    sql.exec('CREATE TABLE IF NOT EXISTS presence_beats (device TEXT PRIMARY KEY, at INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0)');
    sql.exec('CREATE TABLE IF NOT EXISTS presence_flush (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)');
  }

  /**
   * The device proved alive now. Written at most once per half flush interval (5 s at most) per
   * device: every frame counts, but a storage commit per frame would tax the message path, and a
   * beat recorded that much early only moves the region's deadline that much earlier.
   */
  beat(device: string, now = Date.now()): void {
    const every = Math.min(5000, (this.cfg().presenceFlushSeconds * 1000) / 2);
    if (now - (this.written.get(device) ?? -Infinity) < every) return;
    this.written.set(device, now);
    this.sql.exec('INSERT INTO presence_beats (device, at) VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET at = MAX(at, excluded.at)', device, now);
  }

  async connected(user: string, device: string): Promise<void> {
    const now = Date.now();
    this.written.set(device, now);
    this.sql.exec('INSERT INTO presence_beats (device, at, sent) VALUES (?, ?, ?) ON CONFLICT(device) DO UPDATE SET at = excluded.at, sent = excluded.sent', device, now, now);
    if (this.due() === null) this.setDue(now + this.cfg().presenceFlushSeconds * 1000);
    await this.send([{ op: 'connect', user, device }]);
  }

  async disconnected(user: string, device: string): Promise<void> {
    this.written.delete(device);
    this.sql.exec('DELETE FROM presence_beats WHERE device = ?', device);
    await this.send([{ op: 'down', user, device }]);
  }

  /** When the next batch is due, or null when no device is connected. */
  due(): number | null {
    const row = this.sql.exec('SELECT at FROM presence_flush WHERE id = 1').toArray()[0] as { at: number } | undefined;
    return row ? row.at : null;
  }

  /** At or after `due()`: one call with every live device that beat since the last flush. */
  async flush(live: { user: string; device: string }[], now = Date.now()): Promise<void> {
    if (now < (this.due() ?? Infinity)) return;
    if (!live.length) {
      this.sql.exec('DELETE FROM presence_flush');
      return;
    }
    this.setDue(now + this.cfg().presenceFlushSeconds * 1000);
    const rows = this.sql.exec('SELECT device, at FROM presence_beats WHERE at > sent').toArray() as { device: string; at: number }[];
    const beatAt = new Map(rows.map((r) => [r.device, r.at]));
    const ops: PresenceOp[] = [];
    for (const d of live) {
      const at = beatAt.get(d.device);
      if (at !== undefined) ops.push({ op: 'beat', user: d.user, device: d.device, age: Math.max(0, now - at) });
    }
    if (!ops.length) return;
    for (const r of rows) this.sql.exec('UPDATE presence_beats SET sent = ? WHERE device = ?', r.at, r.device);
    await this.send(ops);
  }

  /** Watch and/or unwatch for one device; a refusal becomes the typed error of the frame. */
  async watch(req: { user: string; device: string; watch?: string[]; unwatch?: string[] }): Promise<PresenceState[]> {
    const body = { ...req, edge: this.cfg().edgeUrl };
    let r: WatchResponse;
    try {
      r = await this.serial(() => callRegion<WatchResponse>(this.cfg(), '/internal/watch', body));
    } catch (err) {
      log('warn', 'watch: region unavailable', { user: req.user, ...errorFields(err) });
      throw new ProtocolError('unavailable', 'presence is unavailable; retry later');
    }
    if (!r.ok) throw new ProtocolError(r.code, r.message);
    return r.users;
  }

  /** Soft state: a lost batch only makes a device look offline until its next beat. */
  private async send(ops: PresenceOp[]): Promise<void> {
    try {
      await this.serial(() => callRegion(this.cfg(), '/internal/presence', { ops }));
    } catch (err) {
      log('warn', 'presence update failed', { ops: ops.length, ...errorFields(err) });
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.catch(() => {}).then(fn);
    this.chain = next;
    return next;
  }

  private setDue(at: number): void {
    this.sql.exec('INSERT INTO presence_flush (id, at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at', at);
  }
}
