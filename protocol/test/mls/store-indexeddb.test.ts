import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IDBFactory } from 'fake-indexeddb';
import { E2eDevice, IndexedDBMlsStore, mlsDatabaseName, type E2eHttp } from '../../src/client/mls/index.ts';

const bytes = (...b: number[]) => new Uint8Array(b);

describe('IndexedDBMlsStore', () => {
  it('imports in Node, and opening without IndexedDB fails with a pointer to FileMlsStore', async () => {
    assert.equal((globalThis as { indexedDB?: unknown }).indexedDB, undefined);
    await assert.rejects(IndexedDBMlsStore.open('x'), /IndexedDB is not available.*FileMlsStore/);
  });

  it('gets, puts, deletes and lists keys by prefix; a reopened database has what was written', async () => {
    const factory = new IDBFactory();
    const name = mlsDatabaseName('ann', 'web-1');
    assert.equal(name, 'switchboard-mls:ann:web-1');
    const store = await IndexedDBMlsStore.open(name, factory);
    assert.equal(await store.get('identity'), null);
    await store.put('identity', bytes(1, 2, 3));
    for (const k of ['group/c2', 'group/c1', 'kp/ab', 'kp/aa', 'sent/x', 'groupie', 'a']) await store.put(k, bytes(k.length));
    assert.deepEqual(await store.get('identity'), bytes(1, 2, 3));
    assert.deepEqual(await store.keys('kp/'), ['kp/aa', 'kp/ab']);
    assert.deepEqual(await store.keys('group/'), ['group/c1', 'group/c2']);
    assert.deepEqual(await store.keys('zzz'), []);
    assert.equal((await store.keys('')).length, 8);
    await store.delete('kp/aa');
    await store.delete('kp/none');
    assert.deepEqual(await store.keys('kp/'), ['kp/ab']);
    await store.put('identity', bytes(9));
    await store.close();

    const again = await IndexedDBMlsStore.open(name, factory);
    assert.deepEqual(await again.get('identity'), bytes(9));
    assert.deepEqual(await again.keys('kp/'), ['kp/ab']);
    const other = await IndexedDBMlsStore.open(mlsDatabaseName('ann', 'web-2'), factory);
    assert.deepEqual(await other.keys(''), [], 'one database per user and device');
    await again.close();
    await other.close();
  });

  it('stores exactly the bytes given: a view into a larger buffer, and later changes to the caller’s array, do not leak in', async () => {
    const store = await IndexedDBMlsStore.open('db', new IDBFactory());
    const big = bytes(0, 1, 2, 3, 4, 5);
    const view = big.subarray(2, 4);
    await store.put('k', view);
    big[2] = 99;
    const got = await store.get('k');
    assert.ok(got instanceof Uint8Array);
    assert.deepEqual(got, bytes(2, 3));
    await store.close();
  });

  it('writes in call order, each durable when it resolves', async () => {
    const factory = new IDBFactory();
    const store = await IndexedDBMlsStore.open('order', factory);
    await Promise.all([store.put('k', bytes(1)), store.put('k', bytes(2)), store.delete('k'), store.put('k', bytes(3))]);
    assert.deepEqual(await (await IndexedDBMlsStore.open('order', factory)).get('k'), bytes(3));
    await store.close();
  });

  it('an E2eDevice keeps its keys in it: reopened, it is the same device', async () => {
    const factory = new IDBFactory();
    const http: E2eHttp = { call: () => Promise.reject(new Error('no network in this test')) };
    const open = async () => E2eDevice.open({ user: 'ann', device: 'web-1', store: await IndexedDBMlsStore.open(mlsDatabaseName('ann', 'web-1'), factory), http });
    const first = await open();
    first.close();
    const again = await open();
    assert.deepEqual(again.identityKey, first.identityKey);
    assert.deepEqual(again.trust.known('ann'), first.identityKey);
  });

  it('steps aside for another tab upgrading the database; later calls reject', async () => {
    const factory = new IDBFactory();
    const store = await IndexedDBMlsStore.open('db', factory);
    await store.put('a', bytes(1));
    const upgrade = factory.open('db', 2);
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      upgrade.onsuccess = () => resolve(upgrade.result);
      upgrade.onerror = () => reject(upgrade.error);
    });
    db.close();
    await assert.rejects(store.put('b', bytes(2)));
  });
});
