import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { signRequest, type PresenceEvent } from '@switchboard/protocol';
import { createApp } from '../../src/app.ts';
import { createLogger } from '../../src/log.ts';
import { Contacts } from '../../src/presence/contacts.ts';
import { MemoryPresence } from '../../src/presence/presence-memory.ts';
import { PresenceService } from '../../src/presence/presence-service.ts';
import { MemoryQueue } from '../../src/queue/queue-memory.ts';
import { MemoryRoutes } from '../../src/routes/routes-memory.ts';
import { SqliteStorage } from '../../src/storage/storage-sqlite.ts';

const SECRET = 'consent-api-test-secret-0123456789';
const EDGE = 'https://edge.example';
const T0 = 1_764_000_000_000;

/** The region app over SQLite and in-memory presence, with presence pushes recorded. */
async function setup() {
  const log = createLogger({ test: 'consent-api' });
  const storage = new SqliteStorage(':memory:');
  await storage.init();
  const pushes: PresenceEvent[] = [];
  const presence = new PresenceService({ presence: new MemoryPresence(), contacts: new Contacts(storage), log, ttlMs: 60_000, push: async (_edge, events) => void pushes.push(...events) });
  const app = createApp({ storage, queue: new MemoryQueue(log), routes: new MemoryRoutes(), log, internalSecret: SECRET, routeTtlMs: 60_000, presence });
  const send = async (path: string, body: string) => {
    const headers = { 'content-type': 'application/json', ...(await signRequest(SECRET, 'POST', path, body)) };
    const res = await app.request(path, { method: 'POST', headers, body });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const post = (path: string, payload: unknown) => send(path, JSON.stringify(payload));
  /** A conversation reaches the region as its outbox does: created, then its consent event. */
  const created = (conv: string, creator: string, members: string[], requests: string[] = []) =>
    post('/internal/events', {
      conv,
      events: [
        { kind: 'created', conv, title: null, members: [creator, ...members], creator, ts: T0 },
        ...(requests.length ? [{ kind: 'consent', changes: requests.map((user) => ({ user, state: 'request', by: creator, ts: T0 })) }] : []),
      ],
    });
  const watch = (user: string, users: string[]) => post('/internal/watch', { user, device: 'd1', edge: EDGE, gw: 'gw:local:0', watch: users, unwatch: [] });
  return { storage, post, send, created, watch, pushes, presence };
}

describe('region consent: who may watch whom, checks, blocks and visibility', () => {
  it('a request hides its recipient from the asker until accepted; the recipient sees the asker', async () => {
    const { post, created, watch } = await setup();
    assert.equal((await created('d1', 'ann', ['bob'], ['bob'])).status, 200);
    assert.equal((await watch('ann', ['bob'])).body.code, 'forbidden');
    assert.equal((await watch('bob', ['ann'])).body.ok, true);
    assert.deepEqual((await post('/internal/consent/check', { user: 'ann', others: ['bob', 'cat'] })).body, { blocked: [], requests: ['bob', 'cat'] });
    await post('/internal/events', { conv: 'd1', events: [{ kind: 'consent', changes: [{ user: 'bob', state: 'accepted', by: 'ann', ts: T0 + 1 }] }] });
    assert.equal((await watch('ann', ['bob'])).body.ok, true, 'accepted: visible at once');
    assert.deepEqual((await post('/internal/consent/check', { user: 'ann', others: ['bob'] })).body, { blocked: [], requests: [] });
  });

  it('visibility: contacts hides from a pending relation, nobody from all; a narrower setting stops pushes to earlier watches', async () => {
    const { post, created, watch, presence, pushes } = await setup();
    await created('g1', 'tess', ['walt']); // accepted (nobody pending)
    await created('g2', 'tess', ['wren'], ['wren']); // wren has not accepted
    assert.equal((await watch('walt', ['tess'])).body.ok, true);
    assert.equal((await watch('wren', ['tess'])).body.ok, true);
    assert.deepEqual((await post('/internal/consent/visibility', { user: 'tess', visibility: 'contacts' })).body, { visibility: 'contacts' });
    assert.equal((await watch('walt', ['tess'])).body.ok, true);
    assert.equal((await watch('wren', ['tess'])).body.code, 'forbidden');
    await presence.apply([{ op: 'connect', user: 'tess', device: 'p' }]);
    assert.deepEqual(pushes.filter((e) => e.user === 'tess').map((e) => e.to), ['walt'], 'only the contact is pushed to');
    await post('/internal/consent/visibility', { user: 'tess', visibility: 'nobody' });
    assert.equal((await watch('walt', ['tess'])).body.code, 'forbidden');
    pushes.length = 0;
    await presence.apply([{ op: 'down', user: 'tess', device: 'p' }]);
    assert.deepEqual(pushes, [], 'nobody is pushed to');
    assert.equal((await watch('tess', ['tess'])).body.ok, true, 'a user always sees themself');
    assert.deepEqual((await post('/internal/consent/visibility', { user: 'tess' })).body, { visibility: 'nobody' });
    assert.deepEqual((await post('/internal/consent/visibility', { user: 'zed' })).body, { visibility: 'everyone' });
  });

  it('a block hides presence both ways, shows in checks, and is lifted by unblock', async () => {
    const { post, created, watch } = await setup();
    await created('g3', 'kim', ['leo']);
    assert.equal((await watch('leo', ['kim'])).body.ok, true);
    assert.deepEqual((await post('/internal/consent/block', { user: 'kim', other: 'leo', on: true })).body, { blocked: true });
    assert.equal((await watch('leo', ['kim'])).body.code, 'forbidden');
    assert.equal((await watch('kim', ['leo'])).body.code, 'forbidden');
    assert.deepEqual((await post('/internal/consent/check', { user: 'leo', others: ['kim'] })).body, { blocked: ['kim'], requests: [] });
    assert.deepEqual((await post('/internal/consent/blocks', { user: 'kim' })).body.blocks.map((b: any) => b.user), ['leo']);
    await post('/internal/consent/block', { user: 'kim', other: 'leo', on: false });
    assert.equal((await watch('leo', ['kim'])).body.ok, true);
    assert.deepEqual((await post('/internal/consent/blocks', { user: 'kim' })).body.blocks, []);
  });

  it('bad input: typed errors, nothing stored', async () => {
    const { post, send, storage } = await setup();
    assert.equal((await post('/internal/consent/block', { user: 'kim', other: 'kim', on: true })).body.error.code, 'invalid_frame');
    assert.equal((await post('/internal/consent/block', { user: 'kim', other: 'bad id!', on: true })).body.error.code, 'invalid_frame');
    assert.equal((await post('/internal/consent/visibility', { user: 'kim', visibility: 'friends' })).body.error.code, 'invalid_frame');
    assert.equal((await post('/internal/consent/check', { user: 'kim', others: [] })).body.error.code, 'invalid_frame');
    assert.equal((await send('/internal/consent/check', '{')).body.error.code, 'bad_json');
    assert.equal((await post('/internal/events', { conv: 'x1', events: [{ kind: 'consent', changes: [{ user: 'a', state: 'maybe', by: 'b', ts: 1 }] }] })).status, 400);
    assert.deepEqual(await storage.blocksOf('kim'), []);
    assert.equal((await storage.presenceVisibility(['kim'])).size, 0);
  });

  it('the conversation list marks requests until they are answered', async () => {
    const { post, created } = await setup();
    await created('d9', 'ann', ['bob'], ['bob']);
    const list = async (user: string) => (await post('/internal/inbox', { user, after: '', limit: 10 })).body.convs as Record<string, any>[];
    assert.deepEqual((await list('bob'))[0]!.request, { by: 'ann', at: T0 });
    assert.equal((await list('ann'))[0]!.request, undefined);
    await post('/internal/events', { conv: 'd9', events: [{ kind: 'consent', changes: [{ user: 'bob', state: 'declined', by: 'ann', ts: T0 + 5 }] }] });
    assert.equal((await list('bob'))[0]!.request, undefined);
  });
});

describe('Contacts across region processes (two caches over one storage)', () => {
  it('a block, a setting and an accepted request stored by one process reach the other within its cache lifetimes', async () => {
    const storage = new SqliteStorage(':memory:');
    await storage.init();
    const opts = { settingsTtlMs: 100, recheckMs: 100 };
    const [one, two] = [new Contacts(storage, opts), new Contacts(storage, opts)];
    await storage.saveConversation({ id: 'dx', title: null, creator: 'ann', createdAt: T0, members: ['ann', 'bob'] });
    await storage.setRequests([{ conv: 'dx', user: 'bob', by: 'ann', at: T0 }]);
    assert.deepEqual(await one.hidden('ann', ['bob']), ['bob'], 'bob has not accepted');
    assert.deepEqual(await one.hidden('bob', ['ann']), []);
    // Another process applies bob's accept: this one sees it at the next look after recheckMs.
    await storage.clearRequests('dx', ['bob']);
    two.forgetRelations(['ann', 'bob']);
    assert.deepEqual(await two.hidden('ann', ['bob']), []);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(await one.hidden('ann', ['bob']), []);
    // A block and a narrower setting stored through the other process.
    await storage.block('bob', 'ann', T0);
    two.forgetBlock('bob', 'ann');
    assert.deepEqual(await two.hidden('ann', ['bob']), ['bob']);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(await one.hidden('ann', ['bob']), ['bob']);
    assert.deepEqual([...(await one.stillVisible('bob', ['ann']))], []);
    await storage.unblock('bob', 'ann');
    await storage.setPresenceVisibility('bob', 'nobody');
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(await one.hidden('ann', ['bob']), ['bob']);
    assert.deepEqual([...(await one.stillVisible('bob', ['ann', 'bob']))], ['bob'], 'only bob himself');
    await storage.close();
  });
});
