import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { signRequest, type ConvEvent, type Msg, type PositionChange } from '@switchboard/protocol';
import { createApp } from '../src/app.ts';
import { createLogger } from '../src/log.ts';
import { MemoryQueue } from '../src/queue/queue-memory.ts';
import { TOPICS } from '../src/queue/queue.ts';
import { MemoryRoutes } from '../src/routes/routes-memory.ts';
import { SqliteStorage } from '../src/storage/storage-sqlite.ts';
import type { Storage } from '../src/storage/storage.ts';

const SECRET = 'events-test-secret-0123456789';
const CONV = 'dEventsTest';
const T0 = 1_764_000_000_000;

const msg = (seq: number, from: string, extra: Partial<Msg> = {}): ConvEvent => ({
  kind: 'msg',
  msg: { t: 'msg', conv: CONV, seq, cmid: `cm-${seq}`, from, dev: 'phone', ts: T0 + seq, body: `hello ${seq}`, ...extra },
});
const receipts = (...positions: PositionChange[]): ConvEvent => ({ kind: 'receipts', positions });
const created: ConvEvent = { kind: 'created', conv: CONV, title: null, members: ['ann', 'bob', 'cat'], creator: 'ann', ts: T0 };

/** The region app over SQLite, with the storage and queue calls it makes recorded in order. */
async function setup(opts: { failPositions?: boolean } = {}) {
  const log = createLogger({ test: 'events' });
  const sqlite = new SqliteStorage(':memory:');
  await sqlite.init();
  const calls: string[] = [];
  const positionCalls: PositionChange[][] = [];
  const storage: Storage = Object.assign(Object.create(sqlite) as SqliteStorage, {
    appendMessages: (msgs: Msg[]) => (calls.push(`store ${msgs.map((m) => m.seq).join(',')}`), sqlite.appendMessages(msgs)),
    setPositions: async (conv: string, changes: PositionChange[]) => {
      calls.push('positions');
      positionCalls.push(changes);
      if (opts.failPositions) throw new Error('positions unavailable');
      return sqlite.setPositions(conv, changes);
    },
  });
  const queue = new MemoryQueue(log);
  const publish = queue.publish.bind(queue);
  queue.publish = (topic, records) => (calls.push(`publish ${topic} ${records.length}`), publish(topic, records));
  const app = createApp({ storage, queue, routes: new MemoryRoutes(), log, internalSecret: SECRET, routeTtlMs: 60_000 });
  const post = async (events: ConvEvent[]) => {
    const body = JSON.stringify({ conv: CONV, events });
    const headers = { 'content-type': 'application/json', ...(await signRequest(SECRET, 'POST', '/internal/events', body)) };
    return app.request('/internal/events', { method: 'POST', headers, body });
  };
  const positionsOf = async (user: string) => (await sqlite.positions(user, [CONV])).get(CONV) ?? { delivered: 0, read: 0 };
  return { post, positionsOf, calls, positionCalls };
}

describe('/internal/events: positions', () => {
  it("a sender's read (and delivered) position is their last message's seq", async () => {
    const { post, positionsOf } = await setup();
    const res = await post([created, msg(1, 'ann'), msg(2, 'bob'), msg(3, 'ann'), msg(4, 'ann'), msg(5, 'bob')]);
    assert.equal(res.status, 200);
    assert.deepEqual(await positionsOf('ann'), { delivered: 4, read: 4 });
    assert.deepEqual(await positionsOf('bob'), { delivered: 5, read: 5 });
    assert.deepEqual(await positionsOf('cat'), { delivered: 0, read: 0 }, 'a member who sent nothing has not read');
  });

  it("a membership change counts as its actor's read", async () => {
    const { post, positionsOf } = await setup();
    await post([created, msg(1, 'bob')]);
    const sys = msg(2, 'ann', { cmid: 'sys-2', body: '', sys: { op: 'add', by: 'ann', users: ['dan'], role: 'member' } });
    assert.equal((await post([sys])).status, 200);
    assert.deepEqual(await positionsOf('ann'), { delivered: 2, read: 2 });
    assert.deepEqual(await positionsOf('dan'), { delivered: 0, read: 0 }, 'the added member has read nothing');
  });

  it('several receipts events in one request end up as the highest per user, in one write after the messages', async () => {
    const { post, positionsOf, calls, positionCalls } = await setup();
    const res = await post([
      created,
      receipts({ user: 'cat', delivered: 5 }, { user: 'bob', read: 1, delivered: 1 }),
      msg(1, 'ann'),
      receipts({ user: 'cat', delivered: 4, read: 3 }),
      msg(2, 'bob'),
      receipts({ user: 'cat', read: 7, delivered: 7 }, { user: 'ann', delivered: 9 }),
      msg(3, 'ann'),
      receipts({ user: 'cat', read: 6 }, { user: 'bob', delivered: 2 }),
    ]);
    assert.equal(res.status, 200);
    assert.deepEqual(await positionsOf('cat'), { delivered: 7, read: 7 });
    assert.deepEqual(await positionsOf('ann'), { delivered: 9, read: 3 }, "a receipt's delivered and the sender's own read merge");
    assert.deepEqual(await positionsOf('bob'), { delivered: 2, read: 2 });
    assert.equal(positionCalls.length, 1, 'one setPositions for the whole request');
    assert.deepEqual(
      [...positionCalls[0]!].sort((a, b) => a.user.localeCompare(b.user)),
      [
        { user: 'ann', delivered: 9, read: 3 },
        { user: 'bob', delivered: 2, read: 2 },
        { user: 'cat', delivered: 7, read: 7 },
      ],
    );
    assert.deepEqual(calls, ['store 1,2,3', `publish ${TOPICS.fanout} 3`, 'positions'], 'positions after the messages are stored and published');
  });

  it('a request of receipts only writes them once; a later, older request lowers nothing', async () => {
    const { post, positionsOf, positionCalls } = await setup();
    assert.equal((await post([receipts({ user: 'cat', read: 4 }), receipts({ user: 'cat', delivered: 6 })])).status, 200);
    assert.equal(positionCalls.length, 1);
    assert.deepEqual(await positionsOf('cat'), { delivered: 6, read: 4 });
    await post([receipts({ user: 'cat', read: 2, delivered: 2 }), msg(1, 'cat')]);
    assert.deepEqual(await positionsOf('cat'), { delivered: 6, read: 4 });
  });

  it('applying the same request twice is harmless', async () => {
    const { post, positionsOf } = await setup();
    const events = [created, msg(1, 'ann'), receipts({ user: 'bob', read: 1, delivered: 1 }), msg(2, 'bob')];
    assert.equal((await post(events)).status, 200);
    assert.equal((await post(events)).status, 200);
    assert.deepEqual(await positionsOf('ann'), { delivered: 1, read: 1 });
    assert.deepEqual(await positionsOf('bob'), { delivered: 2, read: 2 });
  });

  it('no 200 unless the positions are stored too', async () => {
    const { post } = await setup({ failPositions: true });
    const res = await post([created, msg(1, 'ann')]);
    assert.equal(res.status, 503);
  });
});
