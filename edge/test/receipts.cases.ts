import assert from 'node:assert/strict';
import { it } from 'node:test';
import { RECEIPTS } from '@switchboard/protocol';
import type { System } from './system.ts';
import { TestSocket, createConversation, token } from './socket.ts';

export interface ReceiptsContext {
  sys(): System;
  open(user: string, device?: string): Promise<TestSocket>;
  http(user: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, any> }>;
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const receipts = (s: TestSocket, conv: string) => s.frames.filter((f) => (f.t === 'read' || f.t === 'delivered') && f.conv === conv).map((f) => `${f.t}:${f.user}:${f.seq}`);

/** Read receipts, delivered positions, unread counts and the conversation list, end to end. */
export function receiptsCases(ctx: ReceiptsContext): void {
  it('read receipts: to the reader\'s other devices and the other member; delivered follows acks; capped and forward-only', async () => {
    const { id: conv } = await createConversation(ctx.sys().edgeUrl, await token(ctx.sys().edgeUrl, 'ralice', 'setup'), ['rbob'], { direct: true });
    const [a1, a2, b1, b2] = [await ctx.open('ralice', 'a1'), await ctx.open('ralice', 'a2'), await ctx.open('rbob', 'b1'), await ctx.open('rbob', 'b2')];
    for (const m of ['one', 'two', 'three']) await a1.request({ t: 'send', conv, cmid: m, body: m });
    await b1.waitSeqs(conv, 3);
    await b2.waitSeqs(conv, 3);
    // Bob's devices acked (TestSocket acks every push): within about a second Alice hears it was delivered.
    await a1.next((f) => f.t === 'delivered' && f.conv === conv && f.user === 'rbob' && f.seq === 3, 10_000);
    await a2.next((f) => f.t === 'delivered' && f.conv === conv && f.user === 'rbob' && f.seq === 3, 10_000);

    b1.raw(JSON.stringify({ t: 'read', conv, seq: 2 }));
    for (const s of [a1, a2]) await s.next((f) => f.t === 'read' && f.conv === conv && f.user === 'rbob' && f.seq === 2);
    await b2.next((f) => f.t === 'read' && f.conv === conv && f.user === 'rbob' && f.seq === 2);
    // Lower than already read: nothing moves. Past the end: capped at the last seq.
    b2.raw(JSON.stringify({ t: 'read', conv, seq: 1 }));
    b2.raw(JSON.stringify({ t: 'read', conv, seq: 99 }));
    await a1.next((f) => f.t === 'read' && f.conv === conv && f.user === 'rbob' && f.seq === 3);
    await settle(300);
    assert.deepEqual(receipts(a1, conv).filter((r) => r.startsWith('read')), ['read:rbob:2', 'read:rbob:3']);
    assert.deepEqual(receipts(b1, conv).filter((r) => r.startsWith('read')), ['read:rbob:3'], 'the reading device is not told its own read');
    assert.ok(!receipts(b2, conv).includes('read:rbob:1'));

    const details = await ctx.http('ralice', 'GET', `/v1/conversations/${conv}`);
    const pos = Object.fromEntries(details.body.members.map((m: { user: string; delivered: number; read: number }) => [m.user, [m.delivered, m.read]]));
    assert.deepEqual(pos, { ralice: [3, 3], rbob: [3, 3] }, 'sending is reading; reading is delivery');

    assert.equal((await b1.request({ t: 'read', conv: 'dNoSuchConversation', seq: 1 })).code, 'not_found');
    assert.equal((await b1.request({ t: 'read', conv, seq: -1 })).code, 'invalid_frame');
    const stranger = await ctx.open('rstranger');
    assert.equal((await stranger.request({ t: 'read', conv, seq: 1 })).code, 'not_member');
  });

  it('the conversation list: newest activity first, unread counts that follow reads', async () => {
    const url = ctx.sys().edgeUrl;
    const tok = await token(url, 'lcarol', 'setup');
    const older = await createConversation(url, tok, ['ldan'], { title: 'older' });
    const newer = await createConversation(url, tok, ['ldan'], { title: 'newer' });
    const c = await ctx.open('lcarol');
    const d = await ctx.open('ldan');
    for (const m of ['n1', 'n2']) await c.request({ t: 'send', conv: newer.id, cmid: m, body: m });
    await settle(20);
    for (const m of ['o1', 'o2', 'o3']) await c.request({ t: 'send', conv: older.id, cmid: m, body: m });
    const list = async () => (await ctx.http('ldan', 'GET', '/v1/conversations?limit=10')).body.convs as { id: string; unread: number; read: number; last: number; lastMsg: { body: string } | null }[];
    const until = async (pred: (l: Awaited<ReturnType<typeof list>>) => boolean, what: string) => {
      for (let i = 0; ; i++) {
        const l = await list();
        if (pred(l)) return l;
        assert.ok(i < 300, `the list reaches: ${what}; last seen ${JSON.stringify(l)}`);
        await settle(100);
      }
    };
    const l1 = await until((l) => l.length === 2 && l[0]!.last === 3 && l[1]!.last === 2, 'both conversations with their messages');
    assert.deepEqual(l1.map((x) => [x.id, x.unread, x.lastMsg?.body]), [[older.id, 3, 'o3'], [newer.id, 2, 'n2']], 'newest activity first');
    d.raw(JSON.stringify({ t: 'read', conv: older.id, seq: 2 }));
    const l2 = await until((l) => l.find((x) => x.id === older.id)?.unread === 1, 'the read reaches the region');
    assert.equal(l2.find((x) => x.id === older.id)!.read, 2);
    // Dan answers in `newer`: it moves to the top, and sending counts as reading it.
    await d.request({ t: 'send', conv: newer.id, cmid: 'reply', body: 'reply' });
    const l3 = await until((l) => l[0]?.id === newer.id && l[0].unread === 0, 'the reply moves it up, read');
    assert.equal(l3[0]!.last, 3);
    const page1 = (await ctx.http('ldan', 'GET', '/v1/conversations?limit=1')).body;
    assert.equal(page1.convs[0].id, newer.id);
    const page2 = (await ctx.http('ldan', 'GET', `/v1/conversations?limit=1&after=${encodeURIComponent(page1.next)}`)).body;
    assert.deepEqual([page2.convs.map((x: { id: string }) => x.id), page2.next], [[older.id], undefined]);
  });

  it(`in a group larger than ${RECEIPTS.relayMaxMembers}, reads reach only the reader's own devices; positions stay readable`, async () => {
    const members = Array.from({ length: RECEIPTS.relayMaxMembers + 1 }, (_, i) => `rg${String(i).padStart(3, '0')}`);
    const { id: conv } = await createConversation(ctx.sys().edgeUrl, await token(ctx.sys().edgeUrl, members[0]!, 'setup'), members.slice(1));
    const [sender, r1, r2, other] = [await ctx.open(members[0]!), await ctx.open(members[1]!, 'r1'), await ctx.open(members[1]!, 'r2'), await ctx.open(members[2]!)];
    await sender.request({ t: 'send', conv, cmid: 'hi', body: 'hi' });
    await r1.waitSeqs(conv, 1);
    r1.raw(JSON.stringify({ t: 'read', conv, seq: 1 }));
    await r2.next((f) => f.t === 'read' && f.conv === conv && f.user === members[1] && f.seq === 1);
    await settle(1500);
    assert.deepEqual(receipts(sender, conv), [], 'no receipts relayed to others in a large group');
    assert.deepEqual(receipts(other, conv), []);
    const details = await ctx.http(members[0]!, 'GET', `/v1/conversations/${conv}?limit=2`);
    assert.deepEqual(details.body.members.map((m: { user: string; read: number }) => [m.user, m.read]), [[members[0], 1], [members[1], 1]]);
  });
}
