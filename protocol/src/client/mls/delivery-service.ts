import type { Credential } from 'ts-mls/credential.js';
import { proposeExternal } from 'ts-mls/externalProposal.js';
import type { GroupInfo } from 'ts-mls/groupInfo.js';
import { decodeMlsMessage, encodeMlsMessage } from 'ts-mls/message.js';
import type { DeliveryServiceKey } from './group.ts';
import { mlsSuite } from './suite.ts';

/**
 * The server's side of MLS (the conversation's Delivery Service): it holds no group secrets, only
 * its own signing key, listed in each group as an external sender, with which it proposes the
 * removals that membership changes through the API require; a member's commit then applies them.
 */
export interface DeliveryServiceKeyPair extends DeliveryServiceKey {
  signKey: Uint8Array;
}

const enc = new TextEncoder();

/** A Delivery Service signing key for `name` (e.g. the region). */
export async function newDeliveryServiceKey(name: string): Promise<DeliveryServiceKeyPair> {
  const { publicKey, signKey } = await (await mlsSuite()).signature.keygen();
  const credential: Credential = { credentialType: 'basic', identity: enc.encode(JSON.stringify({ v: 1, ds: name })) };
  return { signaturePublicKey: publicKey, signKey, credential };
}

function groupInfoOf(bytes: Uint8Array): GroupInfo {
  const d = decodeMlsMessage(bytes, 0);
  if (!d || d[0].wireformat !== 'mls_group_info') throw new Error('not a GroupInfo');
  return d[0].groupInfo;
}

/** The server's proposal (an MLSMessage, PublicMessage) to remove `leaf`, at the epoch of `groupInfo`. */
export async function proposeRemoval(groupInfo: Uint8Array, leaf: number, ds: DeliveryServiceKeyPair): Promise<Uint8Array> {
  const msg = await proposeExternal(groupInfoOf(groupInfo), { proposalType: 'remove', remove: { removed: leaf } }, ds.signaturePublicKey, ds.signKey, await mlsSuite());
  return encodeMlsMessage(msg);
}
