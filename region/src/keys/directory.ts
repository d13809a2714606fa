import { KEY_LIMITS, ProtocolError, type DeviceRef, type KeyDevice, type KeyPackageCount } from '@switchboard/protocol';

/**
 * A KeyPackage as the directory stores it. `ref` and `notAfter` are computed by the region from
 * the checked bytes (keys-api.ts), never taken from the client: `ref` is the hex SHA-256 of
 * `bytes`, `notAfter` the end of its lifetime (ms).
 */
export interface StoredKeyPackage {
  ref: string;
  bytes: Uint8Array;
  notAfter: number;
}

/** A claimed package: a one-time one (now consumed) or the device's last-resort one (kept). */
export interface ClaimedPackage extends DeviceRef {
  bytes: Uint8Array;
  lastResort: boolean;
}

export interface KeyClaim {
  packages: ClaimedPackage[];
  /** Devices that have uploaded but hold no unexpired package, one-time or last-resort. */
  missing: DeviceRef[];
}

export interface ClaimOptions {
  /** A device never handed a package (the claiming device itself). */
  skip?: DeviceRef;
  /** Refuse (`too_large`, before consuming anything) a claim covering more devices than this. */
  maxDevices?: number;
  /** Only these devices of the users (a device linked to a member already in the group). */
  only?: DeviceRef[];
}

/** A sealed identity key waiting for a user's new device (protocol LINK_LIMITS). */
export interface DeviceLink {
  id: string;
  fromDevice: string;
  envelope: string;
  expiresAt: number;
}

/**
 * The key directory (part of regional storage: Cassandra, embedded SQLite): devices' MLS
 * KeyPackages for others to claim when adding them to groups. Contract, tested by
 * region/test/keys/directory.contract.ts against every implementation:
 * - a device holds at most KEY_LIMITS.maxKeyPackagesPerDevice (100) unexpired one-time packages:
 *   an upload that would take it beyond is refused whole (ProtocolError `too_many`) and changes
 *   nothing; a user has at most KEY_LIMITS.maxDevicesPerUser devices here (a new device beyond
 *   is `too_many` too). Packages are keyed by `ref`: uploading the same bytes again (a retried
 *   upload) leaves one copy and counts once;
 * - a device has at most one last-resort package: a new one replaces the old; `null` keeps it;
 * - the device's identity key is the one its latest upload's credentials name; an upload naming
 *   another identity key first drops everything the device held (one-time and last-resort
 *   packages, certified by a key the user no longer uses): only that upload's packages remain;
 * - `uploadKeyPackages` answers the device's count (as `countKeyPackages` at `at`) after it;
 * - `countKeyPackages` counts unexpired one-time packages at `now`, and says whether the device
 *   has an unexpired last-resort one;
 * - `claimKeyPackages`, for every device of each user that has uploaded (users repeated count
 *   once; `skip` excepted): one unexpired one-time package (the soonest-expiring, unless
 *   concurrent claims contend for it), consumed — handed to exactly one claimer, even under
 *   concurrent claims from any number of processes — else its unexpired last-resort package, not
 *   consumed, with `lastResort: true`; a device with neither is listed in `missing`. A claim over
 *   `maxDevices` devices is refused (`too_large`) before anything is consumed. Expired packages
 *   are never handed out (and may be deleted on the way). A package uploaded again after it was
 *   claimed is a new package (a device never re-uploads a package it gave away: it makes new
 *   ones, and a retried upload is the only repeat);
 * - `devicesOf` lists the user's devices that have uploaded, by device id, each with the time of
 *   its latest upload and its identity key (base64url);
 * - `removeDevice` drops the device's packages and its listing; uploading again afterwards
 *   starts it afresh;
 * - `revokeDevice` drops them too and revokes the device for good: its uploads are refused
 *   (ProtocolError `forbidden`) and `isRevoked` is true from then on;
 * - `putLink` keeps a link for its user until `expiresAt` (at most LINK_LIMITS.maxOpenLinks
 *   unexpired per user, `too_many` beyond); `takeLink` hands it out once, to its own user only,
 *   and only before it expires (null otherwise, also under concurrent takes).
 */
export interface KeyDirectory {
  uploadKeyPackages(user: string, device: string, identityKey: string, packages: StoredKeyPackage[], lastResort: StoredKeyPackage | null, at: number): Promise<KeyPackageCount>;
  countKeyPackages(user: string, device: string, now: number): Promise<KeyPackageCount>;
  claimKeyPackages(users: string[], now: number, opts?: ClaimOptions): Promise<KeyClaim>;
  devicesOf(user: string): Promise<KeyDevice[]>;
  removeDevice(user: string, device: string): Promise<void>;
  revokeDevice(user: string, device: string, at: number): Promise<void>;
  isRevoked(user: string, device: string): Promise<boolean>;
  putLink(user: string, link: DeviceLink, now: number): Promise<void>;
  takeLink(user: string, id: string, now: number): Promise<DeviceLink | null>;
}

// The directory's refusals, worded once for every implementation (messages go to clients).

/** The upload would leave the device holding more one-time packages than it may. */
export function tooManyPackages(held: number, adding: number): ProtocolError {
  return new ProtocolError('too_many', `a device holds at most ${KEY_LIMITS.maxKeyPackagesPerDevice} one-time KeyPackages: it holds ${held} and the upload adds ${adding}`);
}

/** A new device of a user who already has the most devices the directory lists. */
export function tooManyUserDevices(): ProtocolError {
  return new ProtocolError('too_many', `a user has at most ${KEY_LIMITS.maxDevicesPerUser} devices in the key directory`);
}

/** A claim covering more devices than one claim may. */
export function tooManyDevices(devices: number, max: number): ProtocolError {
  return new ProtocolError('too_large', `these users have ${devices} devices; a claim covers at most ${max}: claim fewer users at once`);
}

/** A revoked device tried to upload. */
export function revokedDevice(device: string): ProtocolError {
  return new ProtocolError('forbidden', `device ${device} was revoked: it takes no part in end-to-end encryption any more`);
}

/** A user with too many links waiting. */
export function tooManyLinks(max: number): ProtocolError {
  return new ProtocolError('too_many', `at most ${max} device links may wait at once; let one expire or use it`);
}
