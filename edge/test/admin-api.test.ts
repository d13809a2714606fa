import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signRequest } from '@switchboard/protocol';
import { startSystem, type System } from './system.ts';
import { TestSocket, createConversation, token } from './socket.ts';

/**
 * The operator's admin API on the edge (signed with INTERNAL_SECRET): a user's live sockets and
 * what the region knows of them, disconnecting a device or a user, a conversation's state.
 * (Dead letters: outbox-dead-letters.test.ts; drain: drain-real.test.ts; token revocation:
 * auth-idp.test.ts.)
 */
describe('admin API (embedded engines)', { timeout: 180_000 }, () => {
  let sys: System;
  const sockets: TestSocket[] = [];
  const admin = async (method: 'GET' | 'POST', path: string, body = '') => {
    const res = await fetch(sys.edgeUrl + path, { method, headers: { 'content-type': 'application/json', ...(await signRequest(sys.internalSecret, method, path, body)) }, ...(method === 'POST' ? { body } : {}) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const open = async (user: string, device: string) => {
    const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device));
    sockets.push(s);
    return s;
  };
  const closedWith = async (s: TestSocket, timeoutMs = 10_000) => {
    for (const end = Date.now() + timeoutMs; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      const c = s.closeReceived();
      if (c) return c;
    }
    return null;
  };

  before(async () => {
    sys = await startSystem('embedded');
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await sys?.stop();
  });

  it("a user's sockets and routes, a conversation's state, disconnecting a device then the user", async () => {
    const a1 = await open('adm_a', 'a1');
    const a2 = await open('adm_a', 'a2');
    await open('adm_b', 'b1');
    const conv = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'adm_a', 'a1'), ['adm_b'], { direct: true })).id;
    for (let i = 0; i < 3; i++) assert.equal((await a1.request({ t: 'send', conv, cmid: `adm${i}`, body: `m${i}` })).t, 'sent');

    const user = await admin('GET', '/internal/admin/users/adm_a');
    assert.equal(user.status, 200, JSON.stringify(user.body));
    assert.deepEqual(user.body.sessions.map((s: { device: string }) => s.device).sort(), ['a1', 'a2']);
    assert.ok(user.body.sessions.every((s: { gw: string; ready: boolean }) => s.gw.startsWith('gw:') && s.ready));
    assert.deepEqual(user.body.region.routes.map((r: { device: string }) => r.device).sort(), ['a1', 'a2'], 'the region routes both devices');

    const state = await admin('GET', `/internal/admin/conversations/${conv}`);
    assert.equal(state.status, 200);
    assert.equal(state.body.conv, conv);
    assert.equal(state.body.direct, true);
    assert.equal(state.body.lastSeq, 3);
    assert.equal(state.body.members, 2);
    assert.equal(state.body.deadLetters, 0);
    assert.equal(typeof state.body.outbox.events, 'number');

    // One device, for good (4009: the client does not reconnect by itself).
    const one = await admin('POST', '/internal/admin/users/adm_a/disconnect', JSON.stringify({ device: 'a2' }));
    assert.deepEqual(one.body, { closed: 1 });
    assert.equal((await closedWith(a2))?.code, 4009);
    assert.equal(a1.closeReceived(), null, 'the other device stays');
    // The whole user, asked to reconnect at once (1012 with a zero hint).
    const all = await admin('POST', '/internal/admin/users/adm_a/disconnect', JSON.stringify({ reconnect: true }));
    assert.deepEqual(all.body, { closed: 1 });
    const c1 = await closedWith(a1);
    assert.equal(c1?.code, 1012);
    assert.match(c1!.reason, /retry after 0 ms/);

    // Bad input, unknown things and unsigned calls are typed errors.
    assert.equal((await admin('GET', '/internal/admin/conversations/no-such-conv')).body.error.code, 'not_found');
    assert.equal((await admin('GET', '/internal/admin/users/bad%20user')).status, 400);
    const bad = await admin('POST', '/internal/admin/users/adm_a/disconnect', JSON.stringify({ device: 'a1', extra: 1 }));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_frame');
    assert.equal((await fetch(`${sys.edgeUrl}/internal/admin/users/adm_a`)).status, 401);
  });
});
