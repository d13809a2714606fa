/**
 * RFC 9420 test vectors, tree-validation family (see vectors/README.md), against the pinned
 * ts-mls. What a joiner checks on a ratchet tree it is handed (RFC 9420 §7.8, §7.9, §12.4.3.1):
 * the tree hash of every subtree, the resolution of every node, that every parent node's parent
 * hash is valid, and that every leaf's signature verifies. The trees have various shapes (full,
 * with blanks, with unmerged leaves, truncated), which is where tree-hash and resolution code
 * tends to go wrong.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyLeafNodeSignature } from 'ts-mls/leafNode.js';
import { verifyParentHashes } from 'ts-mls/parentHash.js';
import { decodeRatchetTree, encodeRatchetTree, resolution } from 'ts-mls/ratchetTree.js';
import { treeHash } from 'ts-mls/treeHash.js';
import { nodeToLeafIndex, toNodeIndex } from 'ts-mls/treemath.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type TreeValidation = { cipher_suite: number; tree: string; group_id: string; tree_hashes: string[]; resolutions: number[][] };

const vectors = loadVectors<TreeValidation>('tree-validation.json');

describe('RFC 9420 vectors: tree-validation', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, `${v.tree_hashes.length} nodes`), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const decoded = decodeRatchetTree(hex(v.tree), 0);
      assert.ok(decoded, 'ratchet tree decodes');
      const [tree] = decoded;
      assert.equal(toHex(encodeRatchetTree(tree)), v.tree, 're-encodes to the same bytes');

      for (const [n, want] of v.tree_hashes.entries()) {
        assert.equal(toHex(await treeHash(tree, toNodeIndex(n), cs.hash)), want, `tree hash of node ${n}`);
      }
      for (const [n, want] of v.resolutions.entries()) {
        assert.deepEqual(resolution(tree, toNodeIndex(n)), want, `resolution of node ${n}`);
      }
      assert.equal(await verifyParentHashes(tree, cs.hash), true, 'parent hashes');

      let leaves = 0;
      for (const [n, node] of tree.entries()) {
        if (node?.nodeType !== 'leaf') continue;
        leaves++;
        const ok = await verifyLeafNodeSignature(node.leaf, hex(v.group_id), nodeToLeafIndex(toNodeIndex(n)), cs.signature);
        assert.equal(ok, true, `signature of the leaf at node ${n}`);
      }
      assert.ok(leaves > 0);
    });
  }
});
