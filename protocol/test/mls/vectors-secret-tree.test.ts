/**
 * RFC 9420 test vectors, secret-tree family (see vectors/README.md), against the pinned ts-mls.
 * The secret tree (RFC 9420 §9) derives, from the epoch's encryption_secret, one handshake and one
 * application hash ratchet per leaf; each generation of a ratchet gives the AEAD key and nonce of
 * one PrivateMessage. The vectors give, for trees of 1, 8 and 32 leaves, the keys and nonces of
 * every leaf at generations 0 and 15 (so the ratchet is stepped, not just read at its root), plus
 * the key and nonce that protect the sender data of a given ciphertext (§6.3.2).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultKeyRetentionConfig } from 'ts-mls/keyRetentionConfig.js';
import { createSecretTree, deriveKey, deriveNonce, ratchetUntil, type GenerationSecret } from 'ts-mls/secretTree.js';
import { expandSenderDataKey, expandSenderDataNonce } from 'ts-mls/sender.js';
import { leafToNodeIndex, toLeafIndex } from 'ts-mls/treemath.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type Generation = {
  generation: number;
  handshake_key: string;
  handshake_nonce: string;
  application_key: string;
  application_nonce: string;
};
type SecretTreeVector = {
  cipher_suite: number;
  sender_data: { sender_data_secret: string; ciphertext: string; key: string; nonce: string };
  encryption_secret: string;
  leaves: Generation[][];
};

const vectors = loadVectors<SecretTreeVector>('secret-tree.json');

describe('RFC 9420 vectors: secret-tree', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, 'sender data key and nonce'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const sd = v.sender_data;
      assert.equal(toHex(await expandSenderDataKey(cs, hex(sd.sender_data_secret), hex(sd.ciphertext))), sd.key);
      assert.equal(toHex(await expandSenderDataNonce(cs, hex(sd.sender_data_secret), hex(sd.ciphertext))), sd.nonce);
    });

    it(caseName(v, i, `${v.leaves.length} leaves, handshake and application ratchets`), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const tree = await createSecretTree(v.leaves.length, hex(v.encryption_secret), cs.kdf);
      for (const [leaf, generations] of v.leaves.entries()) {
        const node = tree[leafToNodeIndex(toLeafIndex(leaf))];
        assert.ok(node, `leaf ${leaf} has a secret-tree node`);
        const ratchets: ['handshake' | 'application', GenerationSecret][] = [
          ['handshake', node.handshake],
          ['application', node.application],
        ];
        for (const g of generations) {
          for (const [ratchet, start] of ratchets) {
            const at = `leaf ${leaf} ${ratchet} generation ${g.generation}`;
            // From the ratchet's root (generation 0) forward to the wanted generation.
            const [step] = await ratchetUntil(start, g.generation, defaultKeyRetentionConfig, cs.kdf);
            assert.equal(step.generation, g.generation, at);
            assert.equal(toHex(await deriveKey(step.secret, step.generation, cs)), g[`${ratchet}_key`], `${at}: key`);
            assert.equal(toHex(await deriveNonce(step.secret, step.generation, cs)), g[`${ratchet}_nonce`], `${at}: nonce`);
          }
        }
      }
    });
  }
});
