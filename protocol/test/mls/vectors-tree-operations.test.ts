/**
 * RFC 9420 test vectors, tree-operations family (see vectors/README.md), against the pinned
 * ts-mls. Applying an Add, Update or Remove proposal to a ratchet tree (RFC 9420 §12.1): where an
 * added leaf goes (leftmost blank, else a new right subtree), which parents get blanked, how the
 * tree is truncated after a Remove. The vector gives the tree before and after, byte for byte,
 * and both tree hashes.
 *
 * Note: ts-mls vendors a corrected copy of this file (its commit 6bc9e9f, upstream
 * mlswg/mls-implementations#195: one Update carried a key_package leaf); we run that copy.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeProposal, type Proposal } from 'ts-mls/proposal.js';
import { addLeafNode, decodeRatchetTree, encodeRatchetTree, removeLeafNode, updateLeafNode, type RatchetTree } from 'ts-mls/ratchetTree.js';
import { treeHashRoot } from 'ts-mls/treeHash.js';
import { toLeafIndex } from 'ts-mls/treemath.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type TreeOperations = {
  cipher_suite: number;
  tree_before: string;
  proposal: string;
  proposal_sender: number;
  tree_after: string;
  tree_hash_before: string;
  tree_hash_after: string;
};

const vectors = loadVectors<TreeOperations>('tree-operations.json');

function apply(tree: RatchetTree, p: Proposal, sender: number): RatchetTree {
  switch (p.proposalType) {
    case 'add':
      return addLeafNode(tree, p.add.keyPackage.leafNode)[0];
    case 'update':
      return updateLeafNode(tree, p.update.leafNode, toLeafIndex(sender));
    case 'remove':
      return removeLeafNode(tree, toLeafIndex(p.remove.removed));
    default:
      throw new Error(`the vectors only hold add, update and remove, not ${p.proposalType}`);
  }
}

describe('RFC 9420 vectors: tree-operations', () => {
  for (const [i, v] of vectors.entries()) {
    const proposal = decodeProposal(hex(v.proposal), 0)?.[0];
    it(caseName(v, i, String(proposal?.proposalType ?? 'undecodable proposal')), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      assert.ok(proposal, 'proposal decodes');
      const before = decodeRatchetTree(hex(v.tree_before), 0)?.[0];
      assert.ok(before, 'tree decodes');
      assert.equal(toHex(await treeHashRoot(before, cs.hash)), v.tree_hash_before, 'tree hash before');

      const after = apply(before, proposal, v.proposal_sender);
      assert.equal(toHex(encodeRatchetTree(after)), v.tree_after, 'tree after');
      assert.equal(toHex(await treeHashRoot(after, cs.hash)), v.tree_hash_after, 'tree hash after');
    });
  }
});
