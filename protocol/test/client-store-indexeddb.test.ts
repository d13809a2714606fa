import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IDBFactory } from 'fake-indexeddb';
import { IndexedDBStore } from '../src/client/index.ts';

const send = (cmid: string) => ({ conv: 'c1', cmid, body: cmid, createdAt: 1 });

describe('IndexedDBStore', () => {
  it('imports in Node, and opening without IndexedDB fails with a pointer to FileStore', async () => {
    assert.equal((globalThis as { indexedDB?: unknown }).indexedDB, undefined);
    await assert.rejects(IndexedDBStore.open(), /IndexedDB is not available.*FileStore/);
  });

  it('uses the global indexedDB by default', async () => {
    const g = globalThis as { indexedDB?: unknown };
    g.indexedDB = new IDBFactory();
    try {
      const store = await IndexedDBStore.open();
      await store.putPending(send('a'));
      const again = await IndexedDBStore.open('switchboard');
      assert.deepEqual((await again.load()).outbox, [send('a')]);
      await store.close();
      await again.close();
    } finally {
      delete g.indexedDB;
    }
  });

  it('steps aside for another tab upgrading the database; later calls reject', async () => {
    const factory = new IDBFactory();
    const store = await IndexedDBStore.open('db', factory);
    await store.putPending(send('a'));
    const upgrade = factory.open('db', 2);
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      upgrade.onsuccess = () => resolve(upgrade.result);
      upgrade.onerror = () => reject(upgrade.error);
    });
    db.close();
    await assert.rejects(store.putPending(send('b')));
    await store.close();
  });
});
