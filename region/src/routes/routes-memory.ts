import type { Route, Routes } from './routes.ts';

interface Entry {
  edge: string;
  gw: string;
  conn: number;
  expiresAt: number;
}

/** Embedded routing registry: in-process maps with expiry, for a single region process. */
export class MemoryRoutes implements Routes {
  readonly name = 'memory';
  private readonly life = crypto.randomUUID();
  private readonly byUser = new Map<string, Map<string, Entry>>();

  async up(r: Route, ttlMs: number): Promise<void> {
    let devices = this.byUser.get(r.user);
    if (!devices) this.byUser.set(r.user, (devices = new Map()));
    devices.set(r.device, { edge: r.edge, gw: r.gw, conn: r.conn, expiresAt: Date.now() + ttlMs });
  }

  async down(r: Route): Promise<void> {
    const devices = this.byUser.get(r.user);
    const e = devices?.get(r.device);
    if (!devices || !e || e.edge !== r.edge || e.gw !== r.gw || e.conn !== r.conn) return;
    devices.delete(r.device);
    if (devices.size === 0) this.byUser.delete(r.user);
  }

  async lookup(users: string[]): Promise<Map<string, Route[]>> {
    const now = Date.now();
    const out = new Map<string, Route[]>();
    for (const user of users) {
      const devices = this.byUser.get(user);
      if (!devices) continue;
      const live: Route[] = [];
      for (const [device, e] of devices) {
        if (e.expiresAt > now) live.push({ user, device, edge: e.edge, gw: e.gw, conn: e.conn });
        else devices.delete(device);
      }
      if (live.length) out.set(user, live);
      else this.byUser.delete(user);
    }
    return out;
  }

  /** A new process has an empty registry: a new epoch. */
  async epoch(): Promise<string> {
    return this.life;
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {
    this.byUser.clear();
  }
}
