import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Route, Routes } from '../../src/routes/routes.ts';
import { runId } from '../engines.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const byDevice = (a: Route, b: Route) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0);
const EDGE_A = 'https://edge-a.example';
const EDGE_B = 'https://edge-b.example';
/** A gateway's connection ids start from the clock: ids of this size are the normal case. */
const CONN = 1_764_000_000_000_123;

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
    const route = (u: string, device: string, over: Partial<Route> = {}): Route => ({ user: u, device, edge: EDGE_A, gw: 'gw:local:1', conn: CONN, ...over });
    const routesOf = async (u: string) => [...((await routes.lookup([u])).get(u) ?? [])].sort(byDevice);

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
      await routes.up(route(user(), 'd'), HOUR);
      assert.equal(await routes.epoch(), e);
    });

    it('up then lookup returns the route with its edge, gateway and conn', async () => {
      const u = user();
      await routes.up(route(u, 'phone', { gw: 'gw:weur:17', conn: 42 }), HOUR);
      assert.deepEqual(await routesOf(u), [{ user: u, device: 'phone', edge: EDGE_A, gw: 'gw:weur:17', conn: 42 }]);
    });

    it('conn round-trips exactly up to the largest safe integer', async () => {
      const u = user();
      await routes.up(route(u, 'a', { conn: CONN }), HOUR);
      await routes.up(route(u, 'b', { conn: Number.MAX_SAFE_INTEGER }), HOUR);
      await routes.up(route(u, 'c', { conn: 0 }), HOUR);
      assert.deepEqual((await routesOf(u)).map((r) => r.conn), [CONN, Number.MAX_SAFE_INTEGER, 0]);
    });

    it('a user with no routes is absent from the result; an empty lookup is an empty map', async () => {
      const u = user();
      assert.equal((await routes.lookup([u])).has(u), false);
      assert.equal((await routes.lookup([])).size, 0);
    });

    it('keeps one route per device: every device of a user, the latest up of each', async () => {
      const u = user();
      await routes.up(route(u, 'phone', { gw: 'gw:local:1', conn: 10 }), HOUR);
      await routes.up(route(u, 'laptop', { edge: EDGE_B, gw: 'gw:local:2', conn: 11 }), HOUR);
      await routes.up(route(u, 'tablet', { gw: 'gw:local:1', conn: 12 }), HOUR);
      await routes.up(route(u, 'phone', { gw: 'gw:local:3', conn: 5 }), HOUR); // reconnected to another gateway
      assert.deepEqual(await routesOf(u), [
        route(u, 'laptop', { edge: EDGE_B, gw: 'gw:local:2', conn: 11 }),
        route(u, 'phone', { gw: 'gw:local:3', conn: 5 }),
        route(u, 'tablet', { gw: 'gw:local:1', conn: 12 }),
      ]);
    });

    it('up with another conn replaces the device\'s route', async () => {
      const u = user();
      await routes.up(route(u, 'phone', { conn: CONN }), HOUR);
      await routes.up(route(u, 'phone', { conn: CONN + 7 }), HOUR);
      assert.deepEqual(await routesOf(u), [route(u, 'phone', { conn: CONN + 7 })]);
      await routes.up(route(u, 'phone', { conn: CONN + 3 }), HOUR);
      assert.deepEqual(await routesOf(u), [route(u, 'phone', { conn: CONN + 3 })], 'the latest up wins, whatever its conn');
    });

    it('looks up many users in one call', async () => {
      const users = Array.from({ length: 50 }, () => user());
      const absent = user();
      await Promise.all(users.map((u, i) => routes.up(route(u, `d${i}`, { edge: `https://edge-${i % 3}.example`, gw: `gw:local:${i}`, conn: CONN + i }), HOUR)));
      const found = await routes.lookup([...users, absent, users[0]!]);
      assert.equal(found.size, users.length);
      users.forEach((u, i) => assert.deepEqual(found.get(u), [route(u, `d${i}`, { edge: `https://edge-${i % 3}.example`, gw: `gw:local:${i}`, conn: CONN + i })]));
      assert.equal(found.has(absent), false);
    });

    it('a route expires ttl after up', async () => {
      const u = user();
      await routes.up(route(u, 'phone'), 300);
      await routes.up(route(u, 'laptop'), HOUR);
      assert.equal((await routesOf(u)).length, 2);
      await sleep(450);
      assert.deepEqual(await routesOf(u), [route(u, 'laptop')]);
    });

    it('a user whose only route expired is absent', async () => {
      const u = user();
      await routes.up(route(u, 'phone'), 300);
      await sleep(450);
      assert.equal((await routes.lookup([u])).has(u), false);
    });

    it('up again refreshes: the route lives ttl after the latest up', async () => {
      const u = user();
      const r = route(u, 'phone');
      await routes.up(r, 600);
      await sleep(400);
      await routes.up(r, 600);
      await sleep(400); // 800 ms after the first up, 400 after the refresh
      assert.deepEqual(await routesOf(u), [r]);
      await sleep(400); // 800 ms after the refresh
      assert.equal((await routes.lookup([u])).has(u), false);
    });

    it('a shorter ttl on refresh does not cut another device short', async () => {
      const u = user();
      await routes.up(route(u, 'laptop'), 1_500);
      await routes.up(route(u, 'phone'), 200);
      await sleep(400);
      assert.deepEqual(await routesOf(u), [route(u, 'laptop')]);
    });

    it('down removes the route while it names the same socket', async () => {
      const u = user();
      const r = route(u, 'phone');
      await routes.up(r, HOUR);
      await routes.up(route(u, 'laptop'), HOUR);
      await routes.down(r);
      assert.deepEqual(await routesOf(u), [route(u, 'laptop')]);
      await routes.down(route(u, 'laptop'));
      assert.equal((await routes.lookup([u])).has(u), false);
    });

    it('down of an older socket leaves the newer route (the device reconnected on the same gateway)', async () => {
      const u = user();
      await routes.up(route(u, 'phone', { conn: CONN }), HOUR);
      await routes.up(route(u, 'phone', { conn: CONN + 1 }), HOUR);
      await routes.down(route(u, 'phone', { conn: CONN }));
      assert.deepEqual(await routesOf(u), [route(u, 'phone', { conn: CONN + 1 })]);
    });

    it('down names the socket by gateway and edge too: the same conn elsewhere leaves the route', async () => {
      const u = user();
      await routes.up(route(u, 'phone', { gw: 'gw:local:2', conn: 9 }), HOUR);
      await routes.down(route(u, 'phone', { gw: 'gw:local:1', conn: 9 })); // the old gateway closes its socket late
      await routes.down(route(u, 'phone', { edge: EDGE_B, gw: 'gw:local:2', conn: 9 }));
      await routes.down(route(u, 'phone', { gw: 'gw:local:2', conn: 10 }));
      assert.deepEqual(await routesOf(u), [route(u, 'phone', { gw: 'gw:local:2', conn: 9 })]);
      await routes.down(route(u, 'phone', { gw: 'gw:local:2', conn: 9 }));
      assert.equal((await routes.lookup([u])).has(u), false);
    });

    it('down of an unknown route is a no-op', async () => {
      const u = user();
      await routes.down(route(u, 'phone'));
      assert.equal((await routes.lookup([u])).has(u), false);
    });
  });
}
