import { Hono } from 'hono';
import { ConvId, DeadLetterReplayRequest, ProtocolError, parseJsonBody } from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import { log } from '../log.ts';
import { verifyInternal } from './internal-auth.ts';

/**
 * The operator's routes on the edge, signed like every internal call (an operator's tool signs
 * with the internal secret; never reachable with a device token). Dead letters: outbox events the
 * region refused for good, kept by their conversation until replayed.
 */
export const adminRoutes = new Hono<{ Bindings: Env }>();

function conversation(env: Env, id: string | undefined) {
  const conv = ConvId.safeParse(id);
  if (!conv.success) throw new ProtocolError('invalid_frame', 'conv: not a conversation id');
  return { conv: conv.data, stub: env.CONVERSATIONS.get(env.CONVERSATIONS.idFromName(conv.data)) };
}

/** A conversation's dead letters, oldest first, each with the region's refusal and the event itself. */
adminRoutes.get('/internal/admin/conversations/:conv/dead-letters', async (c) => {
  await verifyInternal(c.req.raw, c.env, config(c.env).internalSecret);
  const { stub } = conversation(c.env, c.req.param('conv'));
  return c.json({ deadLetters: await stub.listDeadLetters() });
});

/** Puts a conversation's dead letters (all, or `oseqs`) back in its outbox, once the region takes them. */
adminRoutes.post('/internal/admin/conversations/:conv/dead-letters/replay', async (c) => {
  const body = await verifyInternal(c.req.raw, c.env, config(c.env).internalSecret);
  const req = parseJsonBody(body || '{}', DeadLetterReplayRequest);
  const { conv, stub } = conversation(c.env, c.req.param('conv'));
  const out = await stub.replayDeadLetters(req);
  log('info', 'dead letters replayed', { conv, replayed: out.replayed });
  return c.json(out);
});
