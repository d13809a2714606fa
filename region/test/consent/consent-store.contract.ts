import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Storage } from '../../src/storage/storage.ts';
import { runId } from '../engines.ts';

/**
 * The ConsentStore contract (src/consent/consent-store.ts), for any Storage. `make` returns a new,
 * not yet initialized instance over the same store each time; ids are unique per run.
 */
export function consentStoreContract(name: string, make: () => Promise<Storage>): void {
  describe(`consent store contract: ${name}`, () => {
    let storage: Storage;
    const run = runId();
    let n = 0;
    const user = (s: string) => `${s}${run}_${++n}`;
    const conv = () => `c${run}_${++n}`;

    before(async () => {
      storage = await make();
      await storage.init();
    });
    after(async () => {
      await storage.close();
    });

    it('a block is seen both ways by blockedBetween, listed by its blocker only, and lifted by unblock', async () => {
      const [ann, bob, cat] = [user('ann'), user('bob'), user('cat')];
      assert.deepEqual([...(await storage.blockedBetween(ann, [bob, cat]))], []);
      await storage.block(ann, bob, 1_000);
      await storage.block(ann, bob, 2_000); // again: one block, the latest time
      assert.deepEqual([...(await storage.blockedBetween(ann, [bob, cat]))], [bob]);
      assert.deepEqual([...(await storage.blockedBetween(bob, [ann, cat]))], [ann], 'the blocked side sees it too');
      assert.deepEqual([...(await storage.blockedBetween(cat, [ann, bob]))], []);
      assert.deepEqual(await storage.blocksOf(ann), [{ user: bob, at: 2_000 }]);
      assert.deepEqual(await storage.blocksOf(bob), [], 'being blocked is not a block of one’s own');
      await storage.block(ann, cat, 3_000);
      assert.deepEqual((await storage.blocksOf(ann)).map((b) => b.user), [cat, bob], 'newest first');
      await storage.unblock(ann, bob);
      await storage.unblock(ann, bob); // nothing to do: no error
      assert.deepEqual([...(await storage.blockedBetween(bob, [ann]))], []);
      assert.deepEqual(await storage.blocksOf(ann), [{ user: cat, at: 3_000 }]);
    });

    it('presence visibility: absent until set, then the latest setting', async () => {
      const [ann, bob] = [user('ann'), user('bob')];
      assert.equal((await storage.presenceVisibility([ann, bob])).size, 0);
      await storage.setPresenceVisibility(ann, 'nobody');
      await storage.setPresenceVisibility(ann, 'contacts');
      await storage.setPresenceVisibility(bob, 'everyone');
      const v = await storage.presenceVisibility([ann, bob, user('cat')]);
      assert.equal(v.get(ann), 'contacts');
      assert.equal(v.get(bob), 'everyone');
      assert.equal(v.size, 2);
    });

    it('requests: set (idempotent), listed by user and by conversation, cleared per user', async () => {
      const [ann, bob, cat] = [user('ann'), user('bob'), user('cat')];
      const [c1, c2] = [conv(), conv()];
      await storage.setRequests([
        { conv: c1, user: bob, by: ann, at: 10 },
        { conv: c1, user: cat, by: ann, at: 10 },
        { conv: c2, user: bob, by: cat, at: 20 },
      ]);
      await storage.setRequests([{ conv: c1, user: bob, by: ann, at: 10 }]);
      assert.deepEqual(
        (await storage.requestsOf(bob)).sort((a, b) => (a.conv < b.conv ? -1 : 1)),
        [
          { conv: c1, user: bob, by: ann, at: 10 },
          { conv: c2, user: bob, by: cat, at: 20 },
        ],
      );
      assert.deepEqual(await storage.requestsIn(c1), [bob, cat].sort());
      await storage.clearRequests(c1, [bob]);
      await storage.clearRequests(c1, [bob]); // again: harmless
      assert.deepEqual(await storage.requestsIn(c1), [cat]);
      assert.deepEqual((await storage.requestsOf(bob)).map((r) => r.conv), [c2]);
      assert.deepEqual(await storage.requestsOf(ann), []);
    });

    it('a second instance over the same store reads the same state', async () => {
      const [ann, bob] = [user('ann'), user('bob')];
      const c = conv();
      await storage.block(ann, bob, 5);
      await storage.setPresenceVisibility(bob, 'nobody');
      await storage.setRequests([{ conv: c, user: bob, by: ann, at: 7 }]);
      const other = await make();
      await other.init();
      try {
        assert.deepEqual([...(await other.blockedBetween(bob, [ann]))], [ann]);
        assert.equal((await other.presenceVisibility([bob])).get(bob), 'nobody');
        assert.deepEqual(await other.requestsIn(c), [bob]);
      } finally {
        await other.close();
      }
    });
  });
}
