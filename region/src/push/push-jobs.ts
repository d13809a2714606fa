import { z } from 'zod';
import { ConvId, Seq, UserId } from '@switchboard/protocol';

/**
 * One record on the `push` topic: `user` had no live device when the message at (conv, seq) was
 * fanned out. Keyed by user. `id` is the same for a re-run of the same fan-out, so the push
 * worker sends one notification per id even when a retried fan-out enqueued it twice.
 */
export const PushJob = z.object({
  kind: z.literal('push'),
  id: z.string(),
  user: UserId,
  conv: ConvId,
  seq: Seq,
  from: UserId,
  ts: z.number().int(),
});
export type PushJob = z.infer<typeof PushJob>;

export const pushJobId = (conv: string, seq: number, user: string) => `${conv}:${seq}:${user}`;
