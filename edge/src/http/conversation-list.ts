import type { Context } from 'hono';
import { InboxCursor, ProtocolError, type InboxResponse } from '@switchboard/protocol';
import { tokenFrom } from './auth.ts';
import { verifyToken } from './verify-token.ts';
import { config, type Env } from '../config.ts';
import { errorFields, log } from '../log.ts';
import { callRegion } from '../internal/region-client.ts';
import { workerMetrics } from '../metrics/worker-metrics.ts';
import { spendQuota } from '../limits/quota.ts';

/** Conversations per page of `GET /v1/conversations`: default and cap. */
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

/**
 * `GET /v1/conversations?after=&limit=`: a page of the caller's conversations, newest activity
 * first, each with its title, members (at most 20 named), last seq, newest message, the caller's
 * delivered and read positions and unread count, from regional storage (region/src/inbox.ts).
 * A conversation reaches the region when its ConversationDO drains, so one created a moment ago
 * may be missing and `last` may lag the live stream: clients merge this with what they receive.
 */
export async function listConversations(c: Context<{ Bindings: Env }>): Promise<Response> {
  const cfg = config(c.env);
  const me = await verifyToken(c.env, tokenFrom(c.req.raw, false));
  const after = c.req.query('after') ?? '';
  if (after !== '' && !InboxCursor.safeParse(after).success) throw new ProtocolError('invalid_frame', 'after: expected the `next` of the previous page');
  const limitText = c.req.query('limit');
  const limit = limitText === undefined ? DEFAULT_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new ProtocolError('invalid_frame', `limit: expected an integer in 1..${MAX_LIMIT}`);
  await spendQuota(c.env, c.req.raw, me.user, [{ limit: 'read_cost', key: me.user, cost: 1 }]);
  try {
    const page = await callRegion<InboxResponse>(cfg, '/internal/inbox', { user: me.user, after, limit }, undefined, workerMetrics);
    return c.json(page);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    log('warn', 'conversation list from region failed', { user: me.user, ...errorFields(err) });
    throw new ProtocolError('unavailable', 'the conversation list is unavailable; retry later');
  }
}
