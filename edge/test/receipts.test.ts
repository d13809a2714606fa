import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliveredReports } from '../src/delivered-reports.ts';
import { Receipts } from '../src/receipts.ts';
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

describe('DeliveredReports (a SessionDO\'s delivered positions for ConversationDOs)', () => {
  it('reports the highest ack per conversation once', () => {
    const d = new DeliveredReports();
    d.note('c1', 3);
    d.note('c1', 5);
    d.note('c1', 4);
    d.note('c2', 1);
    assert.deepEqual(d.take().sort(), [['c1', 5], ['c2', 1]]);
    assert.deepEqual(d.take(), []);
    d.note('c1', 5);
    d.note('c1', 2);
    assert.deepEqual(d.take(), [], 'nothing above what was reported');
    d.note('c1', 6);
    assert.deepEqual(d.take(), [['c1', 6]]);
  });

  it('reports again after a failed report', () => {
    const d = new DeliveredReports();
    d.note('c1', 3);
    d.take();
    d.failed('c1', 3);
    d.note('c1', 3);
    assert.deepEqual(d.take(), [['c1', 3]]);
  });
});

describe('DeliveredReports in a conversation that asked for fewer reports', () => {
  it('holds the newest value until the quiet time passes, then reports it', () => {
    const d = new DeliveredReports();
    d.note('big', 1);
    assert.deepEqual(d.take(1000), [['big', 1]]);
    d.answered('big', 30_000, 1000);
    d.note('big', 2);
    d.note('big', 5);
    d.note('small', 3);
    assert.deepEqual(d.take(2000), [['small', 3]]);
    assert.deepEqual(d.take(31_001), [['big', 5]]);
    d.answered('big', 0, 31_001);
    d.note('big', 6);
    assert.deepEqual(d.take(31_002), [['big', 6]]);
  });
});
