import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { MlsGroup, TrustOnFirstUse, b64, certifyDevice, newDeliveryServiceKey, newIdentityKey, newKeyPackage, newSignatureKey, type DeliveryServiceKeyPair, type PendingCommit } from '@switchboard/protocol/mls';
import { Sequencer } from '../../src/conversation/sequencer.ts';
import { memorySql } from './sqlite-adapter.ts';

/**
 * The sequencer as MLS's Delivery Service for an end-to-end encrypted conversation, fed real MLS
 * messages made by the SDK's MLS layer: one commit per epoch, application messages only at the
 * current epoch and never while a membership change waits for its commit.
 */
const conv = 'gE2eConversation';
const text = (s: string) => new TextEncoder().encode(s);
let ds: DeliveryServiceKeyPair;
const trust = () => new TrustOnFirstUse().trustDeliveryService(ds.signaturePublicKey);

/** Each user's identity key, made once (a user's devices share it). */
const identities = new Map<string, Awaited<ReturnType<typeof newIdentityKey>>>();

async function device(user: string, name: string) {
  const sig = await newSignatureKey();
  if (!identities.has(user)) identities.set(user, await newIdentityKey());
  return newKeyPackage(await certifyDevice(identities.get(user)!, user, name, sig.publicKey), sig);
}

function fresh(members: string[], e2e = true): Sequencer {
  const { sql, transaction } = memorySql();
  const s = new Sequencer(sql, transaction);
  assert.ok(s.create({ conv, members, title: null, creator: members[0]!, direct: false, e2e }, 1).ok);
  return s;
}

let n = 0;
const send = (s: Sequencer, from: string, bytes: Uint8Array | string, cmid = `c${++n}`) => s.send({ from, dev: 'd1', cmid, body: typeof bytes === 'string' ? bytes : b64.encode(bytes) }, 1000);
const code = (r: ReturnType<Sequencer['send']>) => (r.ok ? 'ok' : r.code);
/** A commit as the commit route hands it to the sequencer: with its GroupInfo and Welcome. */
const sendCommit = (s: Sequencer, from: string, c: PendingCommit, cmid = `c${++n}`) =>
  s.send({ from, dev: 'd1', cmid, body: b64.encode(c.commit), mls: { groupInfo: b64.encode(c.groupInfo), ...(c.welcome ? { welcome: b64.encode(c.welcome) } : {}) } }, 1000);

/** alice creates the MLS group; her first commit adds bob's device. */
async function started() {
  const s = fresh(['alice', 'bob']);
  const [akp, bkp] = [await device('alice', 'a1'), await device('bob', 'b1')];
  const alice = await MlsGroup.create(text(conv), akp, trust(), ds);
  const add = await alice.commit({ add: [bkp.bytes] });
  return { s, alice, bkp, add };
}

describe('the conversation as MLS Delivery Service', () => {
  before(async () => {
    ds = await newDeliveryServiceKey('test');
  });

  it('a new encrypted group waits for the creator’s commit, then takes messages at epoch 1', async () => {
    const { s, alice, bkp, add } = await started();
    assert.equal(s.e2e, true);
    assert.equal(s.rekeyPending, true, 'founding members are not in the MLS group until a commit adds them');
    assert.equal(code(send(s, 'alice', await alice.encrypt(text('too early')))), 'rekey_required');
    assert.equal(code(send(s, 'alice', add.commit)), 'invalid_frame', 'a commit goes with its GroupInfo (the commit route)');
    assert.equal(code(sendCommit(s, 'alice', { ...add, welcome: null })), 'invalid_frame', 'bob was added: the commit must carry his Welcome');
    const r = sendCommit(s, 'alice', add);
    assert.ok(r.ok);
    alice.applyCommit(add);
    assert.equal(s.mlsEpoch, 1n);
    assert.equal(s.rekeyPending, false);
    assert.deepEqual(s.pendingAdds(), []);
    assert.equal(s.groupInfo(), b64.encode(add.groupInfo));
    // Bob finds his Welcome at the commit's seq; alice has none.
    assert.deepEqual(s.welcomesFor('alice'), []);
    const [w] = s.welcomesFor('bob');
    assert.equal(w?.seq, r.ok ? r.seq : -1);
    const bob = await MlsGroup.join(b64.decode(w!.welcome), bkp, trust());
    const canary = 'canary-4f7c1e9b-plaintext';
    const hello = await bob.encrypt(text(canary));
    assert.ok(send(s, 'bob', hello).ok);
    // What the server stored is the MLS message: base64url, no text.
    const stored = s.readWindow(0, 10)!.msgs.map((m) => m.body);
    for (const b of stored) {
      assert.match(b, /^[A-Za-z0-9_-]+$/);
      assert.ok(!b.includes(canary) && !Buffer.from(b, 'base64url').toString('latin1').includes(canary), 'no plaintext stored');
    }
    const p = await alice.process(Buffer.from(stored.at(-1)!, 'base64url'));
    assert.equal(p.kind === 'application' && new TextDecoder().decode(p.plaintext), canary);
  });

  it('of two commits for the same epoch exactly one is sequenced; the other is stale, and a retry of the winner gets its seq back', async () => {
    const { s, alice, bkp, add } = await started();
    const first = sendCommit(s, 'alice', add, 'commit-1');
    assert.ok(first.ok);
    alice.applyCommit(add);
    const bob = await MlsGroup.join(add.welcome!, bkp, trust());
    const [ca, cb] = [await alice.commit(), await bob.commit()];
    const results = [sendCommit(s, 'alice', ca), sendCommit(s, 'bob', cb)];
    assert.deepEqual(results.map(code), ['ok', 'stale_epoch']);
    assert.equal(s.mlsEpoch, 2n);
    const again = sendCommit(s, 'alice', add, 'commit-1');
    assert.ok(again.ok && again.duplicate && again.seq === (first.ok ? first.seq : -1));
  });

  it('a removal through the API forces a rotation: old-epoch and pending-epoch messages are refused until a commit lands', async () => {
    const { s, alice, bkp, add } = await started();
    assert.ok(sendCommit(s, 'alice', add).ok);
    alice.applyCommit(add);
    const bob = await MlsGroup.join(add.welcome!, bkp, trust());
    const removed = s.changeMembers({ by: 'alice', dev: 'a1', op: 'remove', users: ['bob'] }, 2000, 100);
    assert.ok(removed.ok && removed.seq);
    assert.equal(s.rekeyPending, true);
    const stale = await alice.encrypt(text('from epoch 1'));
    assert.equal(code(send(s, 'alice', stale)), 'rekey_required');
    assert.equal(code(send(s, 'bob', await bob.encrypt(text('I am gone')))), 'not_member');
    // Alice's commit removes bob's leaves (carried by value, so the server can check it).
    const commit = await alice.commit({ remove: alice.leavesOf('bob') });
    assert.ok(sendCommit(s, 'alice', commit).ok);
    alice.applyCommit(commit);
    assert.equal(s.mlsEpoch, 2n);
    assert.equal(code(send(s, 'alice', stale)), 'stale_epoch');
    assert.ok(send(s, 'alice', await alice.encrypt(text('epoch 2'))).ok);
  });

  it('a commit must apply the membership changes waiting for it, and no other removal', async () => {
    const { s, alice, bkp, add } = await started();
    assert.ok(sendCommit(s, 'alice', add).ok);
    alice.applyCommit(add);
    const bob = await MlsGroup.join(add.welcome!, bkp, trust());
    // Carol is added through the API: a commit without her device is refused.
    assert.ok(s.changeMembers({ by: 'alice', dev: 'a1', op: 'add', users: ['carol'] }, 2000, 100).ok);
    const empty = await alice.commit();
    assert.equal(code(sendCommit(s, 'alice', { ...empty, welcome: add.welcome })), 'conflict');
    // Nor may a commit add a non-member's device, or remove another member's leaf on its own.
    const mallory = await device('mallory', 'm1');
    const carol = await device('carol', 'c1');
    const sneaky = await alice.commit({ add: [carol.bytes, mallory.bytes] });
    assert.equal(code(sendCommit(s, 'alice', sneaky)), 'conflict');
    const kick = await alice.commit({ add: [carol.bytes], remove: [bob.leaf] });
    const kicked = sendCommit(s, 'alice', kick);
    assert.ok(!kicked.ok && kicked.code === 'conflict' && /may not be removed/.test(kicked.message));
    const good = await alice.commit({ add: [carol.bytes] });
    assert.ok(sendCommit(s, 'alice', good).ok);
    alice.applyCommit(good);
    assert.deepEqual(s.pendingAdds(), []);
    // Bob is removed through the API: the commit must remove his leaf.
    await bob.process(good.commit);
    assert.ok(s.changeMembers({ by: 'alice', dev: 'a1', op: 'remove', users: ['bob'] }, 3000, 100).ok);
    assert.deepEqual(s.pendingRemoves(), ['bob']);
    const missing = await alice.commit();
    const refused = sendCommit(s, 'alice', missing);
    assert.ok(!refused.ok && refused.code === 'conflict' && /bob was removed/.test(refused.message));
    const removal = await alice.commit({ remove: alice.leavesOf('bob') });
    assert.ok(sendCommit(s, 'alice', removal).ok);
    alice.applyCommit(removal);
    assert.deepEqual(s.pendingRemoves(), []);
    assert.equal(s.rekeyPending, false);
    // Carol removed and added again before any commit: the commit removes her old leaf and adds her anew.
    assert.ok(s.changeMembers({ by: 'alice', dev: 'a1', op: 'remove', users: ['carol'] }, 4000, 100).ok);
    assert.ok(s.changeMembers({ by: 'alice', dev: 'a1', op: 'add', users: ['carol'] }, 4001, 100).ok);
    assert.deepEqual([s.pendingRemoves(), s.pendingAdds()], [['carol'], ['carol']]);
    const again = await device('carol', 'c1');
    const onlyAdd = sendCommit(s, 'alice', await alice.commit({ add: [again.bytes] }));
    assert.ok(!onlyAdd.ok && /carol was removed/.test(onlyAdd.message), 'her old leaf must go too');
    const back = await alice.commit({ add: [again.bytes], remove: alice.leavesOf('carol') });
    assert.ok(sendCommit(s, 'alice', back).ok);
    assert.deepEqual([s.pendingRemoves(), s.pendingAdds(), s.rekeyPending], [[], [], false]);
  });

  it('a device rejoins by external commit as itself only; a revoked one (even one that never joined) never again', async () => {
    const { s, alice, add } = await started();
    assert.ok(sendCommit(s, 'alice', add).ok);
    alice.applyCommit(add);
    const groupInfo = add.groupInfo;
    const external = (from: string, dev: string, c: { commit: Uint8Array; groupInfo: Uint8Array }) =>
      s.send({ from, dev, cmid: `x${++n}`, body: b64.encode(c.commit), mls: { groupInfo: b64.encode(c.groupInfo) } }, 1000);
    // bob's b2 (its link never committed) is revoked: an event without a rotation, and no way back in.
    const r = s.changeDevice({ op: 'revoke', user: 'bob', device: 'b2', by: 'b1' }, 2000);
    assert.ok(r.ok && r.seq !== null);
    assert.equal(s.rekeyPending, false, 'nothing to rotate: it never joined');
    const b2 = await MlsGroup.joinExternal(groupInfo, await device('bob', 'b2'), trust());
    const refused = external('bob', 'b2', b2);
    assert.ok(!refused.ok && refused.code === 'forbidden', JSON.stringify(refused));
    // Another device of bob may join by itself, as itself only.
    const b3 = await MlsGroup.joinExternal(groupInfo, await device('bob', 'b3'), trust());
    const posing = external('bob', 'b9', b3);
    assert.ok(!posing.ok && posing.code === 'conflict', 'the joining leaf must be the sending device');
    const joined = external('bob', 'b3', b3);
    assert.ok(joined.ok, JSON.stringify(joined));
    assert.equal(s.mlsEpoch, 2n);
  });

  it('refuses what is not an MLS conversation message, and leaves plain conversations as they were', async () => {
    const { s, add } = await started();
    assert.equal(code(send(s, 'alice', 'hello in the clear')), 'invalid_frame');
    assert.equal(code(send(s, 'alice', add.welcome!)), 'invalid_frame', 'a Welcome is not a message of the log');
    const other = await MlsGroup.create(text('another-group'), await device('alice', 'a1'), trust(), ds);
    assert.equal(code(sendCommit(s, 'alice', await other.commit())), 'invalid_frame', 'another group');
    const plain = fresh(['alice', 'bob'], false);
    assert.equal(plain.e2e, false);
    assert.ok(send(plain, 'alice', 'hello in the clear').ok);
  });
});
