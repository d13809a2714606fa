import { committed, openDatabase, request, type IdbDatabase, type IdbFactory, type IdbTransaction } from './idb.ts';
import type { ClientStore, PendingSend, StoredState } from './store.ts';

export type { IdbFactory };

/** An outbox row: the send plus its place in insertion order. */
interface OutboxRow extends PendingSend {
  order: number;
}

const VERSION = 1;

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
    const upgrade = (db: IdbDatabase) => {
      const outbox = db.createObjectStore('outbox', { keyPath: 'cmid' });
      outbox.createIndex('order', 'order', { unique: true });
      db.createObjectStore('cursors', { keyPath: 'conv' });
    };
    const missing = 'IndexedDB is not available here (in Node use FileStore from @switchboard/protocol/client/node)';
    return new IndexedDBStore(await openDatabase(name, VERSION, upgrade, missing, factory));
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
