import type { ClientStore, PendingSend, StoredState } from './store.ts';

// The part of the IndexedDB API used here, declared locally so this file type-checks without
// the DOM library (the edge compiles protocol/src against Workers types) and accepts any
// conforming factory (the browser's, or fake-indexeddb in tests).
type Handler = ((ev: never) => unknown) | null;
interface IdbRequest<T> {
  readonly result: T;
  readonly error: Error | null;
  onsuccess: Handler;
  onerror: Handler;
}
interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: Handler;
  onblocked: Handler;
}
interface IdbCursor {
  readonly value: unknown;
}
interface IdbIndex {
  getAll(): IdbRequest<unknown[]>;
  openCursor(query: null, direction: 'prev'): IdbRequest<IdbCursor | null>;
}
interface IdbObjectStore {
  get(key: string): IdbRequest<unknown>;
  getAll(): IdbRequest<unknown[]>;
  add(value: unknown): IdbRequest<unknown>;
  put(value: unknown): IdbRequest<unknown>;
  delete(key: string): IdbRequest<unknown>;
  index(name: string): IdbIndex;
  createIndex(name: string, keyPath: string, options?: { unique?: boolean }): unknown;
}
interface IdbTransaction {
  readonly error: Error | null;
  objectStore(name: string): IdbObjectStore;
  oncomplete: Handler;
  onerror: Handler;
  onabort: Handler;
}
interface IdbDatabase {
  createObjectStore(name: string, options?: { keyPath?: string }): IdbObjectStore;
  transaction(stores: string[], mode: 'readonly' | 'readwrite', options?: { durability?: 'default' | 'strict' | 'relaxed' }): IdbTransaction;
  close(): void;
  onversionchange: Handler;
}
export interface IdbFactory {
  open(name: string, version?: number): IdbOpenRequest;
}

/** An outbox row: the send plus its place in insertion order. */
interface OutboxRow extends PendingSend {
  order: number;
}

const VERSION = 1;

function request<T>(req: IdbRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Resolves when the transaction has committed (and, with durability 'strict', is on disk). */
function committed(tx: IdbTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

/**
 * The browser store: object stores `outbox` (by cmid, with an `order` index for insertion order)
 * and `cursors` (by conv). Each write is one readwrite transaction, asking for 'strict'
 * durability where the browser supports it, and resolves when that transaction completes; a
 * check-then-write (idempotent put, forward-only cursor) happens inside that one transaction.
 * Transactions on the same stores run in the order they were created, so writes apply in call
 * order.
 */
export class IndexedDBStore implements ClientStore {
  private constructor(private readonly db: IdbDatabase) {}

  /** Opens (creating or upgrading) the database `name`; `factory` defaults to the global `indexedDB`. */
  static async open(name = 'switchboard', factory?: IdbFactory): Promise<IndexedDBStore> {
    const idb = factory ?? (globalThis as { indexedDB?: IdbFactory }).indexedDB;
    if (!idb) throw new Error('IndexedDB is not available here (in Node use FileStore from @switchboard/protocol/client/node)');
    const req = idb.open(name, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      const outbox = db.createObjectStore('outbox', { keyPath: 'cmid' });
      outbox.createIndex('order', 'order', { unique: true });
      db.createObjectStore('cursors', { keyPath: 'conv' });
    };
    req.onblocked = () => {};
    const db = await request(req);
    // Another tab wants a newer schema: step aside rather than block it (later calls then fail).
    db.onversionchange = () => db.close();
    return new IndexedDBStore(db);
  }

  async load(): Promise<StoredState> {
    const tx = this.db.transaction(['outbox', 'cursors'], 'readonly');
    const [rows, cursorRows] = await Promise.all([
      request(tx.objectStore('outbox').index('order').getAll()) as Promise<OutboxRow[]>,
      request(tx.objectStore('cursors').getAll()) as Promise<{ conv: string; seq: number }[]>,
    ]);
    return {
      outbox: rows.map(({ conv, cmid, body, createdAt }) => ({ conv, cmid, body, createdAt })),
      cursors: Object.fromEntries(cursorRows.map((c) => [c.conv, c.seq])),
    };
  }

  async putPending(p: PendingSend): Promise<void> {
    const tx = this.write('outbox');
    const store = tx.objectStore('outbox');
    // Plain callbacks, not promises, between requests: the transaction must still be active.
    const existing = store.get(p.cmid);
    existing.onsuccess = () => {
      if (existing.result !== undefined) return;
      const last = store.index('order').openCursor(null, 'prev');
      last.onsuccess = () => {
        const order = ((last.result?.value as OutboxRow | undefined)?.order ?? 0) + 1;
        const row: OutboxRow = { conv: p.conv, cmid: p.cmid, body: p.body, createdAt: p.createdAt, order };
        store.add(row);
      };
    };
    return committed(tx);
  }

  async removePending(cmid: string): Promise<void> {
    const tx = this.write('outbox');
    tx.objectStore('outbox').delete(cmid);
    return committed(tx);
  }

  async setCursor(conv: string, seq: number): Promise<void> {
    const tx = this.write('cursors');
    const store = tx.objectStore('cursors');
    const current = store.get(conv);
    current.onsuccess = () => {
      if (seq > ((current.result as { seq: number } | undefined)?.seq ?? 0)) store.put({ conv, seq });
    };
    return committed(tx);
  }

  async close(): Promise<void> {
    this.db.close();
  }

  private write(store: string): IdbTransaction {
    return this.db.transaction([store], 'readwrite', { durability: 'strict' });
  }
}
