import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { Msg } from '@switchboard/protocol';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';
import type { Engines } from './system.ts';
import { TestSocket, token } from './socket.ts';
import { PLACEMENT_OF, startRegions, twoRegionEngines, type RegionName, type Regions } from '../../scripts/lib/regions.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * Several regions, end to end: conversations homed in the creator's nearest region (or the one
 * asked for), users near different regions chatting in direct and group conversations, and a
 * region killed and restarted mid-stream. With real engines, also a user's conversation list,
 * resume and read positions across regions (Cassandra replicates every datacenter to the other).
 */
export function regionsSuite(engines: Engines): void {
  describe(`two regions (${engines} engines)`, { timeout: 600_000 }, () => {
    let sys: Regions;
    const sockets: TestSocket[] = [];
    const clients: SwitchboardClient[] = [];
    /** A socket of `user` on a gateway near `region`. */
    const open = async (user: string, device: string, region: RegionName) => {
      const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device), { query: { placement: PLACEMENT_OF[region] } });
      sockets.push(s);
      return s;
    };
    /** Creates a conversation from a client near `near`; returns its id and home region. */
    const create = async (owner: string, near: RegionName, members: string[], extra: Record<string, unknown> = {}) => {
      const res = await fetch(`${sys.edgeUrl}/v1/conversations?placement=${PLACEMENT_OF[near]}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await token(sys.edgeUrl, owner, 'setup')}` },
        body: JSON.stringify({ members, ...extra }),
      });
      const body = (await res.json()) as { id: string; region: string; error?: { code: string; message: string } };
      return { status: res.status, ...body };
    };
    /** What `region` has stored of `conv` (its own storage, past the edge's window). */
    const stored = async (region: RegionName, conv: string, user: string) =>
      (await sys.call<{ msgs: Msg[] }>(region, '/internal/read', { conv, user, after: 0, limit: 500 })).msgs.map((m) => [m.seq, m.body]);

    before(async () => {
      const real = engines === 'real' ? twoRegionEngines() : null;
      if (engines === 'real' && !real) throw new Error('two regions of real engines requested but TEST_* / TEST_REGION2_* are not all set');
      sys = await startRegions(real);
    });
    after(async () => {
      for (const c of clients) c.close();
      await Promise.all(sockets.map((s) => s.close().catch(() => {})));
      await sys?.stop();
    });

    it('homes a conversation in the region nearest its creator, or in the one asked for', async () => {
      const direct = await create('ann', 'eu', ['ben'], { direct: true });
      assert.equal(direct.status, 201);
      assert.equal(direct.region, 'eu');
      const group = await create('ben', 'us', ['ann', 'cat'], { title: 'g' });
      assert.equal(group.region, 'us');
      const asked = await create('ann', 'eu', ['cat'], { region: 'us' });
      assert.equal(asked.region, 'us');
      // The same direct conversation asked for from the other region keeps its home.
      const again = await create('ben', 'us', ['ann'], { direct: true });
      assert.equal(again.status, 200);
      assert.equal(again.region, 'eu');
      const unknown = await create('ann', 'eu', ['ben'], { region: 'mars' });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.error?.code, 'invalid_frame');
      assert.match(unknown.error!.message, /eu, us/);
    });

    it('every gateway registers its devices in every region, so either region finds them', async () => {
      await open('dora', 'd1', 'eu');
      await open('eli', 'd1', 'us');
      for (const region of ['eu', 'us'] as const) {
        await waitFor(`dora's and eli's routes in ${region}`, async () => {
          const [d, e] = await Promise.all(['dora', 'eli'].map((user) => sys.call<{ routes: { gw: string }[] }>(region, '/internal/admin/user', { user })));
          return d!.routes.some((r) => r.gw.startsWith('gw:weur:')) && e!.routes.some((r) => r.gw.startsWith('gw:enam:'));
        });
      }
    });

    it('users near different regions chat in direct and group conversations; a region killed and restarted mid-stream loses and repeats nothing', async () => {
      // fay is near eu, gus and hal near us. The direct conversation is homed in eu, the group in us.
      const direct = await create('fay', 'eu', ['gus'], { direct: true });
      const group = await create('gus', 'us', ['fay', 'hal'], { title: 'across' });
      assert.deepEqual([direct.region, group.region], ['eu', 'us']);
      // Senders are raw sockets (their `sent` acks are checked); recipients are SDK clients, as
      // devices are: cumulative acks of what they hold in order, gap fill from the sequencer,
      // dedupe by seq, resume after `resync`.
      const fay = await open('fay', 'd1', 'eu');
      const gus = await open('gus', 'd1', 'us');
      const N = 40;
      const sentAt = new Map<string, number>();
      const latencies: { path: string; ms: number }[] = [];
      const reader = async (user: string, near: RegionName, conv: string, label: string) => {
        const got: Msg[] = [];
        const client = new SwitchboardClient({
          url: sys.edgeUrl,
          token: () => devToken(sys.edgeUrl, user, 'reader'),
          socket: (u) => new WebSocket(`${u}&placement=${PLACEMENT_OF[near]}`) as unknown as SocketLike,
          onMessage: (m) => {
            if (m.conv !== conv) return;
            got.push(m);
            const t0 = sentAt.get(m.body);
            if (t0 !== undefined) latencies.push({ path: label, ms: performance.now() - t0 });
          },
        });
        client.follow(conv);
        await client.connect();
        clients.push(client);
        return got;
      };
      const gusGot = await reader('gus', 'us', direct.id, 'direct eu-home, fay(eu) to gus(us)');
      const fayGot = await reader('fay', 'eu', group.id, 'group us-home, gus(us) to fay(eu)');
      const halGot = await reader('hal', 'us', group.id, 'group us-home, gus(us) to hal(us)');

      const sendAll = async (from: TestSocket, conv: string, tag: string, i: number) => {
        const body = `${tag} ${i}`;
        sentAt.set(body, performance.now());
        const r = await from.request({ t: 'send', conv, cmid: `${tag}-${i}`, body }, 30_000);
        assert.equal(r.t, 'sent', JSON.stringify(r));
      };
      // Both conversations at once, one message each per 50 ms; eu is killed (kill -9) after the
      // 10th and started again after the 25th.
      let down = 0;
      for (let i = 1; i <= N; i++) {
        await Promise.all([sendAll(fay, direct.id, 'd', i), sendAll(gus, group.id, 'g', i)]);
        if (i === 10) {
          await sys.stopRegion('eu', { hard: true });
          down = Date.now();
        }
        if (i === 25) {
          await sys.startRegion('eu');
          down = Date.now() - down;
        }
        await sleep(50);
      }
      const all = Array.from({ length: N }, (_, k) => k + 1);
      // Every device shows every message of its conversations once, in order. gus is near us and
      // the direct conversation is homed in eu: what the live path missed while eu was down (its
      // first messages, before his gateway's reports taught the conversation where he is) reaches
      // him from eu's fan-out once eu is back, or from his gap fill, which the edge serves.
      for (const [got, tag] of [
        [gusGot, 'd'],
        [fayGot, 'g'],
        [halGot, 'g'],
      ] as const) {
        await waitFor(`${N} messages (${tag})`, () => got.length >= N, 90_000);
        assert.deepEqual(got.map((m) => m.seq), all);
        assert.deepEqual(got.map((m) => m.body), all.map((i) => `${tag} ${i}`));
      }
      // The senders' own acks: one seq per cmid, 1..N.
      assert.deepEqual(fay.frames.filter((f) => f.t === 'sent' && f.conv === direct.id).map((f) => f.seq), all);
      // Each home region stored its conversation in full once it was back (eu drains what was sequenced meanwhile).
      const expectDirect = all.map((i) => [i, `d ${i}`]);
      await waitFor('eu to store the direct conversation', async () => (await stored('eu', direct.id, 'fay')).length === N, 90_000);
      assert.deepEqual(await stored('eu', direct.id, 'fay'), expectDirect);
      assert.deepEqual(await stored('us', group.id, 'gus'), all.map((i) => [i, `g ${i}`]));

      const summary: Record<string, unknown> = { engines, eu_down_ms: down };
      for (const label of new Set(latencies.map((l) => l.path))) {
        const ms = latencies.filter((l) => l.path === label).map((l) => l.ms).sort((a, b) => a - b);
        summary[label] = { n: ms.length, p50_ms: +percentile(ms, 50).toFixed(1), p99_ms: +percentile(ms, 99).toFixed(1), max_ms: +ms.at(-1)!.toFixed(1) };
      }
      process.stderr.write(`two regions: ${JSON.stringify(summary)}\n`);
    });

    if (engines === 'real') {
      it("a user's conversation list, resume and read positions work from either region", async () => {
        // ivy (near us) is in a conversation homed in eu and one homed in us; she is offline while both get messages.
        const inEu = await create('jon', 'eu', ['ivy'], { direct: true });
        const inUs = await create('kim', 'us', ['ivy', 'jon'], { title: 'us group' });
        assert.deepEqual([inEu.region, inUs.region], ['eu', 'us']);
        const jon = await open('jon', 'd1', 'eu');
        const kim = await open('kim', 'd1', 'us');
        for (let i = 1; i <= 3; i++) {
          await jon.request({ t: 'send', conv: inEu.id, cmid: `e${i}`, body: `eu ${i}` });
          await kim.request({ t: 'send', conv: inUs.id, cmid: `u${i}`, body: `us ${i}` });
        }
        // The list (served by the primary region, eu) has both, whichever region stored them.
        const list = async () => {
          const res = await fetch(`${sys.edgeUrl}/v1/conversations`, { headers: { authorization: `Bearer ${await token(sys.edgeUrl, 'ivy', 'd1')}` } });
          return ((await res.json()) as { convs: { id: string }[] }).convs.map((c) => c.id).sort();
        };
        await waitFor("ivy's list to hold both conversations", async () => (await list()).length === 2, 30_000);
        assert.deepEqual(await list(), [inEu.id, inUs.id].sort());
        // Resume near us: both conversations, with what she has not acked.
        const ivy = await open('ivy', 'd1', 'us');
        const resumed = async (s: TestSocket) => {
          const r = await s.request({ t: 'resume', after: '' });
          return Object.fromEntries((r.convs as { conv: string; last: number; acked: number }[]).map((c) => [c.conv, [c.last, c.acked]]));
        };
        await waitFor('both conversations in the resume near us', async () => Object.keys(await resumed(ivy)).length === 2, 30_000);
        assert.deepEqual(await resumed(ivy), { [inEu.id]: [3, 0], [inUs.id]: [3, 0] });
        for (const conv of [inEu.id, inUs.id]) {
          const page = await ivy.request({ t: 'sync', conv, after: 0, limit: 50 });
          assert.equal(page.msgs.length, 3);
          for (const m of page.msgs as Msg[]) ivy.raw(JSON.stringify({ t: 'ack', conv, seq: m.seq }));
        }
        // Her positions reach us (her gateway's region) on the cursor flush and the close; near
        // eu, whose list above holds both conversations, nothing is left to resume.
        await sleep(1500);
        await ivy.close();
        const ivyEu = await open('ivy', 'd1', 'eu');
        await waitFor('her positions to be read near eu', async () => Object.keys(await resumed(ivyEu)).length === 0, 30_000);
      });
    }
  });
}
