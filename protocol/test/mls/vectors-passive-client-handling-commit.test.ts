/**
 * RFC 9420 test vectors, passive-client-handling-commit family (see vectors/README.md), against
 * the pinned ts-mls: a client that joins by Welcome and follows the group's Commits must reach the
 * same epoch_authenticator as the implementation that made the vectors, after the join and after
 * every Commit (the procedure is in vectors/passive-client.ts).
 *
 * This family is a join then two Commits, the second one covering a kind of Commit a member must
 * handle: proposals by value (add, remove, external PSK, GroupContextExtensions, several at once)
 * or by reference (the same, plus update), with or without an UpdatePath. All the messages of
 * these vectors are PublicMessages; PrivateMessage framing is covered by message-protection.
 */
import { describe, it } from 'node:test';
import { caseName, loadVectors, suiteImpl } from './vectors/load.ts';
import { describeScenario, playScenario, type PassiveClient } from './vectors/passive-client.ts';

const vectors = loadVectors<PassiveClient>('passive-client-handling-commit.json');

describe('RFC 9420 vectors: passive-client-handling-commit', () => {
  for (const [i, v] of vectors.entries()) {
    it(caseName(v, i, describeScenario(v)), async () => {
      await playScenario(v, await suiteImpl(v.cipher_suite));
    });
  }
});
