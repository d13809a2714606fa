import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { Sequencer } from '../../src/conversation/sequencer.ts';
import { memorySql } from './sqlite-adapter.ts';

const conv = 'gTestConversation';
let s: Sequencer;

function fresh(): Sequencer {
  const { sql, transaction } = memorySql();
  return new Sequencer(sql, transaction);
}

const send = (from: string, cmid: string, body = cmid) => s.send({ from, dev: 'd1', cmid, body }, 1000);

describe('Sequencer', () => {
  beforeEach(() => {
    s = fresh();
    assert.ok(s.create({ conv, members: ['alice', 'bob'], title: null, creator: 'alice', direct: false }, 1).ok);
  });

  it('assigns gapless seqs from 1', () => {
    const seqs = Array.from({ length: 50 }, (_, i) => send(i % 2 ? 'bob' : 'alice', `m${i}`)).map((r) => (r.ok ? r.seq : -1));
    assert.deepEqual(seqs, Array.from({ length: 50 }, (_, i) => i + 1));
    assert.equal(s.lastSeq, 50);
  });

  it('maps a repeated (sender, cmid) to its original seq, however late', () => {
    const first = send('alice', 'x');
    for (let i = 0; i < 30; i++) send('bob', `b${i}`);
    const again = send('alice', 'x', 'different body');
    assert.ok(first.ok && again.ok);
    assert.equal(again.seq, first.seq);
    assert.equal(again.duplicate, true);
    assert.equal(s.lastSeq, 31);
  });

  it('keeps the last seq across a restart, also once the window was emptied', () => {
    const db = memorySql();
    const a = new Sequencer(db.sql, db.transaction);
    assert.ok(a.create({ conv, members: ['alice', 'bob'], title: null, creator: 'alice', direct: false }, 1).ok);
    for (let i = 1; i <= 12; i++) a.send({ from: 'alice', dev: 'd1', cmid: `m${i}`, body: 'b' }, 1000);
    const reopened = () => new Sequencer(db.sql, db.transaction);
    assert.equal(reopened().lastSeq, 12, 'from the newest row of the window');
    a.acknowledge(a.outbox(100).at(-1)!.oseq, 0);
    assert.equal(a.readWindow(0, 10)?.msgs.length ?? 0, 0, 'a window of 0 keeps no message');
    const b = reopened();
    assert.equal(b.lastSeq, 12, 'from meta once the window is empty');
    const next = b.send({ from: 'bob', dev: 'd2', cmid: 'n1', body: 'b' }, 2000);
    assert.ok(next.ok && next.seq === 13 && !next.duplicate);
    assert.equal(reopened().lastSeq, 13);
    const dup = reopened().send({ from: 'alice', dev: 'd1', cmid: 'm3', body: 'b' }, 3000);
    assert.ok(dup.ok && dup.seq === 3 && dup.duplicate, 'a retry after a restart still gets its original seq');
  });

  it('treats the same cmid from two senders as two messages', () => {
    const a = send('alice', 'same');
    const b = send('bob', 'same');
    assert.ok(a.ok && b.ok);
    assert.notEqual(a.seq, b.seq);
  });

  it('refuses non-members and unknown conversations', () => {
    assert.deepEqual(send('mallory', 'm'), { ok: false, code: 'not_member', message: 'not a member of this conversation' });
    const empty = fresh();
    const r = empty.send({ from: 'alice', dev: 'd', cmid: 'm', body: 'b' }, 1);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, 'not_found');
  });

  it('puts the creation and every message in the outbox, in order', () => {
    send('alice', 'm1');
    send('bob', 'm2');
    const out = s.outbox(10);
    assert.deepEqual(out.map((r) => r.event.kind), ['created', 'msg', 'msg']);
    assert.deepEqual(out.slice(1).map((r) => (r.event.kind === 'msg' ? r.event.msg.seq : 0)), [1, 2]);
    const rest = s.outbox(10, Infinity, out[1]!.oseq);
    assert.deepEqual(rest.map((r) => r.oseq), [out[2]!.oseq], 'after an oseq the region already has, only what follows it');
  });

  it('caps an outbox batch by bytes so a drain request always fits, but always takes one event', () => {
    const big = 'x'.repeat(60_000);
    for (let i = 1; i <= 40; i++) send('alice', `big${i}`, big);
    const batch = s.outbox(200, 1024 * 1024);
    assert.ok(batch.length > 1 && batch.length < 41, `took ${batch.length}`);
    assert.ok(batch.reduce((n, r) => n + JSON.stringify(r.event).length, 0) <= 1024 * 1024 + 61_000);
    assert.equal(s.outbox(200, 10).length, 1, 'one event even when it alone is over the cap');
  });

  it('trims the window only below what the region acknowledged', () => {
    for (let i = 1; i <= 30; i++) send('alice', `m${i}`);
    const out = s.outbox(100);
    // Acknowledge up to seq 20 only (the created event + 20 messages), window of 5.
    s.acknowledge(out[20]!.oseq, 5);
    assert.equal(s.readWindow(0, 10), null, 'seqs 1-20 left the window');
    const w = s.readWindow(20, 100);
    assert.ok(w);
    assert.deepEqual(w.msgs.map((m) => m.seq), Array.from({ length: 10 }, (_, i) => 21 + i), 'undrained 21-30 stay although the window is 5');
    s.acknowledge(s.outbox(100).at(-1)!.oseq, 5);
    assert.equal(s.readWindow(24, 10), null);
    assert.deepEqual(s.readWindow(25, 10)?.msgs.map((m) => m.seq), [26, 27, 28, 29, 30]);
  });

  it('pages the window with an exact `more`', () => {
    for (let i = 1; i <= 7; i++) send('alice', `m${i}`);
    assert.deepEqual(s.readWindow(0, 5), { msgs: s.readWindow(0, 5)!.msgs, more: true });
    assert.equal(s.readWindow(0, 5)!.msgs.length, 5);
    assert.equal(s.readWindow(5, 5)!.more, false);
    assert.deepEqual(s.readWindow(7, 5), { msgs: [], more: false });
  });

  it('reads history newest first and says when the window cannot hold all of a page', () => {
    for (let i = 1; i <= 30; i++) send('alice', `m${i}`);
    assert.deepEqual(s.readWindowBefore(Number.MAX_SAFE_INTEGER, 3).msgs.map((m) => m.seq), [30, 29, 28]);
    assert.deepEqual(s.readWindowBefore(3, 50), { msgs: s.readWindowBefore(3, 50).msgs, complete: true });
    assert.deepEqual(s.readWindowBefore(3, 50).msgs.map((m) => m.seq), [2, 1]);
    s.acknowledge(s.outbox(100).at(-1)!.oseq, 10);
    const page = s.readWindowBefore(31, 15);
    assert.deepEqual(page.msgs.map((m) => m.seq), [30, 29, 28, 27, 26, 25, 24, 23, 22, 21]);
    assert.equal(page.complete, false, 'seqs 16-20 are only in the region now');
    assert.equal(s.readWindowBefore(31, 10).complete, true);
  });

  it('remembers nothing of a transaction that failed to commit', () => {
    const { sql, transaction, db } = memorySql();
    let failNext = false;
    const flaky = new Sequencer(sql, (fn) =>
      transaction(() => {
        fn();
        if (failNext) throw new Error('commit failed');
      }),
    );
    flaky.create({ conv, members: ['alice', 'bob'], title: null, creator: 'alice', direct: false }, 1);
    assert.ok(flaky.send({ from: 'alice', dev: 'd1', cmid: 'a', body: 'a' }, 2).ok);
    failNext = true;
    assert.throws(() => flaky.send({ from: 'alice', dev: 'd1', cmid: 'b', body: 'b' }, 3));
    assert.throws(() => flaky.changeMembers({ by: 'alice', dev: 'd1', op: 'add', users: ['carol'] }, 3, 10));
    failNext = false;
    assert.equal(flaky.lastSeq, 1);
    assert.equal(flaky.memberVersion, 0);
    assert.deepEqual(flaky.members(), ['alice', 'bob']);
    const b = flaky.send({ from: 'alice', dev: 'd1', cmid: 'b', body: 'b' }, 4);
    assert.ok(b.ok && b.seq === 2 && !b.duplicate, 'the failed send neither took seq 2 nor left a dedupe row');
    assert.equal(new Sequencer(sql, transaction).lastSeq, 2, 'what is stored says seq 2 too');
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number }).n, 2);
  });

  it('returns the same direct conversation on a second create, and conflicts otherwise', () => {
    const d = fresh();
    assert.deepEqual(d.create({ conv: 'dX', region: 'eu', members: ['a', 'b'], title: null, creator: 'a', direct: true }, 1), { ok: true, members: ['a', 'b'], existed: false, region: 'eu' });
    // Asked for again (from anywhere), it keeps its home.
    assert.deepEqual(d.create({ conv: 'dX', region: 'us', members: ['b', 'a'], title: null, creator: 'b', direct: true }, 2), { ok: true, members: ['a', 'b'], existed: true, region: 'eu' });
    assert.equal(d.region(), 'eu');
    assert.equal(s.region(), null);
    const again = s.create({ conv, members: ['alice'], title: null, creator: 'alice', direct: false }, 3);
    assert.equal(!again.ok && again.code, 'conflict');
  });
});
