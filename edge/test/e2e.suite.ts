import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sign } from 'hono/jwt';
import WebSocket from 'ws';
import { HEARTBEAT_PING, HEARTBEAT_PONG, signRequest, type Msg } from '@switchboard/protocol';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';
import { startSystem, type Engines, type System } from './system.ts';
import { TestSocket, createConversation, token } from './socket.ts';

/** The walking skeleton's promises, end to end through workerd and a real region process. */
export function e2eSuite(engines: Engines): void {
  describe(`end to end (${engines} engines)`, { timeout: 300_000 }, () => {
    let sys: System;
    const sockets: TestSocket[] = [];
    const open = async (user: string, device = 'd1', opts: { autoAck?: boolean } = {}) => {
      const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device), opts);
      sockets.push(s);
      return s;
    };
    const newConv = async (owner: string, others: string[]) => (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, owner, 'setup'), others)).id;

    const sdk = (user: string, device: string, onMessage: (m: Msg) => void) =>
      new SwitchboardClient({
        url: sys.edgeUrl,
        token: () => devToken(sys.edgeUrl, user, device),
        socket: (u) => new WebSocket(u) as unknown as SocketLike,
        onMessage,
      });

    before(async () => {
      sys = await startSystem(engines);
    });
    after(async () => {
      await Promise.all(sockets.map((s) => s.close()));
      await sys?.stop();
    });

    it('answers /healthz with the edge and region status', async () => {
      const res = await fetch(`${sys.edgeUrl}/healthz`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { status: string; edge: { status: string }; region: { status: string; storage: string } };
      assert.equal(body.status, 'ok');
      assert.equal(body.edge.status, 'ok');
      assert.equal(body.region.status, 'ok');
      assert.equal(body.region.storage, engines === 'real' ? 'cassandra' : 'sqlite');
    });

    it('delivers in order with seq 1, 2, 3 and acks', async () => {
      const conv = await newConv('alice', ['bob']);
      const [a, b] = [await open('alice'), await open('bob')];
      const sent = [];
      for (const body of ['one', 'two', 'three']) sent.push(await a.request({ t: 'send', conv, cmid: `c-${body}`, body }));
      assert.deepEqual(sent.map((f) => [f.t, f.seq]), [['sent', 1], ['sent', 2], ['sent', 3]]);
      const got = await b.waitMsgs(conv, 3);
      assert.deepEqual(got.map((m) => [m.seq, m.body, m.from, m.dev]), [[1, 'one', 'alice', 'd1'], [2, 'two', 'alice', 'd1'], [3, 'three', 'alice', 'd1']]);
      b.raw(JSON.stringify({ t: 'ack', conv, seq: 3 }));
      assert.equal((await b.request({ t: 'ping' })).t, 'pong', 'the connection stays usable after an ack');
      assert.equal(a.msgs(conv).length, 0, 'the sending device gets `sent`, not its own message back');
    });

    it('gives the same cmid sent twice one message and the same seq', async () => {
      const conv = await newConv('alice', ['bob']);
      const [a, b] = [await open('alice', 'dup'), await open('bob', 'dup')];
      const first = await a.request({ t: 'send', conv, cmid: 'same-id', body: 'hello' });
      const second = await a.request({ t: 'send', conv, cmid: 'same-id', body: 'hello' });
      assert.equal(first.seq, 1);
      assert.equal(second.seq, 1);
      assert.equal(second.ts, first.ts);
      const after = await a.request({ t: 'send', conv, cmid: 'next-id', body: 'next' });
      assert.equal(after.seq, 2, 'the duplicate consumed no seq');
      await b.waitMsgs(conv, 2);
      const page = await b.request({ t: 'sync', conv, after: 0 });
      assert.deepEqual(page.msgs.map((m: { seq: number }) => m.seq), [1, 2]);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(b.msgs(conv).filter((m) => m.cmid === 'same-id').length, 1);
    });

    it('negotiates no compression by default, and answers the bare heartbeat without a wake-up', async () => {
      const a = await open('alice', 'plain');
      assert.equal(a.ws.extensions, '', 'the client offered permessage-deflate; the edge declined it');
      a.raw(HEARTBEAT_PING);
      const pong = await a.next((f) => f.t === 'pong' && f.rid === undefined);
      assert.deepEqual(pong, JSON.parse(HEARTBEAT_PONG));
      assert.equal(typeof (await a.request({ t: 'ping' })).ts, 'number', 'a ping with a rid is answered by the gateway, with its time');
    });

    it('answers every malformed frame with an error and keeps the connection usable', async () => {
      const conv = await newConv('alice', ['bob']);
      const theirs = await newConv('carol', ['dave']);
      const a = await open('alice', 'bad');
      const cases: [string, string][] = [
        ['not json at all', 'bad_json'],
        [JSON.stringify({ t: 'teleport', rid: 'u' }), 'unknown_type'],
        [JSON.stringify({ t: 'send', rid: 'm', conv, body: 'no cmid' }), 'invalid_frame'],
        [JSON.stringify({ t: 'send', rid: 'big', conv, cmid: 'big', body: 'x'.repeat(1_000_000) }), 'too_large'],
        [JSON.stringify({ t: 'send', rid: 'nm', conv: theirs, cmid: 'x', body: 'let me in' }), 'not_member'],
        [JSON.stringify({ t: 'sync', rid: 'ns', conv: theirs, after: 0 }), 'not_member'],
        [JSON.stringify({ t: 'send', rid: 'nf', conv: 'gDoesNotExist', cmid: 'x', body: 'x' }), 'not_found'],
      ];
      for (const [raw, code] of cases) {
        const before = a.frames.length;
        a.raw(raw);
        const err = await a.next((f) => f.t === 'error' && a.frames.indexOf(f) >= before);
        assert.equal(err.code, code, `${raw.slice(0, 60)} → ${code}`);
        assert.equal(typeof err.message, 'string');
        assert.ok(!/at .*\.ts:\d+/.test(err.message), 'no stack trace reaches the client');
      }
      assert.equal(a.closed, null, 'still open');
      const ok = await a.request({ t: 'send', conv, cmid: 'after-errors', body: 'still works' });
      assert.equal(ok.t, 'sent');
    });

    it('lets a recipient who connects later catch up through sync', async () => {
      const conv = await newConv('erin', ['frank']);
      const e = await open('erin');
      for (let i = 1; i <= 5; i++) await e.request({ t: 'send', conv, cmid: `late-${i}`, body: `m${i}` });
      const f = await open('frank');
      const page1 = await f.request({ t: 'sync', conv, after: 0, limit: 3 });
      assert.deepEqual(page1.msgs.map((m: { seq: number }) => m.seq), [1, 2, 3]);
      assert.equal(page1.more, true);
      const page2 = await f.request({ t: 'sync', conv, after: 3, limit: 3 });
      assert.deepEqual(page2.msgs.map((m: { body: string }) => m.body), ['m4', 'm5']);
      assert.equal(page2.more, false);
    });

    it('pages history newest first back to seq 1, and sync forward, across the edge window and region storage', async () => {
      const conv = await newConv('mia', ['ned']);
      const m = await open('mia', 'hist');
      for (let i = 1; i <= 25; i++) await m.request({ t: 'send', conv, cmid: `h-${i}`, body: `h${i}` });
      await new Promise((r) => setTimeout(r, 500)); // let the outbox drain so the window trims to 10
      const n = await open('ned', 'hist');
      const back: number[] = [];
      let before: number | undefined;
      for (let page = 0; page < 10; page++) {
        const f = await n.request({ t: 'history', conv, limit: 7, ...(before !== undefined ? { before } : {}) });
        assert.equal(f.t, 'msgs');
        back.push(...f.msgs.map((x: Msg) => x.seq));
        if (!f.more) break;
        before = f.msgs.at(-1).seq;
      }
      assert.deepEqual(back, Array.from({ length: 25 }, (_, i) => 25 - i));
      const dflt = await n.request({ t: 'history', conv });
      assert.deepEqual(dflt.msgs.map((x: Msg) => x.seq), Array.from({ length: 25 }, (_, i) => 25 - i), 'default page is up to 50');
      const fwd: number[] = [];
      for (let after = 0, page = 0; page < 10; page++) {
        const f = await n.request({ t: 'sync', conv, after, limit: 7 });
        fwd.push(...f.msgs.map((x: Msg) => x.seq));
        if (!f.more) break;
        after = f.msgs.at(-1).seq;
      }
      assert.deepEqual(fwd, Array.from({ length: 25 }, (_, i) => i + 1));
      const outsider = await open('olaf', 'hist');
      assert.equal((await outsider.request({ t: 'history', conv })).code, 'not_member');
    });

    it("reaches the sender's other devices", async () => {
      const conv = await newConv('gina', ['hank']);
      const [phone, laptop] = [await open('gina', 'phone'), await open('gina', 'laptop')];
      await phone.request({ t: 'send', conv, cmid: 'multi', body: 'from my phone' });
      const [m] = await laptop.waitMsgs(conv, 1);
      assert.equal(m!.dev, 'phone');
    });

    it('the client SDK shows every message once and in order, across a reconnect', async () => {
      const conv = await newConv('kim', ['lee']);
      const seen: Record<string, Msg[]> = { kim: [], lee: [] };
      const client = (user: string) =>
        new SwitchboardClient({
          url: sys.edgeUrl,
          token: () => devToken(sys.edgeUrl, user, 'sdk'),
          socket: (u) => new WebSocket(u) as unknown as SocketLike,
          onMessage: (m) => seen[user]!.push(m),
        });
      const kim = client('kim');
      kim.follow(conv);
      await kim.connect();
      let lee = client('lee');
      lee.follow(conv);
      await lee.connect();
      await kim.send(conv, 'first');
      await waitFor(() => seen.lee!.length === 1);
      lee.close();
      for (const body of ['second', 'third', 'fourth']) await kim.send(conv, body);
      lee = client('lee');
      lee.follow(conv, seen.lee!.at(-1)!.seq);
      await lee.connect();
      await lee.send(conv, 'back');
      await waitFor(() => seen.lee!.length === 5 && seen.kim!.length === 5);
      for (const who of ['kim', 'lee']) {
        assert.deepEqual(seen[who]!.map((m) => [m.seq, m.body]), [[1, 'first'], [2, 'second'], [3, 'third'], [4, 'fourth'], [5, 'back']], who);
      }
      kim.close();
      lee.close();
    });

    it('keeps sequencing while the region is killed, then delivers everything in order and stores it', async () => {
      const conv = await newConv('olga', ['pete']);
      const o = await open('olga');
      const got: Msg[] = [];
      const pete = sdk('pete', 'kill', (m) => got.push(m));
      pete.follow(conv);
      await pete.connect();
      const group = await newConv('olga', ['pete', 'quentin']);
      const inGroup: Msg[] = [];
      const quentin = sdk('quentin', 'kill', (m) => inGroup.push(m));
      quentin.follow(group);
      await quentin.connect();
      await o.request({ t: 'send', conv, cmid: 'o-0', body: 'before' });
      await waitFor(() => got.length === 1);
      await sys.stopRegion({ hard: true });
      const seqs = [];
      for (let i = 1; i <= 5; i++) seqs.push((await o.request({ t: 'send', conv, cmid: `o-${i}`, body: `during ${i}` })).seq);
      assert.deepEqual(seqs, [2, 3, 4, 5, 6], 'senders still get `sent` while the region is down');
      const health = (await (await fetch(`${sys.edgeUrl}/healthz`)).json()) as { status: string };
      assert.equal(health.status, 'degraded');
      // A direct conversation takes the edge's live path: the region is not needed to deliver.
      await waitFor(() => got.length >= 6);
      assert.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
      // A group (past LIVE_PUSH_MAX_MEMBERS) waits for the region's fan-out.
      await o.request({ t: 'send', conv: group, cmid: 'og-1', body: 'group while down' });
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(inGroup.length, 0, 'no region, no fan-out');
      await sys.startRegion();
      // Pushes resume; where the region lost its routes (embedded), devices are told to resync.
      await waitFor(() => inGroup.length >= 1, 90_000);
      assert.deepEqual(inGroup.map((m) => [m.conv, m.seq]), [[group, 1]]);
      assert.deepEqual(got.filter((m) => m.conv === conv).map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
      pete.close();
      quentin.close();
      // And the outbox drains every one of them to the region once it is back (its retry backoff
      // is at most 15 s); read the region directly, past the edge's window.
      const stored = async () => {
        const body = JSON.stringify({ conv, user: 'pete', after: 0, limit: 100 });
        const res = await fetch(`${sys.regionUrl}/internal/read`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(await signRequest(sys.internalSecret, 'POST', '/internal/read', body)) },
          body,
        });
        assert.equal(res.status, 200);
        return ((await res.json()) as { msgs: Msg[] }).msgs.map((m) => [m.seq, m.body]);
      };
      const deadline = Date.now() + 60_000;
      while ((await stored()).length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(await stored(), [[1, 'before'], ...[1, 2, 3, 4, 5].map((i) => [i + 1, `during ${i}`])]);
    });

    it('delivers each message once to each device when the live path and the fan-out both carry it', async () => {
      const conv = await newConv('vera', ['walt']);
      const [v, v2, w] = [await open('vera', 'once'), await open('vera', 'once-2'), await open('walt', 'once')];
      const skipped = async () => {
        const text = await (await fetch(`${sys.regionUrl}/metrics`)).text();
        return Number(/^switchboard_fanout_live_skipped_total (\d+)$/m.exec(text)?.[1] ?? NaN);
      };
      const skippedBefore = await skipped();
      for (let i = 1; i <= 20; i++) await v.request({ t: 'send', conv, cmid: `once-${i}`, body: `m${i}` });
      await w.waitSeqs(conv, 20);
      await v2.waitSeqs(conv, 20);
      // The region's fan-out sees that the live path reached both users (vera on her other device).
      // A drain waits up to LIVE_SETTLE_MS (2 s) for the live path: on a saturated machine a push
      // slower than that leaves its user to the fan-out too, which the gateway then drops as a
      // duplicate (asserted below). Most must be left to the live path all the same.
      const deadline = Date.now() + 30_000;
      while ((await skipped()) - skippedBefore < 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      const left = (await skipped()) - skippedBefore;
      assert.ok(left >= 30 && left <= 40, `20 messages × 2 users left to the live path (${left} of 40)`);
      for (const [who, s] of [['walt', w], ['vera-2', v2]] as const) {
        assert.deepEqual(s.msgs(conv).map((m) => m.seq), Array.from({ length: 20 }, (_, i) => i + 1), `${who}: each seq pushed once, in order`);
      }
      assert.deepEqual(v.msgs(conv), [], 'the sending device has its `sent` replies instead');
    });

    it('retransmits an unacked push until the device acks it', async () => {
      const conv = await newConv('quinn', ['rosa']);
      const [q, r] = [await open('quinn', 'rt'), await open('rosa', 'rt', { autoAck: false })];
      await q.request({ t: 'send', conv, cmid: 'rt-1', body: 'please ack' });
      await r.waitMsgs(conv, 2, 10_000); // the push, then a retransmit after RETRANSMIT_MS (1 s)
      r.raw(JSON.stringify({ t: 'ack', conv, seq: 1 }));
      await new Promise((res) => setTimeout(res, 300));
      const count = r.msgs(conv).length;
      await new Promise((res) => setTimeout(res, 3_000));
      assert.equal(r.msgs(conv).length, count, 'nothing is retransmitted after the ack');
      assert.deepEqual(r.seqs(conv), [1]);
    });

    it('resumes a device in every conversation it missed, including ones it never saw', async () => {
      const convs = [await newConv('sam', ['tia']), await newConv('sam', ['tia', 'uma']), await newConv('uma', ['tia'])];
      const got: Msg[] = [];
      const tia = sdk('tia', 'resume', (m) => got.push(m));
      tia.follow(convs[0]!);
      await tia.connect();
      const s = await open('sam', 'resume');
      await s.request({ t: 'send', conv: convs[0], cmid: 'r-0', body: 'seen live' });
      await waitFor(() => got.length === 1);
      tia.close();
      const u = await open('uma', 'resume');
      for (let i = 1; i <= 30; i++) {
        await s.request({ t: 'send', conv: convs[i % 2], cmid: `r-${i}`, body: `s${i}` });
        await u.request({ t: 'send', conv: convs[2], cmid: `u-${i}`, body: `u${i}` });
      }
      // A new client instance for the same device: it knows only convs[0] at seq 1.
      const after: Msg[] = [];
      const again = sdk('tia', 'resume', (m) => after.push(m));
      again.follow(convs[0]!, 1);
      await again.connect();
      await waitFor(() => after.length === 60, 30_000);
      for (const c of convs) {
        const seqs = after.filter((m) => m.conv === c).map((m) => m.seq);
        const first = c === convs[0] ? 2 : 1;
        assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => first + i), `in order, no gaps, no repeats in ${c}`);
      }
      assert.equal(after.filter((m) => m.conv === convs[2]).length, 30, 'a conversation this device never saw arrives whole');
      again.close();
    });

    it('a send in flight when its socket drops never wedges the device (regression)', async () => {
      const conv = await newConv('vic', ['wes']);
      const tok = await token(sys.edgeUrl, 'vic', 'laptop');
      for (let round = 0; round < 10; round++) {
        const a = await TestSocket.open(sys.edgeUrl, tok);
        for (let i = 0; i < 20; i++) a.raw(JSON.stringify({ t: 'send', rid: `x${i}`, conv, cmid: `w${round}-${i}`, body: 'b' }));
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        a.ws.terminate();
        const b = await TestSocket.open(sys.edgeUrl, tok);
        const reply = await b.request({ t: 'send', conv, cmid: `after-${round}`, body: 'after' }, 10_000);
        assert.equal(reply.t, 'sent', `round ${round}`);
        await b.close();
      }
    });

    it('returns the same direct conversation for the same pair', async () => {
      const a = await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'ivy', 'd'), ['jack'], { direct: true });
      const b = await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'jack', 'd'), ['ivy'], { direct: true });
      assert.equal(a.id, b.id);
    });

    it('refuses a connect with a missing, garbled, badly signed or expired token with 401', async () => {
      const now = Math.floor(Date.now() / 1000);
      const forged = await sign({ sub: 'alice', dev: 'd1', iat: now, exp: now + 600 }, 'not-the-real-secret-123', 'HS256');
      const expired = await sign({ sub: 'alice', dev: 'd1', iat: now - 7200, exp: now - 3600 }, sys.authSecret, 'HS256');
      for (const t of ['', 'garbage', forged, expired]) {
        const res = await fetch(`${sys.edgeUrl}/v1/connect?token=${encodeURIComponent(t)}`);
        assert.equal(res.status, 401, `token ${t.slice(0, 12)}…`);
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unauthorized');
        await assert.rejects(TestSocket.open(sys.edgeUrl, t), { status: 401 }, 'a real WebSocket upgrade is refused too');
      }
    });

    it('validates HTTP bodies with typed errors', async () => {
      const t = await token(sys.edgeUrl, 'alice', 'd1');
      const post = (body: string, auth = true) =>
        fetch(`${sys.edgeUrl}/v1/conversations`, { method: 'POST', headers: auth ? { authorization: `Bearer ${t}` } : {}, body });
      assert.equal((await post('{}', false)).status, 401);
      const bad = await post('{not json');
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'bad_json');
      assert.equal((await post(JSON.stringify({ members: 'bob' }))).status, 400);
      assert.equal((await post(JSON.stringify({ members: ['bob', 'carol'], direct: true }))).status, 400);
      const tok = await fetch(`${sys.edgeUrl}/v1/dev/token`, { method: 'POST', body: JSON.stringify({ user: 'no spaces allowed', device: 'd' }) });
      assert.equal(tok.status, 400);
    });

    it('refuses unsigned and replayed internal calls, on the edge and on the region', async () => {
      for (const [base, p, body] of [
        [sys.edgeUrl, '/internal/deliver', JSON.stringify({ msgs: [{ t: 'msg', conv: 'c', seq: 1, cmid: 'x', from: 'eve', dev: 'd', ts: 1, body: 'forged' }], to: [{ user: 'alice', gw: 'gw:local:0', m: 0 }] })],
        [sys.regionUrl, '/internal/routes', JSON.stringify({ ops: [{ op: 'down', user: 'nobody', device: 'd', edge: 'http://127.0.0.1:1', gw: 'gw:local:0', conn: 1 }] })],
      ] as const) {
        const unsigned = await fetch(base + p, { method: 'POST', body });
        assert.equal(unsigned.status, 401, `unsigned ${p}`);
        const headers = { 'content-type': 'application/json', ...(await signRequest(sys.internalSecret, 'POST', p, body)) };
        assert.equal((await fetch(base + p, { method: 'POST', headers, body })).status, 200, `signed ${p}`);
        assert.equal((await fetch(base + p, { method: 'POST', headers, body })).status, 401, `replayed ${p}`);
        const tampered = { ...(await signRequest(sys.internalSecret, 'POST', p, body)), 'content-type': 'application/json' };
        assert.equal((await fetch(base + p, { method: 'POST', headers: tampered, body: body.replace('d', 'e') })).status, 401, `tampered ${p}`);
      }
    });
  });
}

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
