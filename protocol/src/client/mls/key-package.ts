import type { Credential } from 'ts-mls/credential.js';
import { defaultCapabilities } from 'ts-mls/defaultCapabilities.js';
import { generateKeyPackageWithKey, verifyKeyPackage, type KeyPackage, type PrivateKeyPackage } from 'ts-mls/keyPackage.js';
import { decodeMlsMessage, encodeMlsMessage } from 'ts-mls/message.js';
import { decodeCredential, verifyCredential, type DeviceCredential, type SignatureKeyPair } from './identity.ts';
import { keyPackageLifetime, MLS_SUITE, mlsSuite } from './suite.ts';

/** A KeyPackage made on a device: the public half goes to the key directory, the private half stays. */
export interface DeviceKeyPackage {
  /** The MLSMessage (mls_key_package) bytes to upload. */
  bytes: Uint8Array;
  publicPackage: KeyPackage;
  privatePackage: PrivateKeyPackage;
}

/** A fresh KeyPackage for the device whose credential and signature key these are. */
export async function newKeyPackage(credential: Credential, signature: SignatureKeyPair, now = Date.now()): Promise<DeviceKeyPackage> {
  const cs = await mlsSuite();
  const { publicPackage, privatePackage } = await generateKeyPackageWithKey(credential, defaultCapabilities(), keyPackageLifetime(now), [], { signKey: signature.signKey, publicKey: signature.publicKey }, cs);
  return { bytes: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: publicPackage }), publicPackage, privatePackage };
}

/** The KeyPackage inside MLSMessage bytes, or null when they are something else. */
export function decodeKeyPackage(bytes: Uint8Array): KeyPackage | null {
  try {
    const decoded = decodeMlsMessage(bytes, 0);
    if (!decoded || decoded[1] !== bytes.length) return null;
    const m = decoded[0];
    return m.wireformat === 'mls_key_package' ? m.keyPackage : null;
  } catch {
    return null;
  }
}

export type KeyPackageCheck = { ok: true; credential: DeviceCredential; notAfter: number } | { ok: false; reason: string };

/**
 * What a server can check of an uploaded KeyPackage without any secret: it parses, uses our suite,
 * its signature verifies, its lifetime covers now, and its credential is ours, certified, and
 * names `user` and `device` (the uploader).
 */
export async function checkKeyPackage(bytes: Uint8Array, user: string, device: string, now = Date.now()): Promise<KeyPackageCheck> {
  const kp = decodeKeyPackage(bytes);
  if (!kp) return { ok: false, reason: 'not an MLS KeyPackage' };
  if (kp.cipherSuite !== MLS_SUITE) return { ok: false, reason: `cipher suite ${kp.cipherSuite}: only ${MLS_SUITE}` };
  const cs = await mlsSuite();
  if (!(await verifyKeyPackage(kp, cs.signature).catch(() => false))) return { ok: false, reason: 'bad KeyPackage signature' };
  const leaf = kp.leafNode;
  if (leaf.leafNodeSource !== 'key_package') return { ok: false, reason: 'leaf node is not a key_package leaf' };
  const s = BigInt(Math.floor(now / 1000));
  if (leaf.lifetime.notBefore > s || leaf.lifetime.notAfter < s) return { ok: false, reason: 'lifetime does not cover now' };
  const claimed = decodeCredential(leaf.credential);
  if (!claimed) return { ok: false, reason: 'not a Switchboard device credential' };
  if (claimed.user !== user || claimed.device !== device) return { ok: false, reason: `credential names ${claimed.user}/${claimed.device}, not the uploader` };
  const credential = await verifyCredential(leaf.credential, leaf.signaturePublicKey);
  if (!credential) return { ok: false, reason: 'device certificate does not verify' };
  return { ok: true, credential, notAfter: Number(leaf.lifetime.notAfter) * 1000 };
}
