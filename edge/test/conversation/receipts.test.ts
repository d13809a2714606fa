import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Receipts } from '../../src/conversation/receipts.ts';
import { memorySql } from './sqlite-adapter.ts';

describe('Receipts (members\' positions in a ConversationDO)', () => {
  it('moves positions forward only, read carrying delivered along', () => {
    const r = new Receipts(memorySql().sql);
    assert.deepEqual(r.get('bob'), { delivered: 0, read: 0 });
    assert.deepEqual(r.advance('bob', { delivered: 5 }), { delivered: 5 });
    assert.equal(r.advance('bob', { delivered: 3 }), null);
    assert.deepEqual(r.advance('bob', { read: 7 }), { delivered: 7, read: 7 });
    assert.deepEqual(r.advance('bob', { read: 6, delivered: 9 }), { delivered: 9 });
    assert.equal(r.advance('bob', { read: 2 }), null);
    assert.deepEqual(r.get('bob'), { delivered: 9, read: 7 });
  });

  it('writes on flush, survives a new instance over the same database, and reports only outbox changes', () => {
    const { sql } = memorySql();
    const r = new Receipts(sql);
    r.advance('alice', { read: 4 });
    r.advance('bob', { delivered: 2 }, { outbox: false });
    assert.equal(r.pending, true);
    assert.deepEqual(new Receipts(sql).get('alice'), { delivered: 0, read: 0 }, 'nothing written before flush');
    assert.deepEqual(r.flush(), [{ user: 'alice', delivered: 4, read: 4 }]);
    assert.equal(r.pending, false);
    const again = new Receipts(sql);
    assert.deepEqual(new Map(['alice', 'bob', 'carol'].map((u) => [u, again.get(u)])), new Map([['alice', { delivered: 4, read: 4 }], ['bob', { delivered: 2, read: 0 }], ['carol', { delivered: 0, read: 0 }]]));
    assert.deepEqual(again.flush(), []);
  });

  it('a flush never lowers what is stored', () => {
    const { sql } = memorySql();
    const a = new Receipts(sql);
    a.advance('bob', { read: 10 });
    a.flush();
    const stale = new Receipts(sql);
    // An instance that read nothing yet, moved by a late, lower report (e.g. after a restart).
    (stale as unknown as { cache: Map<string, unknown> }).cache.set('bob', { delivered: 0, read: 0 });
    stale.advance('bob', { read: 3 });
    stale.flush();
    assert.deepEqual(new Receipts(sql).get('bob'), { delivered: 10, read: 10 });
  });
});
