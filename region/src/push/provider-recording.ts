import type { Message } from 'firebase-admin/messaging';
import type { ProviderHealth, PushMessage, PushOutcome, PushProvider, PushRegistration, PushService } from './provider.ts';
import { apnsOrigin, apnsRequest, type ApnsRequest } from './provider-apns.ts';
import { fcmMessage } from './provider-fcm.ts';

/**
 * The embedded stand-in for APNs and FCM (development, `npm start`, tests): it sends nothing,
 * records what each real provider would have sent, built by the same functions they use, and
 * answers `delivered`, or the same `bad_message` a real provider decides before sending (expired,
 * too large). Memory is bounded: the last `perDevice` notifications of each device, the
 * `maxUsers` users recorded most recently.
 */

/** What would have gone out, exactly as the real provider builds it. */
export type RecordedPayload =
  | { service: 'apns'; origin: string; request: ApnsRequest }
  | { service: 'fcm'; message: Message };

export interface RecordedNotification {
  /** When it was recorded (ms). */
  at: number;
  reg: PushRegistration;
  msg: PushMessage;
  payload: RecordedPayload;
}

export interface RecordingOptions {
  /** The services it stands in for (the ones not configured). */
  serves: readonly PushService[];
  /** APNS_TOPIC when APNs is configured, for the apns-topic header it shows. */
  apnsTopic?: string | null;
  /** APNS_ORIGIN when set: the origin it shows for APNs requests. */
  apnsOrigin?: string | null;
  /** Notifications kept per device (default 100). */
  perDevice?: number;
  /** Users kept (default 10,000): the one recorded least recently goes first. */
  maxUsers?: number;
}

export class RecordingProvider implements PushProvider {
  readonly name = 'recording';
  readonly serves: readonly PushService[];
  private readonly perDevice: number;
  private readonly maxUsers: number;
  /** user → device → notifications, oldest first; Map order = users by last recording. */
  private readonly byUser = new Map<string, Map<string, RecordedNotification[]>>();

  constructor(private readonly opts: RecordingOptions) {
    this.serves = [...opts.serves];
    this.perDevice = opts.perDevice ?? 100;
    this.maxUsers = opts.maxUsers ?? 10_000;
  }

  health(): ProviderHealth {
    return { status: 'ok' };
  }

  async send(reg: PushRegistration, msg: PushMessage): Promise<PushOutcome> {
    if (!this.serves.includes(reg.service)) throw new TypeError(`recording provider does not stand in for ${reg.service}`);
    const at = Date.now();
    let payload: RecordedPayload;
    if (reg.service === 'apns') {
      const built = apnsRequest(reg, msg, { topic: this.opts.apnsTopic }, at);
      if (!built.ok) return built.outcome;
      payload = { service: 'apns', origin: apnsOrigin(reg, this.opts.apnsOrigin), request: built.request };
    } else {
      const built = fcmMessage(reg, msg, at);
      if (!built.ok) return built.outcome;
      payload = { service: 'fcm', message: built.message };
    }
    this.record({ at, reg: { ...reg }, msg: { ...msg }, payload });
    return { kind: 'delivered' };
  }

  /** Every notification recorded for `user`, all devices, oldest first. */
  recorded(user: string): RecordedNotification[] {
    const devices = this.byUser.get(user);
    if (!devices) return [];
    return [...devices.values()].flat().sort((a, b) => a.at - b.at);
  }

  private record(n: RecordedNotification): void {
    let devices = this.byUser.get(n.reg.user);
    if (devices) this.byUser.delete(n.reg.user);
    else devices = new Map();
    this.byUser.set(n.reg.user, devices);
    if (this.byUser.size > this.maxUsers) this.byUser.delete(this.byUser.keys().next().value!);
    let list = devices.get(n.reg.device);
    if (!list) devices.set(n.reg.device, (list = []));
    list.push(n);
    if (list.length > this.perDevice) list.splice(0, list.length - this.perDevice);
  }

  async close(): Promise<void> {
    this.byUser.clear();
  }
}
