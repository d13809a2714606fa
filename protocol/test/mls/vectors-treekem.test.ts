/**
 * RFC 9420 test vectors, treekem family (see vectors/README.md), against the pinned ts-mls.
 * TreeKEM (RFC 9420 §7.4-7.6): a committer replaces the path from its leaf to the root with fresh
 * keys and sends each path secret, HPKE-encrypted to the resolution of the copath, in an
 * UpdatePath; every other member decrypts the one meant for it, derives the rest up to the root,
 * and all agree on the commit_secret. Each vector is a ratchet tree, the private state of several
 * members, and for each of them an UpdatePath it sent.
 *
 * Checked, per vector: the members' private keys match the tree's public keys; then per UpdatePath:
 * merging it gives tree_hash_after, valid parent hashes and a validly signed new leaf; every other
 * member decrypts exactly the vector's path secret and derives the vector's commit_secret. Then
 * one of the senders makes a fresh UpdatePath with ts-mls: merging it reproduces the sender's tree
 * and every other member derives the sender's commit_secret from it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyUpdatePathSecret } from 'ts-mls/createCommit.js';
import { getCiphersuiteNameFromId, type CiphersuiteId, type CiphersuiteImpl } from 'ts-mls/crypto/ciphersuite.js';
import { deriveSecret } from 'ts-mls/crypto/kdf.js';
import type { GroupContext } from 'ts-mls/groupContext.js';
import { verifyLeafNodeSignature } from 'ts-mls/leafNode.js';
import { verifyParentHashes } from 'ts-mls/parentHash.js';
import { getCommitSecret } from 'ts-mls/pathSecrets.js';
import type { PrivateKeyPath } from 'ts-mls/privateKeyPath.js';
import { decodeRatchetTree, encodeRatchetTree, getHpkePublicKey, type RatchetTree } from 'ts-mls/ratchetTree.js';
import { treeHashRoot } from 'ts-mls/treeHash.js';
import { leafToNodeIndex, leafWidth, parent, root, toLeafIndex, toNodeIndex } from 'ts-mls/treemath.js';
import { applyUpdatePath, createUpdatePath, decodeUpdatePath, type UpdatePath } from 'ts-mls/updatePath.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type LeafPrivate = { index: number; encryption_priv: string; signature_priv: string; path_secrets: { node: number; path_secret: string }[] };
type UpdatePathVector = { sender: number; update_path: string; path_secrets: (string | null)[]; commit_secret: string; tree_hash_after: string };
type TreeKem = {
  cipher_suite: number;
  group_id: string;
  epoch: number;
  confirmed_transcript_hash: string;
  ratchet_tree: string;
  leaves_private: LeafPrivate[];
  update_paths: UpdatePathVector[];
};

const vectors = loadVectors<TreeKem>('treekem.json');

/** The private HPKE key `priv` belongs to the public key `pub`: what one seals, the other opens. */
async function keyPairMatches(cs: CiphersuiteImpl, pub: Uint8Array, priv: Uint8Array): Promise<boolean> {
  const msg = new TextEncoder().encode('treekem vector key check');
  const { ct, enc } = await cs.hpke.seal(await cs.hpke.importPublicKey(pub), msg, new Uint8Array());
  const opened = await cs.hpke.open(await cs.hpke.importPrivateKey(priv), enc, ct, new Uint8Array()).catch(() => undefined);
  return opened !== undefined && toHex(opened) === toHex(msg);
}

/**
 * A member's private state as ts-mls holds it (node index -> HPKE private key), built from the
 * vector: the leaf's encryption key, and for each path secret the key pair it derives
 * (RFC 9420 §7.4: node_priv = DeriveKeyPair(DeriveSecret(path_secret, "node"))), each checked
 * against the public key at that node of the tree.
 */
async function privateState(cs: CiphersuiteImpl, tree: RatchetTree, lp: LeafPrivate): Promise<PrivateKeyPath> {
  const leafNode = tree[leafToNodeIndex(toLeafIndex(lp.index))];
  assert.equal(leafNode?.nodeType, 'leaf', `leaf ${lp.index} is in the tree`);
  assert.equal(await keyPairMatches(cs, getHpkePublicKey(leafNode!), hex(lp.encryption_priv)), true, `leaf ${lp.index} encryption key`);
  const privateKeys: Record<number, Uint8Array> = { [leafToNodeIndex(toLeafIndex(lp.index))]: hex(lp.encryption_priv) };
  for (const { node, path_secret } of lp.path_secrets) {
    const { privateKey, publicKey } = await cs.hpke.deriveKeyPair(await deriveSecret(hex(path_secret), 'node', cs.kdf));
    const n = tree[node];
    assert.ok(n, `node ${node} (path secret of leaf ${lp.index}) is not blank`);
    assert.equal(toHex(await cs.hpke.exportPublicKey(publicKey)), toHex(getHpkePublicKey(n)), `leaf ${lp.index}: key of node ${node}`);
    privateKeys[node] = await cs.hpke.exportPrivateKey(privateKey);
  }
  return { leafIndex: lp.index, privateKeys };
}

/** What member `pp` derives from UpdatePath `path` of `sender`: its path secret and the commit secret. */
async function receive(
  cs: CiphersuiteImpl,
  tree: RatchetTree,
  pp: PrivateKeyPath,
  sender: number,
  gc: GroupContext,
  path: UpdatePath,
) {
  const { nodeIndex, pathSecret } = await applyUpdatePathSecret(tree, pp, toLeafIndex(sender), gc, path, [], cs);
  return { pathSecret: toHex(pathSecret), commitSecret: toHex(await getCommitSecret(tree, nodeIndex, pathSecret, cs.kdf)) };
}

describe('RFC 9420 vectors: treekem', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, `${v.leaves_private.length} members, ${v.update_paths.length} UpdatePaths`), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const tree = decodeRatchetTree(hex(v.ratchet_tree), 0)?.[0];
      assert.ok(tree, 'ratchet tree decodes');
      const gc: GroupContext = {
        version: 'mls10',
        cipherSuite: getCiphersuiteNameFromId(v.cipher_suite as CiphersuiteId),
        groupId: hex(v.group_id),
        epoch: BigInt(v.epoch),
        treeHash: await treeHashRoot(tree, cs.hash),
        confirmedTranscriptHash: hex(v.confirmed_transcript_hash),
        extensions: [],
      };
      const members = new Map<number, PrivateKeyPath>();
      for (const lp of v.leaves_private) members.set(lp.index, await privateState(cs, tree, lp));

      for (const up of v.update_paths) {
        const at = `UpdatePath from leaf ${up.sender}`;
        const path = decodeUpdatePath(hex(up.update_path), 0)?.[0];
        assert.ok(path, `${at} decodes`);

        // Merging the path (§7.5): tree hash, parent hashes, and the new leaf's signature.
        const merged = await applyUpdatePath(tree, toLeafIndex(up.sender), path, cs.hash);
        assert.equal(toHex(await treeHashRoot(merged, cs.hash)), up.tree_hash_after, `${at}: tree hash after merge`);
        assert.equal(await verifyParentHashes(merged, cs.hash), true, `${at}: parent hashes`);
        assert.equal(await verifyLeafNodeSignature(path.leafNode, hex(v.group_id), up.sender, cs.signature), true, `${at}: leaf signature`);

        // Every other member decrypts the vector's path secret and reaches its commit secret. The
        // encryption context is the GroupContext with the merged tree's hash (§7.6).
        const gcAfter = { ...gc, treeHash: hex(up.tree_hash_after) };
        for (const [index, pp] of members) {
          if (index === up.sender) {
            assert.equal(up.path_secrets[index], null, `${at}: the sender gets no path secret`);
            continue;
          }
          const got = await receive(cs, tree, pp, up.sender, gcAfter, path);
          assert.equal(got.pathSecret, up.path_secrets[index], `${at}: path secret of leaf ${index}`);
          assert.equal(got.commitSecret, up.commit_secret, `${at}: commit secret of leaf ${index}`);
        }

        // A fresh UpdatePath by ts-mls from the same sender on the same tree (for one sender per
        // vector, a different position each time, to keep the run short). ts-mls encrypts it under
        // the next epoch's GroupContext with the new tree's hash.
        if (up !== v.update_paths[i % v.update_paths.length]) continue;
        const sender = v.leaves_private.find((lp) => lp.index === up.sender);
        assert.ok(sender, `${at}: the vector has the sender's private state`);
        const [senderTree, ourPath, ourSecrets] = await createUpdatePath(tree, toLeafIndex(up.sender), gc, hex(sender.signature_priv), cs);
        // The sender's commit secret: DeriveSecret of the path secret of its highest updated node, "path".
        const width = leafWidth(tree.length);
        let top: Uint8Array | undefined;
        for (let n = leafToNodeIndex(toLeafIndex(up.sender)); n !== root(width); ) {
          n = parent(toNodeIndex(n), width);
          top = ourSecrets.find((s) => s.nodeIndex === n)?.secret ?? top;
        }
        assert.ok(top, `${at}: ts-mls produced path secrets`);
        const senderCommitSecret = toHex(await deriveSecret(top, 'path', cs.kdf));

        const receivedTree = await applyUpdatePath(tree, toLeafIndex(up.sender), ourPath, cs.hash);
        assert.equal(toHex(encodeRatchetTree(receivedTree)), toHex(encodeRatchetTree(senderTree)), `${at}: merged ts-mls path = sender's tree`);
        assert.equal(await verifyParentHashes(receivedTree, cs.hash), true, `${at}: parent hashes of the ts-mls path`);
        const ourGc = { ...gc, epoch: gc.epoch + 1n, treeHash: await treeHashRoot(receivedTree, cs.hash) };
        for (const [index, pp] of members) {
          if (index === up.sender) continue;
          const got = await receive(cs, tree, pp, up.sender, ourGc, ourPath);
          assert.equal(got.commitSecret, senderCommitSecret, `${at}: leaf ${index} agrees on the ts-mls path's commit secret`);
        }
      }
    });
  }
});
