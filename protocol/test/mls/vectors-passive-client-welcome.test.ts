/**
 * RFC 9420 test vectors, passive-client-welcome family (see vectors/README.md), against the
 * pinned ts-mls: a client that joins by Welcome must reach the same epoch_authenticator as the
 * implementation that made the vectors (the procedure is in vectors/passive-client.ts).
 *
 * This family is joins only, no later epochs: Welcomes whose ratchet tree is in the GroupInfo's
 * ratchet_tree extension or given out of band, with and without an external PSK.
 */
import { describe, it } from 'node:test';
import { caseName, loadVectors, suiteImpl } from './vectors/load.ts';
import { describeScenario, playScenario, type PassiveClient } from './vectors/passive-client.ts';

const vectors = loadVectors<PassiveClient>('passive-client-welcome.json');

describe('RFC 9420 vectors: passive-client-welcome', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, describeScenario(v)), async () => {
      await playScenario(v, await suiteImpl(v.cipher_suite));
    });
  }
});
