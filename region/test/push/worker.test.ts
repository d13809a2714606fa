import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../src/log.ts';
import { MemoryPushGate } from '../../src/push/gate-memory.ts';
import { pushIntentId, pushKey, type PushDeadLetter, type PushIntent } from '../../src/push/intents.ts';
import type { PushMessage, PushOutcome, PushProvider, PushRegistration, PushService } from '../../src/push/provider.ts';
import { PushMetrics } from '../../src/push/push-metrics.ts';
import { DeadTokenValve } from '../../src/push/valve.ts';
import { PushWorker, type PushSettings } from '../../src/push/worker.ts';
import { MemoryQueue } from '../../src/queue/queue-memory.ts';
import { dlqOf, TOPICS, type Subscription } from '../../src/queue/queue.ts';
import { MemoryRoutes } from '../../src/routes/routes-memory.ts';
import { SqliteStorage } from '../../src/storage/storage-sqlite.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean | Promise<boolean>, ms = 5000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
};

/** A provider whose answers the test scripts per token (default: delivered). */
class ScriptedProvider implements PushProvider {
  readonly name: string;
  readonly serves: readonly PushService[];
  readonly sent: { reg: PushRegistration; msg: PushMessage }[] = [];
  answer: (reg: PushRegistration, n: number) => PushOutcome = () => ({ kind: 'delivered' });
  status: 'ok' | 'off' | 'misconfigured' = 'ok';
  constructor(service: PushService) {
    this.name = service;
    this.serves = [service];
  }
  async send(reg: PushRegistration, msg: PushMessage): Promise<PushOutcome> {
    this.sent.push({ reg, msg });
    const out = this.answer(reg, this.sent.filter((s) => s.reg.token === reg.token).length);
    if (out.kind === 'config') this.status = 'misconfigured';
    return out;
  }
  health() {
    return { status: this.status };
  }
  async close() {}
}

const T = Date.now();
let seq = 0;
const intent = (user: string, device: string, extra: Partial<PushIntent> = {}): PushIntent => {
  const s = ++seq;
  return { kind: 'push', id: pushIntentId('c1', s, user, device), user, device, conv: 'c1', seq: s, from: 'ann', ts: Date.now(), expireAt: Date.now() + 3_600_000, attempts: 0, ...extra };
};

async function setup(settings: Partial<PushSettings> = {}, valve?: DeadTokenValve) {
  const log = createLogger({ test: 'push-worker' });
  const queue = new MemoryQueue(log);
  const storage = new SqliteStorage(':memory:');
  await storage.init();
  const routes = new MemoryRoutes();
  const gate = new MemoryPushGate();
  const apns = new ScriptedProvider('apns');
  const fcm = new ScriptedProvider('fcm');
  const metrics = new PushMetrics();
  const worker = new PushWorker({ queue, routes, store: storage, gate, providers: [apns, fcm], metrics, log, settings: { retryBaseMs: 20, ...settings }, ...(valve ? { valve } : {}) });
  const subs: Subscription[] = await worker.start();
  const dead: PushDeadLetter[] = [];
  subs.push(await queue.subscribe(dlqOf(TOPICS.push), 'test-dlq', async (r) => void dead.push(r.value as PushDeadLetter)));
  const publish = (...intents: PushIntent[]) => queue.publish(TOPICS.push, intents.map((i) => ({ key: pushKey(i.user, i.device), value: i })));
  const register = (user: string, device: string, service: PushService, token: string, at = Date.now()) => storage.registerPush({ user, device, service, token }, at);
  const counter = async (name: string, labels: Record<string, string>) => {
    const m = (await metrics.registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
    return m?.value ?? 0;
  };
  const stop = async () => {
    for (const s of subs) await s.stop();
    await queue.close();
    await storage.close();
  };
  return { queue, storage, routes, gate, apns, fcm, metrics, worker, dead, publish, register, counter, stop };
}

describe('PushWorker', () => {
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const s of stops) await s();
  });
  const make = async (...args: Parameters<typeof setup>) => {
    const s = await setup(...args);
    stops.push(s.stop);
    return s;
  };

  it('sends a content-free wake to a registered device with no socket, through its service’s provider', async () => {
    const s = await make();
    await s.register('bob', 'phone', 'apns', 'tok-a');
    await s.register('cat', 'phone', 'fcm', 'tok-f');
    const i = intent('bob', 'phone');
    await s.publish(i, intent('cat', 'phone'));
    await until(() => s.apns.sent.length === 1 && s.fcm.sent.length === 1);
    assert.deepEqual(s.apns.sent[0]!.msg, { id: i.id, conv: 'c1', seq: i.seq, expireAt: i.expireAt, collapseId: 'c1' }, 'no sender, no text: content-free');
    assert.equal(await s.counter('switchboard_push_sends_total', { provider: 'apns', result: 'delivered' }), 1);
  });

  it('skips, with the reason counted: expired, online, no token, provider off', async () => {
    const s = await make();
    await s.register('exp', 'phone', 'apns', 'tok-exp');
    await s.register('onl', 'phone', 'apns', 'tok-onl');
    await s.routes.up({ user: 'onl', device: 'phone', edge: 'http://e', gw: 'gw:local:0', conn: 1 }, 60_000);
    await s.register('off', 'phone', 'fcm', 'tok-off');
    s.fcm.status = 'off';
    await s.publish(intent('exp', 'phone', { expireAt: Date.now() - 1 }), intent('onl', 'phone'), intent('none', 'phone'), intent('off', 'phone'));
    await until(async () => (await s.counter('switchboard_push_skipped_total', { reason: 'provider_off' })) === 1);
    for (const reason of ['expired', 'online', 'no_token']) assert.equal(await s.counter('switchboard_push_skipped_total', { reason }), 1, reason);
    assert.equal(s.apns.sent.length + s.fcm.sent.length, 0);
  });

  it('coalesces a burst into one wake per device until it comes online, then wakes it again', async () => {
    const s = await make();
    await s.register('bob', 'phone', 'apns', 'tok-b');
    await s.register('bob', 'tablet', 'fcm', 'tok-t');
    await s.publish(...Array.from({ length: 20 }, () => intent('bob', 'phone')), ...Array.from({ length: 20 }, () => intent('bob', 'tablet')));
    await until(async () => (await s.counter('switchboard_push_skipped_total', { reason: 'coalesced' })) === 38);
    assert.equal(s.apns.sent.length, 1);
    assert.equal(s.fcm.sent.length, 1);
    await s.gate.release('bob', 'phone'); // it connected (the region's presence `connect`)
    await s.publish(intent('bob', 'phone'));
    await until(() => s.apns.sent.length === 2);
  });

  it('rate limits a device beyond its burst', async () => {
    const s = await make({ coalesceMs: 1, rate: { perHour: 1, burst: 2 } });
    await s.register('bob', 'phone', 'apns', 'tok-r');
    for (let k = 0; k < 4; k++) {
      await s.publish(intent('bob', 'phone'));
      await sleep(30);
    }
    await until(async () => (await s.counter('switchboard_push_skipped_total', { reason: 'rate_limited' })) === 2);
    assert.equal(s.apns.sent.length, 2);
  });

  it('a dead token is deleted, unless the device registered it again after the provider saw it die', async () => {
    const s = await make();
    const t0 = Date.now();
    await s.register('old', 'phone', 'apns', 'tok-old', t0 - 10_000);
    await s.register('new', 'phone', 'apns', 'tok-new', t0 + 10_000);
    s.apns.answer = () => ({ kind: 'token_dead', at: t0, reason: 'Unregistered' });
    await s.publish(intent('old', 'phone'), intent('new', 'phone'));
    await until(() => s.apns.sent.length === 2);
    await until(async () => (await s.storage.pushRegistration('old', 'phone')) === null);
    assert.ok(await s.storage.pushRegistration('new', 'phone'), 'registered after the timestamp: kept');
    assert.equal(await s.counter('switchboard_push_tokens_invalidated_total', { provider: 'apns' }), 1);
  });

  it('retries a device after the delay it was told, and the provider’s trouble with backoff, on the retry topic', async () => {
    const s = await make();
    await s.register('bob', 'phone', 'apns', 'tok-429');
    await s.register('cat', 'phone', 'fcm', 'tok-503');
    s.apns.answer = (_r, n) => (n === 1 ? { kind: 'retry_device', afterMs: 300, reason: 'TooManyRequests' } : { kind: 'delivered' });
    s.fcm.answer = (_r, n) => (n <= 2 ? { kind: 'retry_provider', reason: '503' } : { kind: 'delivered' });
    const t0 = Date.now();
    await s.publish(intent('bob', 'phone'), intent('cat', 'phone'));
    await until(() => s.apns.sent.length === 2 && s.fcm.sent.length === 3);
    assert.ok(Date.now() - t0 >= 300, 'not before the delay');
    assert.equal(await s.counter('switchboard_push_sends_total', { provider: 'fcm', result: 'delivered' }), 1);
    assert.equal(await s.counter('switchboard_push_retries_total', { provider: 'fcm', result: 'retry_provider' }), 2);
    assert.equal(s.dead.length, 0);
  });

  it('a provider’s short delay is a floor: a long outage still backs off exponentially', async () => {
    const s = await make({ retryBaseMs: 40, maxAttempts: 6 });
    await s.register('cat', 'phone', 'fcm', 'tok-floor');
    const at: number[] = [];
    s.fcm.answer = (_r, n) => (at.push(Date.now()), n <= 4 ? { kind: 'retry_provider', afterMs: 10, reason: '503' } : { kind: 'delivered' });
    await s.publish(intent('cat', 'phone'));
    await until(() => s.fcm.sent.length === 5);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    // 40, 80, 160, 320 ms (+ up to 20 % jitter), not the provider's 10 ms each time.
    gaps.forEach((g, i) => assert.ok(g >= 40 * 2 ** i, `gap ${i}: ${g} ms`));
    assert.equal(s.dead.length, 0);
  });

  it('an intent handled again after its notification was delivered is not sent twice', async () => {
    const s = await make();
    await s.register('bob', 'phone', 'apns', 'tok-again');
    const i = intent('bob', 'phone');
    await s.publish(i);
    await until(() => s.apns.sent.length === 1);
    await s.publish(i); // as the next owner of a partition sees a record its dead worker had not committed
    await until(async () => (await s.counter('switchboard_push_skipped_total', { reason: 'sent_already' })) === 1);
    assert.equal(s.apns.sent.length, 1);
  });

  it('dead-letters, with the reason: a bad message at once, a retry out of attempts', async () => {
    const s = await make({ maxAttempts: 3 });
    await s.register('bad', 'phone', 'apns', 'tok-bad');
    await s.register('down', 'phone', 'fcm', 'tok-down');
    s.apns.answer = () => ({ kind: 'bad_message', reason: 'PayloadTooLarge' });
    s.fcm.answer = () => ({ kind: 'retry_provider', reason: 'server-unavailable' });
    await s.publish(intent('bad', 'phone'), intent('down', 'phone'));
    await until(() => s.dead.length === 2);
    const by = (u: string) => s.dead.find((d) => d.intent.user === u)!;
    assert.match(by('bad').reason, /^bad_message: PayloadTooLarge/);
    assert.match(by('down').reason, /^retries exhausted: server-unavailable/);
    assert.equal(s.fcm.sent.length, 3, 'PUSH_MAX_ATTEMPTS sends, then the dead-letter topic');
  });

  it('a configuration error stops that provider without deleting tokens; the intent waits', async () => {
    const s = await make({ configRetryMs: 60_000 });
    await s.register('bob', 'phone', 'apns', 'tok-cfg');
    await s.register('cat', 'phone', 'apns', 'tok-cfg2');
    s.apns.answer = () => ({ kind: 'config', reason: 'InvalidProviderToken' });
    await s.publish(intent('bob', 'phone'));
    await until(() => s.apns.sent.length === 1);
    await s.publish(intent('cat', 'phone'));
    await until(async () => (await s.counter('switchboard_push_retries_total', { provider: 'apns', result: 'config' })) === 2);
    assert.equal(s.apns.sent.length, 1, 'nothing more is sent through a stopped provider');
    assert.ok(await s.storage.pushRegistration('bob', 'phone'), 'never delete on a configuration error');
    assert.equal((await s.metrics.providerUp.get()).values.find((v) => v.labels.provider === 'apns')?.value, 0);
  });

  it('the safety valve stops deleting tokens when a provider calls too many dead', async () => {
    const s = await make({}, new DeadTokenValve({ windowMs: 60_000, ratio: 0.2, minSends: 5 }));
    s.apns.answer = () => ({ kind: 'token_dead', reason: 'BadDeviceToken' });
    for (let k = 0; k < 8; k++) await s.register(`u${k}`, 'phone', 'apns', `tok-v${k}`);
    for (let k = 0; k < 8; k++) {
      await s.publish(intent(`u${k}`, 'phone'));
      await until(() => s.apns.sent.length === k + 1);
    }
    await until(() => s.dead.length === 4);
    const kept = await s.storage.pushRegistrations(Array.from({ length: 8 }, (_, k) => `u${k}`));
    assert.equal(kept.size, 4, 'the first four were deleted; once five answers were in and all dead, deletion stopped');
    assert.ok(s.dead.every((d) => /safety valve/.test(d.reason)));
  });
});
