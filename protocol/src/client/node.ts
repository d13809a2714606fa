/** Node-only parts of the client SDK (they import node:fs): kept out of `./client` so browser bundles never see them. */
export { FileStore, StoreCorruptError, type FileStoreOptions } from './store-file.ts';
export { FileMlsStore } from './mls/store-file.ts';
