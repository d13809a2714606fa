import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Msg } from '@switchboard/protocol';
import { MlsGroup, TrustOnFirstUse, b64, certifyDevice, newIdentityKey, newKeyPackage, newSignatureKey } from '@switchboard/protocol/mls';
import { withoutText } from '../web/src/e2e.ts';
import { ChatModel } from '../web/src/model.ts';

const msg = (seq: number, from = 'bob', conv = 'c1'): Msg => ({ t: 'msg', conv, seq, cmid: `${from}-${seq}`, from, dev: 'd1', ts: 1000 + seq, body: `m${seq}` });

describe('web client model', () => {
  it('shows each (conv, seq) once and in seq order, whatever the arrival order', () => {
    const m = new ChatModel('alice');
    for (const s of [3, 1, 2, 3, 1]) m.addMsg(msg(s));
    assert.deepEqual(m.messages('c1').map((x) => x.seq), [1, 2, 3]);
    assert.equal(m.addMsg(msg(2)), false);
  });

  it('a message request stays marked through live messages until it is answered', () => {
    const m = new ChatModel('alice');
    m.upsertConv({ id: 'd1', request: { by: 'bob', at: 5 } });
    m.addMsg(msg(1, 'bob', 'd1'));
    assert.deepEqual(m.convs.get('d1')!.request, { by: 'bob', at: 5 });
    m.upsertConv({ id: 'd1', request: null });
    assert.equal(m.convs.get('d1')!.request, null);
    assert.equal(m.upsertConv({ id: 'g2' }).request, null);
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

  it('encrypted conversations: commits are never unread, a sealed placeholder gives way to the text, notices sit after the message they followed', () => {
    const m = new ChatModel('alice');
    m.upsertConv({ id: 'c1', e2e: true });
    m.upsertConv({ id: 'c1' });
    assert.equal(m.convs.get('c1')!.e2e, true, 'once known encrypted, always');
    m.skip('c1', 1);
    m.addMsg({ ...msg(2), body: '', sealed: true });
    assert.equal(m.convs.get('c1')!.last, 2);
    assert.equal(m.unread('c1'), 1, 'the commit at seq 1 is no message');
    assert.equal(m.convs.get('c1')!.lastMsg?.sealed, true);
    // The list's copy of seq 2 is sealed too: it does not replace the text once there.
    assert.equal(m.addMsg(msg(2)), true, 'the text replaces the placeholder');
    assert.equal(m.messages('c1')[0]!.body, 'm2');
    assert.equal(m.convs.get('c1')!.lastMsg?.sealed, undefined);
    m.upsertConv({ id: 'c1', lastMsg: { from: 'bob', body: '', ts: 1002, seq: 2, sealed: true } });
    assert.equal(m.convs.get('c1')!.lastMsg?.body, 'm2');
    assert.equal(m.addMsg({ ...msg(2), body: '', sealed: true }), false, 'and a placeholder never replaces the text');
    assert.equal(m.notice('c1', 'bob’s key changed', 'key:bob'), true);
    assert.equal(m.notice('c1', 'bob’s key changed', 'key:bob'), false, 'once');
    assert.deepEqual(m.notices('c1'), [{ after: 2, text: 'bob’s key changed' }]);
  });

  it('a device without the text never shows ciphertext: application messages sealed, commits not at all', async () => {
    const kp = async (user: string) => {
      const sig = await newSignatureKey();
      return newKeyPackage(await certifyDevice(await newIdentityKey(), user, 'd1', sig.publicKey), sig);
    };
    const g = await MlsGroup.create(new TextEncoder().encode('c1'), await kp('alice'), new TrustOnFirstUse());
    const commit = await g.commit({ add: [(await kp('bob')).bytes] });
    g.applyCommit(commit);
    const app = { ...msg(2), body: b64.encode(await g.encrypt(new TextEncoder().encode('secret'))) };
    assert.deepEqual(withoutText(app), { ...app, body: '', sealed: true });
    assert.equal(withoutText({ ...msg(1), body: b64.encode(commit.commit) }), null);
    const plain = msg(3);
    assert.equal(withoutText(plain), plain, 'a plaintext conversation’s message as it is');
    const sys: Msg = { ...msg(4), body: b64.encode(commit.commit), sys: { op: 'add', users: ['bob'], by: 'alice' } };
    assert.equal(withoutText(sys), sys, 'a membership event as it is');
  });
});
