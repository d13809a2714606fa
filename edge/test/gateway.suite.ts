import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { signRequest, type Msg } from '@switchboard/protocol';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';
import { shardOf } from '../src/gateway/placement.ts';
import { startSystem, type Engines, type System } from './system.ts';
import { TestSocket, createConversation, token, type Frame } from './socket.ts';

const SHARDS = 4;
/** The region lags the edge by this much while the live path reaches everyone (DRAIN_COALESCE_MS). */
const REGION_LAG_MS = 5000;

/** The connection layer's promises: many users per gateway, complete resume, bounded work per device. */
export function gatewaySuite(engines: Engines): void {
  describe(`gateways (${engines} engines)`, { timeout: 600_000 }, () => {
    let sys: System;
    const sockets: TestSocket[] = [];
    const open = async (user: string, device = 'd1', opts: { autoAck?: boolean } = {}) => {
      const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device), opts);
      sockets.push(s);
      return s;
    };
    const newConv = async (owner: string, others: string[], extra: Record<string, unknown> = {}) =>
      (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, owner, 'setup'), others, extra)).id;
    /** Messages of `conv` the region has stored (read past the edge, signed as the edge would). */
    const stored = async (conv: string, user: string) => {
      const body = JSON.stringify({ conv, user, after: 0, limit: 100 });
      const res = await fetch(`${sys.regionUrl}/internal/read`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await signRequest(sys.internalSecret, 'POST', '/internal/read', body)) },
        body,
      });
      if (res.status === 404) return [];
      assert.equal(res.status, 200);
      return ((await res.json()) as { msgs: Msg[] }).msgs.map((m) => m.seq);
    };
    const liveSkipped = async () => Number(/^switchboard_fanout_live_skipped_total (\d+)$/m.exec(await (await fetch(`${sys.regionUrl}/metrics`)).text())?.[1] ?? NaN);

    before(async () => {
      sys = await startSystem(engines, {
        // Groups of every size take the live path here (the default); the region lags by REGION_LAG_MS.
        edgeVars: { GATEWAY_SHARDS: String(SHARDS), LIVE_PUSH_MAX_MEMBERS: '5000', DRAIN_COALESCE_MS: String(REGION_LAG_MS) },
      });
    });
    after(async () => {
      await Promise.all(sockets.map((s) => s.close()));
      await sys?.stop();
    });

    it('a large group is pushed by the live path, one call per gateway: everyone connected gets each message once, and the region delivers none again', async () => {
      const members = Array.from({ length: 120 }, (_, i) => `big${i}`);
      const conv = await newConv(members[0]!, members.slice(1));
      const socks = await Promise.all(members.map((u) => open(u, 'g')));
      // First in the suite: no other conversation's messages reach the fan-out meanwhile.
      const before = await liveSkipped();
      for (let i = 1; i <= 5; i++) await socks[0]!.request({ t: 'send', conv, cmid: `big-${i}`, body: `b${i}` });
      for (const s of socks.slice(1)) assert.deepEqual(await s.waitSeqs(conv, 5), [1, 2, 3, 4, 5]);
      // The region's fan-out finds every member's socket covered by the live path's hints.
      const deadline = Date.now() + REGION_LAG_MS + 30_000;
      while ((await liveSkipped()) - before < 5 * members.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      assert.equal((await liveSkipped()) - before, 5 * members.length);
      await new Promise((r) => setTimeout(r, 500));
      for (const s of socks.slice(1)) assert.equal(s.msgs(conv).length, 5, 'no second copy from the region');
    });

    it('a device whose socket dropped with pushes in flight gets them on its next connection, before the region even has them', async () => {
      const conv = await newConv('ada', ['bea']);
      const a = await open('ada', 'phone');
      const b1 = await open('bea', 'phone', { autoAck: false });
      for (let i = 1; i <= 3; i++) assert.equal((await a.request({ t: 'send', conv, cmid: `inflight-${i}`, body: `m${i}` })).seq, i);
      await b1.waitSeqs(conv, 3);
      b1.ws.terminate(); // the phone drops off the network, acking nothing
      // A raw socket: it neither resumes nor syncs, so only the edge can bring them.
      const b2 = await open('bea', 'phone');
      assert.deepEqual(await b2.waitSeqs(conv, 3, REGION_LAG_MS), [1, 2, 3]);
      assert.deepEqual(await stored(conv, 'bea'), [], 'the region had none of them yet: they came from the gateway that had them in flight');
    });

    it("after a gateway crash, every device comes back through the SDK's backoff and gets each message once, in order", async () => {
      const conv = await newConv('cal', ['dee']);
      const got: Msg[] = [];
      const dee = new SwitchboardClient({
        url: sys.edgeUrl,
        token: () => devToken(sys.edgeUrl, 'dee', 'crash'),
        socket: (u) => new WebSocket(u) as unknown as SocketLike,
        backoff: { baseMs: 100, capMs: 2000 },
        onMessage: (m) => got.push(m),
      });
      dee.follow(conv);
      await dee.connect();
      const cal = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, 'cal', 'crash'));
      for (let i = 1; i <= 10; i++) await cal.request({ t: 'send', conv, cmid: `crash-${i}`, body: `m${i}` });
      // Killed at once: the last of them are in flight to dee, and none has reached the region.
      await sys.restartEdge({ hard: true });
      const cal2 = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, 'cal', 'crash'));
      for (let i = 11; i <= 15; i++) await cal2.request({ t: 'send', conv, cmid: `crash-${i}`, body: `m${i}` });
      await waitFor(() => got.length >= 15, 60_000);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(got.map((m) => m.seq), Array.from({ length: 15 }, (_, i) => i + 1));
      assert.ok(dee.stats.reconnects >= 1, 'the device reconnected by itself');
      dee.close();
      await cal2.close();
    });

    it('resume pages through a user in 2,000 conversations, and the device cursors it compares with survive reconnects', async () => {
      const N = 2000;
      const tok = await token(sys.edgeUrl, 'zoe', 'setup');
      const convs: string[] = new Array(N);
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < N) {
            const i = next++;
            convs[i] = (await createConversation(sys.edgeUrl, tok, [`peer${i}`], { direct: true })).id;
          }
        }),
      );
      const writer = await open('zoe', 'writer');
      const written = convs.filter((_, i) => i % 10 === 0);
      for (const conv of written) assert.equal((await writer.request({ t: 'send', conv, cmid: `z-${conv}`, body: 'hi' })).t, 'sent');
      const pages = async (s: TestSocket) => {
        const listed: Frame[] = [];
        let after = '';
        let n = 0;
        do {
          const f = await s.request({ t: 'resume', after }, 30_000);
          assert.equal(f.t, 'changes', JSON.stringify(f));
          listed.push(...f.convs);
          after = f.next ?? '';
          n++;
        } while (after !== '');
        return { listed, n };
      };
      const reader = await open('zoe', 'reader', { autoAck: false });
      let r = await pages(reader);
      for (let t = 0; r.listed.length < written.length && t < 60; t++) {
        await new Promise((res) => setTimeout(res, 500));
        r = await pages(reader);
      }
      assert.equal(r.n, N / 500, 'four pages of 500');
      assert.deepEqual(r.listed.map((c) => c.conv).sort(), [...written].sort(), 'exactly the conversations with messages this device has not acked');
      assert.ok(r.listed.every((c) => c.last === 1 && c.acked === 0));
      // It acks 50 of them, then goes away: its cursors reach the region when the socket closes.
      const acked = written.slice(0, 50);
      for (const conv of acked) reader.raw(JSON.stringify({ t: 'ack', conv, seq: 1 }));
      assert.equal((await reader.request({ t: 'ping' })).t, 'pong');
      await reader.close();
      let again = { listed: [] as Frame[], n: 0 };
      for (let t = 0; t < 40; t++) {
        const s = await open('zoe', 'reader', { autoAck: false });
        again = await pages(s);
        await s.close();
        if (again.listed.length === written.length - acked.length) break;
        await new Promise((res) => setTimeout(res, 250));
      }
      assert.deepEqual(again.listed.map((c) => c.conv).sort(), written.slice(50).sort(), 'what it acked is no longer listed');
      const other = await open('zoe', 'tablet', { autoAck: false });
      assert.equal((await pages(other)).listed.length, written.length, "another device's cursors are its own");
    });

    it('a flooding device is bounded: it is refused past its queue, others on its gateway are still served, a prompt acker stays connected', async () => {
      // Three users on one gateway.
      const pick = (prefix: string) => Array.from({ length: 100 }, (_, i) => `${prefix}${i}`).find((u) => shardOf(u, SHARDS) === 0)!;
      const [flooder, recipient, bystander] = [pick('fl'), pick('rc'), pick('by')];
      const conv = await newConv(flooder, [recipient]);
      const [f, rc, by] = [await open(flooder, 'f'), await open(recipient, 'r'), await open(bystander, 'b')];
      const FLOOD = 2000;
      for (let i = 0; i < FLOOD; i++) f.raw(JSON.stringify({ t: 'send', rid: `f${i}`, conv, cmid: `flood-${i}`, body: `flood ${i}` }));
      const replies = () => f.frames.filter((x) => typeof x.rid === 'string' && x.rid.startsWith('f'));
      let slowest = 0;
      while (replies().length < FLOOD) {
        const t0 = Date.now();
        assert.equal((await by.request({ t: 'ping' }, 30_000)).t, 'pong');
        slowest = Math.max(slowest, Date.now() - t0);
      }
      const sent = replies().filter((x) => x.t === 'sent');
      const refused = replies().filter((x) => x.t === 'error');
      assert.ok(refused.length > 0 && refused.every((x) => x.code === 'rate_limited'), 'frames past the bound are refused with rate_limited');
      assert.equal(sent.length + refused.length, FLOOD, 'every frame is answered');
      assert.deepEqual(sent.map((x) => x.seq), Array.from({ length: sent.length }, (_, i) => i + 1), 'what was taken is sequenced in the order sent');
      assert.deepEqual(await rc.waitSeqs(conv, sent.length, 30_000), sent.map((x) => x.seq), 'the recipient gets each once, in order');
      assert.equal(rc.closed, null, 'the recipient, acking promptly, was never closed as lagging');
      assert.ok(slowest < 1000, `the bystander's pings were answered throughout (slowest ${slowest} ms)`);
    });


    it('while the region is down, a device still connects (its hello waits for the region only briefly) and sends', async () => {
      const conv = await newConv('eve', ['fay']);
      await sys.stopRegion({ hard: true });
      try {
        const t0 = Date.now();
        const e = await open('eve', 'down');
        assert.ok(Date.now() - t0 < 5000, 'hello within a few seconds without the region');
        const fay = await open('fay', 'down');
        assert.equal((await e.request({ t: 'send', conv, cmid: 'while-down', body: 'still here' })).t, 'sent');
        assert.deepEqual(await fay.waitSeqs(conv, 1), [1], 'the live path needs no region');
      } finally {
        await sys.startRegion();
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
