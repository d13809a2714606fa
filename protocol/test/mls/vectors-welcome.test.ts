/**
 * RFC 9420 test vectors, welcome family (see vectors/README.md), against the pinned ts-mls.
 * Joining a group (RFC 9420 §12.4.3.1): the new member finds its entry in the Welcome by
 * KeyPackageRef, HPKE-decrypts its GroupSecrets with its init key, derives the welcome secret
 * from the joiner secret, decrypts the GroupInfo, and checks the GroupInfo's confirmation tag and
 * its signature by the committer. The vector is a Welcome, the KeyPackage it was made for, that
 * KeyPackage's init private key and the signer's public key (no PSKs).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyGroupInfoConfirmationTag, verifyGroupInfoSignature } from 'ts-mls/groupInfo.js';
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js';
import { decodeMlsMessage, type MLSMessage } from 'ts-mls/message.js';
import { decryptGroupInfo, decryptGroupSecrets } from 'ts-mls/welcome.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type WelcomeVector = { cipher_suite: number; init_priv: string; signer_pub: string; key_package: string; welcome: string };

const vectors = loadVectors<WelcomeVector>('welcome.json');

function decodeAs<W extends MLSMessage['wireformat']>(bytes: string, wireformat: W): Extract<MLSMessage, { wireformat: W }> {
  const m = decodeMlsMessage(hex(bytes), 0)?.[0];
  assert.equal(m?.wireformat, wireformat);
  return m as Extract<MLSMessage, { wireformat: W }>;
}

describe('RFC 9420 vectors: welcome', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const { welcome } = decodeAs(v.welcome, 'mls_welcome');
      const { keyPackage } = decodeAs(v.key_package, 'mls_key_package');

      // Our entry is the one addressed to our KeyPackageRef.
      const ref = await makeKeyPackageRef(keyPackage, cs.hash);
      assert.equal(welcome.secrets.filter((s) => toHex(s.newMember) === toHex(ref)).length, 1, 'one entry for our KeyPackageRef');

      const initKey = await cs.hpke.importPrivateKey(hex(v.init_priv));
      const secrets = await decryptGroupSecrets(initKey, ref, welcome, cs.hpke);
      assert.ok(secrets, 'GroupSecrets decrypt');
      assert.equal(secrets.psks.length, 0);
      const pskSecret = new Uint8Array(cs.kdf.size); // no PSK: psk_secret is Nh zero bytes (§8.4)

      const groupInfo = await decryptGroupInfo(welcome, secrets.joinerSecret, pskSecret, cs);
      assert.ok(groupInfo, 'GroupInfo decrypts');
      assert.equal(groupInfo.groupContext.cipherSuite, welcome.cipherSuite);
      assert.equal(await verifyGroupInfoConfirmationTag(groupInfo, secrets.joinerSecret, pskSecret, cs), true, 'confirmation tag');
      assert.equal(await verifyGroupInfoSignature(groupInfo, hex(v.signer_pub), cs.signature), true, 'signature');

      // Both checks are real: a wrong joiner secret or a wrong signer key fails them.
      const otherJoiner = secrets.joinerSecret.slice();
      otherJoiner[0]! ^= 1;
      assert.equal(await verifyGroupInfoConfirmationTag(groupInfo, otherJoiner, pskSecret, cs), false);
      assert.equal(await verifyGroupInfoSignature(groupInfo, keyPackage.leafNode.signaturePublicKey, cs.signature), false);
    });
  }
});
