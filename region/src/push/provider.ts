/**
 * Push providers: what the push workers hand a notification to (Apple's APNs, Google's FCM, or a
 * recording stand-in for development). One small interface, one result table for all of them,
 * one contract suite (region/test/push/provider.contract.ts) that every implementation runs.
 */

/** The services a device can register a token with. */
export type PushService = 'apns' | 'fcm';

/** A device's push registration, as stored (registration storage) and handed to a provider. */
export interface PushRegistration {
  user: string;
  device: string;
  service: PushService;
  token: string;
  /** APNs only: which Apple environment issued the token. */
  env?: 'sandbox' | 'production';
  /** APNs only: the app's bundle id (apns-topic); defaults to the configured APNS_TOPIC. */
  topic?: string;
  /** When this token was registered for this device (ms): APNs' 410 rule compares with it. */
  registeredAt: number;
}

/**
 * What to say. Content-free by default: the conversation and seq only, so the app wakes, fetches
 * and decrypts; `preview` (sender and a short text) only where configured and the conversation is
 * not end-to-end encrypted.
 */
export interface PushMessage {
  /** Stable per (message, device): a retry of the same notification carries the same id. */
  id: string;
  conv: string;
  seq: number;
  /**
   * After this (ms) the notification is worthless: providers drop it rather than deliver it late
   * (the service is told to keep it no longer; one already past answers `bad_message`, reason
   * `expired`, without being sent).
   */
  expireAt: number;
  /** Notifications of one conversation replace each other on the device (collapse id / key). */
  collapseId: string;
  preview?: { from: string; text: string };
}

/**
 * The outcome of one send, classified the same way for every provider (push.md's table):
 * - `delivered`: the provider accepted it;
 * - `token_dead`: the token will never work again (APNs 410 with `at` = Apple's timestamp, or a
 *   token the provider says is not registered / not valid): delete it, unless it was registered
 *   again after `at`;
 * - `retry_device`: this device is being sent too much (APNs 429): try it again after `afterMs`;
 * - `retry_provider`: the provider is in trouble (5xx, timeout, connection lost, quota): try again
 *   later, with backoff, never blocking other devices;
 * - `config`: our configuration is wrong (credentials, topic, project): stop sending through this
 *   provider and alert; never delete tokens for it;
 * - `bad_message`: this notification can never be sent (payload refused): dead-letter it.
 * A provider never throws for what the remote service answered; it throws only for a bug.
 */
export type PushOutcome =
  | { kind: 'delivered'; providerId?: string }
  | { kind: 'token_dead'; at?: number; reason: string }
  | { kind: 'retry_device'; afterMs: number; reason: string }
  | { kind: 'retry_provider'; afterMs?: number; reason: string }
  | { kind: 'config'; reason: string }
  | { kind: 'bad_message'; reason: string };

export interface ProviderHealth {
  /**
   * `off`: not configured (its registrations are skipped); `misconfigured`: a `config` outcome
   * stopped it. The real providers stay `misconfigured` until a send is delivered or for a pause
   * (configPauseMs, default 5 min); then they say `ok` again, `detail` still naming the error, so
   * that the next send probes whether it is fixed.
   */
  status: 'ok' | 'off' | 'misconfigured';
  detail?: string;
}

/** One push service (or a stand-in for it). */
export interface PushProvider {
  /** `apns`, `fcm`, or `recording`. */
  readonly name: string;
  /** The registrations it serves. */
  readonly serves: readonly PushService[];
  send(reg: PushRegistration, msg: PushMessage): Promise<PushOutcome>;
  health(): ProviderHealth;
  close(): Promise<void>;
}
