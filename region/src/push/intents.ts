import { z } from 'zod';
import { ConvId, DeviceId, Seq, UserId } from '@switchboard/protocol';

/** A message's notification is worthless after this long (the device syncs anyway when it opens). */
export const MESSAGE_PUSH_TTL_MS = 24 * 3600_000;

/**
 * One record on the `push` topic (and `push.retry`): wake `device` of `user`, which had no socket
 * when the message at (conv, seq) was fanned out. Keyed by device (`pushKey`), so one device's
 * intents are handled in order and devices in parallel. `id` is the same for a re-run of the same
 * fan-out, so a retried fan-out that enqueues it twice sends at most one notification (the
 * device's wake is coalesced). `attempts` and `notBefore` are set when it is retried.
 */
export const PushIntent = z.object({
  kind: z.literal('push'),
  id: z.string().max(400),
  user: UserId,
  device: DeviceId,
  conv: ConvId,
  seq: Seq,
  from: UserId,
  ts: z.number().int(),
  expireAt: z.number().int(),
  attempts: z.number().int().min(0).default(0),
  notBefore: z.number().int().optional(),
  lastError: z.string().max(500).optional(),
});
export type PushIntent = z.infer<typeof PushIntent>;

export const pushIntentId = (conv: string, seq: number, user: string, device: string) => `${conv}:${seq}:${user}:${device}`;
/** The queue key of a device's intents. */
export const pushKey = (user: string, device: string) => `${user}/${device}`;

/** What the dead-letter topic holds: the intent, why it was given up, after how many attempts. */
export interface PushDeadLetter {
  intent: PushIntent;
  reason: string;
  attempts: number;
  at: number;
}
