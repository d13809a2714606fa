import { sign } from 'hono/jwt';

export interface Principal {
  user: string;
  device: string;
}

/** Mints a device token (HS256): `sub` is the user, `dev` the device. */
export async function mintToken(secret: string, p: Principal, ttlSeconds: number, now = Date.now()): Promise<string> {
  const iat = Math.floor(now / 1000);
  return sign({ sub: p.user, dev: p.device, iat, exp: iat + ttlSeconds }, secret, 'HS256');
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
