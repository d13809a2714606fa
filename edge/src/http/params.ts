import { ConvId, ProtocolError, UserId } from '@switchboard/protocol';
import type { Env } from '../config.ts';
import { tokenFrom } from './auth.ts';
import { verifyToken } from './verify-token.ts';

/** Who calls an HTTP route: the verified device token of `Authorization: Bearer …`. */
export async function caller(c: { env: Env; req: { raw: Request } }) {
  return verifyToken(c.env, tokenFrom(c.req.raw, false));
}

/** The ConversationDO named by a path parameter; a malformed id is `not_found`, as a missing one is. */
export function conversationStub(env: Env, id: string | undefined) {
  const conv = ConvId.safeParse(id);
  if (!conv.success) throw new ProtocolError('not_found', 'no such conversation');
  return env.CONVERSATIONS.get(env.CONVERSATIONS.idFromName(conv.data));
}

/** A user id from a path parameter; a malformed one is `invalid_frame`. */
export function userParam(id: string | undefined): string {
  const u = UserId.safeParse(id);
  if (!u.success) throw new ProtocolError('invalid_frame', 'user: 1-64 of [A-Za-z0-9._-]');
  return u.data;
}
