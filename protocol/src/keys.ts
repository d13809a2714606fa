import { z } from 'zod';
import { DeviceId, UserId } from './ids.ts';
import { LIMITS } from './limits.ts';

/**
 * The key directory (end-to-end encryption): devices upload MLS KeyPackages, others claim them to
 * add those devices to groups. A KeyPackage travels as the base64url (no padding) of its
 * MLSMessage bytes; the server checks each upload without any secret (its signature, suite,
 * lifetime, and that its credential names the uploading device, certified by its user's identity
 * key) and otherwise treats it as opaque.
 */
export const KEY_LIMITS = {
  /** Largest KeyPackage, in bytes of its MLSMessage (ours are about 500). */
  maxKeyPackageBytes: 16 * 1024,
  /** One-time KeyPackages a device may hold at once (and upload in one request). */
  maxKeyPackagesPerDevice: 100,
  /** Devices of one user in the directory (a new device beyond it is refused). */
  maxDevicesPerUser: LIMITS.maxDevicesPerUser,
  /** Users in one claim. */
  maxClaimUsers: 100,
  /** Devices one claim may cover, over all its users (a larger claim is refused before consuming). */
  maxClaimDevices: 1000,
  /** Users claimed per minute by one claiming user, and the burst above that (per region process). */
  claimUsersPerMinute: 60,
  claimBurst: 200,
} as const;

/** Length of the base64url (unpadded) text of `n` bytes. */
export const base64urlLength = (n: number) => Math.ceil((n * 4) / 3);

/**
 * Largest body of `PUT /v1/devices/:device/key-packages`: every package at its largest, with its
 * quotes and comma, plus the last-resort one and the keys around them (about 2.2 MB). The edge's
 * default body limit (LIMITS.maxHttpBodyBytes) is too small for it; the signed internal call that
 * carries the same packages stays under LIMITS.maxInternalBodyBytes.
 */
export const KEY_UPLOAD_BODY_BYTES = (KEY_LIMITS.maxKeyPackagesPerDevice + 1) * (base64urlLength(KEY_LIMITS.maxKeyPackageBytes) + 3) + 256;

/** One KeyPackage: base64url of its MLSMessage bytes (no padding), at most maxKeyPackageBytes decoded. */
export const KeyPackageText = z
  .string()
  .min(1)
  .max(base64urlLength(KEY_LIMITS.maxKeyPackageBytes), `a KeyPackage is at most ${KEY_LIMITS.maxKeyPackageBytes} bytes`)
  .regex(/^[A-Za-z0-9_-]+$/, 'base64url without padding')
  // A length of 4n+1 is no whole number of bytes.
  .refine((s) => s.length % 4 !== 1, 'not valid base64url');

/** `PUT /v1/devices/:device/key-packages`: one-time packages to add, and optionally a new last-resort one. */
export const KeyPackagesUploadBody = z
  .object({
    keyPackages: z.array(KeyPackageText).max(KEY_LIMITS.maxKeyPackagesPerDevice),
    lastResort: KeyPackageText.optional(),
  })
  .strict()
  .refine((b) => b.keyPackages.length > 0 || b.lastResort !== undefined, { message: 'nothing to upload: give keyPackages or lastResort' });
export type KeyPackagesUploadBody = z.infer<typeof KeyPackagesUploadBody>;

/** What a device holds: unexpired one-time packages, and whether it has an unexpired last-resort one. */
export const KeyPackageCount = z.object({ count: z.number().int().nonnegative(), lastResort: z.boolean() });
export type KeyPackageCount = z.infer<typeof KeyPackageCount>;

/** `POST /v1/key-packages/claim`: one package for every device of each user. */
export const KeyClaimBody = z.object({ users: z.array(UserId).min(1).max(KEY_LIMITS.maxClaimUsers) }).strict();
export type KeyClaimBody = z.infer<typeof KeyClaimBody>;

/** A claimed package; `lastResort` ones are handed out again to later claimers (RFC 9420 §16.8). */
export const ClaimedKeyPackage = z.object({ user: UserId, device: DeviceId, keyPackage: KeyPackageText, lastResort: z.boolean() });
export type ClaimedKeyPackage = z.infer<typeof ClaimedKeyPackage>;
export const DeviceRef = z.object({ user: UserId, device: DeviceId });
export type DeviceRef = z.infer<typeof DeviceRef>;

/** Answer to a claim: a package per device that had one, and the devices that had none. */
export const KeyClaimResponse = z.object({ packages: z.array(ClaimedKeyPackage), missing: z.array(DeviceRef) });
export type KeyClaimResponse = z.infer<typeof KeyClaimResponse>;

/** A device of a user that has uploaded KeyPackages: its identity key (base64url) as its last upload's credential names it. */
export const KeyDevice = z.object({ device: DeviceId, identityKey: z.string(), uploadedAt: z.number().int() });
export type KeyDevice = z.infer<typeof KeyDevice>;
/** `GET /v1/users/:user/devices`. */
export const KeyDevicesResponse = z.object({ user: UserId, devices: z.array(KeyDevice) });
export type KeyDevicesResponse = z.infer<typeof KeyDevicesResponse>;

// ---- internal (edge → region) -----------------------------------------------------------------

/** The device's upload, as the edge forwards it (the device is the caller's own). */
export const KeysUploadRequest = z.object({
  user: UserId,
  device: DeviceId,
  keyPackages: z.array(KeyPackageText).max(KEY_LIMITS.maxKeyPackagesPerDevice),
  lastResort: KeyPackageText.optional(),
});
export type KeysUploadRequest = z.infer<typeof KeysUploadRequest>;
/** One device of a user (its count). */
export const KeysCountRequest = DeviceRef;
/** A claim by `user`'s `device` (never handed its own package) for every device of `users`. */
export const KeysClaimRequest = z.object({ user: UserId, device: DeviceId, users: z.array(UserId).min(1).max(KEY_LIMITS.maxClaimUsers) });
export type KeysClaimRequest = z.infer<typeof KeysClaimRequest>;
export const KeysDevicesRequest = z.object({ user: UserId });
