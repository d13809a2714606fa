import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONSENT } from '@switchboard/protocol';
import { ConsentState } from '../../src/conversation/consent.ts';
import { memorySql } from './sqlite-adapter.ts';

describe('ConsentState (a ConversationDO\'s message requests and direct blocks)', () => {
  it('records requests once, answers them once, and says what goes to the region', () => {
    const c = new ConsentState(memorySql().sql);
    assert.deepEqual(c.request(['bob', 'ann', 'cat'], 'ann', 10), [
      { user: 'bob', state: 'request', by: 'ann', ts: 10 },
      { user: 'cat', state: 'request', by: 'ann', ts: 10 },
    ]);
    assert.deepEqual(c.request(['bob'], 'dan', 11), [], 'one unanswered request per member');
    assert.deepEqual(c.pending('bob'), { by: 'ann', at: 10, sent: 0 });
    assert.equal(c.pending('ann'), undefined);
    assert.deepEqual(c.answer('bob', 'accepted', 20), { user: 'bob', state: 'accepted', by: 'ann', ts: 20 });
    assert.equal(c.answer('bob', 'declined', 21), null, 'answered already');
    assert.equal(c.pending('bob'), undefined);
  });

  it('refuses sends: a pending member, the asker past the allowance in a direct conversation, a block', () => {
    const c = new ConsentState(memorySql().sql);
    c.request(['bob'], 'ann', 1);
    assert.equal(c.refuseSend('bob', true)?.code, 'request_pending');
    for (let i = 0; i < CONSENT.requestMaxMessages; i++) {
      assert.equal(c.refuseSend('ann', true), null);
      c.sent('ann');
    }
    assert.equal(c.refuseSend('ann', true)?.code, 'request_pending');
    assert.equal(c.refuseSend('ann', false), null, 'in a group the asker is not limited');
    c.answer('bob', 'accepted', 2);
    assert.equal(c.refuseSend('ann', true), null);
    assert.equal(c.refuseSend('bob', true), null);
    c.setBlock('bob', 'ann', true);
    assert.equal(c.blocked, true);
    assert.equal(c.refuseSend('ann', true)?.code, 'blocked');
    assert.equal(c.refuseSend('bob', true)?.code, 'blocked', 'both ways');
    c.setBlock('bob', 'ann', false);
    assert.equal(c.blocked, false);
    assert.equal(c.refuseSend('ann', true), null);
  });

  it('stores nothing until the first request or block (reads of an object that has none create no tables)', () => {
    const { sql, db } = memorySql();
    const c = new ConsentState(sql);
    const tables = () => db.prepare("SELECT name FROM sqlite_master WHERE name LIKE 'consent_%' ORDER BY name").all();
    assert.equal(c.pending('bob'), undefined);
    assert.equal(c.blocked, false);
    assert.equal(c.refuseSend('ann', true), null);
    c.sent('ann');
    c.setBlock('ann', 'bob', false);
    assert.equal(c.answer('bob', 'accepted', 1), null);
    assert.deepEqual(tables(), []);
    c.setBlock('ann', 'bob', true);
    assert.equal(tables().length, 2);
  });

  it('survives a new instance over the same database (the object restarted)', () => {
    const { sql } = memorySql();
    const c = new ConsentState(sql);
    c.request(['bob'], 'ann', 1);
    c.sent('ann');
    c.setBlock('ann', 'bob', true);
    const again = new ConsentState(sql);
    assert.deepEqual(again.pending('bob'), { by: 'ann', at: 1, sent: 1 });
    assert.equal(again.blocked, true);
  });
});
