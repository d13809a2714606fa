import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Delivery, MessageEvent, Msg } from '@switchboard/protocol';
import { fanoutHandler, fanoutHandlers } from '../src/fanout.ts';
import { createLogger } from '../src/log.ts';
import { MemoryRoutes } from '../src/routes-memory.ts';
import { SqliteStorage } from '../src/storage-sqlite.ts';

const EDGE = 'http://127.0.0.1:9';
const msg: Msg = { t: 'msg', conv: 'c1', seq: 1, cmid: 'm1', from: 'ann', dev: 'phone', ts: 1, body: 'hi' };

async function setup() {
  const storage = new SqliteStorage(':memory:');
  await storage.init();
  await storage.saveConversation({ id: 'c1', title: null, creator: 'ann', createdAt: 0, members: ['ann', 'bob', 'cat'] });
  const routes = new MemoryRoutes();
  const calls: Delivery[] = [];
  const handle = fanoutHandler({ storage, routes, log: createLogger({ svc: 'test' }), deliver: async (_edge, ds) => void calls.push(...ds) });
  const run = (event: MessageEvent) => handle({ key: 'c1', value: event });
  return { routes, calls, run };
}

describe('fan-out after the edge live path', () => {
  it('delivers only to devices the live path did not reach', async () => {
    const { routes, calls, run } = await setup();
    for (const [user, device] of [['ann', 'phone'], ['bob', 'phone'], ['bob', 'laptop'], ['cat', 'phone']] as const) await routes.up({ user, device, edge: EDGE }, 60_000);
    // bob's laptop connected after the live push; cat's SessionDO was not reached at all.
    await run({ kind: 'msg', msg, delivered: [{ user: 'ann', devices: ['phone'] }, { user: 'bob', devices: ['phone'] }] });
    assert.deepEqual(calls.map((d) => d.user).sort(), ['bob', 'cat']);
  });

  it('delivers to every member with a route when the event says nothing', async () => {
    const { routes, calls, run } = await setup();
    for (const user of ['ann', 'bob', 'cat']) await routes.up({ user, device: 'phone', edge: EDGE }, 60_000);
    await routes.up({ user: 'ann', device: 'laptop', edge: EDGE }, 60_000);
    await run({ kind: 'msg', msg });
    assert.deepEqual(calls.map((d) => [d.user, d.skipDevice]).sort(), [['ann', 'phone'], ['bob', undefined], ['cat', undefined]], "the sender's other device gets it");
  });

  it('makes no call for the sending device alone', async () => {
    const { routes, calls, run } = await setup();
    await routes.up({ user: 'ann', device: 'phone', edge: EDGE }, 60_000);
    await run({ kind: 'msg', msg });
    assert.deepEqual(calls, []);
  });

  it('makes no delivery when the live path reached every device', async () => {
    const { routes, calls, run } = await setup();
    for (const user of ['ann', 'bob', 'cat']) await routes.up({ user, device: 'phone', edge: EDGE }, 60_000);
    await run({ kind: 'msg', msg, delivered: ['ann', 'bob', 'cat'].map((user) => ({ user, devices: ['phone'] })) });
    assert.deepEqual(calls, []);
  });
});

describe('fan-out of a run of records (the queue batch)', () => {
  it('one deliver call per edge for the whole run, each user getting the messages in seq order; push jobs for each', async () => {
    const storage = new SqliteStorage(':memory:');
    await storage.init();
    await storage.saveConversation({ id: 'c1', title: null, creator: 'ann', createdAt: 0, members: ['ann', 'bob', 'cat', 'dan'] });
    const routes = new MemoryRoutes();
    for (const user of ['ann', 'bob', 'cat']) await routes.up({ user, device: 'phone', edge: EDGE }, 60_000);
    await routes.up({ user: 'cat', device: 'tablet', edge: 'http://127.0.0.1:10' }, 60_000);
    const calls: { edge: string; ds: Delivery[] }[] = [];
    const jobs: { user: string; seq: number }[] = [];
    const lookups: string[][] = [];
    const { many } = fanoutHandlers({
      storage,
      routes: Object.assign(Object.create(routes) as MemoryRoutes, { lookup: (users: string[]) => (lookups.push(users), routes.lookup(users)) }),
      log: createLogger({ svc: 'test' }),
      deliver: async (edge, ds) => void calls.push({ edge, ds }),
      enqueuePush: async (js) => void jobs.push(...js.map((j) => ({ user: j.user, seq: j.seq }))),
    });
    const at = (seq: number): MessageEvent => ({ kind: 'msg', msg: { ...msg, seq, cmid: `m${seq}`, from: seq % 2 ? 'ann' : 'bob' } });
    await many([1, 2, 3].map((seq) => ({ key: 'c1', value: at(seq) })));
    assert.deepEqual(calls.map((c) => c.edge).sort(), ['http://127.0.0.1:10', EDGE]);
    const main = calls.find((c) => c.edge === EDGE)!.ds;
    const seqsOf = (user: string) => main.filter((d) => d.user === user).map((d) => d.msg.seq);
    assert.deepEqual(seqsOf('cat'), [1, 2, 3]);
    assert.deepEqual(seqsOf('bob'), [1, 3], 'not his own seq 2: its sending device is his only one');
    assert.deepEqual(seqsOf('ann'), [2]);
    assert.deepEqual(jobs, [1, 2, 3].map((seq) => ({ user: 'dan', seq })), 'dan has no device: one push job per message');
    assert.equal(lookups.length, 1, 'the run looks its members up once, not once per message');
    assert.deepEqual([...lookups[0]!].sort(), ['ann', 'bob', 'cat', 'dan']);
  });
});
