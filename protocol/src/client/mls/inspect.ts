import { ratchetTreeFromExtension } from 'ts-mls/groupInfo.js';
import { decodeMlsMessage, type MLSMessage } from 'ts-mls/message.js';
import type { RatchetTree } from 'ts-mls/ratchetTree.js';
import { decodeCredential } from './credential.ts';

/**
 * What the server reads inside MLS handshake messages without any key: the members a GroupInfo's
 * tree lists, and what a commit (a PublicMessage) adds and removes. Parsing only, no crypto (the
 * edge bundles this without the SDK's cipher suite).
 */

export interface LeafMember {
  leaf: number;
  user: string;
  device: string;
}

export interface CommitSummary {
  epoch: bigint;
  /** Leaves removed by proposals carried in the commit. */
  removed: number[];
  /** Devices added by KeyPackages carried in the commit (as their credentials name them). */
  added: { user: string; device: string }[];
  /** Proposals the commit names by reference (sequenced earlier), not carried. */
  byReference: number;
  /** The committer's leaf as its update path sets it (user and device its credential names), if it has a path. */
  pathLeaf: { user: string; device: string } | null;
}

function decode(bytes: Uint8Array): MLSMessage | null {
  try {
    const d = decodeMlsMessage(bytes, 0);
    return d && d[1] === bytes.length ? d[0] : null;
  } catch {
    return null;
  }
}

/** The members a GroupInfo's ratchet tree lists, with its epoch; null if it is not a GroupInfo with a tree. */
export function groupInfoMembers(bytes: Uint8Array): { epoch: bigint; members: LeafMember[] } | null {
  const m = decode(bytes);
  if (m?.wireformat !== 'mls_group_info') return null;
  const tree = ratchetTreeFromExtension(m.groupInfo);
  return tree ? { epoch: m.groupInfo.groupContext.epoch, members: treeMembers(tree) } : null;
}

/** The leaves of a ratchet tree (leaf i is node 2i) whose credentials are our devices'. */
export function treeMembers(tree: RatchetTree): LeafMember[] {
  const members: LeafMember[] = [];
  tree.forEach((node, i) => {
    if (i % 2 !== 0 || node?.nodeType !== 'leaf') return;
    const c = decodeCredential(node.leaf.credential);
    if (c) members.push({ leaf: i / 2, user: c.user, device: c.device });
  });
  return members;
}

/** What a commit sent as a PublicMessage adds and removes; null if it is not one. */
export function inspectCommit(bytes: Uint8Array): CommitSummary | null {
  const m = decode(bytes);
  if (m?.wireformat !== 'mls_public_message') return null;
  const content = m.publicMessage.content;
  if (content.contentType !== 'commit') return null;
  const leaf = content.commit.path ? decodeCredential(content.commit.path.leafNode.credential) : null;
  const out: CommitSummary = { epoch: content.epoch, removed: [], added: [], byReference: 0, pathLeaf: leaf && { user: leaf.user, device: leaf.device } };
  for (const p of content.commit.proposals) {
    if (p.proposalOrRefType === 'reference') {
      out.byReference++;
      continue;
    }
    const proposal = p.proposal;
    if (proposal.proposalType === 'remove') out.removed.push(proposal.remove.removed);
    else if (proposal.proposalType === 'add') {
      const c = decodeCredential(proposal.add.keyPackage.leafNode.credential);
      if (c) out.added.push({ user: c.user, device: c.device });
    }
  }
  return out;
}
