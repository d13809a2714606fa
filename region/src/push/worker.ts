import type { Logger } from '../log.ts';
import { errorFields } from '../log.ts';
import { dlqOf, TOPICS, type Queue, type QueueRecord, type Subscription } from '../queue/queue.ts';
import type { Routes } from '../routes/routes.ts';
import type { PushGate, PushRate } from './gate.ts';
import { PushIntent, pushKey, type PushDeadLetter } from './intents.ts';
import type { PushMetrics, SkipReason } from './push-metrics.ts';
import type { PushMessage, PushOutcome, PushProvider, PushRegistration, PushService } from './provider.ts';
import type { PushRegistrations } from './registrations.ts';
import { DeadTokenValve } from './valve.ts';

export interface PushSettings {
  /** One wake per device is outstanding at most this long, unless the device comes online first. */
  coalesceMs: number;
  /** Per-device limit on notifications. */
  rate: PushRate;
  /** Sends of one intent, the first included; then the dead-letter topic. */
  maxAttempts: number;
  /** First retry after this long when the provider gave no delay; doubles per attempt, up to retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** A provider stopped by a configuration error is tried again this much later. */
  configRetryMs: number;
  /** Add sender and a short text to notifications (conversations not end-to-end encrypted only). */
  preview: boolean;
}

export const DEFAULT_PUSH_SETTINGS: PushSettings = {
  coalesceMs: 15 * 60_000,
  rate: { perHour: 60, burst: 10 },
  maxAttempts: 10,
  retryBaseMs: 2_000,
  retryMaxMs: 5 * 60_000,
  configRetryMs: 10 * 60_000,
  preview: false,
};

export interface PushWorkerDeps {
  queue: Queue;
  routes: Routes;
  store: PushRegistrations;
  gate: PushGate;
  /** One per service at most (a later one for the same service wins). */
  providers: PushProvider[];
  metrics: PushMetrics;
  log: Logger;
  settings?: Partial<PushSettings>;
  /** Sender and text of a message, for previews (null: not available). */
  preview?: (conv: string, seq: number) => Promise<{ from: string; text: string } | null>;
  valve?: DeadTokenValve;
  now?: () => number;
}

/** How long a retry-topic record is held before it is published again when not yet due. */
const RETRY_HOLD_MAX_MS = 2_000;

/**
 * The push workers: each intent (one device, one message) is dropped when its time ran out or the
 * device came online, coalesced into the wake already outstanding for that device, rate limited,
 * and otherwise sent through its registration's provider; the provider's answer decides (one
 * table for every provider, see provider.ts): delivered; token dead → its registration deleted
 * (only if not registered again since, and not while the safety valve is tripped); retry → the
 * retry topic with a delay, never blocking the main topic; configuration error → that provider
 * stops, intents for it wait, no token is deleted; bad message → dead letter. Several processes
 * share the work through the queue's consumer group; handling an intent twice (a worker killed
 * mid-send) can at most repeat the notification it had in flight.
 */
export class PushWorker {
  private readonly settings: PushSettings;
  private readonly providers = new Map<PushService, PushProvider>();
  private readonly valve: DeadTokenValve;
  private readonly now: () => number;

  constructor(private readonly deps: PushWorkerDeps) {
    this.settings = { ...DEFAULT_PUSH_SETTINGS, ...deps.settings };
    for (const p of deps.providers) for (const s of p.serves) this.providers.set(s, p);
    this.valve =
      deps.valve ??
      new DeadTokenValve(undefined, (provider, tripped, share) => {
        deps.metrics.valveOpen.set({ provider }, tripped ? 1 : 0);
        if (tripped) deps.log.error('push: dead-token share spiked; token deletion stopped for this provider (intents go to the dead-letter topic)', { provider, share });
        else deps.log.warn('push: dead-token share back to normal; token deletion resumes', { provider, share });
      });
    this.now = deps.now ?? Date.now;
    for (const p of deps.providers) deps.metrics.providerUp.set({ provider: p.name }, p.health().status === 'ok' ? 1 : 0);
  }

  /** Subscribes the main and the retry topic (consumer group `push`). */
  async start(): Promise<Subscription[]> {
    const { queue } = this.deps;
    await queue.init([TOPICS.push, TOPICS.pushRetry, dlqOf(TOPICS.push), dlqOf(TOPICS.pushRetry)]);
    return [await queue.subscribe(TOPICS.push, 'push', (r) => this.handle(r, 'push')), await queue.subscribe(TOPICS.pushRetry, 'push-retry', (r) => this.handleRetry(r))];
  }

  /** A record of the main topic (also the retry topic's, once due). Throws only when the queue must retry it. */
  async handle(record: QueueRecord, topic: 'push' | 'push.retry' = 'push'): Promise<void> {
    const parsed = PushIntent.safeParse(record.value);
    if (!parsed.success) {
      this.deps.log.error('push record is not an intent; dropped to the log', { key: record.key });
      return;
    }
    this.deps.metrics.intents.inc({ topic });
    await this.process(parsed.data);
  }

  /**
   * A retry-topic record: held until its `notBefore` when that is near, else published again to
   * wait some more (a handler never holds a record long: the queue's consumer must keep beating).
   */
  async handleRetry(record: QueueRecord): Promise<void> {
    const parsed = PushIntent.safeParse(record.value);
    const due = parsed.success ? (parsed.data.notBefore ?? 0) : 0;
    const wait = due - this.now();
    if (wait > 0) {
      await new Promise((r) => setTimeout(r, Math.min(wait, RETRY_HOLD_MAX_MS)));
      if (due > this.now()) return void (await this.deps.queue.publish(TOPICS.pushRetry, [record]));
    }
    await this.handle(record, 'push.retry');
  }

  private skip(reason: SkipReason, intent: PushIntent): void {
    this.deps.metrics.skipped.inc({ reason });
    this.deps.log.debug('push skipped', { user: intent.user, device: intent.device, conv: intent.conv, seq: intent.seq, result: reason });
  }

  private async process(intent: PushIntent): Promise<void> {
    const { routes, store, gate } = this.deps;
    const now = this.now();
    if (intent.expireAt <= now) return this.skip('expired', intent);
    const online = (await routes.lookup([intent.user])).get(intent.user)?.some((r) => r.device === intent.device);
    if (online) return this.skip('online', intent);
    const reg = await store.pushRegistration(intent.user, intent.device);
    if (!reg) return this.skip('no_token', intent);
    const provider = this.providers.get(reg.service);
    if (!provider || provider.health().status === 'off') return this.skip('provider_off', intent);
    if (provider.health().status === 'misconfigured') return this.retry(intent, provider.name, 'config', this.settings.configRetryMs, 'provider stopped by a configuration error');
    // The device's wake: taken by the first attempt, kept by a retry (taken again if it lapsed);
    // an intent handled again after its worker died finds it sent, unless the send was in flight.
    const claim = await gate.claim(intent.user, intent.device, this.settings.coalesceMs, intent.id);
    if (claim === 'sent') return this.skip('sent_already', intent);
    if (claim === 'held') return this.skip('coalesced', intent);
    if (intent.attempts === 0) {
      const take = await gate.take(intent.user, intent.device, this.settings.rate);
      if (!take.ok) {
        await gate.release(intent.user, intent.device);
        return this.skip('rate_limited', intent);
      }
    }
    const outcome = await this.send(provider, reg, intent);
    if (outcome.kind === 'delivered') await gate.sent(intent.user, intent.device, intent.id);
    await this.decide(intent, provider, reg, outcome);
  }

  private async send(provider: PushProvider, reg: PushRegistration, intent: PushIntent): Promise<PushOutcome> {
    const { metrics } = this.deps;
    const msg: PushMessage = { id: intent.id, conv: intent.conv, seq: intent.seq, expireAt: intent.expireAt, collapseId: intent.conv };
    if (this.settings.preview && this.deps.preview) {
      const p = await this.deps.preview(intent.conv, intent.seq).catch(() => null);
      if (p) msg.preview = p;
    }
    metrics.inFlight.inc();
    const stop = metrics.sendSeconds.startTimer({ provider: provider.name });
    try {
      return await provider.send(reg, msg);
    } catch (err) {
      // A provider throws only for a bug of its own: treat it as provider trouble, and say so.
      this.deps.log.error('push provider threw', { provider: provider.name, ...errorFields(err) });
      return { kind: 'retry_provider', reason: `provider error: ${err instanceof Error ? err.message : String(err)}` };
    } finally {
      stop();
      metrics.inFlight.dec();
    }
  }

  private async decide(intent: PushIntent, provider: PushProvider, reg: PushRegistration, outcome: PushOutcome): Promise<void> {
    const { metrics, log, store } = this.deps;
    const name = provider.name;
    metrics.sends.inc({ provider: name, result: outcome.kind });
    log.debug('push sent', { user: intent.user, device: intent.device, conv: intent.conv, seq: intent.seq, provider: name, attempt: intent.attempts + 1, result: outcome.kind });
    if (outcome.kind !== 'config') this.valve.record(name, outcome.kind === 'token_dead', this.now());
    metrics.providerUp.set({ provider: name }, provider.health().status === 'ok' ? 1 : 0);
    switch (outcome.kind) {
      case 'delivered':
        metrics.intentAgeSeconds.observe({ provider: name }, Math.max(0, this.now() - intent.ts) / 1000);
        return;
      case 'token_dead': {
        if (!this.valve.allowsDelete(name)) return this.deadLetter(intent, `token_dead (${outcome.reason}) while the safety valve is tripped: not deleted`);
        // APNs' rule: delete only a registration older than Apple's timestamp of the token's death.
        if (await store.invalidatePush(reg, outcome.at)) metrics.invalidated.inc({ provider: name });
        await this.deps.gate.release(intent.user, intent.device);
        log.info('push token dead', { provider: name, user: reg.user, device: reg.device, reason: outcome.reason, deleted: true });
        return;
      }
      case 'retry_device':
        return this.retry(intent, name, outcome.kind, outcome.afterMs, outcome.reason);
      case 'retry_provider':
        // The provider's delay is a floor: a long outage still backs off exponentially.
        return this.retry(intent, name, outcome.kind, Math.max(outcome.afterMs ?? 0, Math.min(this.settings.retryMaxMs, this.settings.retryBaseMs * 2 ** intent.attempts)), outcome.reason);
      case 'config':
        log.error('push provider configuration error: it stops sending until fixed (no token is deleted)', { provider: name, reason: outcome.reason });
        return this.retry(intent, name, outcome.kind, this.settings.configRetryMs, outcome.reason);
      case 'bad_message':
        return this.deadLetter(intent, `bad_message: ${outcome.reason}`);
    }
  }

  /** To the retry topic after `afterMs` (with jitter), or the dead-letter topic when out of attempts or time. */
  private async retry(intent: PushIntent, provider: string, result: string, afterMs: number, reason: string): Promise<void> {
    const attempts = intent.attempts + 1;
    const notBefore = this.now() + Math.round(afterMs * (1 + Math.random() * 0.2));
    if (attempts >= this.settings.maxAttempts) return this.deadLetter({ ...intent, attempts, lastError: reason.slice(0, 500) }, `retries exhausted: ${reason}`);
    if (notBefore >= intent.expireAt) return this.deadLetter({ ...intent, attempts, lastError: reason.slice(0, 500) }, `expired while retrying: ${reason}`);
    this.deps.metrics.retries.inc({ provider, result });
    const next: PushIntent = { ...intent, attempts, notBefore, lastError: reason.slice(0, 500) };
    await this.deps.queue.publish(TOPICS.pushRetry, [{ key: pushKey(intent.user, intent.device), value: next }]);
  }

  private async deadLetter(intent: PushIntent, reason: string): Promise<void> {
    const letter: PushDeadLetter = { intent, reason: reason.slice(0, 500), attempts: intent.attempts, at: this.now() };
    this.deps.metrics.deadLetters.inc({ reason: reason.split(/[ :(]/)[0]! });
    this.deps.log.warn('push intent dead-lettered', { user: intent.user, device: intent.device, conv: intent.conv, seq: intent.seq, reason: letter.reason });
    await this.deps.queue.publish(dlqOf(TOPICS.push), [{ key: pushKey(intent.user, intent.device), value: letter }]);
  }
}
