import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Msg } from '@switchboard/protocol';
import { inboxPage } from '../src/inbox.ts';
import { SqliteStorage } from '../src/storage/storage-sqlite.ts';

const T0 = 1_764_000_000_000;
const msg = (conv: string, seq: number, from: string, ts: number): Msg => ({ t: 'msg', conv, seq, cmid: `c${seq}`, from, dev: 'd', ts, body: `${conv} #${seq}` });

describe('conversation list (inboxPage)', () => {
  const storage = new SqliteStorage(':memory:');

  before(async () => {
    await storage.init();
    // gA: 3 messages, newest at T0+300; dB: direct, newest at T0+900; gC: no messages, created T0+500.
    await storage.saveConversation({ id: 'gA', title: 'A', creator: 'me', createdAt: T0, members: ['me', 'x', 'y'] });
    await storage.saveConversation({ id: 'dB', title: null, creator: 'me', createdAt: T0, members: ['me', 'x'] });
    await storage.saveConversation({ id: 'gC', title: 'C', creator: 'x', createdAt: T0 + 500, members: ['me', 'x'] });
    await storage.saveConversation({ id: 'gOther', title: 'not mine', creator: 'x', createdAt: T0 + 999, members: ['x'] });
    await storage.appendMessages([msg('gA', 1, 'x', T0 + 100), msg('gA', 2, 'me', T0 + 200), msg('gA', 3, 'y', T0 + 300)]);
    await storage.appendMessages([msg('dB', 1, 'x', T0 + 800), msg('dB', 2, 'x', T0 + 900)]);
    await storage.setPositions('gA', [{ user: 'me', delivered: 3, read: 2 }]);
  });

  it('lists newest activity first, with preview, positions and unread counts', async () => {
    const page = await inboxPage(storage, { user: 'me', after: '', limit: 50 });
    assert.deepEqual(page.convs.map((c) => c.id), ['dB', 'gC', 'gA']);
    assert.equal(page.next, undefined);
    const [dB, gC, gA] = page.convs;
    assert.deepEqual(
      { direct: dB!.direct, last: dB!.last, activity: dB!.activity, preview: dB!.lastMsg?.body, read: dB!.read, unread: dB!.unread },
      { direct: true, last: 2, activity: T0 + 900, preview: 'dB #2', read: 0, unread: 2 },
    );
    assert.deepEqual({ last: gC!.last, activity: gC!.activity, lastMsg: gC!.lastMsg, unread: gC!.unread }, { last: 0, activity: T0 + 500, lastMsg: null, unread: 0 });
    assert.deepEqual({ delivered: gA!.delivered, read: gA!.read, unread: gA!.unread, members: gA!.members, count: gA!.memberCount }, { delivered: 3, read: 2, unread: 1, members: ['me', 'x', 'y'], count: 3 });
  });

  it('pages by cursor without repeating or skipping', async () => {
    const p1 = await inboxPage(storage, { user: 'me', after: '', limit: 2 });
    assert.deepEqual(p1.convs.map((c) => c.id), ['dB', 'gC']);
    assert.ok(p1.next);
    const p2 = await inboxPage(storage, { user: 'me', after: p1.next!, limit: 2 });
    assert.deepEqual(p2.convs.map((c) => c.id), ['gA']);
    assert.equal(p2.next, undefined);
  });

  it('reading moves unread to zero; a member added later counts only from their join', async () => {
    await storage.setPositions('dB', [{ user: 'me', read: 2 }]);
    await storage.applyMembership('gA', 4, { op: 'add', by: 'me', users: ['late'], role: 'member' });
    await storage.appendMessages([{ ...msg('gA', 4, 'me', T0 + 1000), body: '', sys: { op: 'add', by: 'me', users: ['late'], role: 'member' } }, msg('gA', 5, 'x', T0 + 1100)]);
    const mine = await inboxPage(storage, { user: 'me', after: '', limit: 50 });
    assert.equal(mine.convs.find((c) => c.id === 'dB')!.unread, 0);
    assert.equal(mine.convs[0]!.id, 'gA', 'new activity moves it to the top');
    const late = await inboxPage(storage, { user: 'late', after: '', limit: 50 });
    assert.deepEqual(late.convs.map((c) => [c.id, c.unread]), [['gA', 2]]);
  });

  it('a removed member sees the conversation end at their removal', async () => {
    const sys = { op: 'remove' as const, by: 'x', users: ['me'] };
    await storage.appendMessages([{ ...msg('gC', 1, 'x', T0 + 2000), body: '', sys }, msg('gC', 2, 'x', T0 + 3000)]);
    await storage.applyMembership('gC', 1, sys);
    const c = (await inboxPage(storage, { user: 'me', after: '', limit: 50 })).convs.find((e) => e.id === 'gC')!;
    assert.deepEqual({ last: c.last, activity: c.activity, sys: c.lastMsg?.sys?.op }, { last: 1, activity: T0 + 2000, sys: 'remove' });
  });

  it('a stranger has an empty list', async () => {
    assert.deepEqual(await inboxPage(storage, { user: 'nobody', after: '', limit: 5 }), { convs: [] });
  });
});
