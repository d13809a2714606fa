import type { Credential } from 'ts-mls/credential.js';
import { b64 } from './b64.ts';

/**
 * Who a device is, as its MLS credential says: a basic credential whose identity is a small JSON
 * document naming the user and the device, the user's identity key (Ed25519), and the identity
 * key's signature over the device's MLS signature key (the device certificate). The identity
 * key lives on the user's devices only: a new device is certified from an existing one (linking),
 * so the server cannot add a device to a user on its own.
 */
export interface DeviceCredential {
  user: string;
  device: string;
  /** The user's identity public key. */
  identityKey: Uint8Array;
  /** The identity key's signature over certificateBody(user, device, signatureKey). */
  certificate: Uint8Array;
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export function encodeCredential(c: DeviceCredential): Credential {
  const doc = { v: 1, user: c.user, device: c.device, ik: b64.encode(c.identityKey), cert: b64.encode(c.certificate) };
  return { credentialType: 'basic', identity: enc.encode(JSON.stringify(doc)) };
}

/** The credential's contents, or null when it is not one of ours. */
export function decodeCredential(credential: Credential): DeviceCredential | null {
  if (credential.credentialType !== 'basic') return null;
  try {
    const doc = JSON.parse(dec.decode(credential.identity)) as Record<string, unknown>;
    if (doc.v !== 1 || typeof doc.user !== 'string' || typeof doc.device !== 'string' || typeof doc.ik !== 'string' || typeof doc.cert !== 'string') return null;
    if (!doc.user || !doc.device) return null;
    return { user: doc.user, device: doc.device, identityKey: b64.decode(doc.ik), certificate: b64.decode(doc.cert) };
  } catch {
    return null;
  }
}

/** Whether a credential is a Delivery Service's (the server's), not a device's. */
export function isDeliveryServiceCredential(credential: Credential): boolean {
  if (credential.credentialType !== 'basic') return false;
  try {
    const doc = JSON.parse(dec.decode(credential.identity)) as { v?: unknown; ds?: unknown };
    return doc.v === 1 && typeof doc.ds === 'string';
  } catch {
    return false;
  }
}

