import type { Context } from 'hono';
import {
  ConvId,
  ProtocolError,
  type ConversationDetailsResponse,
  type ConversationsResponse,
} from '@switchboard/protocol';
import { tokenFrom, verifyToken } from './auth.ts';
import { config, type Env } from './env.ts';
import { errorFields, log } from './log.ts';
import { callRegion } from './region-client.ts';

/** Conversations per page of `GET /v1/conversations`: default and cap. */
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

/**
 * `GET /v1/conversations?after=&limit=`: a page of the caller's conversations, ordered by id, each
 * with its title, members (at most 20 named), last seq and newest message, from regional storage.
 * A conversation reaches the region when its ConversationDO drains, so one created a moment ago
 * may be missing and `last` may lag the live stream: clients merge this with what they receive.
 */
export async function listConversations(c: Context<{ Bindings: Env }>): Promise<Response> {
  const cfg = config(c.env);
  const me = await verifyToken(cfg.authSecret, tokenFrom(c.req.raw, false));
  const after = c.req.query('after') ?? '';
  if (after !== '' && !ConvId.safeParse(after).success) throw new ProtocolError('invalid_frame', 'after: expected a conversation id');
  const limitText = c.req.query('limit');
  const limit = limitText === undefined ? DEFAULT_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new ProtocolError('invalid_frame', `limit: expected an integer in 1..${MAX_LIMIT}`);
  try {
    const page = await callRegion<ConversationsResponse>(cfg, '/internal/conversations', { user: me.user, after, limit });
    const details = page.convs.length
      ? await callRegion<ConversationDetailsResponse>(cfg, '/internal/conversation-details', { user: me.user, convs: page.convs.map((x) => x.conv) })
      : { convs: [] };
    const byId = new Map(details.convs.map((d) => [d.conv, d]));
    const convs = page.convs.flatMap(({ conv, last }) => {
      const d = byId.get(conv);
      if (!d) return [];
      return [{ id: conv, title: d.title, members: d.members, memberCount: d.memberCount, direct: conv.startsWith('d'), createdAt: d.createdAt, last, lastMsg: d.lastMsg }];
    });
    return c.json({ convs, ...(page.next ? { next: page.next } : {}) });
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    log('warn', 'conversation list from region failed', { user: me.user, ...errorFields(err) });
    throw new ProtocolError('unavailable', 'the conversation list is unavailable; retry later');
  }
}
