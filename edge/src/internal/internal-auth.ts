import { ProtocolError, verifySignature } from '@switchboard/protocol';
import type { Env } from '../config.ts';
import { replayShard } from './replay-guard-do.ts';

/**
 * Authenticates a signed internal request (region → edge): a valid HMAC over method, path,
 * timestamp, nonce and body, a fresh timestamp, and a nonce never seen before. Returns the body.
 */
export async function verifyInternal(req: Request, env: Env, secret: string): Promise<string> {
  const body = await req.text();
  const path = new URL(req.url).pathname;
  const check = await verifySignature(secret, req.method, path, body, req.headers);
  if (!check.ok) throw new ProtocolError('unauthorized', `internal call refused: ${check.reason}`);
  const guard = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName(replayShard(check.nonce)));
  if (!(await guard.admit(check.nonce))) throw new ProtocolError('unauthorized', 'internal call refused: replayed');
  return body;
}
