import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { Msg } from '@switchboard/protocol';
import { Sequencer, type MembershipChange } from '../../src/conversation/sequencer.ts';
import { memorySql } from './sqlite-adapter.ts';

const conv = 'gMembership';
let s: Sequencer;

function group(history?: 'join' | 'full'): Sequencer {
  const { sql, transaction } = memorySql();
  const seq = new Sequencer(sql, transaction);
  assert.ok(seq.create({ conv, members: ['alice', 'bob'], title: 'T', creator: 'alice', direct: false, ...(history ? { history } : {}) }, 1).ok);
  return seq;
}
const send = (from: string, cmid: string) => s.send({ from, dev: 'd1', cmid, body: cmid }, 1000);
const change = (c: Partial<MembershipChange> & Pick<MembershipChange, 'by' | 'op' | 'users'>, max = 5000) => s.changeMembers({ dev: 'd1', ...c }, 2000, max);
const code = (r: { ok: boolean; code?: string }) => (r.ok ? 'ok' : r.code);
const events = () => s.outbox(1000).flatMap((r) => (r.event.kind === 'msg' ? [{ msg: r.event.msg, ver: r.event.ver }] : []));

describe('Sequencer: sequenced membership', () => {
  beforeEach(() => {
    s = group();
  });

  it('gives the creator of a group the owner role and everyone else member', () => {
    assert.equal(s.member('alice')?.role, 'owner');
    assert.equal(s.member('bob')?.role, 'member');
    assert.equal(s.memberVersion, 0);
  });

  it('sequences a change between messages: gapless seq, a system event in the window and the outbox, a new version', () => {
    send('alice', 'm1');
    const r = change({ by: 'alice', op: 'add', users: ['carol', 'dave'] });
    assert.ok(r.ok);
    assert.equal(r.seq, 2);
    assert.equal(r.ver, 2);
    send('carol', 'm3');
    assert.deepEqual(s.readWindow(0, 10)!.msgs.map((m) => m.seq), [1, 2, 3]);
    const sys = s.readWindow(1, 1)!.msgs[0]!;
    assert.deepEqual(sys.sys, { op: 'add', by: 'alice', users: ['carol', 'dave'], role: 'member' });
    assert.equal(sys.body, '');
    assert.deepEqual(events().map((e) => [e.msg.seq, e.ver]), [[1, 0], [2, 2], [3, 2]]);
    assert.deepEqual(s.members(), ['alice', 'bob', 'carol', 'dave']);
  });

  it('keeps the (sender, cmid) dedupe across membership changes', () => {
    const a = send('bob', 'x');
    change({ by: 'alice', op: 'add', users: ['carol'] });
    const again = send('bob', 'x');
    assert.ok(a.ok && again.ok);
    assert.equal(again.seq, a.seq);
    assert.equal(s.lastSeq, 2);
  });

  it('a removed member can no longer send, and reads only up to the seq that removed them', () => {
    send('bob', 'm1');
    const r = change({ by: 'alice', op: 'remove', users: ['bob'] });
    assert.ok(r.ok && r.seq === 2);
    send('alice', 'm3');
    assert.equal(code(send('bob', 'late')), 'not_member');
    assert.deepEqual(s.readable('bob'), { from: 1, to: 2 });
    assert.equal(s.isMember('bob'), false);
    assert.deepEqual(s.members(), ['alice']);
    assert.equal(s.readable('mallory'), null);
  });

  it('an added member reads from their join, or everything when the group shows full history', () => {
    send('alice', 'm1');
    change({ by: 'alice', op: 'add', users: ['carol'] });
    assert.deepEqual(s.readable('carol'), { from: 2, to: Number.MAX_SAFE_INTEGER });
    assert.deepEqual(s.readable('bob'), { from: 1, to: Number.MAX_SAFE_INTEGER }, 'founding members see everything');
    s = group('full');
    send('alice', 'm1');
    change({ by: 'alice', op: 'add', users: ['carol'] });
    assert.equal(s.readable('carol')?.from, 1);
  });

  it('a removed and re-added member reads from the re-add', () => {
    change({ by: 'alice', op: 'remove', users: ['bob'] });
    send('alice', 'm2');
    change({ by: 'alice', op: 'add', users: ['bob'] });
    assert.deepEqual(s.readable('bob'), { from: 3, to: Number.MAX_SAFE_INTEGER });
    assert.ok(send('bob', 'back').ok);
  });

  it('typed errors: non-member, missing conversation, full group, non-admin', () => {
    assert.equal(code(change({ by: 'mallory', op: 'add', users: ['x'] })), 'not_member');
    assert.equal(code(change({ by: 'bob', op: 'add', users: ['x'] })), 'not_admin');
    assert.equal(code(change({ by: 'bob', op: 'remove', users: ['alice'] })), 'not_admin');
    assert.equal(code(change({ by: 'alice', op: 'add', users: ['c', 'd', 'e'] }, 4)), 'group_full');
    assert.equal(code(change({ by: 'alice', op: 'add', users: ['c', 'd'] }, 4)), 'ok');
    const { sql, transaction } = memorySql();
    const none = new Sequencer(sql, transaction);
    assert.equal(code(none.changeMembers({ by: 'a', dev: 'd', op: 'add', users: ['b'] }, 1, 10)), 'not_found');
    assert.equal(s.lastSeq, 1, 'refused changes take no seq');
  });

  it('roles: admins add and remove members but not admins or owners; only the owner sets roles', () => {
    change({ by: 'alice', op: 'add', users: ['carol', 'dave'] });
    assert.equal(code(change({ by: 'bob', op: 'role', users: ['carol'], role: 'admin' })), 'not_admin');
    assert.equal(code(change({ by: 'alice', op: 'role', users: ['bob', 'carol'], role: 'admin' })), 'ok');
    assert.equal(s.member('bob')?.role, 'admin');
    assert.equal(code(change({ by: 'bob', op: 'remove', users: ['carol'] })), 'not_admin', 'an admin cannot remove an admin');
    assert.equal(code(change({ by: 'bob', op: 'remove', users: ['alice'] })), 'not_admin', 'an admin cannot remove the owner');
    assert.equal(code(change({ by: 'bob', op: 'remove', users: ['dave'] })), 'ok');
    assert.equal(code(change({ by: 'bob', op: 'add', users: ['erin'], role: 'admin' })), 'not_admin', 'only an owner adds admins');
    assert.equal(code(change({ by: 'alice', op: 'role', users: ['alice'], role: 'member' })), 'forbidden');
  });

  it('anyone may leave; a change that changes nothing takes no seq', () => {
    const left = change({ by: 'bob', op: 'remove', users: ['bob'] });
    assert.ok(left.ok && left.seq === 1);
    const noop = change({ by: 'alice', op: 'add', users: ['alice'] });
    assert.ok(noop.ok && noop.seq === null && noop.ver === 1);
    assert.equal(s.lastSeq, 1);
  });

  it('direct conversations have fixed members', () => {
    const { sql, transaction } = memorySql();
    const d = new Sequencer(sql, transaction);
    d.create({ conv: 'dX', members: ['a', 'b'], title: null, creator: 'a', direct: true }, 1);
    assert.equal(code(d.changeMembers({ by: 'a', dev: 'd', op: 'add', users: ['c'] }, 2, 10)), 'forbidden');
    assert.equal(d.member('a')?.role, 'member');
  });

  it('pages current members by id with their roles', () => {
    change({ by: 'alice', op: 'add', users: ['carol', 'dave', 'erin'] });
    change({ by: 'alice', op: 'remove', users: ['dave'] });
    assert.deepEqual(s.membersPage('', 2).map((m) => m.user), ['alice', 'bob']);
    assert.deepEqual(s.membersPage('bob', 10).map((m) => [m.user, m.role, m.joinedSeq]), [['carol', 'member', 1], ['erin', 'member', 1]]);
    assert.equal(s.memberCount(), 4);
  });

  it('upgrades a database created before membership was sequenced', () => {
    const { sql, transaction, db } = memorySql();
    db.exec('CREATE TABLE members (user TEXT PRIMARY KEY, joined_seq INTEGER NOT NULL)');
    db.exec('CREATE TABLE messages (seq INTEGER PRIMARY KEY, cmid TEXT NOT NULL, sender TEXT NOT NULL, dev TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL)');
    const old = new Sequencer(sql, transaction);
    old.create({ conv, members: ['a', 'b'], title: null, creator: 'a', direct: false }, 1);
    const m: Msg[] = [];
    assert.ok(old.changeMembers({ by: 'a', dev: 'd', op: 'add', users: ['c'] }, 2, 10).ok);
    m.push(...old.readWindow(0, 10)!.msgs);
    assert.equal(m[0]?.sys?.op, 'add');
  });
});
