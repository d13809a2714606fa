import { Hono } from 'hono';
import { ProtocolError, PushRegistrationBody, type PushRecordedResponse } from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import { callRegion } from '../internal/region-client.ts';
import { workerMetrics } from '../metrics/worker-metrics.ts';
import { errorFields, log } from '../log.ts';
import { tokenFrom } from './auth.ts';
import { verifyToken } from './verify-token.ts';
import { ownDevice } from './own-device.ts';
import { readJson } from './read-json.ts';
import { spendQuota } from '../limits/quota.ts';
import { deviceKey } from '../gateway/delivery.ts';

/**
 * A device's push registration over HTTP (bearer token of that device): where the region sends
 * notifications while the device has no socket. A device registers only itself.
 */
export const devicesApi = new Hono<{ Bindings: Env }>();

/** The region's answer, or `unavailable` (never a stack trace). */
async function region<T>(env: Env, path: string, body: unknown): Promise<T> {
  try {
    return await callRegion<T>(config(env), path, body, undefined, workerMetrics);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    log('warn', 'push registration: region unavailable', { path, ...errorFields(err) });
    throw new ProtocolError('unavailable', 'push registration is unavailable; retry later');
  }
}

/** `PUT /v1/devices/:device/push {"provider","token","env"?,"topic"?}` → 200 {device, provider, registeredAt}. */
devicesApi.put('/v1/devices/:device/push', async (c) => {
  const me = await ownDevice(c, 'register (or read the registration of) only itself');
  const registration = await readJson(c, PushRegistrationBody, 8192);
  await spendQuota(c.env, c.req.raw, me.user, [{ limit: 'push_register', key: deviceKey(me.user, me.device), cost: 1 }]);
  const r = await region<{ registeredAt: number }>(c.env, '/internal/push/register', { user: me.user, device: me.device, registration });
  return c.json({ device: me.device, provider: registration.provider, registeredAt: r.registeredAt });
});

/** `GET /v1/devices/:device/push` → 200 {registration: {provider, env?, topic?, registeredAt} | null}: is this device registered? */
devicesApi.get('/v1/devices/:device/push', async (c) => {
  const me = await ownDevice(c, 'register (or read the registration of) only itself');
  return c.json(await region(c.env, '/internal/push/registration', { user: me.user, device: me.device }));
});

/** `DELETE /v1/devices/:device/push` → 204: no more notifications for this device. */
devicesApi.delete('/v1/devices/:device/push', async (c) => {
  const me = await ownDevice(c, 'register (or read the registration of) only itself');
  await spendQuota(c.env, c.req.raw, me.user, [{ limit: 'push_register', key: deviceKey(me.user, me.device), cost: 1 }]);
  await region(c.env, '/internal/push/unregister', { user: me.user, device: me.device });
  return c.body(null, 204);
});

/**
 * `GET /v1/push/recorded` → what would have been pushed to the caller's devices, where the region
 * records instead of sending (development: `npm start`); `enabled: false` elsewhere.
 */
devicesApi.get('/v1/push/recorded', async (c) => {
  const me = await verifyToken(c.env, tokenFrom(c.req.raw, false));
  return c.json(await region<PushRecordedResponse>(c.env, '/internal/push/recorded', { user: me.user }));
});
