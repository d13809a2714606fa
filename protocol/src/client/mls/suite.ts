import { getCiphersuiteFromName, type CiphersuiteImpl } from 'ts-mls/crypto/ciphersuite.js';
import { getCiphersuiteImpl } from 'ts-mls/crypto/getCiphersuiteImpl.js';

/**
 * The one cipher suite Switchboard speaks: RFC 9420's mandatory one, on the platform's WebCrypto
 * (Node 20, Chromium, workerd) with no extra primitives.
 */
export const MLS_SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const;

let impl: Promise<CiphersuiteImpl> | undefined;

/** The suite's implementation (made once per process). */
export function mlsSuite(): Promise<CiphersuiteImpl> {
  impl ??= getCiphersuiteImpl(getCiphersuiteFromName(MLS_SUITE));
  return impl;
}

/** Lifetime of a KeyPackage we make: 90 days from an hour ago (clock skew). */
export function keyPackageLifetime(now = Date.now()): { notBefore: bigint; notAfter: bigint } {
  const s = BigInt(Math.floor(now / 1000));
  return { notBefore: s - 3600n, notAfter: s + 90n * 86_400n };
}

export { b64 } from './b64.ts';
