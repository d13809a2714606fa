import type { AuthenticationService } from 'ts-mls/authenticationService.js';
import type { Credential } from 'ts-mls/credential.js';
import { decodeCredential, encodeCredential, isDeliveryServiceCredential, type DeviceCredential } from './credential.ts';
import { b64, mlsSuite } from './suite.ts';

export { decodeCredential, encodeCredential, isDeliveryServiceCredential, type DeviceCredential };

/** The user's identity key pair: made on the first device, copied to linked devices. */
export interface IdentityKeyPair {
  publicKey: Uint8Array;
  signKey: Uint8Array;
}

/** A device's MLS signature key pair: made on the device, never leaves it. */
export interface SignatureKeyPair {
  publicKey: Uint8Array;
  signKey: Uint8Array;
}

const CERT_LABEL = 'switchboard device certificate v1';
const enc = new TextEncoder();

/** What the identity key signs: label, user, device and the device's signature key, length-prefixed. */
export function certificateBody(user: string, device: string, signatureKey: Uint8Array): Uint8Array {
  const parts = [enc.encode(CERT_LABEL), enc.encode(user), enc.encode(device), signatureKey];
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

export async function newIdentityKey(): Promise<IdentityKeyPair> {
  return (await mlsSuite()).signature.keygen();
}

export async function newSignatureKey(): Promise<SignatureKeyPair> {
  return (await mlsSuite()).signature.keygen();
}

/** The credential of `device` of `user`, certified by the user's identity key. */
export async function certifyDevice(identity: IdentityKeyPair, user: string, device: string, signatureKey: Uint8Array): Promise<Credential> {
  const certificate = await (await mlsSuite()).signature.sign(identity.signKey, certificateBody(user, device, signatureKey));
  return encodeCredential({ user, device, identityKey: identity.publicKey, certificate });
}

/** Whether `credential` is well formed and its certificate signs `signatureKey` with the identity key it names. */
export async function verifyCredential(credential: Credential, signatureKey: Uint8Array): Promise<DeviceCredential | null> {
  const c = decodeCredential(credential);
  if (!c || c.identityKey.length !== 32 || c.certificate.length !== 64) return null;
  const ok = await (await mlsSuite()).signature.verify(c.identityKey, certificateBody(c.user, c.device, signatureKey), c.certificate).catch(() => false);
  return ok ? c : null;
}

/**
 * The identity keys a device trusts: the first seen for a user is kept (trust on first use); a
 * different one later is a key change, reported and (until the user accepts it) refused.
 */
export interface IdentityTrust {
  /** Whether `identityKey` is the one trusted for `user` (recording it when the user is new). */
  check(user: string, identityKey: Uint8Array): boolean;
  /** Whether `signatureKey` is a Delivery Service (server) key this device was given. */
  deliveryService(signatureKey: Uint8Array): boolean;
}

/** An in-memory IdentityTrust; `onChange` hears every key that differs from the trusted one. */
export class TrustOnFirstUse implements IdentityTrust {
  private readonly keys = new Map<string, string>();
  private readonly servers = new Set<string>();
  /**
   * `saved`: the keys trusted before (`snapshot()`); `save` is told each time the trusted keys
   * change, so a restart keeps them (a device that forgot them would trust a new key silently).
   */
  constructor(
    private readonly onChange: (user: string, was: Uint8Array, now: Uint8Array) => void = () => {},
    saved: Record<string, string> = {},
    private readonly save: (snapshot: Record<string, string>) => void = () => {},
  ) {
    for (const [user, key] of Object.entries(saved)) this.keys.set(user, key);
  }

  /** The trusted identity keys, by user (base64url): what `save` is given. */
  snapshot(): Record<string, string> {
    return Object.fromEntries(this.keys);
  }

  /** Trust `signatureKey` as a Delivery Service's (the server's, as its API hands it out). */
  trustDeliveryService(signatureKey: Uint8Array): this {
    this.servers.add(b64.encode(signatureKey));
    return this;
  }

  deliveryService(signatureKey: Uint8Array): boolean {
    return this.servers.has(b64.encode(signatureKey));
  }

  check(user: string, identityKey: Uint8Array): boolean {
    const k = b64.encode(identityKey);
    const known = this.keys.get(user);
    if (known === undefined) {
      this.keys.set(user, k);
      this.save(this.snapshot());
      return true;
    }
    if (known === k) return true;
    this.onChange(user, b64.decode(known), identityKey);
    return false;
  }

  /** The user accepted `identityKey` for `user` (after a key change was shown). */
  accept(user: string, identityKey: Uint8Array): void {
    this.keys.set(user, b64.encode(identityKey));
    this.save(this.snapshot());
  }

  known(user: string): Uint8Array | null {
    const k = this.keys.get(user);
    return k === undefined ? null : b64.decode(k);
  }
}

/**
 * MLS's authentication service: a device's credential counts only with a valid certificate from
 * a trusted identity key; a Delivery Service's only with a key the device was given.
 */
export function authService(trust: IdentityTrust): AuthenticationService {
  return {
    async validateCredential(credential, signaturePublicKey) {
      if (isDeliveryServiceCredential(credential)) return trust.deliveryService(signaturePublicKey);
      const c = await verifyCredential(credential, signaturePublicKey);
      return c !== null && trust.check(c.user, c.identityKey);
    },
  };
}
