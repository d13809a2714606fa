// The part of the IndexedDB API the browser stores use (store-indexeddb.ts, mls/store-indexeddb.ts),
// declared here so they type-check without the DOM library (the edge compiles protocol/src
// against Workers types) and accept any conforming factory: the browser's, or fake-indexeddb in tests.

type Handler = ((ev: never) => unknown) | null;
export interface IdbRequest<T> {
  readonly result: T;
  readonly error: Error | null;
  onsuccess: Handler;
  onerror: Handler;
}
export interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: Handler;
  onblocked: Handler;
}
export interface IdbCursor {
  readonly value: unknown;
}
export interface IdbKeyCursor {
  readonly key: unknown;
  continue(key?: string): void;
}
export interface IdbIndex {
  getAll(): IdbRequest<unknown[]>;
  openCursor(query: null, direction: 'prev'): IdbRequest<IdbCursor | null>;
}
export interface IdbObjectStore {
  get(key: string): IdbRequest<unknown>;
  getAll(): IdbRequest<unknown[]>;
  add(value: unknown): IdbRequest<unknown>;
  /** `key`: for a store without a keyPath. */
  put(value: unknown, key?: string): IdbRequest<unknown>;
  delete(key: string): IdbRequest<unknown>;
  index(name: string): IdbIndex;
  createIndex(name: string, keyPath: string, options?: { unique?: boolean }): unknown;
  openKeyCursor(): IdbRequest<IdbKeyCursor | null>;
}
export interface IdbTransaction {
  readonly error: Error | null;
  objectStore(name: string): IdbObjectStore;
  oncomplete: Handler;
  onerror: Handler;
  onabort: Handler;
}
export interface IdbDatabase {
  createObjectStore(name: string, options?: { keyPath?: string }): IdbObjectStore;
  transaction(stores: string[], mode: 'readonly' | 'readwrite', options?: { durability?: 'default' | 'strict' | 'relaxed' }): IdbTransaction;
  close(): void;
  onversionchange: Handler;
}
export interface IdbFactory {
  open(name: string, version?: number): IdbOpenRequest;
}

export function request<T>(req: IdbRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Resolves when the transaction has committed (and, with durability 'strict', is on disk). */
export function committed(tx: IdbTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

/**
 * Opens (creating or upgrading) the database `name` from `factory` (default: the global
 * `indexedDB`; `missing` is the error's text without it). Another tab wanting a newer schema
 * makes it step aside rather than block (later calls then fail).
 */
export async function openDatabase(name: string, version: number, upgrade: (db: IdbDatabase) => void, missing: string, factory?: IdbFactory): Promise<IdbDatabase> {
  const idb = factory ?? (globalThis as { indexedDB?: IdbFactory }).indexedDB;
  if (!idb) throw new Error(missing);
  const req = idb.open(name, version);
  req.onupgradeneeded = () => upgrade(req.result);
  req.onblocked = () => {};
  const db = await request(req);
  db.onversionchange = () => db.close();
  return db;
}
