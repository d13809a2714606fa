import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
  MlsError,
  MlsGroup,
  TrustOnFirstUse,
  certifyDevice,
  checkKeyPackage,
  newDeliveryServiceKey,
  newIdentityKey,
  newKeyPackage,
  newSignatureKey,
  proposeRemoval,
  type DeliveryServiceKeyPair,
  type IdentityKeyPair,
} from '../../src/client/mls/index.ts';

/**
 * The SDK's MLS layer (protocol/src/client/mls) over the pinned ts-mls: devices certified by their
 * user's identity key, groups whose Delivery Service (the server) may propose removals, messages
 * that decrypt on every other member device and on nothing removed or added later, state that
 * survives serialization.
 */
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

interface Device {
  user: string;
  device: string;
  trust: TrustOnFirstUse;
  keyPackage(): ReturnType<typeof newKeyPackage>;
}

async function device(user: string, name: string, identity: IdentityKeyPair): Promise<Device> {
  const sig = await newSignatureKey();
  const credential = await certifyDevice(identity, user, name, sig.publicKey);
  return { user, device: name, trust: new TrustOnFirstUse().trustDeliveryService(ds.signaturePublicKey), keyPackage: () => newKeyPackage(credential, sig) };
}

/** Everyone in `receivers` decrypts `bytes` as `plaintext` from `from`. */
async function allRead(receivers: MlsGroup[], bytes: Uint8Array, plaintext: string, from: string) {
  for (const r of receivers) {
    const p = await r.process(bytes);
    assert.equal(p.kind, 'application');
    if (p.kind !== 'application') return;
    assert.equal(str(p.plaintext), plaintext);
    assert.equal(`${p.sender.user}/${p.sender.device}`, from);
  }
}

let ds: DeliveryServiceKeyPair;

before(async () => {
  ds = await newDeliveryServiceKey('test-region');
});

describe('MLS groups of certified devices', () => {
  let aliceId: IdentityKeyPair;
  let bobId: IdentityKeyPair;

  /** alice/a1 creates; a1 adds a2 and b1; returns the three states in epoch 1. */
  async function threeDevices() {
    aliceId ??= await newIdentityKey();
    bobId ??= await newIdentityKey();
    const [a1, a2, b1] = await Promise.all([device('alice', 'a1', aliceId), device('alice', 'a2', aliceId), device('bob', 'b1', bobId)]);
    const a1g = await MlsGroup.create(text('conv-1'), await a1.keyPackage(), a1.trust, ds);
    const [a2kp, b1kp] = [await a2.keyPackage(), await b1.keyPackage()];
    const add = await a1g.commit({ add: [a2kp.bytes, b1kp.bytes] });
    assert.ok(add.welcome, 'adds make a Welcome');
    a1g.applyCommit(add);
    const a2g = await MlsGroup.join(add.welcome!, a2kp, a2.trust);
    const b1g = await MlsGroup.join(add.welcome!, b1kp, b1.trust);
    return { a1, a2, b1, a1g, a2g, b1g };
  }

  it('each message decrypts on the other member devices, with its sender', async () => {
    const { a1g, a2g, b1g } = await threeDevices();
    assert.equal(a1g.epoch, 1n);
    assert.deepEqual(
      b1g.members().map((m) => `${m.user}/${m.device}`),
      ['alice/a1', 'alice/a2', 'bob/b1'],
    );
    await allRead([a2g, b1g], await a1g.encrypt(text('hi from a1')), 'hi from a1', 'alice/a1');
    await allRead([a1g, a2g], await b1g.encrypt(text('hi from b1')), 'hi from b1', 'bob/b1');
    await allRead([a1g, b1g], await a2g.encrypt(text('hi from a2')), 'hi from a2', 'alice/a2');
  });

  it('a device removed by the server’s proposal and a member’s commit reads nothing after it, before or after processing the commit', async () => {
    const { a1g, a2g, b1g } = await threeDevices();
    const before = b1g.serialize();
    const proposal = await proposeRemoval(await a1g.groupInfo(), b1g.leaf, ds);
    for (const g of [a1g, a2g, b1g]) assert.equal((await g.process(proposal)).kind, 'proposal');
    const commit = await a1g.commit();
    a1g.applyCommit(commit);
    assert.equal(a1g.epoch, 2n);
    assert.deepEqual(await a2g.process(commit.commit), { kind: 'commit', epoch: 2n, removed: false });
    assert.equal((await b1g.process(commit.commit)).kind, 'commit');
    assert.equal(b1g.active, false);
    assert.deepEqual(a1g.members().map((m) => m.user), ['alice', 'alice']);
    const secret = await a1g.encrypt(text('after the removal'));
    await allRead([a2g], secret, 'after the removal', 'alice/a1');
    // Bob's state after the removal, and his state from before it: neither decrypts.
    await assert.rejects(b1g.process(secret), (err: unknown) => err instanceof MlsError);
    const old = MlsGroup.restore(before, new TrustOnFirstUse().trustDeliveryService(ds.signaturePublicKey));
    await assert.rejects(old.process(secret), (err: unknown) => err instanceof MlsError && err.code === 'undecryptable');
    await assert.rejects(b1g.encrypt(text('still here?')), (err: unknown) => err instanceof MlsError && err.code === 'not_member');
  });

  it('a device added later cannot read what was sent before it joined', async () => {
    const { a1g, a2g, b1g } = await threeDevices();
    const earlier = await a1g.encrypt(text('before dave'));
    await allRead([a2g, b1g], earlier, 'before dave', 'alice/a1');
    const dave = await device('dave', 'd1', await newIdentityKey());
    const dkp = await dave.keyPackage();
    const add = await b1g.commit({ add: [dkp.bytes] });
    b1g.applyCommit(add);
    for (const g of [a1g, a2g]) await g.process(add.commit);
    const d1g = await MlsGroup.join(add.welcome!, dkp, dave.trust);
    await assert.rejects(d1g.process(earlier), (err: unknown) => err instanceof MlsError && err.code === 'undecryptable');
    await allRead([d1g, a2g, b1g], await a1g.encrypt(text('after dave')), 'after dave', 'alice/a1');
  });

  it('a device claiming a user under another identity key is refused by members who know that user', async () => {
    const { a1g, b1g } = await threeDevices();
    // Mallory certifies a device "alice/a3" with her own identity key: well formed, wrong key.
    const fake = await device('alice', 'a3', await newIdentityKey());
    const kp = await fake.keyPackage();
    assert.equal((await checkKeyPackage(kp.bytes, 'alice', 'a3')).ok, true, 'the server cannot tell: only devices can');
    // Bob knows alice's key from the group: a commit adding the fake device is rejected by him.
    const add = await a1g.commit({ add: [kp.bytes] }).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    if (add instanceof Error) return; // a1 itself refused to commit it: also right
    await assert.rejects(b1g.process(add.commit), (err: unknown) => err instanceof MlsError && err.code === 'rejected');
  });

  it('a serialized state restores and goes on decrypting and sending', async () => {
    const { a1g, a2g, b1g } = await threeDevices();
    await allRead([b1g], await a1g.encrypt(text('one')), 'one', 'alice/a1');
    const restored = MlsGroup.restore(b1g.serialize(), new TrustOnFirstUse().trustDeliveryService(ds.signaturePublicKey));
    assert.equal(restored.epoch, b1g.epoch);
    await allRead([restored], await a1g.encrypt(text('two')), 'two', 'alice/a1');
    await a2g.process(await a1g.encrypt(text('skip'))); // a2 is ahead on a1's chain: fine
    await allRead([a1g], await restored.encrypt(text('from restored')), 'from restored', 'bob/b1');
  });

  it('a commit made against an old epoch is refused, and a stale handshake message is named so', async () => {
    const { a1g, a2g } = await threeDevices();
    const first = await a1g.commit();
    const second = await a2g.commit(); // concurrent: both at epoch 1
    a1g.applyCommit(first);
    await a2g.process(first.commit);
    assert.throws(() => a2g.applyCommit(second), (err: unknown) => err instanceof MlsError && err.code === 'stale_epoch');
    await assert.rejects(a1g.process(second.commit), (err: unknown) => err instanceof MlsError && err.code === 'stale_epoch');
  });
});

describe('the server’s check of an uploaded KeyPackage', () => {
  it('accepts a device’s own, refuses another uploader, a tampered one and bytes that are not one', async () => {
    const id = await newIdentityKey();
    const d = await device('erin', 'e1', id);
    const kp = await d.keyPackage();
    const ok = await checkKeyPackage(kp.bytes, 'erin', 'e1');
    assert.equal(ok.ok, true);
    if (ok.ok) assert.ok(ok.notAfter > Date.now() + 80 * 86_400_000);
    assert.deepEqual(await checkKeyPackage(kp.bytes, 'erin', 'e2'), { ok: false, reason: 'credential names erin/e1, not the uploader' });
    assert.deepEqual(await checkKeyPackage(kp.bytes, 'mallory', 'e1'), { ok: false, reason: 'credential names erin/e1, not the uploader' });
    const tampered = kp.bytes.slice();
    tampered[tampered.length - 10]! ^= 1;
    assert.equal((await checkKeyPackage(tampered, 'erin', 'e1')).ok, false);
    assert.deepEqual(await checkKeyPackage(text('hello'), 'erin', 'e1'), { ok: false, reason: 'not an MLS KeyPackage' });
    const expired = await newKeyPackage(await certifyDevice(id, 'erin', 'e1', (await newSignatureKey()).publicKey), await newSignatureKey(), Date.now() - 200 * 86_400_000);
    assert.equal((await checkKeyPackage(expired.bytes, 'erin', 'e1')).ok, false);
  });
});
