import { verifierFor } from '../auth/token-verifier.ts';
import type { Env } from '../config.ts';
import type { Principal } from './auth.ts';

/**
 * Verifies a device token with this isolate's verifier (auth/token-verifier.ts: the shared secret's
 * HS256, or the identity provider's keys, and the user's revocation time); any defect is `unauthorized`.
 */
export async function verifyToken(env: Env, token: string | undefined | null): Promise<Principal> {
  const v = await verifierFor(env).verify(token);
  return { user: v.user, device: v.device };
}
