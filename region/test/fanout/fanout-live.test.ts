import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Delivery, MessageEvent, Msg } from '@switchboard/protocol';
import { fanoutHandler, fanoutHandlers } from '../../src/fanout/fanout.ts';
import { createLogger } from '../../src/log.ts';
import { RegionMetrics } from '../../src/metrics/region-metrics.ts';
import { MemoryRoutes } from '../../src/routes/routes-memory.ts';
import type { PushRegistration } from '../../src/push/provider.ts';
import type { Route } from '../../src/routes/routes.ts';
import { SqliteStorage } from '../../src/storage/storage-sqlite.ts';

const EDGE = 'http://127.0.0.1:9';
const GW1 = 'gw:local:1';
const GW2 = 'gw:local:2';
const msg: Msg = { t: 'msg', conv: 'c1', seq: 1, cmid: 'm1', from: 'ann', dev: 'phone', ts: 1, body: 'hi' };
const HOUR = 3_600_000;

async function setup() {
  const storage = new SqliteStorage(':memory:');
  await storage.init();
  await storage.saveConversation({ id: 'c1', title: null, creator: 'ann', createdAt: 0, members: ['ann', 'bob', 'cat'] });
  const routes = new MemoryRoutes();
  const calls: { edge: string; ds: Delivery[] }[] = [];
  const metrics = new RegionMetrics();
  const handle = fanoutHandler({ storage, routes, log: createLogger({ svc: 'test' }), metrics, deliver: async (edge, ds) => void calls.push({ edge, ds }) });
  const run = (event: MessageEvent) => handle({ key: 'c1', value: event });
  const up = (user: string, device: string, gw: string, conn: number, edge = EDGE) => routes.up({ user, device, edge, gw, conn } satisfies Route, HOUR);
  /** Every delivery as "user gw [skip]", sorted. */
  const delivered = () => calls.flatMap((c) => c.ds.map((d) => `${d.user} ${d.gw}${d.skipDevice ? ` skip ${d.skipDevice}` : ''}`)).sort();
  return { calls, run, up, delivered, metrics };
}

describe('fan-out after the edge live path', () => {
  it('delivers to sockets the live path did not reach: connected later, or on another gateway; not to covered ones', async () => {
    const { run, up, delivered, calls } = await setup();
    await up('ann', 'phone', GW1, 10); // the sender's sending device
    await up('bob', 'phone', GW1, 11); // covered: on GW1, conn ≤ upTo
    await up('bob', 'laptop', GW1, 21); // connected to GW1 after the live push
    await up('cat', 'phone', GW1, 20); // covered exactly at upTo
    await up('cat', 'tablet', GW2, 3); // on a gateway the live path did not name
    await run({ kind: 'msg', msg, live: [{ gw: GW1, upTo: 20 }] });
    assert.deepEqual(delivered(), [`bob ${GW1}`, `cat ${GW2}`]);
    assert.equal(calls.length, 1, 'one request per edge for every gateway');
  });

  it('a member whose every socket was reached gets nothing; the sending device never does', async () => {
    const { run, up, delivered, metrics } = await setup();
    await up('ann', 'phone', GW2, 50); // the sending device, on a gateway the live path did not name
    await up('bob', 'phone', GW1, 5);
    await up('bob', 'laptop', GW2, 6);
    await up('cat', 'phone', GW1, 7);
    await run({ kind: 'msg', msg, live: [{ gw: GW1, upTo: 9 }, { gw: GW2, upTo: 6 }] });
    assert.deepEqual(delivered(), []);
    assert.equal(await metrics.count('fanout_live_skipped'), 3, 'ann (only the sending device), bob and cat');
  });

  it('several hints for one gateway: the highest counts', async () => {
    const { run, up, delivered } = await setup();
    await up('bob', 'phone', GW1, 15);
    await up('cat', 'phone', GW1, 30);
    await run({ kind: 'msg', msg, live: [{ gw: GW1, upTo: 10 }, { gw: GW1, upTo: 20 }] });
    assert.deepEqual(delivered(), [`cat ${GW1}`]);
  });

  it('without hints, every device with a route but the sending one: one delivery per (user, gateway)', async () => {
    const { run, up, delivered, calls } = await setup();
    await up('ann', 'phone', GW1, 1);
    await up('ann', 'laptop', GW1, 2); // the sender's other device, on the sending device's gateway
    await up('ann', 'tablet', GW2, 3);
    await up('bob', 'phone', GW1, 4);
    await up('bob', 'laptop', GW1, 5);
    await up('bob', 'tablet', GW2, 6);
    await up('cat', 'phone', GW1, 7, 'http://127.0.0.1:10');
    await run({ kind: 'msg', msg });
    assert.deepEqual(delivered(), [`ann ${GW1} skip phone`, `ann ${GW2} skip phone`, `bob ${GW1}`, `bob ${GW2}`, `cat ${GW1}`]);
    assert.deepEqual(calls.map((c) => c.edge).sort(), ['http://127.0.0.1:10', EDGE], 'one request per edge');
  });

  it('makes no call for the sending device alone, even when no hint covers it', async () => {
    const { run, up, calls } = await setup();
    await up('ann', 'phone', GW1, 1);
    await run({ kind: 'msg', msg, live: [{ gw: GW2, upTo: 100 }] });
    assert.deepEqual(calls, []);
  });

  it('a membership change reaches the device that made it, unless the live path did', async () => {
    const { run, up, delivered } = await setup();
    const sys: Msg = { ...msg, body: '', cmid: 'sys-1', sys: { op: 'role', by: 'ann', users: ['bob'], role: 'admin' } };
    await up('ann', 'phone', GW1, 8);
    await run({ kind: 'msg', msg: sys });
    assert.deepEqual(delivered(), [`ann ${GW1}`]);
    const again = await setup();
    await again.up('ann', 'phone', GW1, 8);
    await again.run({ kind: 'msg', msg: sys, live: [{ gw: GW1, upTo: 8 }] });
    assert.deepEqual(again.delivered(), []);
  });
});

describe('fan-out of a run of records (the queue batch)', () => {
  it('one deliver call per edge for the whole run, each (user, gateway) getting the messages in seq order; push intents for each registered device with no socket', async () => {
    const storage = new SqliteStorage(':memory:');
    await storage.init();
    await storage.saveConversation({ id: 'c1', title: null, creator: 'ann', createdAt: 0, members: ['ann', 'bob', 'cat', 'dan'] });
    const routes = new MemoryRoutes();
    for (const [i, user] of ['ann', 'bob', 'cat'].entries()) await routes.up({ user, device: 'phone', edge: EDGE, gw: GW1, conn: i + 1 }, HOUR);
    await routes.up({ user: 'cat', device: 'laptop', edge: EDGE, gw: GW2, conn: 1 }, HOUR);
    await routes.up({ user: 'cat', device: 'tablet', edge: 'http://127.0.0.1:10', gw: GW1, conn: 1 }, HOUR);
    const calls: { edge: string; ds: Delivery[] }[] = [];
    const jobs: { user: string; device: string; seq: number }[] = [];
    const lookups: string[][] = [];
    const reg = (user: string, device: string): PushRegistration => ({ user, device, service: 'fcm', token: `t-${user}-${device}`, registeredAt: 0 });
    // dan has no socket; cat's phone is connected, her watch is not; ann (the sender of 1 and 3) is registered too.
    const registered = new Map([
      ['dan', [reg('dan', 'phone')]],
      ['cat', [reg('cat', 'phone'), reg('cat', 'watch')]],
      ['ann', [reg('ann', 'ipad')]],
    ]);
    const asked: string[][] = [];
    const { many } = fanoutHandlers({
      storage,
      routes: Object.assign(Object.create(routes) as MemoryRoutes, { lookup: (users: string[]) => (lookups.push(users), routes.lookup(users)) }),
      log: createLogger({ svc: 'test' }),
      deliver: async (edge, ds) => void calls.push({ edge, ds }),
      enqueuePush: async (js) => void jobs.push(...js.map((j) => ({ user: j.user, device: j.device, seq: j.seq }))),
      pushRegistrations: async (users) => (asked.push(users), new Map(users.flatMap((u) => (registered.has(u) ? [[u, registered.get(u)!]] : [])))),
    });
    const at = (seq: number): MessageEvent => ({ kind: 'msg', msg: { ...msg, seq, cmid: `m${seq}`, from: seq % 2 ? 'ann' : 'bob' } });
    await many([1, 2, 3].map((seq) => ({ key: 'c1', value: at(seq) })));
    assert.deepEqual(calls.map((c) => c.edge).sort(), ['http://127.0.0.1:10', EDGE]);
    const main = calls.find((c) => c.edge === EDGE)!.ds;
    const seqsOf = (user: string, gw: string) => main.filter((d) => d.user === user && d.gw === gw).map((d) => d.msg.seq);
    assert.deepEqual(seqsOf('cat', GW1), [1, 2, 3]);
    assert.deepEqual(seqsOf('cat', GW2), [1, 2, 3]);
    assert.deepEqual(seqsOf('bob', GW1), [1, 3], 'not his own seq 2: its sending device is his only one');
    assert.deepEqual(seqsOf('ann', GW1), [2]);
    const jobsOf = (user: string, device: string) => jobs.filter((j) => j.user === user && j.device === device).map((j) => j.seq);
    assert.deepEqual(jobsOf('dan', 'phone'), [1, 2, 3], 'dan has no socket: one intent per message');
    assert.deepEqual(jobsOf('cat', 'watch'), [1, 2, 3], 'a registered device with no socket gets intents though the user is online elsewhere');
    assert.deepEqual(jobsOf('cat', 'phone'), [], 'a connected device gets none');
    assert.deepEqual(jobsOf('ann', 'ipad'), [2], 'none for a message the user sent');
    assert.equal(jobs.length, 7);
    assert.equal(asked.length, 1, 'the run asks for registrations once');
    assert.equal(lookups.length, 1, 'the run looks its members up once, not once per message');
    assert.deepEqual([...lookups[0]!].sort(), ['ann', 'bob', 'cat', 'dan']);
  });
});
