import { DeviceId, ProtocolError } from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import { tokenFrom, type Principal } from './auth.ts';
import { verifyToken } from './verify-token.ts';

/**
 * The caller, when the route's `:device` is the device its bearer token names: a device manages
 * only its own push registration and KeyPackages. `what` completes the refusal ("…may register
 * only itself").
 */
export async function ownDevice(c: { env: Env; req: { raw: Request; param(name: string): string | undefined } }, what: string): Promise<Principal> {
  const me = await verifyToken(c.env, tokenFrom(c.req.raw, false));
  const device = DeviceId.safeParse(c.req.param('device'));
  if (!device.success) throw new ProtocolError('invalid_frame', 'device: 1-64 of [A-Za-z0-9._-]');
  if (device.data !== me.device) throw new ProtocolError('forbidden', `a device may ${what}`);
  return me;
}
