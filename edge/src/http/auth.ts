import { sign, verify } from 'hono/jwt';
import { DeviceId, ProtocolError, UserId } from '@switchboard/protocol';

export interface Principal {
  user: string;
  device: string;
}

/** Mints a device token (HS256): `sub` is the user, `dev` the device. */
export async function mintToken(secret: string, p: Principal, ttlSeconds: number, now = Date.now()): Promise<string> {
  const iat = Math.floor(now / 1000);
  return sign({ sub: p.user, dev: p.device, iat, exp: iat + ttlSeconds }, secret, 'HS256');
}

/** Verifies a device token; any defect (missing, malformed, bad signature, expired) is `unauthorized`. */
export async function verifyToken(secret: string, token: string | undefined | null): Promise<Principal> {
  if (!token) throw new ProtocolError('unauthorized', 'missing token');
  let payload: Record<string, unknown>;
  try {
    payload = (await verify(token, secret, 'HS256')) as Record<string, unknown>;
  } catch {
    throw new ProtocolError('unauthorized', 'invalid or expired token');
  }
  if (typeof payload.exp !== 'number') throw new ProtocolError('unauthorized', 'token has no expiry');
  const user = UserId.safeParse(payload.sub);
  const device = DeviceId.safeParse(payload.dev);
  if (!user.success || !device.success) throw new ProtocolError('unauthorized', 'token names no valid user and device');
  return { user: user.data, device: device.data };
}

/** The token from `Authorization: Bearer …`, or from `?token=` when `allowQuery` (WebSocket upgrade). */
export function tokenFrom(req: Request, allowQuery: boolean): string | null {
  const h = req.headers.get('authorization');
  if (h) {
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    return m?.[1] ?? null;
  }
  return allowQuery ? new URL(req.url).searchParams.get('token') : null;
}
