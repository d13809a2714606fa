import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Msg } from '@switchboard/protocol';
import { ChatModel } from '../web/src/model.ts';

const msg = (seq: number, from = 'bob', conv = 'c1'): Msg => ({ t: 'msg', conv, seq, cmid: `${from}-${seq}`, from, dev: 'd1', ts: 1000 + seq, body: `m${seq}` });

describe('web client model', () => {
  it('shows each (conv, seq) once and in seq order, whatever the arrival order', () => {
    const m = new ChatModel('alice');
    for (const s of [3, 1, 2, 3, 1]) m.addMsg(msg(s));
    assert.deepEqual(m.messages('c1').map((x) => x.seq), [1, 2, 3]);
    assert.equal(m.addMsg(msg(2)), false);
  });

  it('a message carrying a pending send’s cmid completes that send', () => {
    const m = new ChatModel('alice');
    m.pending.set('alice-4', { conv: 'c1', cmid: 'alice-4', body: 'm4', state: 'pending' });
    assert.equal(m.pendingIn('c1').length, 1);
    m.addMsg(msg(4, 'alice'));
    assert.equal(m.pendingIn('c1').length, 0);
    assert.deepEqual(m.messages('c1').map((x) => x.seq), [4]);
  });

  it('unread counts seqs above the read mark, not the user’s own loaded messages', () => {
    const m = new ChatModel('alice', { c1: 1 });
    m.upsertConv({ id: 'c1', last: 5 });
    assert.equal(m.unread('c1'), 4);
    m.addMsg(msg(3, 'alice'));
    assert.equal(m.unread('c1'), 3);
    assert.equal(m.markRead('c1', 5), true);
    assert.equal(m.markRead('c1', 2), false, 'the mark only moves forward');
    assert.equal(m.unread('c1'), 0);
  });

  it('merges list data with the live stream: last seq and preview never go back', () => {
    const m = new ChatModel('alice');
    m.addMsg(msg(7));
    m.upsertConv({ id: 'c1', title: 'Team', members: ['alice', 'bob'], last: 5, lastMsg: { from: 'bob', body: 'm5', ts: 1005, seq: 5 } });
    const c = m.convs.get('c1')!;
    assert.equal(c.last, 7);
    assert.equal(c.lastMsg?.body, 'm7');
    assert.equal(m.name(c), 'Team');
    m.upsertConv({ id: 'd2', members: ['alice', 'carol'], direct: true });
    assert.equal(m.name(m.convs.get('d2')!), 'carol');
    assert.deepEqual(m.ordered().map((x) => x.id), ['c1', 'd2'], 'newest activity first');
  });

  it('knows a direct conversation’s peer and a group’s members (its fetched roster over the list’s first 20)', () => {
    const m = new ChatModel('alice');
    const d = m.upsertConv({ id: 'd1', members: ['alice', 'bob'], direct: true });
    assert.equal(m.peer(d), 'bob');
    const g = m.upsertConv({ id: 'g1', members: ['alice', 'bob', 'carol'], count: 40, direct: false });
    assert.equal(m.peer(g), undefined);
    assert.equal(g.count, 40);
    assert.deepEqual(m.members('g1'), ['alice', 'bob', 'carol']);
    m.rosters.set('g1', ['alice', 'bob', 'carol', 'dan']);
    m.upsertConv({ id: 'g1', members: ['alice', 'bob'] });
    assert.deepEqual(m.members('g1'), ['alice', 'bob', 'carol', 'dan'], 'a list refresh does not shrink the roster');
    assert.equal(m.convs.get('g1')!.count, 40);
  });
});
