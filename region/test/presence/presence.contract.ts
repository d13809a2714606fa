import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Presence, PresenceState } from '../../src/presence/presence.ts';
import { runId } from '../engines.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HOUR = 3_600_000;

/**
 * The Presence contract (src/presence.ts), for any implementation. `make` returns a fresh instance
 * on a store shared with earlier ones (so two instances act like two region processes); the suite
 * closes them. User ids are unique per run.
 */
export function presenceContract(name: string, make: () => Promise<Presence>): void {
  describe(`presence contract: ${name}`, () => {
    let p: Presence;
    const run = runId();
    let n = 0;
    const user = () => `u${run}-${++n}`;
    /** Sweeps until `pred` holds for the changes seen so far (expiry is by deadline, so wait for it). */
    const sweepUntil = async (pred: (seen: PresenceState[]) => boolean, timeoutMs = 10_000) => {
      const seen: PresenceState[] = [];
      const end = Date.now() + timeoutMs;
      while (!pred(seen)) {
        if (Date.now() > end) throw new Error(`sweep never produced the expected changes; got ${JSON.stringify(seen)}`);
        seen.push(...(await p.sweep(10_000)).changes);
        await sleep(50);
      }
      return seen;
    };

    before(async () => {
      p = await make();
    });
    after(async () => {
      await p.close();
    });

    it('ping resolves', async () => {
      await p.ping();
    });

    it('a user never seen is offline with no last seen', async () => {
      const u = user();
      assert.deepEqual(await p.state([u]), [{ user: u, status: 'offline', lastSeen: null }]);
    });

    it('the first device online is one change; more devices and beats are none', async () => {
      const u = user();
      assert.deepEqual(await p.beat([{ user: u, device: 'a' }], HOUR), [{ user: u, status: 'online', lastSeen: null }]);
      assert.deepEqual(await p.beat([{ user: u, device: 'b' }, { user: u, device: 'a' }], HOUR), []);
      assert.deepEqual(await p.state([u]), [{ user: u, status: 'online', lastSeen: null }]);
    });

    it('online while any device is; the last clean disconnect is offline at once with last seen', async () => {
      const u = user();
      await p.beat([{ user: u, device: 'a' }, { user: u, device: 'b' }], HOUR);
      const t0 = Date.now();
      assert.equal(await p.down(u, 'a'), null, 'one device left: still online');
      assert.equal((await p.state([u]))[0]!.status, 'online');
      const c = await p.down(u, 'b');
      assert.equal(c?.status, 'offline');
      assert.ok(c!.lastSeen! >= t0 - 5_000 && c!.lastSeen! <= Date.now() + 5_000, 'last seen is about now');
      assert.deepEqual(await p.state([u]), [{ user: u, status: 'offline', lastSeen: c!.lastSeen }]);
      assert.equal(await p.down(u, 'b'), null, 'a repeated disconnect changes nothing');
    });

    it('a silent device expires by sweep, with last seen = its last heartbeat, and is reported once', async () => {
      const u = user();
      const t0 = Date.now();
      await p.beat([{ user: u, device: 'a' }], 300);
      const other = await make(); // a second region process sweeping the same store
      try {
        const seen = await sweepUntil((s) => s.some((c) => c.user === u));
        const more = (await other.sweep(10_000)).changes;
        const mine = [...seen, ...more].filter((c) => c.user === u);
        assert.equal(mine.length, 1, 'one offline change across sweepers');
        assert.equal(mine[0]!.status, 'offline');
        assert.ok(Math.abs(mine[0]!.lastSeen! - t0) < 5_000, 'last seen is the last heartbeat');
      } finally {
        await other.close();
      }
      assert.equal((await p.state([u]))[0]!.status, 'offline');
    });

    it('a sweep names each device it ended, also when the user stays online', async () => {
      const u = user();
      await p.beat([{ user: u, device: 'keep' }], HOUR);
      await p.beat([{ user: u, device: 'gone' }], 200);
      const ended: { user: string; device: string }[] = [];
      const end = Date.now() + 10_000;
      while (!ended.some((e) => e.user === u) && Date.now() < end) {
        const r = await p.sweep(10_000);
        ended.push(...r.ended);
        assert.ok(!r.changes.some((c) => c.user === u), 'still online through the other device');
        await sleep(50);
      }
      assert.deepEqual(ended.filter((e) => e.user === u), [{ user: u, device: 'gone' }]);
      assert.equal((await p.state([u]))[0]!.status, 'online');
    });

    it('reads a device past its deadline as offline before any sweep', async () => {
      const u = user();
      await p.beat([{ user: u, device: 'a' }], 200);
      await sleep(400);
      const [s] = await p.state([u]);
      assert.equal(s!.status, 'offline');
      assert.ok(s!.lastSeen !== null);
      await sweepUntil((c) => c.some((x) => x.user === u));
    });

    it('heartbeats keep a device alive past its first deadline', async () => {
      const u = user();
      await p.beat([{ user: u, device: 'a' }], 600);
      for (let i = 0; i < 6; i++) {
        await sleep(150);
        await p.beat([{ user: u, device: 'a' }], 600);
        const { changes, ended } = await p.sweep(10_000);
        assert.ok(!changes.some((c) => c.user === u), 'a beating device is never swept');
        assert.ok(!ended.some((e) => e.user === u));
      }
      assert.equal((await p.state([u]))[0]!.status, 'online');
    });

    it('a heartbeat that is older than the TTL does not bring a device online', async () => {
      const u = user();
      assert.deepEqual(await p.beat([{ user: u, device: 'a', ageMs: 5_000 }], 1_000), []);
      assert.equal((await p.state([u]))[0]!.status, 'offline');
    });

    it('an aged heartbeat counts from when it happened', async () => {
      const u = user();
      await p.beat([{ user: u, device: 'a', ageMs: 9_800 }], 10_000);
      const seen = await sweepUntil((c) => c.some((x) => x.user === u));
      assert.equal(seen.filter((c) => c.user === u).length, 1);
    });

    it('a device that comes back after going offline is a new online change', async () => {
      const u = user();
      await p.beat([{ user: u, device: 'a' }], HOUR);
      await p.down(u, 'a');
      assert.deepEqual(await p.beat([{ user: u, device: 'a' }], HOUR), [{ user: u, status: 'online', lastSeen: null }]);
    });

    it('watch, watchers, unwatch and endWatches are per watching device, each with its edge and gateway', async () => {
      const [w, x, y] = [user(), user(), user()];
      assert.equal(await p.watch({ user: w, device: 'd1', edge: 'https://e1.example', gw: 'gw:local:1' }, [x, y], 10), true);
      assert.equal(await p.watch({ user: w, device: 'd2', edge: 'https://e2.example', gw: 'gw:weur:7' }, [x], 10), true);
      const sorted = async (u: string) => (await p.watchers(u)).sort((a, b) => a.device.localeCompare(b.device));
      assert.deepEqual(await sorted(x), [
        { user: w, device: 'd1', edge: 'https://e1.example', gw: 'gw:local:1' },
        { user: w, device: 'd2', edge: 'https://e2.example', gw: 'gw:weur:7' },
      ]);
      assert.equal(await p.watching({ user: w, device: 'd1' }), 2);
      await p.unwatch({ user: w, device: 'd1' }, [x]);
      assert.deepEqual(await sorted(x), [{ user: w, device: 'd2', edge: 'https://e2.example', gw: 'gw:weur:7' }]);
      assert.deepEqual(await sorted(y), [{ user: w, device: 'd1', edge: 'https://e1.example', gw: 'gw:local:1' }]);
      await p.endWatches({ user: w, device: 'd1' });
      assert.deepEqual(await p.watchers(y), []);
      assert.equal(await p.watching({ user: w, device: 'd1' }), 0);
      assert.equal(await p.watching({ user: w, device: 'd2' }), 1);
    });

    it('a device that watches again from another gateway is pushed to there', async () => {
      const [w, x] = [user(), user()];
      await p.watch({ user: w, device: 'd', edge: 'https://e1.example', gw: 'gw:local:1' }, [x], 10);
      await p.watch({ user: w, device: 'd', edge: 'https://e1.example', gw: 'gw:local:4' }, [x], 10);
      assert.deepEqual(await p.watchers(x), [{ user: w, device: 'd', edge: 'https://e1.example', gw: 'gw:local:4' }]);
      assert.equal(await p.watching({ user: w, device: 'd' }), 1);
    });

    it('watch refuses, adding nothing, past the per-device bound; watching again counts once', async () => {
      const w = { user: user(), device: 'd', edge: 'https://e.example', gw: 'gw:local:1' };
      const [a, b, c] = [user(), user(), user()];
      assert.equal(await p.watch(w, [a, b], 2), true);
      assert.equal(await p.watch(w, [a, b], 2), true, 'already watched users are not new');
      assert.equal(await p.watch(w, [b, c], 2), false);
      assert.equal(await p.watching(w), 2);
      assert.deepEqual(await p.watchers(c), []);
    });
  });
}
