import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { CONSENT } from '@switchboard/protocol';
import { HttpError, SwitchboardClient, createConversation, devToken, isRequest, type SocketLike } from '@switchboard/protocol/client';
import { TestSocket, token, type Frame } from './socket.ts';
import { realEngineEnv, startSystem, type System } from './system.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Real engines when they are up (as CI has them); the embedded ones otherwise.
const engines = realEngineEnv('probe') ? 'real' : 'embedded';
const HEARTBEAT_MS = 500;
/** Presence settles within TTL 3 s + sweep 0.2 s + a 1 s flush. */
const BOUND_MS = 3_000 + 200 + 1_000;
/** How long "nothing arrives" is waited for. */
const QUIET_MS = 2_500;

/**
 * Consent end to end through the edge (workerd) and the region: message requests (direct and
 * group), accept and decline, presence visibility (everyone / contacts / nobody), and blocks.
 */
describe(`consent end to end (${engines} engines)`, { timeout: 600_000 }, () => {
  let sys: System;
  const cleanups: (() => unknown)[] = [];
  let n = 0;
  const uid = (name: string) => `${name}${++n}x${process.pid}`;

  const http = async (user: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${sys.edgeUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${await token(sys.edgeUrl, user, 'http')}` },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const create = async (user: string, members: string[], extra: Record<string, unknown> = {}) => http(user, 'POST', '/v1/conversations', { members, ...extra });
  /** A socket that heartbeats like the SDK does. */
  const live = async (user: string, device = 'd1') => {
    const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device));
    const timer = setInterval(() => s.ws.readyState === WebSocket.OPEN && s.raw('{"t":"ping"}'), HEARTBEAT_MS);
    const stop = () => clearInterval(timer);
    cleanups.push(() => (stop(), s.close()));
    return Object.assign(s, { stopBeats: stop });
  };
  /** The user's conversation list entry for `conv`, once the conversation has reached the region. */
  const listed = async (user: string, conv: string, until: (e: Record<string, any>) => boolean = () => true) => {
    const end = Date.now() + 20_000;
    for (;;) {
      const r = await http(user, 'GET', '/v1/conversations');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const e = (r.body.convs as Record<string, any>[]).find((x) => x.id === conv);
      if (e && until(e)) return e;
      if (Date.now() > end) throw new Error(`${conv} not listed as expected for ${user}: ${JSON.stringify(e)}`);
      await sleep(200);
    }
  };
  /** Watches until the answer is `want` (the region learns of consent changes through the outbox). */
  const watchUntil = async (s: TestSocket, users: string[], want: 'watching' | 'forbidden'): Promise<Frame> => {
    const end = Date.now() + 20_000;
    for (;;) {
      const r = await s.request({ t: 'watch', users });
      const got = r.t === 'watching' ? 'watching' : r.t === 'error' && r.code === 'forbidden' ? 'forbidden' : `${r.t}:${r.code}`;
      if (got === want) return r;
      if (Date.now() > end) throw new Error(`watch ${users} stayed ${got}: ${JSON.stringify(r)}`);
      await sleep(250);
    }
  };
  /** Asserts no frame matching `pred` arrives within `ms`. */
  const none = async (s: TestSocket, pred: (f: Frame) => boolean, what: string, ms = QUIET_MS) => {
    const seen = s.frames.length;
    await sleep(ms);
    const hit = s.frames.slice(seen).find(pred);
    assert.equal(hit, undefined, `${what}: ${JSON.stringify(hit)}`);
  };
  const send = (s: TestSocket, conv: string, body: string) => s.request({ t: 'send', conv, cmid: crypto.randomUUID(), body });

  before(async () => {
    sys = await startSystem(engines, {
      edgeVars: { PRESENCE_FLUSH_SECONDS: '1', MESSAGE_REQUESTS: 'true' },
      regionEnv: { PRESENCE_TTL_SECONDS: '3', PRESENCE_SWEEP_MS: '200' },
    });
  });
  after(async () => {
    for (const c of cleanups) await c();
    await sys?.stop();
  });

  it('a direct conversation from a stranger is a request: the sender sees no presence, typing or receipts and is limited until it is accepted', async () => {
    const [alice, bob] = [uid('alice'), uid('bob')];
    const [a, b] = [await live(alice), await live(bob)];
    const created = await create(alice, [bob], { direct: true });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.requests, [bob]);
    const conv = created.body.id as string;

    // The sender is limited: CONSENT.requestMaxMessages, then request_pending.
    for (let i = 1; i <= CONSENT.requestMaxMessages; i++) assert.equal((await send(a, conv, `hi ${i}`)).t, 'sent');
    const over = await send(a, conv, 'one too many');
    assert.equal(over.t, 'error');
    assert.equal(over.code, 'request_pending', over.message);
    assert.match(over.message, new RegExp(`at most ${CONSENT.requestMaxMessages} messages`));

    // The recipient has the first messages, and sees the conversation as a request.
    await b.waitSeqs(conv, CONSENT.requestMaxMessages);
    const entry = await listed(bob, conv, (e) => e.last >= CONSENT.requestMaxMessages);
    assert.equal(entry.request?.by, alice, JSON.stringify(entry));
    assert.equal(entry.lastMsg?.body, `hi ${CONSENT.requestMaxMessages}`);
    assert.equal((await listed(alice, conv)).request, undefined, 'the sender’s own list marks nothing');
    const details = await http(bob, 'GET', `/v1/conversations/${conv}`);
    assert.equal(details.body.request?.by, alice);
    // A device's resume marks it too.
    const resumed = await (await live(bob, 'tablet')).request({ t: 'resume' });
    assert.deepEqual(resumed.convs.find((x: Frame) => x.conv === conv), { conv, last: CONSENT.requestMaxMessages, acked: 0, request: true });
    // Until accepting, the recipient may not send.
    const early = await send(b, conv, 'hello?');
    assert.equal(early.code, 'request_pending');

    // Presence: the sender may not watch the recipient; the recipient may watch the sender.
    await watchUntil(a, [bob], 'forbidden');
    await watchUntil(b, [alice], 'watching');
    // Typing and receipts (delivered, read) of the recipient reach the sender nobody.
    b.raw(JSON.stringify({ t: 'typing', conv }));
    b.raw(JSON.stringify({ t: 'read', conv, seq: CONSENT.requestMaxMessages }));
    await none(a, (f) => (f.t === 'typing' || f.t === 'read' || f.t === 'delivered') && f.conv === conv && f.user === bob, 'a receipt or typing of the recipient before accepting');
    const seenByAlice = await http(alice, 'GET', `/v1/conversations/${conv}`);
    assert.deepEqual(seenByAlice.body.members.find((m: any) => m.user === bob), { user: bob, role: 'member', joined: 0, delivered: 0, read: 0 });

    // Accept opens everything.
    assert.deepEqual((await http(bob, 'POST', `/v1/conversations/${conv}/accept`)).body, { accepted: true });
    assert.deepEqual((await http(bob, 'POST', `/v1/conversations/${conv}/accept`)).body, { accepted: false }, 'accepting again changes nothing');
    await a.next((f) => f.t === 'read' && f.conv === conv && f.user === bob && f.seq === CONSENT.requestMaxMessages);
    await watchUntil(a, [bob], 'watching');
    b.raw(JSON.stringify({ t: 'typing', conv }));
    await a.next((f) => f.t === 'typing' && f.conv === conv && f.user === bob);
    assert.equal((await send(a, conv, 'thanks')).t, 'sent');
    assert.equal((await send(b, conv, 'hello')).t, 'sent');
    await a.next((f) => f.t === 'msg' && f.conv === conv && f.from === bob);
    await listed(bob, conv, (e) => e.request === undefined);
    const later = await (await live(bob, 'laptop')).request({ t: 'resume' });
    assert.equal(later.convs.find((x: Frame) => x.conv === conv)?.request, undefined, JSON.stringify(later));
    // Now they share an accepted conversation: a group between them is no request.
    const group = await create(alice, [bob], { title: 'after' });
    assert.equal(group.body.requests, undefined, JSON.stringify(group.body));
  });

  it('declining leaves the conversation, all the sender learns; asking again is a request again; group invitations are requests too', async () => {
    const [carol, dan, erin, frank, gina] = [uid('carol'), uid('dan'), uid('erin'), uid('frank'), uid('gina')];
    const [c, d] = [await live(carol), await live(dan)];
    const conv = (await create(carol, [dan], { direct: true })).body.id as string;
    assert.equal((await send(c, conv, 'buy my course')).t, 'sent');
    await d.waitSeqs(conv, 1);
    const declined = await http(dan, 'POST', `/v1/conversations/${conv}/decline`);
    assert.equal(declined.status, 200, JSON.stringify(declined.body));
    assert.deepEqual(declined.body, { seq: 2, blocked: false });
    const leave = await c.next((f) => f.t === 'msg' && f.conv === conv && f.seq === 2);
    assert.deepEqual(leave.sys, { op: 'remove', by: dan, users: [dan] });
    // Nothing more reaches the one who declined.
    assert.equal((await send(c, conv, 'hello??')).t, 'sent');
    await none(d, (f) => f.t === 'msg' && f.conv === conv && f.seq > 2, 'a message after declining');
    assert.equal((await http(dan, 'POST', `/v1/conversations/${conv}/decline`)).body.error.code, 'not_member');
    await listed(dan, conv, (e) => e.request === undefined && e.last === 2);
    // Asked again: a request again, with the same allowance.
    const again = await create(carol, [dan], { direct: true });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.deepEqual(again.body.members.sort(), [carol, dan].sort());
    assert.deepEqual(again.body.requests, [dan]);
    await listed(dan, conv, (e) => e.request?.by === carol);
    // Starting the direct conversation yourself accepts its request.
    const reply = await create(dan, [carol], { direct: true });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    await listed(dan, conv, (e) => e.request === undefined);
    assert.equal((await send(d, conv, 'ok, hi')).t, 'sent');
    // Decline without a request is refused with a typed error.
    assert.equal((await http(carol, 'POST', `/v1/conversations/${conv}/decline`)).body.error.code, 'conflict');
    assert.equal((await http(dan, 'POST', `/v1/conversations/${conv}/decline`)).body.error.code, 'conflict', 'accepted: nothing to decline');
    assert.equal((await http(dan, 'POST', `/v1/conversations/${conv}/decline`, '{"block":"yes"}')).body.error.code, 'invalid_frame');
    assert.equal((await http(dan, 'POST', `/v1/conversations/${conv}/decline`, '{nope')).body.error.code, 'bad_json');

    // A group from a stranger, and being added to one, arrive as requests.
    const group = await create(erin, [frank], { title: 'Deals' });
    assert.equal(group.status, 201);
    assert.deepEqual(group.body.requests, [frank]);
    const gid = group.body.id as string;
    assert.equal((await listed(frank, gid)).request?.by, erin);
    const added = await http(erin, 'POST', `/v1/conversations/${gid}/members`, { users: [gina] });
    assert.deepEqual(added.body.users, [gina]);
    assert.equal((await listed(gina, gid, (e) => e.request !== undefined)).request.by, erin);
    const g = await live(gina);
    assert.equal((await send(g, gid, 'hi')).code, 'request_pending', 'an invitee sends once they accept');
    // Declining a group invitation is leaving it.
    const out = await http(frank, 'POST', `/v1/conversations/${gid}/decline`);
    assert.equal(out.status, 200, JSON.stringify(out.body));
    const details = await http(erin, 'GET', `/v1/conversations/${gid}`);
    assert.deepEqual(details.body.members.map((m: any) => m.user).sort(), [erin, gina].sort());
    assert.equal((await http(gina, 'POST', `/v1/conversations/${gid}/accept`)).body.accepted, true);
    assert.equal((await send(g, gid, 'hi')).t, 'sent');
  });

  it('presence visibility: everyone, contacts and nobody, each checked by a watcher', async () => {
    const [tess, walt, wren] = [uid('tess'), uid('walt'), uid('wren')];
    // walt accepted tess's conversation (a contact); wren has tess's request unanswered.
    const withWalt = (await create(tess, [walt], { direct: true })).body.id as string;
    assert.equal((await http(walt, 'POST', `/v1/conversations/${withWalt}/accept`)).body.accepted, true);
    const withWren = (await create(tess, [wren], { direct: true })).body.id as string;
    await listed(walt, withWalt, (e) => e.request === undefined);
    await listed(wren, withWren, (e) => e.request?.by === tess);
    const t = await live(tess);
    const [w1, w2] = [await live(walt), await live(wren)];

    assert.deepEqual((await http(tess, 'GET', '/v1/settings/presence')).body, { visibility: 'everyone' });
    await watchUntil(w1, [tess], 'watching');
    await watchUntil(w2, [tess], 'watching'); // a request tess made does not hide tess

    assert.deepEqual((await http(tess, 'PUT', '/v1/settings/presence', { visibility: 'contacts' })).body, { visibility: 'contacts' });
    assert.deepEqual((await http(tess, 'GET', '/v1/settings/presence')).body, { visibility: 'contacts' });
    await watchUntil(w1, [tess], 'watching');
    const refused = await watchUntil(w2, [tess], 'forbidden');
    assert.match(refused.message, new RegExp(tess));

    // A watch made while allowed stops being served once tess narrows it: first the baseline.
    t.stopBeats();
    await t.close();
    await w1.next((f) => f.t === 'presence' && f.user === tess && f.status === 'offline', BOUND_MS + 10_000);
    const t2 = await live(tess);
    await w1.next((f) => f.t === 'presence' && f.user === tess && f.status === 'online', BOUND_MS + 10_000);

    assert.equal((await http(tess, 'PUT', '/v1/settings/presence', { visibility: 'nobody' })).status, 200);
    await watchUntil(w1, [tess], 'forbidden');
    await watchUntil(w2, [tess], 'forbidden');
    const tessSeen = w1.frames.filter((f) => f.t === 'presence' && f.user === tess).length;
    t2.stopBeats();
    await t2.close();
    await sleep(BOUND_MS + 1_000);
    assert.equal(w1.frames.filter((f) => f.t === 'presence' && f.user === tess).length, tessSeen, 'no presence of tess after she chose nobody');
    // A user may always watch themself.
    const self = await live(tess, 'd2');
    await watchUntil(self, [tess], 'watching');

    // Bad input: a typed error, the setting unchanged.
    const bad = await http(tess, 'PUT', '/v1/settings/presence', { visibility: 'friends' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_frame');
    assert.equal((await http(tess, 'PUT', '/v1/settings/presence', '{')).body.error.code, 'bad_json');
    assert.deepEqual((await http(tess, 'GET', '/v1/settings/presence')).body, { visibility: 'nobody' });
    assert.equal((await fetch(`${sys.edgeUrl}/v1/settings/presence`)).status, 401);

    assert.equal((await http(tess, 'PUT', '/v1/settings/presence', { visibility: 'everyone' })).status, 200);
    await watchUntil(w1, [tess], 'watching');
    await watchUntil(w2, [tess], 'watching');
  });

  it('a block stops messages, presence and invitations both ways; unblocking restores them', async () => {
    const [kim, leo, mia] = [uid('kim'), uid('leo'), uid('mia')];
    const conv = (await create(kim, [leo], { direct: true })).body.id as string;
    assert.equal((await http(leo, 'POST', `/v1/conversations/${conv}/accept`)).body.accepted, true);
    const [k, l] = [await live(kim), await live(leo)];
    await watchUntil(l, [kim], 'watching');
    await watchUntil(k, [leo], 'watching');
    assert.equal((await send(k, conv, 'before')).t, 'sent');
    await l.waitSeqs(conv, 1);

    const blocked = await http(kim, 'POST', `/v1/blocks/${leo}`);
    assert.equal(blocked.status, 200, JSON.stringify(blocked.body));
    assert.deepEqual(blocked.body, { user: leo, blocked: true });
    assert.deepEqual((await http(kim, 'GET', '/v1/blocks')).body.blocks.map((b: any) => b.user), [leo]);
    assert.deepEqual((await http(leo, 'GET', '/v1/blocks')).body.blocks, [], 'being blocked is not listed as one’s own block');

    // Messages, both ways.
    const fromLeo = await send(l, conv, 'why?');
    assert.equal(fromLeo.code, 'blocked', JSON.stringify(fromLeo));
    assert.equal((await send(k, conv, 'bye')).code, 'blocked');
    await none(k, (f) => f.t === 'msg' && f.conv === conv && f.from === leo, 'a message across the block', 500);
    // Presence, both ways, and a watch made before the block is no longer served.
    await watchUntil(l, [kim], 'forbidden');
    await watchUntil(k, [leo], 'forbidden');
    const kimSeen = l.frames.filter((f) => f.t === 'presence' && f.user === kim).length;
    k.stopBeats();
    await k.close();
    await sleep(BOUND_MS + 1_000);
    assert.equal(l.frames.filter((f) => f.t === 'presence' && f.user === kim).length, kimSeen, 'no presence of kim across the block');
    // Typing across the block: nothing.
    const k2 = await live(kim, 'd2');
    l.raw(JSON.stringify({ t: 'typing', conv }));
    await none(k2, (f) => f.t === 'typing' && f.conv === conv, 'typing across the block', 1_000);

    // Invitations, both ways: a direct conversation is refused, a group leaves the other out.
    for (const [from, to] of [
      [leo, kim],
      [kim, leo],
    ] as const) {
      const direct = await create(from, [to], { direct: true });
      assert.equal(direct.status, 403, JSON.stringify(direct.body));
      assert.equal(direct.body.error.code, 'blocked');
      const group = await create(from, [to, mia], { title: 'party' });
      assert.equal(group.status, 201);
      assert.deepEqual(group.body.members.sort(), [from, mia].sort(), `${to} is left out of ${from}'s group`);
      const add = await http(from, 'POST', `/v1/conversations/${group.body.id}/members`, { users: [to] });
      assert.deepEqual(add.body.users, [], `${to} is not added to ${from}'s group`);
    }

    // Bad input: typed errors.
    assert.equal((await http(kim, 'POST', `/v1/blocks/${kim}`)).body.error.code, 'invalid_frame');
    assert.equal((await http(kim, 'POST', '/v1/blocks/no%20such!user')).body.error.code, 'invalid_frame');
    assert.equal((await fetch(`${sys.edgeUrl}/v1/blocks/${leo}`, { method: 'POST' })).status, 401);

    // Unblocking restores all of it.
    assert.deepEqual((await http(kim, 'DELETE', `/v1/blocks/${leo}`)).body, { user: leo, blocked: false });
    assert.deepEqual((await http(kim, 'GET', '/v1/blocks')).body.blocks, []);
    assert.equal((await send(l, conv, 'friends again?')).t, 'sent');
    await k2.next((f) => f.t === 'msg' && f.conv === conv && f.from === leo);
    assert.equal((await send(k2, conv, 'yes')).t, 'sent');
    await watchUntil(l, [kim], 'watching');
    await watchUntil(k2, [leo], 'watching');
    const direct = await create(leo, [kim], { direct: true });
    assert.equal(direct.status, 200);
    assert.equal(direct.body.id, conv);
    const group = await create(leo, [kim, mia], { title: 'party again' });
    assert.deepEqual(group.body.members.sort(), [kim, leo, mia].sort());
  });

  it('the client SDK: requests listed and answered, the refusal codes, blocks and visibility', async () => {
    const [nora, omar, pia] = [uid('nora'), uid('omar'), uid('pia')];
    const sdk = (user: string) => {
      const c = new SwitchboardClient({ url: sys.edgeUrl, token: () => devToken(sys.edgeUrl, user, 'sdk'), socket: (u) => new WebSocket(u) as unknown as SocketLike });
      cleanups.push(() => c.close());
      return c;
    };
    const [n, o] = [sdk(nora), sdk(omar)];
    await Promise.all([n.connect(), o.connect()]);
    const conv = await createConversation(sys.edgeUrl, await devToken(sys.edgeUrl, nora, 'sdk'), { members: [omar], direct: true });
    assert.deepEqual(conv.requests, [omar]);
    await n.send(conv.id, 'hello from nora');
    // The request shows in omar's list (once the conversation reached the region).
    let requests = await o.consent.requests();
    for (const end = Date.now() + 20_000; !requests.some((e) => e.id === conv.id) && Date.now() < end; requests = await o.consent.requests()) await sleep(200);
    const req = requests.find((e) => e.id === conv.id);
    assert.ok(req && isRequest(req), JSON.stringify(requests));
    assert.equal(req.request.by, nora);
    // Sending before accepting is refused with its code.
    await assert.rejects(o.send(conv.id, 'too soon'), (err: Error & { code?: string }) => err.code === 'request_pending');
    assert.deepEqual(await o.consent.accept(conv.id), { accepted: true });
    await o.send(conv.id, 'hi nora');

    // A group invitation from pia, declined with a block: pia may not ask again.
    const group = await createConversation(sys.edgeUrl, await devToken(sys.edgeUrl, pia, 'sdk'), { members: [omar], title: 'spam' });
    assert.deepEqual(group.requests, [omar]);
    const declined = await o.consent.decline(group.id, { block: true });
    assert.equal(declined.blocked, true);
    assert.deepEqual((await o.consent.blocks()).map((b) => b.user), [pia]);
    await assert.rejects(createConversation(sys.edgeUrl, await devToken(sys.edgeUrl, pia, 'sdk'), { members: [omar], direct: true }), (err: HttpError) => err.code === 'blocked' && err.status === 403);
    await o.consent.unblock(pia);
    assert.deepEqual(await o.consent.blocks(), []);
    await assert.rejects(o.consent.block(omar), (err: HttpError) => err.code === 'invalid_frame');

    assert.equal(await o.consent.presenceVisibility(), 'everyone');
    assert.equal(await o.consent.setPresenceVisibility('contacts'), 'contacts');
    assert.equal(await o.consent.presenceVisibility(), 'contacts');
    await assert.rejects(o.consent.setPresenceVisibility('friends' as 'nobody'), (err: HttpError) => err.code === 'invalid_frame');
  });
});
