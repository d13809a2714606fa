export * from './client.ts';
export * from './http.ts';
export * from './consent.ts';
export * from './store.ts';
export * from './store-indexeddb.ts';
