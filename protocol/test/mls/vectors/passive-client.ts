/**
 * Shared by the vectors-passive-client-*.test.ts files: plays one passive-client scenario of the
 * RFC 9420 test vectors (mlswg/mls-implementations, see README.md here) through the ts-mls entry
 * points our client uses (protocol/src/client/mls: joinGroup, then processPrivateMessage or
 * processPublicMessage per message), with ts-mls' default client config and the vector's
 * external PSKs.
 *
 * A scenario: a KeyPackage with its three private keys, a Welcome for it (the ratchet tree given
 * out of band or in the GroupInfo), external PSKs, then epochs, each some proposals and a Commit
 * sent by other members. The passive client joins, then applies each epoch, and after the join and
 * after each Commit its epoch_authenticator (RFC 9420 §8.7) must equal the vector's: it is derived
 * from the whole key schedule, so agreeing on it means agreeing on the tree, the transcript and
 * every secret of the epoch.
 */
import assert from 'node:assert/strict';
import { joinGroup, makePskIndex, type ClientState } from 'ts-mls/clientState.js';
import type { CiphersuiteImpl } from 'ts-mls/crypto/ciphersuite.js';
import { signWithLabel, verifyWithLabel } from 'ts-mls/crypto/signature.js';
import { acceptAll } from 'ts-mls/incomingMessageAction.js';
import { decodeMlsMessage, type MLSMessage } from 'ts-mls/message.js';
import { processPrivateMessage, processPublicMessage } from 'ts-mls/processMessages.js';
import { decodeRatchetTree } from 'ts-mls/ratchetTree.js';
import { bytesToBase64 } from 'ts-mls/util/byteArray.js';
import { hex, toHex } from './load.ts';

export type PassiveClient = {
  cipher_suite: number;
  external_psks: { psk_id: string; psk: string }[];
  key_package: string;
  signature_priv: string;
  encryption_priv: string;
  init_priv: string;
  welcome: string;
  ratchet_tree: string | null;
  initial_epoch_authenticator: string;
  epochs: { proposals: string[]; commit: string; epoch_authenticator: string }[];
};

function decodeAs<W extends MLSMessage['wireformat']>(bytes: string, ...wireformats: W[]): Extract<MLSMessage, { wireformat: W }> {
  const m = decodeMlsMessage(hex(bytes), 0)?.[0];
  assert.ok(m && (wireformats as string[]).includes(m.wireformat), `expected ${wireformats.join(' or ')}, got ${m?.wireformat}`);
  return m as Extract<MLSMessage, { wireformat: W }>;
}

/** The HPKE private key `priv` belongs to the public key `pub`: what one seals, the other opens. */
async function hpkePairMatches(cs: CiphersuiteImpl, pub: Uint8Array, priv: Uint8Array): Promise<boolean> {
  const msg = new TextEncoder().encode('passive client key check');
  const { ct, enc } = await cs.hpke.seal(await cs.hpke.importPublicKey(pub), msg, new Uint8Array());
  const opened = await cs.hpke.open(await cs.hpke.importPrivateKey(priv), enc, ct, new Uint8Array()).catch(() => undefined);
  return opened !== undefined && toHex(opened) === toHex(msg);
}

/** Short description of a scenario for a test title. */
export function describeScenario(v: PassiveClient): string {
  const proposals = v.epochs.reduce((n, e) => n + e.proposals.length, 0);
  const parts = [`${v.epochs.length} epochs`];
  if (proposals) parts.push(`${proposals} proposals`);
  if (v.external_psks.length) parts.push(`${v.external_psks.length} external PSK`);
  parts.push(v.ratchet_tree ? 'tree out of band' : 'tree in GroupInfo');
  return parts.join(', ');
}

/** Plays scenario `v`, asserting every epoch authenticator. Returns the final state. */
export async function playScenario(v: PassiveClient, cs: CiphersuiteImpl): Promise<ClientState> {
  const { keyPackage } = decodeAs(v.key_package, 'mls_key_package');

  // The private keys given are those of the KeyPackage.
  assert.equal(await hpkePairMatches(cs, keyPackage.initKey, hex(v.init_priv)), true, 'init_priv');
  assert.equal(await hpkePairMatches(cs, keyPackage.leafNode.hpkePublicKey, hex(v.encryption_priv)), true, 'encryption_priv');
  const probe = new TextEncoder().encode('probe');
  const sig = await signWithLabel(hex(v.signature_priv), 'probe', probe, cs.signature);
  assert.equal(await verifyWithLabel(keyPackage.leafNode.signaturePublicKey, 'probe', probe, sig, cs.signature), true, 'signature_priv');

  const psks: Record<string, Uint8Array> = {};
  for (const p of v.external_psks) psks[bytesToBase64(hex(p.psk_id))] = hex(p.psk);

  const { welcome } = decodeAs(v.welcome, 'mls_welcome');
  const tree = v.ratchet_tree === null ? undefined : decodeRatchetTree(hex(v.ratchet_tree), 0)?.[0];
  if (v.ratchet_tree !== null) assert.ok(tree, 'ratchet_tree decodes');
  let state = await joinGroup(
    welcome,
    keyPackage,
    { initPrivateKey: hex(v.init_priv), hpkePrivateKey: hex(v.encryption_priv), signaturePrivateKey: hex(v.signature_priv) },
    makePskIndex(undefined, psks),
    cs,
    tree,
  );
  assert.equal(toHex(state.keySchedule.epochAuthenticator), v.initial_epoch_authenticator, 'epoch authenticator after the Welcome');

  const apply = async (bytes: string) => {
    const m = decodeAs(bytes, 'mls_public_message', 'mls_private_message');
    const pskIndex = makePskIndex(state, psks);
    const r =
      m.wireformat === 'mls_private_message'
        ? await processPrivateMessage(state, m.privateMessage, pskIndex, cs, acceptAll)
        : await processPublicMessage(state, m.publicMessage, pskIndex, cs, acceptAll);
    state = r.newState;
  };
  for (const [n, e] of v.epochs.entries()) {
    const epochBefore = state.groupContext.epoch;
    for (const p of e.proposals) await apply(p);
    assert.equal(state.groupContext.epoch, epochBefore, `epoch ${n}: proposals alone do not change the epoch`);
    await apply(e.commit);
    assert.equal(state.groupContext.epoch, epochBefore + 1n, `epoch ${n}: the Commit advances the epoch`);
    assert.equal(toHex(state.keySchedule.epochAuthenticator), e.epoch_authenticator, `epoch ${n}: epoch authenticator`);
  }
  return state;
}
