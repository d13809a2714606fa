import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSystem, type Engines, type System } from './system.ts';
import { receiptsCases } from './receipts.cases.ts';
import { TestSocket, createConversation, token } from './socket.ts';

const MAX_GROUP = 1_200;

/** Groups end to end: sequenced membership over HTTP, fan-out as of each seq, push jobs, size. */
export function groupsSuite(engines: Engines): void {
  describe(`groups (${engines} engines)`, { timeout: 600_000 }, () => {
    let sys: System;
    const sockets: TestSocket[] = [];
    const open = async (user: string, device = 'd1') => {
      // Hundreds of connects at once on a busy 2-core machine: a reset connect is tried again.
      for (let attempt = 1; ; attempt++) {
        try {
          const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device));
          sockets.push(s);
          return s;
        } catch (err) {
          if (attempt >= 3) throw err;
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
    };
    const http = async (user: string, method: string, path: string, body?: unknown) => {
      const res = await fetch(`${sys.edgeUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${await token(sys.edgeUrl, user, 'http')}` },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    const pushJobs = async () => {
      const text = await (await fetch(`${sys.regionUrl}/metrics`)).text();
      return Number(/^switchboard_fanout_push_jobs_total (\d+)/m.exec(text)?.[1] ?? 'NaN');
    };
    const settle = (ms = 500) => new Promise((r) => setTimeout(r, ms));

    before(async () => {
      // Region fan-out only: these tests pin what it delivers at each seq. (With the live path on, a
      // group that shrinks to its threshold mid-stream switches paths, and a later seq may arrive
      // first; the SDK fills that gap by sync, but these raw sockets ack whatever arrives.)
      sys = await startSystem(engines, { edgeVars: { MAX_GROUP_MEMBERS: String(MAX_GROUP), LIVE_PUSH_MAX_MEMBERS: '0' } });
    });
    after(async () => {
      await Promise.all(sockets.map((s) => s.close()));
      await sys?.stop();
    });

    it('membership over HTTP: roles, details paged, typed errors', async () => {
      const { id } = await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'gowner', 'setup'), ['gbob'], { title: 'Team' });
      const added = await http('gowner', 'POST', `/v1/conversations/${id}/members`, { users: ['gcarol', 'gdave'] });
      assert.equal(added.status, 200);
      assert.deepEqual(added.body, { seq: 1, ver: 1, users: ['gcarol', 'gdave'] });
      assert.equal((await http('gbob', 'POST', `/v1/conversations/${id}/members`, { users: ['x'] })).body.error.code, 'not_admin');
      assert.equal((await http('gbob', 'DELETE', `/v1/conversations/${id}/members/gcarol`)).status, 403);
      assert.equal((await http('stranger', 'POST', `/v1/conversations/${id}/members`, { users: ['x'] })).body.error.code, 'not_member');
      assert.equal((await http('gowner', 'POST', `/v1/conversations/gNoSuchConversation/members`, { users: ['x'] })).status, 404);
      assert.equal((await http('gowner', 'POST', `/v1/conversations/${id}/members`, { users: 'x' })).body.error.code, 'invalid_frame');
      const many = Array.from({ length: MAX_GROUP }, (_, i) => `f${i}`);
      const full = await http('gowner', 'POST', `/v1/conversations/${id}/members`, { users: many });
      assert.deepEqual([full.status, full.body.error.code], [409, 'group_full']);
      assert.equal((await http('gowner', 'PATCH', `/v1/conversations/${id}/members/gbob`, { role: 'admin' })).status, 200);
      const page1 = await http('gbob', 'GET', `/v1/conversations/${id}?limit=2`);
      assert.equal(page1.status, 200);
      assert.equal(page1.body.title, 'Team');
      assert.equal(page1.body.count, 4);
      assert.equal(page1.body.ver, 2);
      assert.deepEqual(page1.body.members, [{ user: 'gbob', role: 'admin', joined: 0, delivered: 0, read: 0 }, { user: 'gcarol', role: 'member', joined: 1, delivered: 0, read: 0 }]);
      const page2 = await http('gbob', 'GET', `/v1/conversations/${id}?limit=2&after=${page1.body.next}`);
      assert.deepEqual(page2.body.members.map((m: { user: string }) => m.user), ['gdave', 'gowner']);
      assert.equal(page2.body.next, undefined);
      assert.equal((await http('stranger', 'GET', `/v1/conversations/${id}`)).body.error.code, 'not_member');
      const leave = await http('gdave', 'DELETE', `/v1/conversations/${id}/members/gdave`);
      assert.deepEqual(leave.body, { seq: 3, ver: 3, users: ['gdave'] });
      const direct = await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'gowner', 'setup'), ['gbob'], { direct: true });
      assert.equal((await http('gowner', 'POST', `/v1/conversations/${direct.id}/members`, { users: ['x'] })).body.error.code, 'forbidden');
    });

    it('membership changes in a stream of messages are respected exactly at their seq', async () => {
      const { id: conv } = await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'alice', 'setup'), ['bob', 'carol']);
      const [a, b, c, d] = [await open('alice'), await open('bob'), await open('carol'), await open('dave')];
      const send = async (body: string) => (await a.request({ t: 'send', conv, cmid: body, body })).seq as number;
      assert.equal(await send('m1'), 1);
      assert.equal(await send('m2'), 2);
      assert.equal((await http('alice', 'DELETE', `/v1/conversations/${conv}/members/carol`)).body.seq, 3);
      assert.equal(await send('m4'), 4);
      assert.equal((await http('alice', 'POST', `/v1/conversations/${conv}/members`, { users: ['dave'] })).body.seq, 5);
      assert.equal(await send('m6'), 6);
      assert.deepEqual(await b.waitSeqs(conv, 6), [1, 2, 3, 4, 5, 6]);
      await d.waitSeqs(conv, 2);
      await c.waitSeqs(conv, 3);
      await settle(1500);
      assert.deepEqual(c.seqs(conv), [1, 2, 3], 'the removed member gets up to their removal, nothing after');
      assert.deepEqual(d.seqs(conv), [5, 6], 'the added member gets from their join');
      const sys3 = b.msgs(conv).find((m) => m.seq === 3)!;
      assert.deepEqual([sys3.body, sys3.sys], ['', { op: 'remove', by: 'alice', users: ['carol'] }]);
      assert.deepEqual(a.seqs(conv), [3, 5], 'the actor\'s devices get the system events too');
      // Reads follow the same bounds, from the edge window and from region storage alike.
      assert.deepEqual((await c.request({ t: 'sync', conv, after: 0 })).msgs.map((m: { seq: number }) => m.seq), [1, 2, 3]);
      assert.deepEqual((await c.request({ t: 'history', conv })).msgs.map((m: { seq: number }) => m.seq), [3, 2, 1]);
      assert.equal((await c.request({ t: 'send', conv, cmid: 'late', body: 'late' })).code, 'not_member');
      assert.deepEqual((await d.request({ t: 'sync', conv, after: 0 })).msgs.map((m: { seq: number }) => m.seq), [5, 6]);
      assert.deepEqual((await d.request({ t: 'history', conv })).msgs.map((m: { seq: number }) => m.seq), [6, 5]);
      const resume = await c.request({ t: 'resume' });
      assert.equal(resume.convs.find((x: { conv: string }) => x.conv === conv), undefined, 'nothing left to fetch for the removed member');
    });

    it('a group with full history lets a member added later read from seq 1', async () => {
      const { id: conv } = await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'hal', 'setup'), ['hbo'], { history: 'full' });
      const h = await open('hal');
      for (const m of ['a', 'b']) await h.request({ t: 'send', conv, cmid: m, body: m });
      await http('hal', 'POST', `/v1/conversations/${conv}/members`, { users: ['hcy'] });
      const c = await open('hcy');
      assert.deepEqual((await c.request({ t: 'sync', conv, after: 0 })).msgs.map((m: { seq: number }) => m.seq), [1, 2, 3]);
    });

    receiptsCases({ sys: () => sys, open, http });

    it(`a 1,000-member group with 300 connected devices: one message reaches all 300 exactly once, and one push intent per registered offline device`, async () => {
      const members = Array.from({ length: 1000 }, (_, i) => `big${String(i).padStart(4, '0')}`);
      const { id: conv } = await createConversation(sys.edgeUrl, await token(sys.edgeUrl, members[0]!, 'setup'), members.slice(1));
      const online: TestSocket[] = [];
      for (let i = 0; i < 300; i += 25) online.push(...(await Promise.all(members.slice(i, i + 25).map((u) => open(u)))));
      // Every offline member has a phone registered for push (the connected ones' d1 is not).
      for (let i = 300; i < 1000; i += 25)
        await Promise.all(
          members.slice(i, i + 25).map(async (u, j) => {
            const res = await fetch(`${sys.edgeUrl}/v1/devices/phone/push`, {
              method: 'PUT',
              headers: { authorization: `Bearer ${await token(sys.edgeUrl, u, 'phone')}` },
              body: JSON.stringify(j % 2 ? { provider: 'fcm', token: `fcm-${u}-0123456789` } : { provider: 'apns', token: `a${String(i + j).padStart(63, '0')}`, env: 'production' }),
            });
            assert.equal(res.status, 200, await res.text());
          }),
        );
      const before = await pushJobs();
      const sender = online[0]!;
      assert.equal((await sender.request({ t: 'send', conv, cmid: 'hello-all', body: 'hello all' }, 30_000)).seq, 1);
      const others = online.slice(1);
      const deadline = Date.now() + 60_000;
      while (others.some((s) => s.seqs(conv).length < 1) && Date.now() < deadline) await settle(100);
      await settle(1000);
      assert.equal(others.filter((s) => s.seqs(conv).length === 1).length, 299, 'every other connected member has it');
      assert.ok(others.every((s) => s.msgs(conv).every((m) => m.seq === 1 && m.body === 'hello all')));
      assert.equal(sender.msgs(conv).length, 0, 'the sending device has its `sent` instead');
      let jobs = 0;
      while (Date.now() < deadline && (jobs = (await pushJobs()) - before) < 700) await settle(100);
      await settle(500);
      assert.equal((await pushJobs()) - before, 700, 'one push intent per offline member’s registered device');
      await Promise.all(online.map((s) => s.close()));
    });
  });
}
