import type { PushRegistration } from './provider.ts';

/** A registration as a device asks for it; the store stamps `registeredAt`. */
export type PushRegistrationRequest = Omit<PushRegistration, 'registeredAt'>;

/**
 * Devices' push tokens (part of regional storage: Cassandra, embedded SQLite). Contract, tested by
 * region/test/storage/storage.contract.ts against every implementation:
 * - a device has at most one registration; registering replaces the device's earlier one;
 * - a token has one owner: registering a (service, token) another device holds moves it here, so
 *   a reinstall or a new sign-in on a phone never gets pushes twice;
 * - `registeredAt` is when the token was registered for this device; registering the same token
 *   again for the same device moves it forward;
 * - `invalidatePush` deletes a registration only while it still holds that token and, when
 *   `before` is given, was registered before it (APNs' 410 rule: a token registered again after
 *   Apple saw it die is kept); it answers whether it deleted;
 * - `pushRegistrations` answers every registration of the given users, in one call.
 */
export interface PushRegistrations {
  registerPush(reg: PushRegistrationRequest, at: number): Promise<void>;
  unregisterPush(user: string, device: string): Promise<void>;
  pushRegistration(user: string, device: string): Promise<PushRegistration | null>;
  pushRegistrations(users: string[]): Promise<Map<string, PushRegistration[]>>;
  invalidatePush(reg: { user: string; device: string; token: string }, before?: number): Promise<boolean>;
}
