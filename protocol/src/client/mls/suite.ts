import { getCiphersuiteFromName, type CiphersuiteImpl } from 'ts-mls/crypto/ciphersuite.js';
import { getCiphersuiteImpl } from 'ts-mls/crypto/getCiphersuiteImpl.js';

/**
 * The one cipher suite Switchboard speaks: RFC 9420's mandatory one, on the platform's WebCrypto
 * (Node 20, Chromium, workerd) with no extra primitives.
 */
export const MLS_SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const;
export const MLS_SUITE_ID = 1;

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

export const b64 = {
  encode(bytes: Uint8Array): string {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
  decode(text: string): Uint8Array {
    const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  },
};
