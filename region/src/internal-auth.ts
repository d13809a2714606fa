import type { MiddlewareHandler } from 'hono';
import { NonceCache, ProtocolError, verifySignature } from '@switchboard/protocol';

/**
 * Hono middleware for the internal API: a valid signature over the body, a fresh timestamp and an
 * unseen nonce, else 401. The verified body is stored as `rawBody` for the handler.
 */
export function internalAuth(secret: string): MiddlewareHandler<{ Variables: { rawBody: string } }> {
  const nonces = new NonceCache();
  return async (c, next) => {
    const body = await c.req.text();
    const check = await verifySignature(secret, c.req.method, c.req.path, body, c.req.raw.headers);
    if (!check.ok) throw new ProtocolError('unauthorized', `internal call refused: ${check.reason}`);
    if (nonces.seen(check.nonce)) throw new ProtocolError('unauthorized', 'internal call refused: replayed');
    c.set('rawBody', body);
    await next();
  };
}
