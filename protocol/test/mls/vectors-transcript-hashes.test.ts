/**
 * RFC 9420 test vectors, transcript-hashes family (see vectors/README.md), against the pinned
 * ts-mls. Each Commit advances the confirmed and interim transcript hashes (RFC 9420 §8.2), which
 * feed the next GroupContext, and carries a confirmation_tag, the MAC of the new confirmed hash
 * under the confirmation_key (§6.1). The vector is one AuthenticatedContent holding a Commit and
 * the hashes before and after it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeAuthenticatedContent, encodeAuthenticatedContent } from 'ts-mls/authenticatedContent.js';
import { createConfirmedHash, createInterimHash } from 'ts-mls/transcriptHash.js';
import { caseName, hex, loadVectors, suiteImpl, toHex } from './vectors/load.ts';

type TranscriptHashes = {
  cipher_suite: number;
  confirmation_key: string;
  authenticated_content: string;
  interim_transcript_hash_before: string;
  confirmed_transcript_hash_after: string;
  interim_transcript_hash_after: string;
};

const vectors = loadVectors<TranscriptHashes>('transcript-hashes.json');

describe('RFC 9420 vectors: transcript-hashes', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i), async () => {
      const cs = await suiteImpl(v.cipher_suite);
      const decoded = decodeAuthenticatedContent(hex(v.authenticated_content), 0);
      assert.ok(decoded, 'AuthenticatedContent decodes');
      const [ac] = decoded;
      // The codec is exact: re-encoding gives the vector's bytes.
      assert.equal(toHex(encodeAuthenticatedContent(ac)), v.authenticated_content);
      assert.equal(ac.content.contentType, 'commit');
      assert.equal(ac.auth.contentType, 'commit');
      if (ac.content.contentType !== 'commit' || ac.auth.contentType !== 'commit') return;

      // confirmation_tag = MAC(confirmation_key, confirmed_transcript_hash_after); HMAC is
      // deterministic, so ours is the vector's tag byte for byte.
      const tag = await cs.hash.mac(hex(v.confirmation_key), hex(v.confirmed_transcript_hash_after));
      assert.equal(toHex(tag), toHex(ac.auth.confirmationTag), 'confirmation_tag');
      assert.equal(await cs.hash.verifyMac(hex(v.confirmation_key), ac.auth.confirmationTag, hex(v.confirmed_transcript_hash_after)), true);

      const confirmed = await createConfirmedHash(
        hex(v.interim_transcript_hash_before),
        { wireformat: ac.wireformat, content: ac.content, signature: ac.auth.signature },
        cs.hash,
      );
      assert.equal(toHex(confirmed), v.confirmed_transcript_hash_after, 'confirmed_transcript_hash');
      const interim = await createInterimHash(confirmed, ac.auth.confirmationTag, cs.hash);
      assert.equal(toHex(interim), v.interim_transcript_hash_after, 'interim_transcript_hash');
    });
  }
});
