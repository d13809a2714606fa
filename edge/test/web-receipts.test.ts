import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReceiptsState } from '../web/src/receipts.ts';

describe('web client receipts (message states)', () => {
  it('sent → delivered → read as every other member catches up; positions never go back', () => {
    const r = new ReceiptsState('alice');
    const members = ['alice', 'bob', 'carol'];
    assert.equal(r.state('g1', 3, members), 'sent');
    r.load('g1', [{ user: 'bob', delivered: 3, read: 1 }, { user: 'carol', delivered: 2, read: 0 }]);
    assert.equal(r.state('g1', 3, members), 'sent', 'carol does not have it yet');
    assert.equal(r.state('g1', 2, members), 'delivered');
    assert.equal(r.apply('g1', 'carol', 'delivered', 5), true);
    assert.equal(r.state('g1', 3, members), 'delivered');
    r.apply('g1', 'bob', 'read', 4);
    r.apply('g1', 'carol', 'read', 3);
    assert.equal(r.state('g1', 3, members), 'read');
    assert.equal(r.state('g1', 4, members), 'delivered');
    assert.equal(r.apply('g1', 'bob', 'read', 2), false, 'an older read moves nothing');
    r.load('g1', [{ user: 'bob', delivered: 0, read: 0 }]);
    assert.deepEqual(r.position('g1', 'bob'), { delivered: 4, read: 4 });
  });

  it('a read implies delivery; my own positions do not count', () => {
    const r = new ReceiptsState('alice');
    r.apply('d1', 'bob', 'read', 7);
    assert.deepEqual(r.position('d1', 'bob'), { delivered: 7, read: 7 });
    assert.equal(r.state('d1', 7, ['alice', 'bob']), 'read');
    assert.equal(r.state('d1', 8, ['alice', 'bob']), 'sent');
    assert.equal(r.state('d1', 1, ['alice']), 'sent', 'nobody else to deliver to');
  });
});
