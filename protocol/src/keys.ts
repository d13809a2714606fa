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

/** `POST /v1/key-packages/claim`: one package for every device of each user (only `devices` of them, when given). */
export const KeyClaimBody = z
  .object({ users: z.array(UserId).min(1).max(KEY_LIMITS.maxClaimUsers), devices: z.array(z.object({ user: UserId, device: DeviceId }).strict()).max(KEY_LIMITS.maxClaimDevices).optional() })
  .strict();
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
export const KeysClaimRequest = z.object({ user: UserId, device: DeviceId, users: z.array(UserId).min(1).max(KEY_LIMITS.maxClaimUsers), devices: z.array(DeviceRef).max(KEY_LIMITS.maxClaimDevices).optional() });
export type KeysClaimRequest = z.infer<typeof KeysClaimRequest>;
export const KeysDevicesRequest = z.object({ user: UserId });

// ---- device linking and revocation ------------------------------------------------------------

/**
 * Linking a new device of a user (end-to-end encryption): an existing device seals the user's
 * identity key with a secret it shows as a code (never sent to the server) and leaves the sealed
 * envelope here for LINK_LIMITS.ttlMs; the new device, signed in as the same user, takes it once
 * with the code's link id and opens it with the code's secret. The server holds only ciphertext
 * and cannot add a device to a user: a device's credential must be certified by the identity key.
 */
export const LINK_LIMITS = {
  /** An envelope waits this long for the new device. */
  ttlMs: 10 * 60_000,
  /** Largest envelope (base64url characters). */
  maxEnvelopeChars: 4096,
  /** Links a user may have waiting at once. */
  maxOpenLinks: 5,
} as const;

export const LinkId = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'link id: 16-64 of [A-Za-z0-9_-]');
export const LinkEnvelope = z
  .string()
  .min(1)
  .max(LINK_LIMITS.maxEnvelopeChars)
  .regex(/^[A-Za-z0-9_-]+$/, 'base64url without padding');

/** `POST /v1/devices/links {"envelope"}` → 200 {link, expiresAt}. */
export const DeviceLinkBody = z.object({ envelope: LinkEnvelope }).strict();
export type DeviceLinkBody = z.infer<typeof DeviceLinkBody>;
export const DeviceLinkCreated = z.object({ link: LinkId, expiresAt: z.number().int() });
export type DeviceLinkCreated = z.infer<typeof DeviceLinkCreated>;
/** `POST /v1/devices/links/:link/take` → 200: the envelope and the device that left it (once). */
export const DeviceLinkTaken = z.object({ envelope: LinkEnvelope, from: DeviceId });
export type DeviceLinkTaken = z.infer<typeof DeviceLinkTaken>;
/** `POST /v1/devices/:device/announce {"via"?}`: `via`, the device that linked this one, is asked to commit. */
export const DeviceAnnounceBody = z.object({ via: DeviceId.optional() }).strict();
export type DeviceAnnounceBody = z.infer<typeof DeviceAnnounceBody>;
/** `POST /v1/devices/:device/announce` and `DELETE /v1/devices/:device` → 200: the encrypted conversations told. */
export const DeviceChangeResult = z.object({ device: DeviceId, conversations: z.number().int().nonnegative() });
export type DeviceChangeResult = z.infer<typeof DeviceChangeResult>;

export const KeysLinkPutRequest = z.object({ user: UserId, device: DeviceId, envelope: LinkEnvelope });
export const KeysLinkTakeRequest = z.object({ user: UserId, link: LinkId });
/** Revocation (`by` another device of the user, or the device itself). */
export const KeysRevokeRequest = z.object({ user: UserId, device: DeviceId, by: DeviceId });
/** Whether a device may take part (not revoked). */
export const KeysDeviceStatusRequest = DeviceRef;
export const KeysDeviceStatus = z.object({ revoked: z.boolean(), uploaded: z.boolean() });
export type KeysDeviceStatus = z.infer<typeof KeysDeviceStatus>;
