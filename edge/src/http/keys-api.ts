import { Hono, type Context } from 'hono';
import {
  KEY_UPLOAD_BODY_BYTES,
  KeyClaimBody,
  KeyPackagesUploadBody,
  ProtocolError,
  UserId,
  isErrorCode,
  type ErrorCode,
  type KeyClaimResponse,
  type KeyDevicesResponse,
  type KeyPackageCount,
} from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import { RegionError, callRegion } from '../internal/region-client.ts';
import { workerMetrics } from '../metrics/worker-metrics.ts';
import { errorFields, log } from '../log.ts';
import { tokenFrom, type Principal } from './auth.ts';
import { verifyToken } from './verify-token.ts';
import { ownDevice } from './own-device.ts';
import { spendQuota } from '../limits/quota.ts';
import { deviceKey } from '../gateway/delivery.ts';
import { errorBody, readJson } from './read-json.ts';

/**
 * The key directory over HTTP (end-to-end encryption; bearer token of a device): a device uploads
 * its own MLS KeyPackages and reads its count; any signed-in device claims packages of users'
 * devices to add them to a group, and lists a user's devices. The region checks every package
 * and keeps the directory (region/src/keys).
 */
export const keysApi = new Hono<{ Bindings: Env }>();

type Ctx = Context<{ Bindings: Env }>;

/** The region's refusals a device may see as they are; anything else from it is `unavailable`. */
const RELAYED: ReadonlySet<ErrorCode> = new Set(['bad_json', 'invalid_frame', 'too_large', 'invalid_key_package', 'too_many', 'rate_limited', 'forbidden', 'not_found']);

/** A rate-limited answer: the typed error with the region's Retry-After. */
class RetryLater extends ProtocolError {
  constructor(
    message: string,
    readonly retryAfter: number,
  ) {
    super('rate_limited', message);
  }
}

export async function caller(c: Ctx): Promise<Principal> {
  return verifyToken(c.env, tokenFrom(c.req.raw, false));
}

/** The region's answer; its typed refusals of the request relayed, anything else `unavailable` (never a stack trace). */
export async function region<T>(env: Env, path: string, body: unknown): Promise<T> {
  try {
    return await callRegion<T>(config(env), path, body, undefined, workerMetrics);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    const r = err instanceof RegionError ? err.refusal : undefined;
    if (r && isErrorCode(r.code) && RELAYED.has(r.code)) {
      if (r.code === 'rate_limited') throw new RetryLater(r.message, r.retryAfter ?? 60);
      throw new ProtocolError(r.code, r.message);
    }
    log('warn', 'key directory: region unavailable', { path, ...errorFields(err) });
    throw new ProtocolError('unavailable', 'the key directory is unavailable; retry later');
  }
}

/** Runs a route, answering a rate limit with its Retry-After header (other errors go to app.onError). */
export function route(handler: (c: Ctx) => Promise<Response>): (c: Ctx) => Promise<Response> {
  return async (c) => {
    try {
      return await handler(c);
    } catch (err) {
      if (err instanceof RetryLater) return c.json(errorBody(err), 429, { 'retry-after': String(err.retryAfter) });
      throw err;
    }
  };
}

/**
 * `PUT /v1/devices/:device/key-packages {"keyPackages":[b64url…≤100],"lastResort":b64url?}` → 200
 * {count, lastResort}: adds one-time packages (a device holds at most 100) and replaces the
 * last-resort one. Its body may be about 2.2 MB: larger than other routes allow.
 */
keysApi.put(
  '/v1/devices/:device/key-packages',
  route(async (c) => {
    const me = await ownDevice(c, 'upload (or count) only its own KeyPackages');
    const upload = await readJson(c, KeyPackagesUploadBody, KEY_UPLOAD_BODY_BYTES);
    await spendQuota(c.env, c.req.raw, me.user, [{ limit: 'key_upload', key: deviceKey(me.user, me.device), cost: 1 }]);
    return c.json(await region<KeyPackageCount>(c.env, '/internal/keys/upload', { user: me.user, device: me.device, ...upload }));
  }),
);

/** `GET /v1/devices/:device/key-packages/count` → 200 {count, lastResort}: replenish below a threshold. */
keysApi.get(
  '/v1/devices/:device/key-packages/count',
  route(async (c) => {
    const me = await ownDevice(c, 'upload (or count) only its own KeyPackages');
    return c.json(await region<KeyPackageCount>(c.env, '/internal/keys/count', { user: me.user, device: me.device }));
  }),
);

/**
 * `POST /v1/key-packages/claim {"users":[…≤100]}` → 200 {packages:[{user,device,keyPackage,lastResort}],
 * missing:[{user,device}]}: one package per device of those users (the caller's own device
 * excepted), each one-time package handed to this caller only. Rate limited per user.
 */
keysApi.post(
  '/v1/key-packages/claim',
  route(async (c) => {
    const me = await caller(c);
    const req = await readJson(c, KeyClaimBody, 16 * 1024);
    return c.json(await region<KeyClaimResponse>(c.env, '/internal/keys/claim', { user: me.user, device: me.device, users: req.users, ...(req.devices ? { devices: req.devices } : {}) }));
  }),
);

/** `GET /v1/users/:user/devices` → 200 {user, devices:[{device, identityKey, uploadedAt}]}: the devices that uploaded KeyPackages. */
keysApi.get(
  '/v1/users/:user/devices',
  route(async (c) => {
    await caller(c);
    const user = UserId.safeParse(c.req.param('user'));
    if (!user.success) throw new ProtocolError('invalid_frame', 'user: 1-64 of [A-Za-z0-9._-]');
    return c.json(await region<KeyDevicesResponse>(c.env, '/internal/keys/devices', { user: user.data }));
  }),
);
