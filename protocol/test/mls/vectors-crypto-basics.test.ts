/**
 * RFC 9420 test vectors, crypto-basics family (see vectors/README.md), against the pinned ts-mls.
 * The labelled primitives every other part of MLS is built on (RFC 9420 §5): RefHash,
 * ExpandWithLabel, DeriveSecret, DeriveTreeSecret, SignWithLabel/VerifyWithLabel and
 * EncryptWithLabel/DecryptWithLabel. A wrong label prefix or length encoding here makes us
 * incompatible with every other MLS implementation while still agreeing with ourselves, which is
 * exactly what only external vectors can catch.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refhash } from 'ts-mls/crypto/hash.js';
import { decryptWithLabel, encryptWithLabel } from 'ts-mls/crypto/hpke.js';
import { deriveSecret, deriveTreeSecret, expandWithLabel } from 'ts-mls/crypto/kdf.js';
import { signWithLabel, verifyWithLabel } from 'ts-mls/crypto/signature.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type CryptoBasics = {
  cipher_suite: number;
  ref_hash: { label: string; value: string; out: string };
  expand_with_label: { secret: string; label: string; context: string; length: number; out: string };
  derive_secret: { secret: string; label: string; out: string };
  derive_tree_secret: { secret: string; label: string; generation: number; length: number; out: string };
  sign_with_label: { priv: string; pub: string; content: string; label: string; signature: string };
  encrypt_with_label: {
    priv: string;
    pub: string;
    label: string;
    context: string;
    plaintext: string;
    kem_output: string;
    ciphertext: string;
  };
};

const vectors = loadVectors<CryptoBasics>('crypto-basics.json');

describe('RFC 9420 vectors: crypto-basics', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, 'RefHash'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const o = v.ref_hash;
      assert.equal(toHex(await refhash(o.label, hex(o.value), cs.hash)), o.out);
    });

    it(caseName(v, i, 'ExpandWithLabel'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const o = v.expand_with_label;
      assert.equal(toHex(await expandWithLabel(hex(o.secret), o.label, hex(o.context), o.length, cs.kdf)), o.out);
    });

    it(caseName(v, i, 'DeriveSecret'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const o = v.derive_secret;
      assert.equal(toHex(await deriveSecret(hex(o.secret), o.label, cs.kdf)), o.out);
    });

    it(caseName(v, i, 'DeriveTreeSecret'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const o = v.derive_tree_secret;
      // The generation is a uint32 well above 2^31 here: it must be encoded unsigned.
      assert.equal(toHex(await deriveTreeSecret(hex(o.secret), o.label, o.generation, o.length, cs.kdf)), o.out);
    });

    it(caseName(v, i, 'SignWithLabel / VerifyWithLabel'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const o = v.sign_with_label;
      const [pub, content] = [hex(o.pub), hex(o.content)];
      assert.equal(await verifyWithLabel(pub, o.label, content, hex(o.signature), cs.signature), true);
      const ours = await signWithLabel(hex(o.priv), o.label, content, cs.signature);
      assert.equal(await verifyWithLabel(pub, o.label, content, ours, cs.signature), true);
      // Ed25519 is deterministic (RFC 8032), so our signature must be the vector's, byte for byte.
      assert.equal(toHex(ours), o.signature);
      // And the verification is real: another label or content does not verify.
      assert.equal(await verifyWithLabel(pub, o.label + 'x', content, hex(o.signature), cs.signature), false);
      const other = content.slice();
      other[0]! ^= 1;
      assert.equal(await verifyWithLabel(pub, o.label, other, hex(o.signature), cs.signature), false);
    });

    it(caseName(v, i, 'EncryptWithLabel / DecryptWithLabel'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const o = v.encrypt_with_label;
      const priv = await cs.hpke.importPrivateKey(hex(o.priv));
      const pub = await cs.hpke.importPublicKey(hex(o.pub));
      const context = hex(o.context);
      // The vector's ciphertext decrypts to its plaintext...
      const opened = await decryptWithLabel(priv, o.label, context, hex(o.kem_output), hex(o.ciphertext), cs.hpke);
      assert.equal(toHex(opened), o.plaintext);
      // ...and what we encrypt (HPKE is randomised, so no fixed bytes) decrypts back to it.
      const { ct, enc } = await encryptWithLabel(pub, o.label, context, hex(o.plaintext), cs.hpke);
      assert.equal(toHex(await decryptWithLabel(priv, o.label, context, enc, ct, cs.hpke)), o.plaintext);
      // A different label is a different HPKE info string: decryption must fail.
      await assert.rejects(decryptWithLabel(priv, o.label + 'x', context, hex(o.kem_output), hex(o.ciphertext), cs.hpke));
    });
  }
});
