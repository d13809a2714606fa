import { z } from 'zod';
import { ConvId, DeviceId, Seq, UserId } from './ids.ts';

/** The push services a device can register with. */
export const PushProviderName = z.enum(['apns', 'fcm']);
export type PushProviderName = z.infer<typeof PushProviderName>;

/**
 * `PUT /v1/devices/:device/push`: the device's token for its platform's push service. `env`
 * (Apple's sandbox or production) and `topic` (the app's bundle id) are for APNs only.
 */
export const PushRegistrationBody = z
  .object({
    provider: PushProviderName,
    token: z.string().regex(/^[A-Za-z0-9_:.-]{8,4096}$/, 'token: 8-4096 of [A-Za-z0-9_:.-]'),
    env: z.enum(['sandbox', 'production']).optional(),
    topic: z.string().regex(/^[A-Za-z0-9.-]{1,255}$/, 'topic: a bundle id').optional(),
  })
  .strict()
  .refine((b) => b.provider === 'apns' || (b.env === undefined && b.topic === undefined), { message: 'env and topic are for apns only' });
export type PushRegistrationBody = z.infer<typeof PushRegistrationBody>;

// ---- internal (edge → region) -----------------------------------------------------------------

export const PushRegisterRequest = z.object({ user: UserId, device: DeviceId, registration: PushRegistrationBody });
export type PushRegisterRequest = z.infer<typeof PushRegisterRequest>;
/** A device of a user (unregister, read its registration). */
export const PushUnregisterRequest = z.object({ user: UserId, device: DeviceId });
export const PushRecordedRequest = z.object({ user: UserId });

/** A notification the recording provider kept (development): what would have reached a device. */
export const RecordedPush = z.object({
  device: DeviceId,
  provider: PushProviderName,
  conv: ConvId,
  seq: Seq,
  at: z.number().int(),
  /** The payload the real provider would have been sent. */
  payload: z.unknown(),
});
export type RecordedPush = z.infer<typeof RecordedPush>;
export type PushRecordedResponse = { enabled: boolean; pushes: RecordedPush[] };
