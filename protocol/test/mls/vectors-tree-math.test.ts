/**
 * RFC 9420 test vectors, tree-math family (mlswg/mls-implementations, see vectors/README.md),
 * against the pinned ts-mls. Array-based tree arithmetic (RFC 9420 appendix C) is what every
 * ratchet-tree and secret-tree index goes through; a wrong parent or sibling silently sends keys
 * to the wrong node. The vectors give, for trees of n leaves, the node count, the root, and each
 * node's left, right, parent and sibling; null where there is none, where ts-mls must throw rather
 * than invent an index.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InternalError } from 'ts-mls/mlsError.js';
import { left, nodeWidth, parent, right, root, sibling, toNodeIndex } from 'ts-mls/treemath.js';
import { loadVectors } from './vectors/load.ts';

type TreeMath = {
  n_leaves: number;
  n_nodes: number;
  root: number;
  left: (number | null)[];
  right: (number | null)[];
  parent: (number | null)[];
  sibling: (number | null)[];
};

const vectors = loadVectors<TreeMath>('tree-math.json');

/** `f(i)` equals `expected[i]` for every node i, or throws ts-mls' InternalError where it is null. */
function checkEach(name: string, expected: (number | null)[], f: (i: number) => number) {
  for (const [i, want] of expected.entries()) {
    if (want === null) assert.throws(() => f(i), InternalError, `${name}(${i}) should not exist`);
    else assert.equal(f(i), want, `${name}(${i})`);
  }
}

describe('RFC 9420 vectors: tree-math', () => {
  for (const v of vectors) {
    it(`${v.n_leaves} leaves`, () => {
      assert.equal(nodeWidth(v.n_leaves), v.n_nodes, 'node count');
      assert.equal(root(v.n_leaves), v.root, 'root');
      // Every array covers every node of the tree.
      for (const a of [v.left, v.right, v.parent, v.sibling]) assert.equal(a.length, v.n_nodes);
      checkEach('left', v.left, (i) => left(toNodeIndex(i)));
      checkEach('right', v.right, (i) => right(toNodeIndex(i)));
      checkEach('parent', v.parent, (i) => parent(toNodeIndex(i), v.n_leaves));
      checkEach('sibling', v.sibling, (i) => sibling(toNodeIndex(i), v.n_leaves));
    });
  }
});
