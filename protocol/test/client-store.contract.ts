import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClientStore, PendingSend } from '../src/client/index.ts';

export interface StoreHarness {
  store: ClientStore;
  /**
   * A new instance on the same storage (same file, same database name), as after a reload; the
   * old instance is left open, as after a crash. Absent for stores that keep nothing beyond the
   * object (MemoryStore): the persistence cases are then skipped with that reason.
   */
  reopen?: () => Promise<ClientStore>;
}

const send = (cmid: string, createdAt = 1000, conv = 'c1'): PendingSend => ({ conv, cmid, body: `body of ${cmid}`, createdAt });
const cmids = async (s: ClientStore) => (await s.load()).outbox.map((p) => p.cmid);

/** Every promise of the `ClientStore` doc, for one implementation. `make` gives a fresh, empty store. */
export function clientStoreContract(name: string, make: () => Promise<StoreHarness>): void {
  /** Runs `body` on a fresh store and closes every instance it opened. */
  const withStore = (body: (h: StoreHarness) => Promise<void>) => async () => {
    const h = await make();
    const opened: ClientStore[] = [h.store];
    const reopen = h.reopen && (async () => {
      const s = await h.reopen!();
      opened.push(s);
      return s;
    });
    try {
      await body({ store: h.store, ...(reopen && { reopen }) });
    } finally {
      for (const s of opened.reverse()) await s.close();
    }
  };
  /** A persistence case: skipped, with the reason, for a store that cannot reopen. */
  const durable = (title: string, body: (store: ClientStore, reopen: () => Promise<ClientStore>) => Promise<void>) =>
    it(title, async (t) => {
      await withStore(async (h) => {
        if (!h.reopen) return void t.skip(`${name} keeps nothing beyond the object: no reopen`);
        await body(h.store, h.reopen);
      })();
    });

  describe(`ClientStore contract: ${name}`, () => {
    it('starts empty', withStore(async ({ store }) => {
      assert.deepEqual(await store.load(), { outbox: [], cursors: {} });
    }));

    it('returns the outbox in insertion order, whole', withStore(async ({ store }) => {
      // Neither cmid order nor createdAt order: only insertion order gives c, a, b.
      await store.putPending(send('c', 3000));
      await store.putPending(send('a', 1000, 'c2'));
      await store.putPending(send('b', 2000));
      assert.deepEqual((await store.load()).outbox, [send('c', 3000), send('a', 1000, 'c2'), send('b', 2000)]);
    }));

    it('keeps call order for writes not awaited one by one', withStore(async ({ store }) => {
      const ids = Array.from({ length: 50 }, (_, i) => `m${String(49 - i).padStart(2, '0')}`);
      await Promise.all(ids.map((id, i) => store.putPending(send(id, i))));
      assert.deepEqual(await cmids(store), ids);
    }));

    it('ignores putPending of a cmid already stored, keeping its content and place', withStore(async ({ store }) => {
      await store.putPending(send('a'));
      await store.putPending(send('b'));
      await store.putPending({ ...send('a'), body: 'changed', createdAt: 9 });
      assert.deepEqual((await store.load()).outbox, [send('a'), send('b')]);
    }));

    it('removes only the given cmid; an unknown cmid changes nothing', withStore(async ({ store }) => {
      for (const id of ['a', 'b', 'c']) await store.putPending(send(id));
      await store.removePending('b');
      await store.removePending('nope');
      assert.deepEqual(await cmids(store), ['a', 'c']);
    }));

    it('stores a cmid again after its removal, at the end', withStore(async ({ store }) => {
      await store.putPending(send('a'));
      await store.putPending(send('b'));
      await store.removePending('a');
      await store.putPending(send('a'));
      assert.deepEqual(await cmids(store), ['b', 'a']);
    }));

    it('moves cursors only forward, per conversation', withStore(async ({ store }) => {
      await store.setCursor('c1', 5);
      await store.setCursor('c1', 3);
      await store.setCursor('c2', 1);
      assert.deepEqual((await store.load()).cursors, { c1: 5, c2: 1 });
      await store.setCursor('c1', 8);
      await store.setCursor('c2', 1);
      assert.deepEqual((await store.load()).cursors, { c1: 8, c2: 1 });
    }));

    it('keeps the highest cursor among concurrent calls', withStore(async ({ store }) => {
      await Promise.all([4, 9, 2, 7].map((seq) => store.setCursor('c1', seq)));
      assert.deepEqual((await store.load()).cursors, { c1: 9 });
    }));

    durable('has every resolved write after a reopen without close (crash)', async (store, reopen) => {
      for (const id of ['c', 'a', 'b', 'd']) await store.putPending(send(id, id.charCodeAt(0)));
      await store.removePending('b');
      await store.setCursor('c1', 12);
      await store.setCursor('c2', 3);
      await store.setCursor('c1', 4);
      const again = await reopen();
      assert.deepEqual(await again.load(), {
        outbox: ['c', 'a', 'd'].map((id) => send(id, id.charCodeAt(0))),
        cursors: { c1: 12, c2: 3 },
      });
    });

    durable('has every resolved write after close and reopen (reload)', async (store, reopen) => {
      await Promise.all(['x', 'y', 'z'].map((id) => store.putPending(send(id))));
      await store.setCursor('c1', 2);
      await store.close();
      const again = await reopen();
      assert.deepEqual(await again.load(), { outbox: [send('x'), send('y'), send('z')], cursors: { c1: 2 } });
    });

    durable('keeps its promises across reopens: idempotent put, forward-only cursors, order', async (store, reopen) => {
      await store.putPending(send('a'));
      await store.setCursor('c1', 10);
      const second = await reopen();
      await second.putPending({ ...send('a'), body: 'changed' });
      await second.putPending(send('b'));
      await second.setCursor('c1', 9);
      const third = await reopen();
      assert.deepEqual(await third.load(), { outbox: [send('a'), send('b')], cursors: { c1: 10 } });
      await third.removePending('a');
      await third.putPending(send('a'));
      const fourth = await reopen();
      assert.deepEqual(await cmids(fourth), ['b', 'a']);
    });
  });
}
