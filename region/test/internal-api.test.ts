import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { signRequest, type PresenceEvent, type RouteOp } from '@switchboard/protocol';
import { createApp } from '../src/app.ts';
import { Contacts } from '../src/presence/contacts.ts';
import { createLogger } from '../src/log.ts';
import { MemoryPresence } from '../src/presence/presence-memory.ts';
import { PresenceService } from '../src/presence/presence-service.ts';
import { MemoryQueue } from '../src/queue/queue-memory.ts';
import { MemoryRoutes } from '../src/routes/routes-memory.ts';
import type { Route, Routes } from '../src/routes/routes.ts';
import { SqliteStorage } from '../src/storage/storage-sqlite.ts';

const SECRET = 'internal-api-test-secret-0123456789';
const EDGE_A = 'https://edge-a.example';
const EDGE_B = 'https://edge-b.example';
const T0 = 1_764_000_000_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The region app over SQLite and in-memory routes and presence; presence pushes are recorded. */
async function setup(opts: { routes?: Routes } = {}) {
  const log = createLogger({ test: 'internal-api' });
  const storage = new SqliteStorage(':memory:');
  await storage.init();
  const routes = opts.routes ?? new MemoryRoutes();
  const pushes: { edge: string; events: PresenceEvent[] }[] = [];
  const presence = new PresenceService({ presence: new MemoryPresence(), contacts: new Contacts(storage), log, ttlMs: 60_000, push: async (edge, events) => void pushes.push({ edge, events }) });
  const app = createApp({ storage, queue: new MemoryQueue(log), routes, log, internalSecret: SECRET, routeTtlMs: 60_000, presence });
  const send = async (path: string, body: string) => {
    const headers = { 'content-type': 'application/json', ...(await signRequest(SECRET, 'POST', path, body)) };
    const res = await app.request(path, { method: 'POST', headers, body });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const post = (path: string, payload: unknown) => send(path, JSON.stringify(payload));
  return { storage, routes, post, send, pushes };
}

/** Routes whose ops take a few ms each and record how many run at once, overall and per device. */
function slowRoutes() {
  const inner = new MemoryRoutes();
  const perDevice = new Map<string, number>();
  const seen = { maxOverall: 0, maxPerDevice: 0, overall: 0, order: [] as string[] };
  const slow = (fn: (r: Route) => Promise<void>, name: string) => async (r: Route) => {
    const k = `${r.user}/${r.device}`;
    seen.overall++;
    perDevice.set(k, (perDevice.get(k) ?? 0) + 1);
    seen.maxOverall = Math.max(seen.maxOverall, seen.overall);
    seen.maxPerDevice = Math.max(seen.maxPerDevice, perDevice.get(k)!);
    seen.order.push(`${k} ${name} ${r.conn}`);
    try {
      await sleep(3);
      await fn(r);
    } finally {
      seen.overall--;
      perDevice.set(k, perDevice.get(k)! - 1);
    }
  };
  const routes: Routes = Object.assign(Object.create(inner) as MemoryRoutes, {
    up: slow((r) => inner.up(r, 60_000), 'up'),
    down: slow((r) => inner.down(r), 'down'),
    lookup: (users: string[]) => inner.lookup(users),
    epoch: () => inner.epoch(),
  });
  return { routes, seen };
}

describe('/internal/routes', () => {
  it("applies each device's ops in order and different devices concurrently", async () => {
    const { routes, seen } = slowRoutes();
    const { post } = await setup({ routes });
    const op = (o: 'up' | 'down', user: string, device: string, conn: number, gw = 'gw:local:1'): RouteOp => ({ op: o, user, device, edge: EDGE_A, gw, conn });
    const ops: RouteOp[] = [
      op('up', 'ann', 'phone', 1),
      op('up', 'bob', 'phone', 1),
      op('down', 'ann', 'phone', 1), // ann's phone closed …
      op('up', 'ann', 'phone', 2), // … and reconnected: ends routed at conn 2
      op('up', 'bob', 'laptop', 7),
      op('down', 'bob', 'laptop', 7), // bob's laptop came and went
      op('up', 'cat', 'phone', 3, 'gw:local:2'),
      op('down', 'cat', 'phone', 9, 'gw:local:2'), // another socket's close: cat keeps conn 3
      ...Array.from({ length: 40 }, (_, i) => op('up', `u${i}`, 'd', i)),
    ];
    const res = await post('/internal/routes', { ops });
    assert.equal(res.status, 200);
    assert.equal(res.body.applied, ops.length);
    assert.equal(typeof res.body.epoch, 'string');
    assert.equal(seen.maxPerDevice, 1, "a device's ops never overlap");
    assert.ok(seen.maxOverall > 1, `devices are applied concurrently (at most ${seen.maxOverall} at once)`);
    const per = (k: string) => seen.order.filter((o) => o.startsWith(`${k} `));
    assert.deepEqual(per('ann/phone'), ['ann/phone up 1', 'ann/phone down 1', 'ann/phone up 2']);
    assert.deepEqual(per('bob/laptop'), ['bob/laptop up 7', 'bob/laptop down 7']);
    const found = await routes.lookup(['ann', 'bob', 'cat', 'u39']);
    assert.deepEqual(found.get('ann'), [{ user: 'ann', device: 'phone', edge: EDGE_A, gw: 'gw:local:1', conn: 2 }]);
    assert.deepEqual(found.get('bob')?.map((r) => r.device), ['phone']);
    assert.deepEqual(found.get('cat'), [{ user: 'cat', device: 'phone', edge: EDGE_A, gw: 'gw:local:2', conn: 3 }]);
    assert.equal(found.get('u39')?.[0]?.conn, 39);
  });

  it('takes 5,000 ops of a gateway in one call', async () => {
    const { post, routes } = await setup();
    const ops = Array.from({ length: 5_000 }, (_, i) => ({ op: 'up', user: `u${i >> 1}`, device: `d${i & 1}`, edge: EDGE_A, gw: 'gw:weur:12', conn: 1_764_000_000_000_000 + i }));
    const res = await post('/internal/routes', { ops });
    assert.equal(res.status, 200);
    assert.equal(res.body.applied, 5_000);
    const found = await routes.lookup(Array.from({ length: 2_500 }, (_, i) => `u${i}`));
    assert.equal([...found.values()].flat().length, 5_000);
    assert.equal(found.get('u2499')?.find((r) => r.device === 'd1')?.conn, 1_764_000_000_000_000 + 4_999);
  });

  it('refuses an op without its gateway or connection id, with a typed error, and applies none of the batch', async () => {
    const { post, routes } = await setup();
    const good = { op: 'up', user: 'ann', device: 'phone', edge: EDGE_A, gw: 'gw:local:1', conn: 1 };
    for (const bad of [{ ...good, gw: undefined }, { ...good, conn: undefined }, { ...good, gw: 'local:1' }, { ...good, conn: -1 }]) {
      const res = await post('/internal/routes', { ops: [good, bad] });
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'invalid_frame');
    }
    assert.equal((await routes.lookup(['ann'])).size, 0);
  });
});

describe('/internal/gateway (a gateway\'s batch)', () => {
  it('applies routes, presence and cursors of one call, and answers the routes epoch', async () => {
    const { post, routes, storage } = await setup();
    const route = (user: string, conn: number): RouteOp => ({ op: 'up', user, device: 'phone', edge: EDGE_A, gw: 'gw:local:1', conn });
    const res = await post('/internal/gateway', {
      routes: [route('ann', 1), { ...route('ann', 1), op: 'down' }, route('ann', 2), route('bob', 3)],
      presence: [{ op: 'connect', user: 'ann', device: 'phone' }],
      cursors: [{ user: 'ann', device: 'phone', conv: 'cA', seq: 4 }],
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.applied, { routes: 4, presence: 1, cursors: 1 });
    assert.equal(typeof res.body.epoch, 'string');
    const found = await routes.lookup(['ann', 'bob']);
    assert.deepEqual(found.get('ann')!.map((r) => r.conn), [2], "each device's ops in order");
    assert.equal(found.get('bob')!.length, 1);
    assert.deepEqual(await storage.deviceCursors('ann', 'phone', ['cA']), new Map([['cA', 4]]));
    const watched = await post('/internal/watch', { user: 'ann', device: 'phone', edge: EDGE_A, gw: 'gw:local:1', watch: ['ann'] });
    assert.equal(watched.body.users[0].status, 'online', 'the presence connect was applied');
  });

  it('answers no epoch without routes, and refuses an empty or oversized batch', async () => {
    const { post } = await setup();
    const res = await post('/internal/gateway', { cursors: [{ user: 'ann', device: 'phone', conv: 'cA', seq: 1 }] });
    assert.deepEqual(res.body, { applied: { routes: 0, presence: 0, cursors: 1 } });
    for (const bad of [{}, { routes: [], presence: [], cursors: [] }, { presence: Array.from({ length: 5001 }, () => ({ op: 'beat', user: 'ann', device: 'd' })) }]) {
      const r = await post('/internal/gateway', bad);
      assert.equal(r.status, 400, JSON.stringify(bad).slice(0, 60));
      assert.equal(r.body.error.code, 'invalid_frame');
    }
  });
});

describe('/internal/cursors and /internal/conversations', () => {
  async function withConversations() {
    const s = await setup();
    for (const id of ['cA', 'cB', 'cC']) await s.storage.saveConversation({ id, title: null, creator: 'ann', createdAt: T0, members: ['ann', 'bob'] });
    await s.storage.appendMessages([1, 2, 3, 4, 5].map((seq) => ({ t: 'msg' as const, conv: 'cA', seq, cmid: `m${seq}`, from: 'bob', dev: 'd', ts: T0 + seq, body: 'x' })));
    await s.storage.appendMessages([{ t: 'msg', conv: 'cB', seq: 1, cmid: 'm1', from: 'bob', dev: 'd', ts: T0, body: 'x' }]);
    return s;
  }

  it('stores cursors forward-only and answers how many it applied', async () => {
    const { post, storage } = await setup();
    let res = await post('/internal/cursors', { cursors: [{ user: 'ann', device: 'phone', conv: 'cA', seq: 4 }, { user: 'ann', device: 'laptop', conv: 'cA', seq: 2 }] });
    assert.deepEqual(res, { status: 200, body: { applied: 2 } });
    res = await post('/internal/cursors', { cursors: [{ user: 'ann', device: 'phone', conv: 'cA', seq: 3 }] }); // an older flush, late
    assert.deepEqual(res, { status: 200, body: { applied: 1 } });
    assert.deepEqual(await storage.deviceCursors('ann', 'phone', ['cA']), new Map([['cA', 4]]));
    assert.deepEqual(await storage.deviceCursors('ann', 'laptop', ['cA']), new Map([['cA', 2]]));
  });

  it('refuses bad bodies with typed errors', async () => {
    const { post, send } = await setup();
    assert.equal((await send('/internal/cursors', '{not json')).body.error.code, 'bad_json');
    for (const bad of [{}, { cursors: [] }, { cursors: [{ user: 'ann', device: 'phone', conv: 'cA', seq: -1 }] }, { cursors: [{ user: 'ann', conv: 'cA', seq: 1 }] }, { cursors: [{ user: 'a b', device: 'phone', conv: 'cA', seq: 1 }] }]) {
      const res = await post('/internal/cursors', bad);
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.equal(res.body.error.code, 'invalid_frame');
    }
    const many = Array.from({ length: 10_001 }, (_, i) => ({ user: 'ann', device: 'phone', conv: `c${i}`, seq: 1 }));
    assert.equal((await post('/internal/cursors', { cursors: many })).status, 400, 'over 10,000 cursors');
  });

  it("answers each conversation with the device's acked cursor, 0 when none", async () => {
    const { post } = await withConversations();
    await post('/internal/cursors', { cursors: [{ user: 'ann', device: 'phone', conv: 'cA', seq: 3 }, { user: 'ann', device: 'laptop', conv: 'cA', seq: 5 }, { user: 'ann', device: 'phone', conv: 'cC', seq: 0 }] });
    const both = await post('/internal/conversations', { pages: [{ user: 'ann', device: 'phone', after: '', limit: 10 }, { user: 'ann', device: 'laptop', limit: 10 }] });
    assert.equal(both.status, 200);
    assert.deepEqual(both.body.pages[0], { convs: [{ conv: 'cA', last: 5, acked: 3 }, { conv: 'cB', last: 1, acked: 0 }, { conv: 'cC', last: 0, acked: 0 }] });
    assert.deepEqual(both.body.pages[1].convs.map((c: { acked: number }) => c.acked), [5, 0, 0], 'each page for its own device, in request order');
  });

  it('pages with next, each page with its cursors', async () => {
    const { post } = await withConversations();
    await post('/internal/cursors', { cursors: [{ user: 'ann', device: 'phone', conv: 'cC', seq: 1 }] });
    const p1 = await post('/internal/conversations', { pages: [{ user: 'ann', device: 'phone', after: '', limit: 2 }] });
    assert.deepEqual(p1.body, { pages: [{ convs: [{ conv: 'cA', last: 5, acked: 0 }, { conv: 'cB', last: 1, acked: 0 }], next: 'cB' }] });
    const p2 = await post('/internal/conversations', { pages: [{ user: 'ann', device: 'phone', after: 'cB', limit: 2 }] });
    assert.deepEqual(p2.body, { pages: [{ convs: [{ conv: 'cC', last: 0, acked: 1 }] }] });
  });

  it('refuses a request without the device, with no pages, or with too many', async () => {
    const { post } = await withConversations();
    const one = { user: 'ann', device: 'phone', after: '', limit: 10 };
    for (const bad of [{ pages: [{ user: 'ann', after: '', limit: 10 }] }, { user: 'ann', device: 'phone', after: '', limit: 10 }, { pages: [] }, { pages: Array.from({ length: 201 }, () => one) }]) {
      const res = await post('/internal/conversations', bad);
      assert.equal(res.status, 400, JSON.stringify(bad).slice(0, 80));
      assert.equal(res.body.error.code, 'invalid_frame');
    }
  });
});

describe('/internal/watch and presence pushes', () => {
  it('pushes one request per edge, one event per (watching user, gateway) naming its devices there', async () => {
    const { post, storage, pushes } = await setup();
    await storage.saveConversation({ id: 'cW', title: null, creator: 'ann', createdAt: T0, members: ['ann', 'bob', 'cat'] });
    const watch = (user: string, device: string, edge: string, gw: string) => post('/internal/watch', { user, device, edge, gw, watch: ['ann'] });
    for (const [user, device, edge, gw] of [
      ['bob', 'phone', EDGE_A, 'gw:local:1'],
      ['bob', 'tablet', EDGE_A, 'gw:local:1'],
      ['bob', 'laptop', EDGE_A, 'gw:local:2'],
      ['cat', 'phone', EDGE_A, 'gw:local:1'],
      ['cat', 'laptop', EDGE_B, 'gw:enam:5'],
    ] as const) {
      const res = await watch(user, device, edge, gw);
      assert.deepEqual(res.body, { ok: true, users: [{ user: 'ann', status: 'offline', last_seen: null }] });
    }
    assert.equal((await post('/internal/presence', { ops: [{ op: 'connect', user: 'ann', device: 'phone' }] })).status, 200);
    assert.deepEqual(pushes.map((p) => p.edge).sort(), [EDGE_A, EDGE_B], 'one request per edge');
    const events = (edge: string) =>
      pushes
        .find((p) => p.edge === edge)!
        .events.map((e) => ({ ...e, devices: [...e.devices].sort() }))
        .sort((a, b) => `${a.to} ${a.gw}`.localeCompare(`${b.to} ${b.gw}`));
    const online = { user: 'ann', status: 'online', last_seen: null };
    assert.deepEqual(events(EDGE_A), [
      { ...online, to: 'bob', gw: 'gw:local:1', devices: ['phone', 'tablet'] },
      { ...online, to: 'bob', gw: 'gw:local:2', devices: ['laptop'] },
      { ...online, to: 'cat', gw: 'gw:local:1', devices: ['phone'] },
    ]);
    assert.deepEqual(events(EDGE_B), [{ ...online, to: 'cat', gw: 'gw:enam:5', devices: ['laptop'] }]);
  });

  it('refuses a watch without its gateway', async () => {
    const { post } = await setup();
    const res = await post('/internal/watch', { user: 'bob', device: 'phone', edge: EDGE_A, watch: ['ann'] });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'invalid_frame');
  });
});
