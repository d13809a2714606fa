import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Receipts } from '../../src/conversation/receipts.ts';
import { Sequencer } from '../../src/conversation/sequencer.ts';
import { memorySql } from './sqlite-adapter.ts';

const tables = (db: ReturnType<typeof memorySql>['db']) => (db.prepare('SELECT name FROM sqlite_master').all() as { name: string }[]).map((r) => r.name);

describe('a conversation nobody created', () => {
  it('answers every frame not_found and makes no table; create makes them', () => {
    const { sql, transaction, db } = memorySql();
    const seq = new Sequencer(sql, transaction);
    const receipts = new Receipts(sql);
    assert.equal(seq.conv, null);
    assert.equal(seq.lastSeq, 0);
    assert.equal(seq.isMember('ann'), false);
    assert.equal(seq.readable('ann'), null);
    assert.deepEqual(receipts.get('ann'), { delivered: 0, read: 0 });
    const sent = seq.send({ from: 'ann', dev: 'd', cmid: 'c1', body: 'hi' }, 1000);
    assert.deepEqual(sent.ok ? null : sent.code, 'not_found');
    const change = seq.changeMembers({ by: 'ann', dev: 'd', op: 'add', users: ['bob'] }, 1000, 100);
    assert.deepEqual(change.ok ? null : change.code, 'not_found');
    assert.deepEqual(tables(db), [], 'nothing written');

    assert.equal(seq.create({ conv: 'c', members: ['ann', 'bob'], title: null, creator: 'ann', direct: false }, 1000).ok, true);
    assert.ok(tables(db).includes('meta') && tables(db).includes('messages'));
    assert.equal(seq.conv, 'c');
    const first = seq.send({ from: 'ann', dev: 'd', cmid: 'c1', body: 'hi' }, 1001);
    assert.equal(first.ok && first.seq, 1);
    receipts.advance('bob', { read: 1 });
    receipts.flush();
    assert.deepEqual(new Receipts(sql).get('bob'), { delivered: 1, read: 1 }, 'positions get their table on the first write');
    assert.equal(new Sequencer(sql, transaction).lastSeq, 1, 'reopened, the conversation is there');
  });
});
