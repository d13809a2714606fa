/**
 * RFC 9420 test vectors, passive-client-random family (see vectors/README.md), against the pinned
 * ts-mls: a client that joins by Welcome and follows the group's Commits must reach the same
 * epoch_authenticator as the implementation that made the vectors, after the join and after every
 * Commit (the procedure is in vectors/passive-client.ts).
 *
 * This family is one long random scenario (200 epochs upstream, the first 40 kept, see
 * vectors/README.md), by random members: batches of Add proposals committed by reference,
 * Commits removing several members by value, and Commits with only an UpdatePath (in these 40
 * epochs: 281 Adds; 20 Commits by reference, 17 with Removes, 3 with only an UpdatePath). It is
 * the closest the vectors get to a real group's life. All its messages are PublicMessages.
 */
import { describe, it } from 'node:test';
import { caseName, loadVectors, suiteImpl } from './vectors/load.ts';
import { describeScenario, playScenario, type PassiveClient } from './vectors/passive-client.ts';

const vectors = loadVectors<PassiveClient>('passive-client-random.json');

describe('RFC 9420 vectors: passive-client-random', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, describeScenario(v)), async () => {
      await playScenario(v, await suiteImpl(v.cipher_suite));
    });
  }
});
