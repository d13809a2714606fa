import assert from 'node:assert/strict';
import { it } from 'node:test';
import { fromBase64Url, readMlsHeader } from '../../src/mls-wire.ts';
import { MlsGroup, TrustOnFirstUse, b64, certifyDevice, newDeliveryServiceKey, newIdentityKey, newKeyPackage, newSignatureKey, proposeRemoval } from '../../src/client/mls/index.ts';

/** The server's key-free reading of MLS messages agrees with what ts-mls produces. */
it('reads wire format, group, epoch, content type and sender of real MLS messages, and refuses the rest', async () => {
  const ds = await newDeliveryServiceKey('r1');
  const trust = () => new TrustOnFirstUse().trustDeliveryService(ds.signaturePublicKey);
  const dev = async (user: string, d: string) => {
    const sig = await newSignatureKey();
    return newKeyPackage(await certifyDevice(await newIdentityKey(), user, d, sig.publicKey), sig);
  };
  const [akp, bkp] = [await dev('alice', 'a1'), await dev('bob', 'b1')];
  assert.deepEqual(readMlsHeader(akp.bytes), { wireFormat: 'key_package' });
  const groupId = new TextEncoder().encode('conv-x');
  const a = await MlsGroup.create(groupId, akp, trust(), ds);
  const add = await a.commit({ add: [bkp.bytes] });
  assert.deepEqual(readMlsHeader(add.commit), { wireFormat: 'public', groupId: Buffer.from(groupId).toString('hex'), epoch: 0n, contentType: 'commit', sender: { type: 'member', leaf: 0 } });
  assert.deepEqual(readMlsHeader(add.welcome!), { wireFormat: 'welcome' });
  a.applyCommit(add);
  const b = await MlsGroup.join(add.welcome!, bkp, trust());
  const app = await b.encrypt(new TextEncoder().encode('hello'));
  assert.deepEqual(readMlsHeader(app), { wireFormat: 'private', groupId: Buffer.from(groupId).toString('hex'), epoch: 1n, contentType: 'application' });
  const gi = await a.groupInfo();
  assert.deepEqual(readMlsHeader(gi), { wireFormat: 'group_info' });
  const proposal = await proposeRemoval(gi, 1, ds);
  assert.deepEqual(readMlsHeader(proposal), { wireFormat: 'public', groupId: Buffer.from(groupId).toString('hex'), epoch: 1n, contentType: 'proposal', sender: { type: 'external', index: 0 } });
  // Not MLS, truncated, another version.
  assert.equal(readMlsHeader(new TextEncoder().encode('hello world')), null);
  assert.equal(readMlsHeader(app.subarray(0, 10)), null);
  const v2 = app.slice();
  v2[1] = 2;
  assert.equal(readMlsHeader(v2), null);
  assert.equal(readMlsHeader(new Uint8Array()), null);
  // base64url both ways.
  assert.deepEqual(fromBase64Url(b64.encode(app)), app);
  assert.equal(fromBase64Url('not base64!'), null);
});
