import { createHash, randomBytes } from 'node:crypto';
import type { Hono } from 'hono';
import {
  KEY_LIMITS,
  KeysClaimRequest,
  KeysCountRequest,
  KeysDeviceStatusRequest,
  KeysDevicesRequest,
  KeysLinkPutRequest,
  KeysLinkTakeRequest,
  KeysRevokeRequest,
  KeysUploadRequest,
  LIMITS,
  LINK_LIMITS,
  ProtocolError,
  parseJsonBody,
  type DeviceLinkCreated,
  type DeviceLinkTaken,
  type KeyClaimResponse,
  type KeysDeviceStatus,
  type KeyDevicesResponse,
  type KeyPackageCount,
} from '@switchboard/protocol';
import { checkKeyPackage } from '@switchboard/protocol/mls';
import { ClaimLimiter, type ClaimRate } from './claim-rate.ts';
import type { KeyDirectory, StoredKeyPackage } from './directory.ts';

type Env = { Variables: { rawBody: string } };

export interface KeysApiDeps {
  directory: KeyDirectory;
  /** Users one user may claim (default: KEY_LIMITS.claimUsersPerMinute, burst KEY_LIMITS.claimBurst). */
  claimRate?: ClaimRate;
  /** The clock (tests move it to expire packages). */
  now?: () => number;
}

/**
 * Longest lifetime left on an uploaded KeyPackage. Ours live 90 days; one that claims to live for
 * years would never be replaced by a fresher one (and the point of expiry is that it is).
 */
const MAX_LIFETIME_MS = 366 * 86_400_000;

function body(c: { get(key: 'rawBody'): string }): string {
  const text = c.get('rawBody');
  if (text.length > LIMITS.maxInternalBodyBytes) throw new ProtocolError('too_large');
  return text;
}

/** An uploaded package that passed its check, with what the region derived from it. */
interface Checked {
  name: string;
  pkg: StoredKeyPackage;
  identityKey: string;
}

/** The package's bytes, checked as `checkKeyPackage` does, or the reason it fails, naming it. */
async function check(name: string, text: string, user: string, device: string, now: number): Promise<Checked | string> {
  const bytes = Buffer.from(text, 'base64url');
  // Buffer skips what is not base64url; only canonical text round-trips.
  if (bytes.toString('base64url') !== text) return `${name}: not valid base64url`;
  if (bytes.length > KEY_LIMITS.maxKeyPackageBytes) return `${name}: larger than ${KEY_LIMITS.maxKeyPackageBytes} bytes`;
  const r = await checkKeyPackage(new Uint8Array(bytes), user, device, now);
  if (!r.ok) return `${name}: ${r.reason}`;
  if (r.notAfter > now + MAX_LIFETIME_MS) return `${name}: lifetime ends more than ${MAX_LIFETIME_MS / 86_400_000} days from now`;
  return {
    name,
    // Derived here, never taken from the client: the id a retried upload repeats, and the expiry.
    pkg: { ref: createHash('sha256').update(bytes).digest('hex'), bytes: new Uint8Array(bytes), notAfter: r.notAfter },
    identityKey: Buffer.from(r.credential.identityKey).toString('base64url'),
  };
}

/**
 * The signed key directory API the edge calls (behind the app's internal auth; the edge has
 * authenticated the device): a device's upload of KeyPackages, its count, claims of other
 * users' devices' packages, and a user's devices (KeyDirectory, keys/directory.ts).
 */
export function registerKeysApi(app: Hono<Env>, deps: KeysApiDeps): void {
  const now = deps.now ?? Date.now;
  const limiter = new ClaimLimiter(deps.claimRate ?? { perMinute: KEY_LIMITS.claimUsersPerMinute, burst: KEY_LIMITS.claimBurst });

  /**
   * Every package is checked (parses, our suite, signature, lifetime, a credential naming this
   * device and certified by an identity key) and all must name one identity key; one failure
   * refuses the whole upload, naming the package.
   */
  app.post('/internal/keys/upload', async (c) => {
    const req = parseJsonBody(body(c), KeysUploadRequest);
    if (req.keyPackages.length === 0 && req.lastResort === undefined) throw new ProtocolError('invalid_frame', 'nothing to upload: give keyPackages or lastResort');
    const at = now();
    const named: [string, string][] = req.keyPackages.map((text, i) => [`keyPackages[${i}]`, text]);
    if (req.lastResort !== undefined) named.push(['lastResort', req.lastResort]);
    const results = await Promise.all(named.map(([name, text]) => check(name, text, req.user, req.device, at)));
    const failed = results.find((r): r is string => typeof r === 'string');
    if (failed !== undefined) throw new ProtocolError('invalid_key_package', failed);
    const checked = results as Checked[];
    const first = checked[0]!;
    const other = checked.find((r) => r.identityKey !== first.identityKey);
    if (other) throw new ProtocolError('invalid_key_package', `${other.name}: certified by another identity key than ${first.name}`);
    const lastResort = req.lastResort !== undefined ? checked.at(-1)! : null;
    const oneTime = lastResort ? checked.slice(0, -1) : checked;
    // A package is either consumed once or kept as the fallback, not both.
    const twin = lastResort && oneTime.find((r) => r.pkg.ref === lastResort.pkg.ref);
    if (twin) throw new ProtocolError('invalid_key_package', `lastResort: the same KeyPackage as ${twin.name}; a last-resort package is a package of its own`);
    const count = await deps.directory.uploadKeyPackages(req.user, req.device, first.identityKey, oneTime.map((r) => r.pkg), lastResort?.pkg ?? null, at);
    return c.json(count satisfies KeyPackageCount);
  });

  app.post('/internal/keys/count', async (c) => {
    const req = parseJsonBody(body(c), KeysCountRequest);
    return c.json((await deps.directory.countKeyPackages(req.user, req.device, now())) satisfies KeyPackageCount);
  });

  /** Rate limited per claiming user (one token per user named); never the claiming device's own package. */
  app.post('/internal/keys/claim', async (c) => {
    const req = parseJsonBody(body(c), KeysClaimRequest);
    const users = [...new Set(req.users)];
    const at = now();
    const take = limiter.take(req.user, users.length, at);
    if (!take.ok) {
      const seconds = Math.max(1, Math.ceil(take.retryAfterMs / 1000));
      const error = new ProtocolError('rate_limited', `too many KeyPackage claims: at most ${limiter.rate.perMinute} users a minute; retry in ${seconds} s`);
      return c.json({ error: { code: error.code, message: error.message } }, 429, { 'retry-after': String(seconds) });
    }
    const claim = await deps.directory.claimKeyPackages(users, at, { skip: { user: req.user, device: req.device }, maxDevices: KEY_LIMITS.maxClaimDevices, ...(req.devices ? { only: req.devices } : {}) });
    const out: KeyClaimResponse = {
      packages: claim.packages.map((p) => ({ user: p.user, device: p.device, keyPackage: Buffer.from(p.bytes).toString('base64url'), lastResort: p.lastResort })),
      missing: claim.missing,
    };
    return c.json(out);
  });

  app.post('/internal/keys/devices', async (c) => {
    const req = parseJsonBody(body(c), KeysDevicesRequest);
    const out: KeyDevicesResponse = { user: req.user, devices: await deps.directory.devicesOf(req.user) };
    return c.json(out);
  });

  /** A sealed identity key left by one of the user's devices for a new one; the link id is made here (random, 128 bits). */
  app.post('/internal/keys/links/put', async (c) => {
    const req = parseJsonBody(body(c), KeysLinkPutRequest);
    if (await deps.directory.isRevoked(req.user, req.device)) throw new ProtocolError('forbidden', `device ${req.device} was revoked`);
    const at = now();
    const link = { id: randomBytes(16).toString('base64url'), fromDevice: req.device, envelope: req.envelope, expiresAt: at + LINK_LIMITS.ttlMs };
    await deps.directory.putLink(req.user, link, at);
    return c.json({ link: link.id, expiresAt: link.expiresAt } satisfies DeviceLinkCreated);
  });

  /** The link's envelope, once, to a device of the same user (anyone else: `not_found`, as for a used or expired one). */
  app.post('/internal/keys/links/take', async (c) => {
    const req = parseJsonBody(body(c), KeysLinkTakeRequest);
    const link = await deps.directory.takeLink(req.user, req.link, now());
    if (!link) throw new ProtocolError('not_found', 'no such device link: it expired, was used, or belongs to another user');
    return c.json({ envelope: link.envelope, from: link.fromDevice } satisfies DeviceLinkTaken);
  });

  /** Revokes `device` of `user` for good (asked by `by`, a device of the same user that is not revoked). */
  app.post('/internal/keys/revoke', async (c) => {
    const req = parseJsonBody(body(c), KeysRevokeRequest);
    if (req.by !== req.device && (await deps.directory.isRevoked(req.user, req.by))) throw new ProtocolError('forbidden', `device ${req.by} was revoked`);
    await deps.directory.revokeDevice(req.user, req.device, now());
    return c.json({ revoked: true });
  });

  app.post('/internal/keys/status', async (c) => {
    const req = parseJsonBody(body(c), KeysDeviceStatusRequest);
    const [revoked, devices] = await Promise.all([deps.directory.isRevoked(req.user, req.device), deps.directory.devicesOf(req.user)]);
    return c.json({ revoked, uploaded: devices.some((d) => d.device === req.device) } satisfies KeysDeviceStatus);
  });
}
