/**
 * RFC 9420 test vectors, message-protection family (see vectors/README.md), against the pinned
 * ts-mls. Framing (RFC 9420 §6): a PublicMessage is signed and carries a membership_tag (a MAC
 * under the epoch's membership_key); a PrivateMessage is signed, then encrypted with a key and
 * nonce from the secret tree, its sender data encrypted separately. The vector is one epoch of a
 * two-member group where leaf 1 sends a proposal, a commit and application data, each as a
 * PublicMessage and as a PrivateMessage (application data only as a PrivateMessage).
 *
 * For each we check that ts-mls opens the vector's message to the vector's content, and that what
 * ts-mls protects opens again. PublicMessages are deterministic here (Ed25519 and HMAC, empty
 * authenticated_data), so ours must also be the vector's bytes exactly; PrivateMessages are not
 * (random reuse_guard), but the signature inside is, so that one is compared byte for byte.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuthenticatedContent } from 'ts-mls/authenticatedContent.js';
import { decodeCommit, encodeCommit } from 'ts-mls/commit.js';
import { getCiphersuiteNameFromId, type CiphersuiteId, type CiphersuiteImpl } from 'ts-mls/crypto/ciphersuite.js';
import { defaultCapabilities } from 'ts-mls/defaultCapabilities.js';
import { createContentCommitSignature } from 'ts-mls/framedContent.js';
import type { GroupContext } from 'ts-mls/groupContext.js';
import { defaultKeyRetentionConfig } from 'ts-mls/keyRetentionConfig.js';
import { decodeMlsMessage, encodeMlsMessage, type MLSMessage } from 'ts-mls/message.js';
import { protect, protectApplicationData, protectProposal, unprotectPrivateMessage } from 'ts-mls/messageProtection.js';
import { protectProposalPublic, protectPublicMessage, unprotectPublicMessage } from 'ts-mls/messageProtectionPublic.js';
import { UsageError } from 'ts-mls/mlsError.js';
import { defaultPaddingConfig } from 'ts-mls/paddingConfig.js';
import type { PrivateMessage } from 'ts-mls/privateMessage.js';
import { decodeProposal, encodeProposal } from 'ts-mls/proposal.js';
import type { PublicMessage } from 'ts-mls/publicMessage.js';
import type { RatchetTree } from 'ts-mls/ratchetTree.js';
import { createSecretTree } from 'ts-mls/secretTree.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type MessageProtection = {
  cipher_suite: number;
  group_id: string;
  epoch: number;
  tree_hash: string;
  confirmed_transcript_hash: string;
  signature_priv: string;
  signature_pub: string;
  encryption_secret: string;
  sender_data_secret: string;
  membership_key: string;
  proposal: string;
  proposal_priv: string;
  proposal_pub: string;
  commit: string;
  commit_priv: string;
  commit_pub: string;
  application: string;
  application_priv: string;
};

const vectors = loadVectors<MessageProtection>('message-protection.json');

/** The sender in every vector message. */
const SENDER = 1;
const noAuthData = new Uint8Array();

const groupContext = (v: MessageProtection): GroupContext => ({
  version: 'mls10',
  cipherSuite: getCiphersuiteNameFromId(v.cipher_suite as CiphersuiteId),
  groupId: hex(v.group_id),
  epoch: BigInt(v.epoch),
  treeHash: hex(v.tree_hash),
  confirmedTranscriptHash: hex(v.confirmed_transcript_hash),
  extensions: [],
});

/**
 * A two-leaf ratchet tree with a (content-free) leaf at SENDER: opening a PrivateMessage looks the
 * sender up in the tree. The signature key is given explicitly (signature_pub), so the leaf's own
 * keys are never used.
 */
const twoMemberTree: RatchetTree = [
  undefined,
  undefined,
  {
    nodeType: 'leaf',
    leaf: {
      leafNodeSource: 'commit',
      parentHash: new Uint8Array(),
      hpkePublicKey: new Uint8Array(),
      signaturePublicKey: new Uint8Array(),
      credential: { credentialType: 'basic', identity: new Uint8Array() },
      capabilities: defaultCapabilities(),
      extensions: [],
      signature: new Uint8Array(),
    },
  },
];

function publicMessageOf(bytes: string): PublicMessage {
  const m = decodeMlsMessage(hex(bytes), 0)?.[0];
  assert.equal(m?.wireformat, 'mls_public_message');
  return (m as Extract<MLSMessage, { wireformat: 'mls_public_message' }>).publicMessage;
}

function privateMessageOf(bytes: string): PrivateMessage {
  const m = decodeMlsMessage(hex(bytes), 0)?.[0];
  assert.equal(m?.wireformat, 'mls_private_message');
  return (m as Extract<MLSMessage, { wireformat: 'mls_private_message' }>).privateMessage;
}

const encodePublic = (publicMessage: PublicMessage) =>
  toHex(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage }));

/** Opens a PublicMessage as a member of the vector's epoch would (membership_tag, then signature). */
const openPublic = (v: MessageProtection, cs: CiphersuiteImpl, msg: PublicMessage, membershipKey = hex(v.membership_key)) =>
  unprotectPublicMessage(membershipKey, groupContext(v), [], msg, cs, hex(v.signature_pub));

/** Opens a PrivateMessage with a fresh secret tree of the vector's epoch. */
async function openPrivate(v: MessageProtection, cs: CiphersuiteImpl, msg: PrivateMessage): Promise<AuthenticatedContent> {
  const secretTree = await createSecretTree(2, hex(v.encryption_secret), cs.kdf);
  const { content } = await unprotectPrivateMessage(
    hex(v.sender_data_secret),
    msg,
    secretTree,
    twoMemberTree,
    groupContext(v),
    defaultKeyRetentionConfig,
    cs,
    hex(v.signature_pub),
  );
  assert.deepEqual(content.content.sender, { senderType: 'member', leafIndex: SENDER });
  assert.equal(toHex(content.content.groupId), v.group_id);
  assert.equal(content.content.epoch, BigInt(v.epoch));
  return content;
}

function proposalOf(ac: { content: AuthenticatedContent['content'] }): string {
  assert.equal(ac.content.contentType, 'proposal');
  return ac.content.contentType === 'proposal' ? toHex(encodeProposal(ac.content.proposal)) : '';
}
function commitOf(ac: { content: AuthenticatedContent['content'] }): string {
  assert.equal(ac.content.contentType, 'commit');
  return ac.content.contentType === 'commit' ? toHex(encodeCommit(ac.content.commit)) : '';
}

describe('RFC 9420 vectors: message-protection', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, 'proposal as PublicMessage'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const theirs = publicMessageOf(v.proposal_pub);
      assert.equal(proposalOf(await openPublic(v, cs, theirs)), v.proposal);

      const proposal = decodeProposal(hex(v.proposal), 0)?.[0];
      assert.ok(proposal);
      const { publicMessage: ours } = await protectProposalPublic(
        hex(v.signature_priv),
        hex(v.membership_key),
        groupContext(v),
        noAuthData,
        proposal,
        SENDER,
        cs,
      );
      assert.equal(encodePublic(ours), v.proposal_pub, 'our PublicMessage is the vector one');
      assert.equal(proposalOf(await openPublic(v, cs, ours)), v.proposal);

      // The membership tag is checked: another membership key refuses the message.
      const wrongKey = hex(v.membership_key);
      wrongKey[0]! ^= 1;
      await assert.rejects(openPublic(v, cs, theirs, wrongKey));
    });

    it(caseName(v, i, 'commit as PublicMessage'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const theirs = publicMessageOf(v.commit_pub);
      assert.equal(commitOf(await openPublic(v, cs, theirs)), v.commit);

      // A commit's auth also holds the confirmation_tag, which needs the next epoch's key
      // schedule: the vector supplies it (inside its own message) and we reuse it.
      assert.equal(theirs.auth.contentType, 'commit');
      if (theirs.auth.contentType !== 'commit') return;
      const commit = decodeCommit(hex(v.commit), 0)?.[0];
      assert.ok(commit);
      const gc = groupContext(v);
      const sender = { senderType: 'member', leafIndex: SENDER } as const;
      const { framedContent, signature } = await createContentCommitSignature(
        gc,
        'mls_public_message',
        commit,
        sender,
        noAuthData,
        hex(v.signature_priv),
        cs.signature,
      );
      const ours = await protectPublicMessage(
        hex(v.membership_key),
        gc,
        {
          wireformat: 'mls_public_message',
          content: framedContent,
          auth: { contentType: 'commit', signature, confirmationTag: theirs.auth.confirmationTag },
        },
        cs,
      );
      assert.equal(encodePublic(ours), v.commit_pub, 'our PublicMessage is the vector one');
      assert.equal(commitOf(await openPublic(v, cs, ours)), v.commit);
    });

    it(caseName(v, i, 'application data is refused as PublicMessage'), async () => {
      // RFC 9420 §6.2: application data MUST be sent as PrivateMessage.
      const cs = await suiteImpl(v.cipher_suite);
      const opened = await openPrivate(v, cs, privateMessageOf(v.application_priv));
      const asPublic: AuthenticatedContent = { ...opened, wireformat: 'mls_public_message' };
      await assert.rejects(protectPublicMessage(hex(v.membership_key), groupContext(v), asPublic, cs), UsageError);
    });

    it(caseName(v, i, 'proposal as PrivateMessage'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const theirs = await openPrivate(v, cs, privateMessageOf(v.proposal_priv));
      assert.equal(proposalOf(theirs), v.proposal);

      const proposal = decodeProposal(hex(v.proposal), 0)?.[0];
      assert.ok(proposal);
      const secretTree = await createSecretTree(2, hex(v.encryption_secret), cs.kdf);
      const { privateMessage } = await protectProposal(
        hex(v.signature_priv),
        hex(v.sender_data_secret),
        proposal,
        noAuthData,
        groupContext(v),
        secretTree,
        SENDER,
        defaultPaddingConfig,
        cs,
      );
      const ours = await openPrivate(v, cs, privateMessage);
      assert.equal(proposalOf(ours), v.proposal);
      assert.equal(toHex(ours.auth.signature), toHex(theirs.auth.signature), 'same (deterministic) signature');
    });

    it(caseName(v, i, 'commit as PrivateMessage'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const theirs = await openPrivate(v, cs, privateMessageOf(v.commit_priv));
      assert.equal(commitOf(theirs), v.commit);
      assert.equal(theirs.auth.contentType, 'commit');
      if (theirs.auth.contentType !== 'commit') return;

      const commit = decodeCommit(hex(v.commit), 0)?.[0];
      assert.ok(commit);
      const gc = groupContext(v);
      const { framedContent, signature } = await createContentCommitSignature(
        gc,
        'mls_private_message',
        commit,
        { senderType: 'member', leafIndex: SENDER },
        noAuthData,
        hex(v.signature_priv),
        cs.signature,
      );
      assert.equal(toHex(signature), toHex(theirs.auth.signature), 'same (deterministic) signature');
      const secretTree = await createSecretTree(2, hex(v.encryption_secret), cs.kdf);
      const { privateMessage } = await protect(
        hex(v.sender_data_secret),
        noAuthData,
        gc,
        secretTree,
        { ...framedContent, auth: { contentType: 'commit', signature, confirmationTag: theirs.auth.confirmationTag } },
        SENDER,
        defaultPaddingConfig,
        cs,
      );
      assert.equal(commitOf(await openPrivate(v, cs, privateMessage)), v.commit);
    });

    it(caseName(v, i, 'application data as PrivateMessage'), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const theirs = await openPrivate(v, cs, privateMessageOf(v.application_priv));
      assert.equal(theirs.content.contentType, 'application');
      if (theirs.content.contentType !== 'application') return;
      assert.equal(toHex(theirs.content.applicationData), v.application);

      const secretTree = await createSecretTree(2, hex(v.encryption_secret), cs.kdf);
      const { privateMessage } = await protectApplicationData(
        hex(v.signature_priv),
        hex(v.sender_data_secret),
        hex(v.application),
        noAuthData,
        groupContext(v),
        secretTree,
        SENDER,
        defaultPaddingConfig,
        cs,
      );
      const ours = await openPrivate(v, cs, privateMessage);
      assert.equal(ours.content.contentType, 'application');
      if (ours.content.contentType === 'application') assert.equal(toHex(ours.content.applicationData), v.application);
      assert.equal(toHex(ours.auth.signature), toHex(theirs.auth.signature), 'same (deterministic) signature');
    });
  }
});
