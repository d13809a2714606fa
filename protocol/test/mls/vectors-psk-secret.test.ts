/**
 * RFC 9420 test vectors, psk_secret family (see vectors/README.md), against the pinned ts-mls.
 * psk_secret (RFC 9420 §8.4) folds any number of pre-shared keys, each with its PreSharedKeyID,
 * index and count, into the key schedule; with no PSK it must be all zeros. The vectors cover 0 to
 * 10 external PSKs, so ordering and the per-PSK label encoding are exercised.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computePskSecret, type PreSharedKeyID } from 'ts-mls/presharedkey.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type PskSecret = { cipher_suite: number; psks: { psk_id: string; psk: string; psk_nonce: string }[]; psk_secret: string };

const vectors = loadVectors<PskSecret>('psk_secret.json');

describe('RFC 9420 vectors: psk_secret', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, `${v.psks.length} external PSKs`), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const psks = v.psks.map((p): [PreSharedKeyID, Uint8Array] => [
        { psktype: 'external', pskId: hex(p.psk_id), pskNonce: hex(p.psk_nonce) },
        hex(p.psk),
      ]);
      assert.equal(toHex(await computePskSecret(psks, cs)), v.psk_secret);
    });
  }
});
