import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { Msg } from '@switchboard/protocol';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';
import { FileMlsStore } from '@switchboard/protocol/client/node';
import { E2eDevice, e2eHttp } from '@switchboard/protocol/mls';
import { startSystem, type System } from './system.ts';

/**
 * The SDK encrypting transparently (E2eDevice beside SwitchboardClient, its keys and group states
 * in files): a group chat whose devices read each other's plaintext while the server sequences
 * only MLS messages; a removal and an addition through the API rotate the keys with a commit the
 * next sender makes; a device restarted from its files goes on decrypting.
 */
describe('the SDK, end-to-end encrypted (embedded engines)', { timeout: 300_000 }, () => {
  let sys: System;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-mls-sdk-'));
  const peers: Peer[] = [];
  const errors: string[] = [];

  interface Peer {
    user: string;
    e2e: E2eDevice;
    client: SwitchboardClient;
    got: Msg[];
    say(conv: string, text: string): Promise<{ seq: number }>;
  }

  const peer = async (user: string, device = 'd1'): Promise<Peer> => {
    const token = () => devToken(sys.edgeUrl, user, device);
    const e2e = await E2eDevice.open({ user, device, store: new FileMlsStore(path.join(dir, `${user}-${device}`)), http: e2eHttp(sys.edgeUrl, token) });
    await e2e.publishKeyPackages();
    const got: Msg[] = [];
    const client = new SwitchboardClient({
      url: sys.edgeUrl,
      token,
      socket: (u) => new WebSocket(u) as unknown as SocketLike,
      transform: e2e.transform,
      onMessage: (m) => void got.push(m),
      onTransformError: (m, err) => void errors.push(`${user}: seq ${m.seq}: ${err instanceof Error ? err.message : String(err)}`),
    });
    await client.connect();
    const p: Peer = { user, e2e, client, got, say: (conv, text) => e2e.send(conv, text, (c, body, cmid) => client.send(c, body, cmid)) };
    peers.push(p);
    return p;
  };
  const texts = (p: Peer, conv: string) => p.got.filter((m) => m.conv === conv && !m.sys).map((m) => `${m.from}: ${m.body}`);
  const waitFor = async (what: string, pred: () => boolean, ms = 20_000) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; errors: ${JSON.stringify(errors)}; got: ${JSON.stringify(peers.map((p) => [p.user, p.got.map((m) => [m.seq, m.from, m.sys ? 'sys' : m.body.slice(0, 30)])]))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  before(async () => {
    sys = await startSystem('embedded');
  });
  after(async () => {
    for (const p of peers) p.client.close();
    await sys?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('chat, remove, add and restart: every device reads what it may, in plaintext, and nothing fails to decrypt', async () => {
    const [alice, bob, carol] = [await peer('salice'), await peer('sbob'), await peer('scarol')];
    const conv = await alice.e2e.createConversation(['sbob', 'scarol'], 'encrypted team');
    for (const p of [alice, bob, carol]) p.client.follow(conv);

    await alice.say(conv, 'hello team');
    await waitFor('hello at bob and carol', () => [bob, carol].every((p) => texts(p, conv).includes('salice: hello team')));
    await bob.say(conv, 'hi alice');
    await waitFor('bob at alice and carol', () => [alice, carol].every((p) => texts(p, conv).includes('sbob: hi alice')));
    assert.deepEqual(texts(alice, conv), ['salice: hello team', 'sbob: hi alice'], 'the sender sees its own plaintext in order');

    // Carol is removed through the API: bob's next message waits for the commit he then makes.
    const res = await fetch(`${sys.edgeUrl}/v1/conversations/${conv}/members/scarol`, { method: 'DELETE', headers: { authorization: `Bearer ${await devToken(sys.edgeUrl, 'salice', 'd1')}` } });
    assert.equal(res.status, 200);
    await bob.say(conv, 'carol is gone');
    await waitFor('the message after the removal at alice', () => texts(alice, conv).includes('sbob: carol is gone'));
    assert.equal(await alice.e2e.epoch(conv), await bob.e2e.epoch(conv));

    // Dave is added: alice's next message commits his device first, and he reads it.
    const dave = await peer('sdave');
    const added = await fetch(`${sys.edgeUrl}/v1/conversations/${conv}/members`, { method: 'POST', headers: { authorization: `Bearer ${await devToken(sys.edgeUrl, 'salice', 'd1')}` }, body: JSON.stringify({ users: ['sdave'] }) });
    assert.equal(added.status, 200);
    // A member added later reads from the seq of their addition (what `resume` would tell a device that connects after it).
    dave.client.follow(conv, ((await added.json()) as { seq: number }).seq - 1);
    await alice.say(conv, 'welcome dave');
    await waitFor('dave reads the first message after his join', () => texts(dave, conv).includes('salice: welcome dave'));
    await waitFor('bob too', () => texts(bob, conv).includes('salice: welcome dave'));
    assert.ok(!texts(dave, conv).some((t) => t.includes('hello team')), 'nothing from before his join');
    assert.ok(!texts(carol, conv).some((t) => t.includes('carol is gone') || t.includes('welcome dave')), 'carol reads nothing after her removal');

    // Bob restarts from his files and goes on.
    bob.client.close();
    peers.splice(peers.indexOf(bob), 1);
    const bob2 = await peer('sbob');
    bob2.client.follow(conv, Math.max(...bob.got.filter((m) => m.conv === conv).map((m) => m.seq)));
    await dave.say(conv, 'thanks');
    await waitFor('bob, restarted, reads dave', () => texts(bob2, conv).includes('sdave: thanks'));
    await waitFor('alice reads dave', () => texts(alice, conv).includes('sdave: thanks'));
    assert.deepEqual(errors, [], 'no message failed to decrypt');
  });
});
