import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Route, Routes } from '../src/routes.ts';
import { runId } from './engines.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const byDevice = (a: Route, b: Route) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0);

/**
 * The Routes contract (src/routes.ts), for any implementation. `make` returns a fresh instance;
 * the suite closes it. User ids are unique per run, so a shared server is fine.
 */
export function routesContract(name: string, make: () => Promise<Routes>): void {
  describe(`routes contract: ${name}`, () => {
    let routes: Routes;
    const run = runId();
    let n = 0;
    const user = () => `u${run}-${++n}`;
    const HOUR = 3_600_000;

    before(async () => {
      routes = await make();
    });
    after(async () => {
      await routes.close();
    });

    it('ping resolves', async () => {
      await routes.ping();
    });

    it('epoch is stable while the registry keeps its routes', async () => {
      const e = await routes.epoch();
      assert.ok(e.length > 0);
      await routes.up({ user: user(), device: 'd', edge: 'https://edge-a.example' }, HOUR);
      assert.equal(await routes.epoch(), e);
    });

    it('up then lookup returns the route', async () => {
      const u = user();
      await routes.up({ user: u, device: 'phone', edge: 'https://edge-a.example' }, HOUR);
      const found = await routes.lookup([u]);
      assert.deepEqual(found.get(u), [{ user: u, device: 'phone', edge: 'https://edge-a.example' }]);
    });

    it('a user with no routes is absent from the result; an empty lookup is an empty map', async () => {
      const u = user();
      assert.equal((await routes.lookup([u])).has(u), false);
      assert.equal((await routes.lookup([])).size, 0);
    });

    it('keeps one route per device: every device of a user, the latest edge of each', async () => {
      const u = user();
      await routes.up({ user: u, device: 'phone', edge: 'https://edge-a.example' }, HOUR);
      await routes.up({ user: u, device: 'laptop', edge: 'https://edge-b.example' }, HOUR);
      await routes.up({ user: u, device: 'tablet', edge: 'https://edge-a.example' }, HOUR);
      await routes.up({ user: u, device: 'phone', edge: 'https://edge-c.example' }, HOUR);
      const list = [...((await routes.lookup([u])).get(u) ?? [])].sort(byDevice);
      assert.deepEqual(list, [
        { user: u, device: 'laptop', edge: 'https://edge-b.example' },
        { user: u, device: 'phone', edge: 'https://edge-c.example' },
        { user: u, device: 'tablet', edge: 'https://edge-a.example' },
      ]);
    });

    it('looks up many users in one call', async () => {
      const users = Array.from({ length: 50 }, () => user());
      const absent = user();
      await Promise.all(users.map((u, i) => routes.up({ user: u, device: `d${i}`, edge: `https://edge-${i % 3}.example` }, HOUR)));
      const found = await routes.lookup([...users, absent, users[0]!]);
      assert.equal(found.size, users.length);
      users.forEach((u, i) => assert.deepEqual(found.get(u), [{ user: u, device: `d${i}`, edge: `https://edge-${i % 3}.example` }]));
      assert.equal(found.has(absent), false);
    });

    it('a route expires ttl after up', async () => {
      const u = user();
      await routes.up({ user: u, device: 'phone', edge: 'https://edge-a.example' }, 300);
      await routes.up({ user: u, device: 'laptop', edge: 'https://edge-a.example' }, HOUR);
      assert.equal((await routes.lookup([u])).get(u)?.length, 2);
      await sleep(450);
      assert.deepEqual((await routes.lookup([u])).get(u), [{ user: u, device: 'laptop', edge: 'https://edge-a.example' }]);
    });

    it('a user whose only route expired is absent', async () => {
      const u = user();
      await routes.up({ user: u, device: 'phone', edge: 'https://edge-a.example' }, 300);
      await sleep(450);
      assert.equal((await routes.lookup([u])).has(u), false);
    });

    it('up again refreshes: the route lives ttl after the latest up', async () => {
      const u = user();
      const r = { user: u, device: 'phone', edge: 'https://edge-a.example' };
      await routes.up(r, 600);
      await sleep(400);
      await routes.up(r, 600);
      await sleep(400); // 800 ms after the first up, 400 after the refresh
      assert.deepEqual((await routes.lookup([u])).get(u), [r]);
      await sleep(400); // 800 ms after the refresh
      assert.equal((await routes.lookup([u])).has(u), false);
    });

    it('a shorter ttl on refresh does not cut another device short', async () => {
      const u = user();
      await routes.up({ user: u, device: 'laptop', edge: 'https://edge-a.example' }, 1_500);
      await routes.up({ user: u, device: 'phone', edge: 'https://edge-a.example' }, 200);
      await sleep(400);
      assert.deepEqual((await routes.lookup([u])).get(u), [{ user: u, device: 'laptop', edge: 'https://edge-a.example' }]);
    });

    it('down removes the route when the edge matches', async () => {
      const u = user();
      const r = { user: u, device: 'phone', edge: 'https://edge-a.example' };
      await routes.up(r, HOUR);
      await routes.up({ ...r, device: 'laptop' }, HOUR);
      await routes.down(r);
      assert.deepEqual((await routes.lookup([u])).get(u), [{ ...r, device: 'laptop' }]);
      await routes.down({ ...r, device: 'laptop' });
      assert.equal((await routes.lookup([u])).has(u), false);
    });

    it('down for another edge leaves the newer route (device reconnected elsewhere)', async () => {
      const u = user();
      await routes.up({ user: u, device: 'phone', edge: 'https://edge-a.example' }, HOUR);
      await routes.up({ user: u, device: 'phone', edge: 'https://edge-b.example' }, HOUR);
      await routes.down({ user: u, device: 'phone', edge: 'https://edge-a.example' });
      assert.deepEqual((await routes.lookup([u])).get(u), [{ user: u, device: 'phone', edge: 'https://edge-b.example' }]);
    });

    it('down of an unknown route is a no-op', async () => {
      const u = user();
      await routes.down({ user: u, device: 'phone', edge: 'https://edge-a.example' });
      assert.equal((await routes.lookup([u])).has(u), false);
    });
  });
}
