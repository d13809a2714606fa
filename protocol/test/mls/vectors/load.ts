/**
 * Shared by the protocol/test/mls/vectors-*.test.ts files: reads a vector file of this folder,
 * converts hex, and gives the ts-mls implementation of a cipher suite (see README.md here).
 */
import { readFileSync } from 'node:fs';
import { getCiphersuiteFromId, type CiphersuiteId, type CiphersuiteImpl } from 'ts-mls/crypto/ciphersuite.js';
import { getCiphersuiteImpl } from 'ts-mls/crypto/getCiphersuiteImpl.js';

/** The entries of one vector file of this folder (written by extract.ts), e.g. `'key-schedule.json'`. */
export function loadVectors<T>(file: string): T[] {
  const entries = JSON.parse(readFileSync(new URL(file, import.meta.url), 'utf8')) as T[];
  if (!Array.isArray(entries) || entries.length === 0) throw new Error(`${file}: no vectors`);
  return entries;
}

/** Hex from a vector to bytes (a plain Uint8Array, not a Buffer). Refuses anything that is not hex. */
export function hex(s: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/i.test(s)) throw new Error(`not hex: ${s.slice(0, 40)}`);
  return Uint8Array.from(Buffer.from(s, 'hex'));
}

/** Bytes to lower-case hex, the vectors' form: comparing hex strings is comparing byte for byte. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

const impls = new Map<number, Promise<CiphersuiteImpl>>();

/** ts-mls' default (WebCrypto) implementation of cipher suite `id`, made once per process. */
export function suiteImpl(id: number): Promise<CiphersuiteImpl> {
  let impl = impls.get(id);
  if (!impl) {
    impl = getCiphersuiteImpl(getCiphersuiteFromId(id as CiphersuiteId));
    impls.set(id, impl);
  }
  return impl;
}

/** A test title for entry `i` of a per-suite family: `suite 1 case 3`, then `what` if given. */
export const caseName = (v: { cipher_suite: number }, i: number, what = '') =>
  `suite ${v.cipher_suite} case ${i}${what ? `: ${what}` : ''}`;
