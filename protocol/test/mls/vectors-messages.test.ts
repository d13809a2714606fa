/**
 * RFC 9420 test vectors, messages family (see vectors/README.md; the first entries only), against
 * the pinned ts-mls. The wire encoding of every MLS structure (RFC 9420 TLS presentation
 * language): each vector field is one serialised object, generated with random contents, that must
 * decode using the matching structure, be consumed exactly, and re-encode to the same bytes. This
 * is what lets a Switchboard client and any other MLS client parse each other's messages.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Decoder } from 'ts-mls/codec/tlsDecoder.js';
import type { Encoder } from 'ts-mls/codec/tlsEncoder.js';
import { decodeCommit, encodeCommit } from 'ts-mls/commit.js';
import { decodeGroupSecrets, encodeGroupSecrets } from 'ts-mls/groupSecrets.js';
import { decodeMlsMessage, encodeMlsMessage, type MLSMessage } from 'ts-mls/message.js';
import {
  decodeAdd,
  decodeExternalInit,
  decodeGroupContextExtensions,
  decodePSK,
  decodeReinit,
  decodeRemove,
  decodeUpdate,
  encodeAdd,
  encodeExternalInit,
  encodeGroupContextExtensions,
  encodePSK,
  encodeReinit,
  encodeRemove,
  encodeUpdate,
} from 'ts-mls/proposal.js';
import { decodeRatchetTree, encodeRatchetTree } from 'ts-mls/ratchetTree.js';
import { hex, loadVectors, toHex } from './vectors/load.ts';

type Messages = Record<
  | 'mls_welcome'
  | 'mls_group_info'
  | 'mls_key_package'
  | 'ratchet_tree'
  | 'group_secrets'
  | 'add_proposal'
  | 'update_proposal'
  | 'remove_proposal'
  | 'pre_shared_key_proposal'
  | 're_init_proposal'
  | 'external_init_proposal'
  | 'group_context_extensions_proposal'
  | 'commit'
  | 'public_message_application'
  | 'public_message_proposal'
  | 'public_message_commit'
  | 'private_message',
  string
>;

const vectors = loadVectors<Messages>('messages.json');

/** Decodes `bytes` with `decode`, consuming all of it, and checks the re-encoding is identical. */
function roundTrip<T>(field: string, bytes: string, decode: Decoder<T>, encode: Encoder<T>): T {
  const input = hex(bytes);
  const decoded = decode(input, 0);
  assert.ok(decoded, `${field} decodes`);
  assert.equal(decoded[1], input.length, `${field}: all bytes consumed`);
  assert.equal(toHex(encode(decoded[0])), bytes, `${field} re-encodes to the same bytes`);
  return decoded[0];
}

/** An MLSMessage field: round trip, and it is the expected kind of message. */
function mlsMessage(field: string, bytes: string, wireformat: MLSMessage['wireformat'], contentType?: string) {
  const m = roundTrip(field, bytes, decodeMlsMessage, encodeMlsMessage);
  assert.equal(m.wireformat, wireformat, `${field}: wire format`);
  if (contentType && m.wireformat === 'mls_public_message') {
    assert.equal(m.publicMessage.content.contentType, contentType, `${field}: content type`);
  }
}

describe('RFC 9420 vectors: messages (codec round trip)', () => {
  for (const [i, v] of vectors.entries()) {
    it(`case ${i}`, () => {
      mlsMessage('mls_welcome', v.mls_welcome, 'mls_welcome');
      mlsMessage('mls_group_info', v.mls_group_info, 'mls_group_info');
      mlsMessage('mls_key_package', v.mls_key_package, 'mls_key_package');
      mlsMessage('public_message_application', v.public_message_application, 'mls_public_message', 'application');
      mlsMessage('public_message_proposal', v.public_message_proposal, 'mls_public_message', 'proposal');
      mlsMessage('public_message_commit', v.public_message_commit, 'mls_public_message', 'commit');
      mlsMessage('private_message', v.private_message, 'mls_private_message');
      roundTrip('ratchet_tree', v.ratchet_tree, decodeRatchetTree, encodeRatchetTree);
      roundTrip('group_secrets', v.group_secrets, decodeGroupSecrets, encodeGroupSecrets);
      roundTrip('add_proposal', v.add_proposal, decodeAdd, encodeAdd);
      roundTrip('update_proposal', v.update_proposal, decodeUpdate, encodeUpdate);
      roundTrip('remove_proposal', v.remove_proposal, decodeRemove, encodeRemove);
      roundTrip('pre_shared_key_proposal', v.pre_shared_key_proposal, decodePSK, encodePSK);
      roundTrip('re_init_proposal', v.re_init_proposal, decodeReinit, encodeReinit);
      roundTrip('external_init_proposal', v.external_init_proposal, decodeExternalInit, encodeExternalInit);
      roundTrip('group_context_extensions_proposal', v.group_context_extensions_proposal, decodeGroupContextExtensions, encodeGroupContextExtensions);
      roundTrip('commit', v.commit, decodeCommit, encodeCommit);
    });
  }
});
