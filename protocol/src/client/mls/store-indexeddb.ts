import { committed, openDatabase, type IdbDatabase, type IdbFactory, type IdbTransaction } from '../idb.ts';
import type { MlsStore } from './store.ts';

export type MlsIdbFactory = IdbFactory;

const VERSION = 1;
const KV = 'kv';

/** The database of one device of one user: its keys and group states are nobody else's. */
export function mlsDatabaseName(user: string, device: string): string {
  return `switchboard-mls:${user}:${device}`;
}

/**
 * MlsStore in a browser: one object store `kv` of Uint8Array values under string keys. Every
 * write is one readwrite transaction asking for 'strict' durability where the browser supports it
 * and resolves when that transaction completes (the MlsStore contract: a group state is durable
 * before the message that moved it is acked). Transactions on one store run in the order they
 * were created, so writes apply in call order.
 */
export class IndexedDBMlsStore implements MlsStore {
  private constructor(private readonly db: IdbDatabase) {}

  /** Opens (creating) the database `name` (see mlsDatabaseName); `factory` defaults to the global `indexedDB`. */
  static async open(name: string, factory?: MlsIdbFactory): Promise<IndexedDBMlsStore> {
    const missing = 'IndexedDB is not available here (in Node use FileMlsStore from @switchboard/protocol/client/node)';
    return new IndexedDBMlsStore(await openDatabase(name, VERSION, (db) => void db.createObjectStore(KV), missing, factory));
  }

  async get(key: string): Promise<Uint8Array | null> {
    const tx = this.db.transaction([KV], 'readonly');
    const req = tx.objectStore(KV).get(key);
    await committed(tx);
    const v = req.result;
    if (v === undefined || v === null) return null;
    if (v instanceof Uint8Array) return v;
    if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice();
    if (v instanceof ArrayBuffer) return new Uint8Array(v.slice(0));
    throw new Error(`MLS store: ${JSON.stringify(key)} holds no bytes`);
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    const tx = this.write();
    // A copy of exactly these bytes (not the rest of a larger buffer it may view).
    tx.objectStore(KV).put(value.slice(), key);
    return committed(tx);
  }

  async delete(key: string): Promise<void> {
    const tx = this.write();
    tx.objectStore(KV).delete(key);
    return committed(tx);
  }

  /** Keys starting with `prefix`, in key order: a key cursor jumps to `prefix` and stops past the last match. */
  async keys(prefix: string): Promise<string[]> {
    const tx = this.db.transaction([KV], 'readonly');
    const out: string[] = [];
    const req = tx.objectStore(KV).openKeyCursor();
    req.onsuccess = () => {
      const cursor = req.result;
      if (!cursor) return;
      const key = String(cursor.key);
      if (key < prefix) return cursor.continue(prefix);
      if (!key.startsWith(prefix)) return;
      out.push(key);
      cursor.continue();
    };
    await committed(tx);
    return out;
  }

  async close(): Promise<void> {
    this.db.close();
  }

  private write(): IdbTransaction {
    return this.db.transaction([KV], 'readwrite', { durability: 'strict' });
  }
}
