import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Seconds: from a few ms (the recording provider) to a provider's 10 s timeout and beyond. */
const SEND_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds from the message to the notification leaving: retries can take minutes. */
const AGE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** Why an intent was not sent: each is a value of `switchboard_push_skipped_total{reason}`. */
export const SKIP_REASONS = ['online', 'expired', 'coalesced', 'rate_limited', 'no_token', 'provider_off', 'sent_already'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/**
 * The push workers' metrics (prom-client), `switchboard_push_*`: in the region's registry
 * (RegionMetrics), or in one of their own.
 */
export class PushMetrics {
  readonly intents: Counter<'topic'>;
  readonly skipped: Counter<'reason'>;
  readonly sends: Counter<'provider' | 'result'>;
  readonly sendSeconds: Histogram<'provider'>;
  readonly intentAgeSeconds: Histogram<'provider'>;
  readonly invalidated: Counter<'provider'>;
  readonly retries: Counter<'provider' | 'result'>;
  readonly deadLetters: Counter<'reason'>;
  readonly inFlight: Gauge;
  readonly providerUp: Gauge<'provider'>;
  readonly valveOpen: Gauge<'provider'>;

  constructor(readonly registry: Registry = new Registry()) {
    const registers = [registry];
    this.intents = new Counter({ name: 'switchboard_push_intents_total', help: 'Push intents taken from the queue (retries included)', labelNames: ['topic'] as const, registers });
    this.skipped = new Counter({ name: 'switchboard_push_skipped_total', help: 'Intents not sent, by reason', labelNames: ['reason'] as const, registers });
    this.sends = new Counter({ name: 'switchboard_push_sends_total', help: 'Notifications handed to a provider, by provider and result class', labelNames: ['provider', 'result'] as const, registers });
    this.sendSeconds = new Histogram({ name: 'switchboard_push_send_seconds', help: 'Time a provider took to answer a send', labelNames: ['provider'] as const, buckets: SEND_BUCKETS, registers });
    this.intentAgeSeconds = new Histogram({ name: 'switchboard_push_intent_age_seconds', help: 'From the message being sequenced to its notification being accepted by the provider', labelNames: ['provider'] as const, buckets: AGE_BUCKETS, registers });
    this.invalidated = new Counter({ name: 'switchboard_push_tokens_invalidated_total', help: 'Registrations deleted because the provider said the token is dead', labelNames: ['provider'] as const, registers });
    this.retries = new Counter({ name: 'switchboard_push_retries_total', help: 'Intents sent to the retry topic, by provider and result class', labelNames: ['provider', 'result'] as const, registers });
    this.deadLetters = new Counter({ name: 'switchboard_push_dead_letters_total', help: 'Intents given up and written to the dead-letter topic, by reason', labelNames: ['reason'] as const, registers });
    this.inFlight = new Gauge({ name: 'switchboard_push_in_flight', help: 'Sends awaiting a provider answer', registers });
    this.providerUp = new Gauge({ name: 'switchboard_push_provider_up', help: '1 while a provider may send, 0 when it is off or stopped by a configuration error', labelNames: ['provider'] as const, registers });
    this.valveOpen = new Gauge({ name: 'switchboard_push_dead_token_valve_tripped', help: '1 while the safety valve stops token deletion for a provider', labelNames: ['provider'] as const, registers });
    for (const reason of SKIP_REASONS) this.skipped.inc({ reason }, 0);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
