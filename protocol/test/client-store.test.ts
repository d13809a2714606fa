import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { indexedDB } from 'fake-indexeddb';
import { IndexedDBStore, MemoryStore } from '../src/client/index.ts';
import { FileStore } from '../src/client/node.ts';
import { clientStoreContract } from './client-store.contract.ts';

const root = await mkdtemp(join(tmpdir(), 'sb-client-store-'));
after(() => rm(root, { recursive: true, force: true }));
let n = 0;

clientStoreContract('MemoryStore', async () => ({ store: new MemoryStore() }));

clientStoreContract('FileStore', async () => {
  const path = join(root, `store-${++n}`, 'state');
  return { store: new FileStore(path), reopen: async () => new FileStore(path) };
});

// A tiny compaction threshold, so the contract also runs across snapshot swaps.
clientStoreContract('FileStore (compacting every 2 records)', async () => {
  const path = join(root, `store-${++n}`, 'state');
  return { store: new FileStore(path, { compactAfter: 2 }), reopen: async () => new FileStore(path, { compactAfter: 2 }) };
});

clientStoreContract('IndexedDBStore (fake-indexeddb)', async () => {
  const name = `switchboard-${++n}`;
  return { store: await IndexedDBStore.open(name, indexedDB), reopen: () => IndexedDBStore.open(name, indexedDB) };
});
