import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MlsGroup, TrustOnFirstUse, b64, certifyDevice, newIdentityKey, newKeyPackage, newSignatureKey } from '@switchboard/protocol/mls';
import { startSystem, type System } from './system.ts';
import { TestSocket, token } from './socket.ts';

/**
 * An end-to-end encrypted conversation through the edge in workerd and the embedded region: the
 * server sequences MLS messages it cannot read, takes commits with their GroupInfo and Welcome
 * over HTTP (one per epoch), holds application messages back while a membership change waits for
 * its commit, and hands the Welcome to the added member.
 */
const text = (s: string) => new TextEncoder().encode(s);

describe('end-to-end encrypted conversation (embedded engines)', { timeout: 300_000 }, () => {
  let sys: System;
  const sockets: TestSocket[] = [];
  const trust = () => new TrustOnFirstUse();
  const http = async (user: string, device: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${sys.edgeUrl}${path}`, { method, headers: { authorization: `Bearer ${await token(sys.edgeUrl, user, device)}` }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const open = async (user: string, device: string) => {
    const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device));
    sockets.push(s);
    return s;
  };
  const keyPackage = async (user: string, device: string) => {
    const sig = await newSignatureKey();
    return newKeyPackage(await certifyDevice(await newIdentityKey(), user, device, sig.publicKey), sig);
  };
  const commitBody = (cmid: string, c: Awaited<ReturnType<MlsGroup['commit']>>) => ({ cmid, commit: b64.encode(c.commit), groupInfo: b64.encode(c.groupInfo), ...(c.welcome ? { welcome: b64.encode(c.welcome) } : {}) });

  before(async () => {
    sys = await startSystem('embedded', { edgeVars: { LIVE_PUSH_MAX_MEMBERS: '5000' } });
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await sys?.stop();
  });

  it('create, commit, join from the Welcome, exchange messages the server cannot read; a removal waits for its commit', async () => {
    const created = await http('ealice', 'a1', 'POST', '/v1/conversations', { members: ['ebob'], title: 'secret', e2e: true });
    assert.equal(created.status, 201);
    assert.equal(created.body.e2e, true);
    const conv = created.body.id as string;
    const details = await http('ebob', 'b1', 'GET', `/v1/conversations/${conv}`);
    assert.deepEqual([details.body.e2e, details.body.mls], [true, { epoch: '0', rekeyPending: true }]);

    const [akp, bkp] = [await keyPackage('ealice', 'a1'), await keyPackage('ebob', 'b1')];
    const alice = await MlsGroup.create(text(conv), akp, trust());
    const aliceSocket = await open('ealice', 'a1');
    const bobSocket = await open('ebob', 'b1');

    // Nothing can be sent before the creator's commit adds bob.
    const early = await aliceSocket.request({ t: 'send', conv, cmid: 'early', body: b64.encode(await alice.encrypt(text('early'))) });
    assert.deepEqual([early.t, early.code], ['error', 'rekey_required']);
    const plain = await aliceSocket.request({ t: 'send', conv, cmid: 'plain', body: 'hello in the clear' });
    assert.deepEqual([plain.t, plain.code], ['error', 'invalid_frame']);

    const add = await alice.commit({ add: [bkp.bytes] });
    const committed = await http('ealice', 'a1', 'POST', `/v1/conversations/${conv}/mls/commit`, commitBody('commit-1', add));
    assert.equal(committed.status, 200, JSON.stringify(committed.body));
    assert.equal(committed.body.epoch, '1');
    alice.applyCommit(add);

    // Bob finds his Welcome and joins.
    const state = await http('ebob', 'b1', 'GET', `/v1/conversations/${conv}/mls`);
    assert.equal(state.status, 200);
    assert.equal(state.body.welcomes.length, 1);
    const bob = await MlsGroup.join(b64.decode(state.body.welcomes[0].welcome), bkp, trust());
    assert.equal(bob.epoch, 1n);

    const canary = 'canary-31b7e0-secret-words';
    const sent = await aliceSocket.request({ t: 'send', conv, cmid: 'm1', body: b64.encode(await alice.encrypt(text(canary))) });
    assert.equal(sent.t, 'sent', JSON.stringify(sent));
    const got = await bobSocket.next((f) => f.t === 'msg' && f.conv === conv && f.seq === sent.seq, 15_000);
    assert.ok(!String(got.body).includes(canary));
    // Bob's log in seq order: the commit (his own join), then the message.
    const p = await bob.process(b64.decode(got.body));
    assert.equal(p.kind, 'application');
    assert.equal(p.kind === 'application' && new TextDecoder().decode(p.plaintext), canary);
    assert.equal(p.kind === 'application' && `${p.sender.user}/${p.sender.device}`, 'ealice/a1');

    // Two commits for epoch 1: one wins, the other is stale.
    const [c1, c2] = [await alice.commit(), await bob.commit()];
    const results = await Promise.all([
      http('ealice', 'a1', 'POST', `/v1/conversations/${conv}/mls/commit`, commitBody('commit-a', c1)),
      http('ebob', 'b1', 'POST', `/v1/conversations/${conv}/mls/commit`, commitBody('commit-b', c2)),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 409]);
    assert.equal(results.find((r) => r.status === 409)!.body.error.code, 'stale_epoch');
    const winner = results[0]!.status === 200 ? { by: alice, other: bob, c: c1, oc: c2 } : { by: bob, other: alice, c: c2, oc: c1 };
    winner.by.applyCommit(winner.c);
    await winner.other.process(winner.c.commit);

    // Bob is removed: messages wait for the commit that removes his leaf.
    const removed = await http('ealice', 'a1', 'DELETE', `/v1/conversations/${conv}/members/ebob`);
    assert.equal(removed.status, 200);
    const waiting = await aliceSocket.request({ t: 'send', conv, cmid: 'm2', body: b64.encode(await alice.encrypt(text('not yet'))) });
    assert.equal(waiting.code, 'rekey_required');
    const incomplete = await http('ealice', 'a1', 'POST', `/v1/conversations/${conv}/mls/commit`, commitBody('commit-x', await alice.commit()));
    assert.equal(incomplete.body.error?.code, 'conflict');
    const removal = await alice.commit({ remove: alice.leavesOf('ebob') });
    assert.equal((await http('ealice', 'a1', 'POST', `/v1/conversations/${conv}/mls/commit`, commitBody('commit-2', removal))).status, 200);
    alice.applyCommit(removal);
    const after = await aliceSocket.request({ t: 'send', conv, cmid: 'm3', body: b64.encode(await alice.encrypt(text('bob is gone'))) });
    assert.equal(after.t, 'sent');
    const final = await http('ealice', 'a1', 'GET', `/v1/conversations/${conv}`);
    assert.deepEqual(final.body.mls, { epoch: '3', rekeyPending: false });
  });
});
