import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { Msg } from '@switchboard/protocol';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';
import { FileMlsStore } from '@switchboard/protocol/client/node';
import { E2eDevice, MlsGroup, TrustOnFirstUse, e2eHttp } from '@switchboard/protocol/mls';
import { fromBase64Url } from '@switchboard/protocol';
import { startSystem, type System } from './system.ts';

/**
 * Multi-device end-to-end encryption: two users with two devices each (the second of each linked
 * from the first by a code), every message read on the other three; a third device linked and one
 * revoked force a rotation the named device commits; the revoked device cannot read the next
 * message even with the state it held (decrypted straight from the ciphertext). Also: a link code
 * opens once and for its own user only; a revoked device cannot upload or link again.
 */
export function mlsDevicesSuite(engines: 'embedded' | 'real'): void {
  describe(`linked and revoked devices, end-to-end encrypted (${engines} engines)`, { timeout: 300_000 }, () => {
    let sys: System;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-mls-devices-'));
    const peers: Peer[] = [];
    const errors: string[] = [];
    const tag = `${engines[0]}${Date.now().toString(36)}`;
    const uA = `da${tag}`;
    const uB = `db${tag}`;

    interface Peer {
      name: string;
      user: string;
      device: string;
      e2e: E2eDevice;
      client: SwitchboardClient;
      got: Msg[];
      say(conv: string, text: string): Promise<{ seq: number }>;
    }

    const token = (user: string, device: string) => () => devToken(sys.edgeUrl, user, device);
    const storeDir = (user: string, device: string) => path.join(dir, `${user}-${device}`);

    const connect = async (user: string, device: string, e2e: E2eDevice): Promise<Peer> => {
      const got: Msg[] = [];
      const client = new SwitchboardClient({
        url: sys.edgeUrl,
        token: token(user, device),
        socket: (u) => new WebSocket(u) as unknown as SocketLike,
        transform: e2e.transform,
        onMessage: (m) => void got.push(m),
        onTransformError: (m, err) => void errors.push(`${user}/${device}: seq ${m.seq}: ${err instanceof Error ? err.message : String(err)}`),
      });
      await client.connect();
      const p: Peer = { name: `${user}/${device}`, user, device, e2e, client, got, say: (conv, text) => e2e.send(conv, text, (c, body, cmid) => client.send(c, body, cmid)) };
      peers.push(p);
      return p;
    };
    /** A first device: its own identity key. Short fallback: the test does not wait long for a committer that is not there. */
    const first = async (user: string, device: string) => {
      const e2e = await E2eDevice.open({ user, device, store: new FileMlsStore(storeDir(user, device)), http: e2eHttp(sys.edgeUrl, token(user, device)), fallbackMs: 1500 });
      await e2e.publishKeyPackages();
      return connect(user, device, e2e);
    };
    const linked = async (from: Peer, device: string) => {
      const code = await from.e2e.createLink();
      const e2e = await E2eDevice.openLinked({ user: from.user, device, store: new FileMlsStore(storeDir(from.user, device)), http: e2eHttp(sys.edgeUrl, token(from.user, device)), code, fallbackMs: 1500 });
      return { peer: await connect(from.user, device, e2e), code };
    };
    const texts = (p: Peer, conv: string) => p.got.filter((m) => m.conv === conv && !m.sys).map((m) => m.body);
    const waitFor = async (what: string, pred: () => boolean, ms = 30_000) => {
      const end = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; errors: ${JSON.stringify(errors)}; got: ${JSON.stringify(peers.map((p) => [p.name, p.got.map((m) => [m.seq, m.from, m.sys ? m.sys.op : m.body.slice(0, 24)])]))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const api = async (user: string, device: string, method: string, url: string, body?: unknown) => {
      const res = await fetch(`${sys.edgeUrl}${url}`, { method, headers: { authorization: `Bearer ${await devToken(sys.edgeUrl, user, device)}` }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      return { status: res.status, body: (await res.json().catch(() => null)) as any };
    };

    before(async () => {
      sys = await startSystem(engines);
    });
    after(async () => {
      for (const p of peers) {
        p.client.close();
        p.e2e.close();
      }
      await sys?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('two users × two devices, a third linked and one revoked: every device reads what it may, the revoked one nothing more', async () => {
      const a1 = await first(uA, 'a1');
      const b1 = await first(uB, 'b1');
      const a2 = (await linked(a1, 'a2')).peer;
      const { peer: b2, code } = await linked(b1, 'b2');
      assert.deepEqual(a2.e2e.identityKey, a1.e2e.identityKey, 'a linked device holds its user’s identity key');

      // The code opens once, and never for another user.
      assert.equal((await api(uB, 'b9', 'POST', `/v1/devices/links/${code.slice(0, code.lastIndexOf('.'))}/take`)).status, 404);
      const other = await a1.e2e.createLink();
      assert.equal((await api(uB, 'b9', 'POST', `/v1/devices/links/${other.slice(0, other.lastIndexOf('.'))}/take`)).status, 404, 'another user cannot take a link');

      const conv = await a1.e2e.createConversation([uB], 'two by two');
      const all = [a1, a2, b1, b2];
      for (const p of all) p.client.follow(conv);
      const check = async (from: Peer, text: string, readers: Peer[]) => {
        await from.say(conv, text);
        await waitFor(`"${text}" on ${readers.map((p) => p.name).join(', ')}`, () => readers.every((p) => texts(p, conv).includes(text)));
      };
      for (const p of all) await check(p, `hello from ${p.name}`, all.filter((q) => q !== p));

      // A third device of A, linked from a1: a1 is asked to commit it; it reads the next message.
      const a3 = (await linked(a1, 'a3')).peer;
      a3.client.follow(conv, Math.max(...a1.got.filter((m) => m.conv === conv).map((m) => m.seq)));
      await waitFor('the link of a3 is committed', () => a1.got.some((m) => m.conv === conv && m.sys?.op === 'link' && m.sys.device === 'a3'));
      await check(b1, 'after a3 joined', [a1, a2, a3, b2]);
      assert.ok(!texts(a3, conv).some((t) => t.startsWith('hello from')), 'a linked device reads from its link on');

      // b2 is revoked from b1. Its state from before is kept, to try the next message with it.
      const snapshot = fs.readdirSync(storeDir(uB, 'b2')).length ? await new FileMlsStore(storeDir(uB, 'b2')).get(`group/${conv}`) : null;
      assert.ok(snapshot, 'b2 holds the group state');
      const revoked = await api(uB, 'b1', 'DELETE', '/v1/devices/b2');
      assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
      assert.equal(revoked.body.conversations, 1);
      await check(a2, 'after b2 was revoked', [a1, a3, b1]);
      await waitFor('b2 was told', () => b2.e2e.revoked);
      assert.ok(!texts(b2, conv).includes('after b2 was revoked'), 'the revoked device does not show the next message');

      // Straight from the ciphertext (as a3 received it before decrypting: from the log), with b2's old state: it fails.
      const raw = await rawLog(conv);
      const revokeSeq = raw.find((m) => m.sys?.op === 'revoke')!.seq;
      const next = raw.filter((m) => m.seq > revokeSeq && !m.sys);
      const g = MlsGroup.restore(snapshot!.subarray(8), new TrustOnFirstUse());
      let readable = 0;
      for (const m of next) {
        try {
          const p = await g.process(fromBase64Url(m.body)!);
          if (p.kind === 'application') readable++;
        } catch {
          // Not for this device any more.
        }
      }
      assert.ok(next.length >= 2, 'the commit and the message after the revocation');
      assert.equal(readable, 0, 'nothing after the revocation decrypts with the revoked device’s state');

      // The revoked device takes no more part.
      assert.equal((await api(uB, 'b2', 'POST', '/v1/devices/links', { envelope: 'AAAA' })).status, 403);
      assert.equal((await api(uB, 'b2', 'POST', '/v1/devices/b2/announce', {})).status, 403);
      const devices = await api(uA, 'a1', 'GET', `/v1/users/${uB}/devices`);
      assert.deepEqual(devices.body.devices.map((d: { device: string }) => d.device), ['b1']);
      assert.deepEqual(errors, [], 'no message failed to decrypt');
    });

    it('a device that lost its state (all but its identity key) rejoins by external commit and reads from its rejoin on', async () => {
      const c1 = await first(`dc${tag}`, 'c1');
      const e1 = await first(`de${tag}`, 'e1');
      const conv = await c1.e2e.createConversation([e1.user], 'lost and found');
      for (const p of [c1, e1]) p.client.follow(conv);
      await c1.say(conv, 'before the loss');
      await waitFor('e1 reads it', () => texts(e1, conv).includes('before the loss'));

      // e1 stops once what it was doing is written (close waits for it), then loses its state.
      // e1 loses everything but its identity key and the keys it trusts (its signature key too).
      e1.client.close();
      await e1.e2e.close();
      peers.splice(peers.indexOf(e1), 1);
      const store = new FileMlsStore(storeDir(e1.user, 'e1'));
      for (const k of await store.keys('')) if (k !== 'identity' && k !== 'trust') await store.delete(k);
      const fresh = await E2eDevice.open({ user: e1.user, device: 'e1', store, http: e2eHttp(sys.edgeUrl, token(e1.user, 'e1')), fallbackMs: 1500 });
      await fresh.publishKeyPackages();
      const e1b = await connect(e1.user, 'e1', fresh);
      e1b.client.follow(conv, Math.max(...e1.got.filter((m) => m.conv === conv).map((m) => m.seq)));

      await e1b.say(conv, 'i am back');
      await waitFor('c1 reads the rejoined device', () => texts(c1, conv).includes('i am back'));
      await c1.say(conv, 'welcome back');
      await waitFor('the rejoined device reads c1', () => texts(e1b, conv).includes('welcome back'));
      const raw = await rawLog(conv, c1.user);
      const external = raw.filter((m) => m.from === e1.user && m.cmid.startsWith('rejoin-'));
      assert.equal(external.length, 1, 'one external commit');
      assert.equal(await fresh.epoch(conv), await c1.e2e.epoch(conv));
      assert.deepEqual(errors, [], 'no message failed to decrypt');
    });

    /** The conversation's log as a member's raw device (no decryption) reads it. */
    async function rawLog(conv: string, user = uA): Promise<Msg[]> {
      const got: Msg[] = [];
      const client = new SwitchboardClient({ url: sys.edgeUrl, token: token(user, 'raw'), socket: (u) => new WebSocket(u) as unknown as SocketLike, onMessage: (m) => void got.push(m) });
      await client.connect();
      client.follow(conv);
      const last = Math.max(...peers.flatMap((p) => p.got.filter((m) => m.conv === conv).map((m) => m.seq)));
      // Every seq up to the last (the history pages and live pushes may arrive in any order).
      await waitFor('the raw log', () => new Set(got.filter((m) => m.conv === conv && m.seq <= last).map((m) => m.seq)).size >= last);
      client.close();
      return got.filter((m) => m.conv === conv);
    }
  });
}
