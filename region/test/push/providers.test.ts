import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/config-error.ts';
import type { Logger } from '../../src/log.ts';
import type { PushRegistration, PushService } from '../../src/push/provider.ts';
import { APNS_PRODUCTION, APNS_SANDBOX, ApnsProvider, apnsId, apnsOrigin, type ApnsOptions } from '../../src/push/provider-apns.ts';
import { FcmProvider, FcmSetupError } from '../../src/push/provider-fcm.ts';
import { RecordingProvider } from '../../src/push/provider-recording.ts';
import { createProviders, loadPushProvidersConfig } from '../../src/push/providers-config.ts';
import { FakeApns, apnsContentFree } from './fakes/fake-apns.ts';
import { FakeFcm, fcmContentFree, googleError } from './fakes/fake-fcm.ts';
import { apnsKey, serviceAccount, testPki } from './fakes/pki.ts';
import { message, providerContract, type ProviderHarness } from './provider.contract.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TOPIC = 'com.example.switchboard';

/** A logger that keeps its lines, so tests stay quiet and can look at what was said. */
function memoryLog(lines: { level: string; msg: string }[] = []): Logger {
  const log = (level: string) => (msg: string) => void lines.push({ level, msg });
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => memoryLog(lines) };
}

const hex = (n = 16) => crypto.randomBytes(n).toString('hex');
let devices = 0;
function registration(service: PushService, token: string, over: Partial<PushRegistration> = {}): PushRegistration {
  return { user: `user-${service}`, device: `device-${++devices}`, service, token, registeredAt: Date.now() - 60_000, ...over };
}

function apnsOptions(fake: FakeApns, over: Partial<ApnsOptions> = {}): ApnsOptions {
  return { keyPem: fake.key.pem, keyId: fake.key.keyId, teamId: fake.key.teamId, topic: TOPIC, origin: fake.origin, caPem: testPki().caPem, log: memoryLog(), ...over };
}

function fcmProvider(fake: FakeFcm, over: { projectId?: string; timeoutMs?: number; log?: Logger } = {}): FcmProvider {
  return new FcmProvider({
    projectId: over.projectId ?? fake.projectId,
    serviceAccountFile: fake.account.file,
    origin: fake.origin,
    caPem: testPki().caPem,
    timeoutMs: over.timeoutMs ?? 20_000,
    log: over.log ?? memoryLog(),
  });
}

// ---------------------------------------------------------------------------------------------
// The contract, for every provider.

providerContract('apns (fake APNs)', async (): Promise<ProviderHarness> => {
  const fake = await FakeApns.start({ topics: [TOPIC] });
  fake.deadAt = Date.now() - 3 * 86_400_000 + 123;
  const provider = new ApnsProvider(apnsOptions(fake, { timeoutMs: 1500 }));
  const reg = (prefix: string, over: Partial<PushRegistration> = {}) => () => registration('apns', `${prefix}${hex()}`, { env: 'production', ...over });
  const answer = (status: number, reason: string) => () => void (fake.respond = () => ({ status, reason }));
  return {
    provider,
    goodReg: reg('a0'),
    received: (r) => fake.acceptedFor(r.token).map((a) => ({ contentFree: a.contentFree, raw: a.raw })),
    notInTable: {},
    rows: [
      { name: '410 Unregistered → token_dead, at = Apple\'s timestamp', reg: reg('dead'), expect: { kind: 'token_dead', at: fake.deadAt } },
      { name: '400 BadDeviceToken → token_dead', reg: reg('bad'), expect: { kind: 'token_dead', reason: /BadDeviceToken/ } },
      { name: '400 DeviceTokenNotForTopic → token_dead', arrange: answer(400, 'DeviceTokenNotForTopic'), reg: reg('a1'), expect: { kind: 'token_dead' } },
      { name: '429 TooManyRequests → retry_device after ≥ 60 s', reg: reg('busy'), expect: { kind: 'retry_device', afterMsAtLeast: 60_000 } },
      { name: '503 ServiceUnavailable → retry_provider', arrange: () => fake.unavailableFor(60_000), reg: reg('a2'), expect: { kind: 'retry_provider', reason: /503/ } },
      { name: '500 InternalServerError → retry_provider', arrange: answer(500, 'InternalServerError'), reg: reg('a3'), expect: { kind: 'retry_provider' } },
      { name: 'no answer within the timeout → retry_provider', arrange: () => void (fake.stall = true), reg: reg('a4'), expect: { kind: 'retry_provider', reason: /timeout/ } },
      { name: '403 InvalidProviderToken → config', arrange: () => void (fake.rejectJwts = true), reg: reg('a5'), expect: { kind: 'config', reason: /InvalidProviderToken/ } },
      { name: '403 ExpiredProviderToken, again with a fresh token → config', arrange: () => void (fake.expireEveryJwt = true), reg: reg('a6'), expect: { kind: 'config', reason: /ExpiredProviderToken/ } },
      { name: '429 TooManyProviderTokenUpdates → config', arrange: answer(429, 'TooManyProviderTokenUpdates'), reg: reg('a7'), expect: { kind: 'config' } },
      { name: '400 BadTopic → config', reg: reg('a8', { topic: 'com.example.unknown' }), expect: { kind: 'config', reason: /BadTopic/ } },
      { name: '400 MissingTopic → config', arrange: answer(400, 'MissingTopic'), reg: reg('a9'), expect: { kind: 'config' } },
      { name: '413 PayloadTooLarge → bad_message', arrange: answer(413, 'PayloadTooLarge'), reg: reg('aa'), expect: { kind: 'bad_message' } },
      { name: '400 BadCollapseId → bad_message', arrange: answer(400, 'BadCollapseId'), reg: reg('ab'), expect: { kind: 'bad_message' } },
    ],
    reset: () => fake.reset(),
    close: async () => {
      await provider.close();
      await fake.close();
    },
  };
});

providerContract('fcm (fake FCM)', async (): Promise<ProviderHarness> => {
  const fake = await FakeFcm.start();
  const provider = fcmProvider(fake, { timeoutMs: 1500 });
  const reg = (prefix: string) => () => registration('fcm', `${prefix}:${hex(24)}`);
  const answer = (status: number, body: string, headers?: Record<string, string>) => () => void (fake.respond = () => ({ status, body, ...(headers ? { headers } : {}) }));
  return {
    provider,
    goodReg: reg('f0'),
    received: (r) => fake.acceptedFor(r.token).map((a) => ({ contentFree: a.contentFree, raw: JSON.stringify(a.message) })),
    notInTable: { retry_device: 'FCM answers no per-device throttle (push.md: "—")' },
    rows: [
      { name: '404 UNREGISTERED → token_dead', reg: reg('dead'), expect: { kind: 'token_dead', reason: /UNREGISTERED/ } },
      { name: '400 INVALID_ARGUMENT "not a valid FCM registration token" → token_dead', reg: reg('bad'), expect: { kind: 'token_dead' } },
      { name: '400 INVALID_ARGUMENT about the message → bad_message', arrange: answer(400, googleError(400, 'INVALID_ARGUMENT', 'Invalid value at \'message.android.ttl\'', 'INVALID_ARGUMENT')), reg: reg('f1'), expect: { kind: 'bad_message' } },
      { name: '429 QUOTA_EXCEEDED → retry_provider after ≥ 60 s', reg: reg('busy'), expect: { kind: 'retry_provider', afterMsAtLeast: 60_000 } },
      { name: '429 QUOTA_EXCEEDED with Retry-After 120 → retry_provider after 120 s', arrange: answer(429, googleError(429, 'RESOURCE_EXHAUSTED', 'quota', 'QUOTA_EXCEEDED'), { 'retry-after': '120' }), reg: reg('f2'), expect: { kind: 'retry_provider', afterMs: 120_000 } },
      { name: '503 UNAVAILABLE with Retry-After 90 → retry_provider after 90 s', arrange: () => fake.unavailableFor(60_000, 90), reg: reg('f3'), expect: { kind: 'retry_provider', afterMs: 90_000 } },
      { name: '500 INTERNAL → retry_provider after ≥ 1 s', arrange: answer(500, googleError(500, 'INTERNAL', 'internal', 'INTERNAL')), reg: reg('f4'), expect: { kind: 'retry_provider', afterMsAtLeast: 1000 } },
      { name: 'no answer within the timeout → retry_provider', arrange: () => void (fake.stall = true), reg: reg('f5'), expect: { kind: 'retry_provider', reason: /timeout/ } },
      { name: '401 UNAUTHENTICATED → config', arrange: () => void (fake.rejectBearer = true), reg: reg('f6'), expect: { kind: 'config', reason: /third-party-auth-error/ } },
      { name: '403 SENDER_ID_MISMATCH → config', arrange: answer(403, googleError(403, 'PERMISSION_DENIED', 'SenderId mismatch', 'SENDER_ID_MISMATCH')), reg: reg('f7'), expect: { kind: 'config', reason: /mismatched-credential/ } },
      { name: 'bare 404 NOT_FOUND (no UNREGISTERED) → config, never token_dead', arrange: answer(404, googleError(404, 'NOT_FOUND', 'Requested entity was not found.')), reg: reg('dead'), expect: { kind: 'config', reason: /FCM_PROJECT_ID/ } },
    ],
    reset: () => fake.reset(),
    close: async () => {
      await provider.close();
      await fake.close();
    },
  };
});

for (const service of ['apns', 'fcm'] as const) {
  providerContract(`recording (${service})`, async (): Promise<ProviderHarness> => {
    const provider = new RecordingProvider({ serves: ['apns', 'fcm'], apnsTopic: TOPIC });
    const received = (r: PushRegistration) =>
      provider.recorded(r.user).filter((n) => n.reg.device === r.device).map((n) => {
        const p = n.payload;
        return p.service === 'apns'
          ? { contentFree: apnsContentFree(JSON.parse(p.request.body)), raw: p.request.body }
          : { contentFree: fcmContentFree(p.message), raw: JSON.stringify(p.message) };
      });
    return { provider, goodReg: () => registration(service, hex()), received, rows: [], notInTable: {}, reset: () => {}, close: () => provider.close() };
  });
}

// ---------------------------------------------------------------------------------------------

describe('apns provider', () => {
  let fake: FakeApns;
  before(async () => {
    fake = await FakeApns.start({ topics: [TOPIC, 'com.example.other'] });
  });
  after(async () => {
    await fake.close();
  });
  const reg = (over: Partial<PushRegistration> = {}) => registration('apns', `a0${hex()}`, over);

  it('sends Apple\'s headers: topic (the registration\'s, else APNS_TOPIC), alert type, priority 10, expiration, collapse id, a stable apns-id', async () => {
    fake.reset();
    const provider = new ApnsProvider(apnsOptions(fake));
    try {
      const expireAt = Date.now() + 7_200_000;
      const longCollapse = 'conversation:'.padEnd(100, 'x');
      const msg = message({ expireAt, collapseId: longCollapse });
      const r1 = reg();
      const r2 = reg({ topic: 'com.example.other' });
      const o1 = await provider.send(r1, msg);
      const o2 = await provider.send(r1, msg);
      assert.equal((await provider.send(r2, message({ collapseId: 'c' }))).kind, 'delivered');
      assert.equal(o1.kind, 'delivered');
      const [a, b] = fake.acceptedFor(r1.token);
      assert.equal(a!.topic, TOPIC);
      assert.equal(fake.acceptedFor(r2.token)[0]!.topic, 'com.example.other');
      assert.equal(a!.pushType, 'alert');
      assert.equal(a!.priority, '10');
      assert.equal(a!.expiration, String(Math.floor(expireAt / 1000)));
      assert.ok(Buffer.byteLength(a!.collapseId!) <= 64 && a!.collapseId !== longCollapse, `collapse id bounded: ${a!.collapseId}`);
      assert.equal(a!.collapseId, b!.collapseId, 'the same long collapse id always maps to the same one');
      assert.equal(a!.apnsId, apnsId(msg.id));
      assert.equal(b!.apnsId, a!.apnsId, 'a retry carries the same apns-id');
      assert.equal((o1 as { providerId?: string }).providerId, a!.apnsId, 'Apple echoes it');
      assert.notEqual(apnsId(`${msg.id}x`), a!.apnsId);
      assert.deepEqual(a!.payload, { aps: { alert: { 'loc-key': 'NEW_MESSAGE' }, 'mutable-content': 1, sound: 'default' }, sb: { conv: msg.conv, seq: msg.seq } });
    } finally {
      await provider.close();
    }
  });

  it('signs one provider token and opens one HTTP/2 session for many sends', async () => {
    fake.reset();
    const before = { jwts: fake.jwts.size, sessions: fake.sessionsOpened };
    const provider = new ApnsProvider(apnsOptions(fake));
    try {
      const outs = await Promise.all(Array.from({ length: 50 }, () => provider.send(reg(), message())));
      for (let i = 0; i < 30; i++) outs.push(await provider.send(reg(), message()));
      assert.ok(outs.every((o) => o.kind === 'delivered'), JSON.stringify(outs.find((o) => o.kind !== 'delivered')));
      assert.equal(fake.acceptedCount, 80);
      assert.equal(fake.jwts.size - before.jwts, 1, 'one JWT for 80 sends');
      assert.equal(fake.sessionsOpened - before.sessions, 1, 'one session for 80 sends');
      assert.equal(provider.jwtsSigned, 1);
      assert.equal(provider.sessionsOpened, 1);
    } finally {
      await provider.close();
    }
  });

  it('signs a new provider token once the current one is older than the refresh age, on the same session', async () => {
    fake.reset();
    const before = { jwts: fake.jwts.size, sessions: fake.sessionsOpened };
    const provider = new ApnsProvider(apnsOptions(fake, { jwtRefreshMs: 1200 }));
    try {
      for (let i = 0; i < 5; i++) assert.equal((await provider.send(reg(), message())).kind, 'delivered');
      assert.equal(fake.jwts.size - before.jwts, 1);
      await sleep(1300);
      for (let i = 0; i < 5; i++) assert.equal((await provider.send(reg(), message())).kind, 'delivered');
      assert.equal(fake.jwts.size - before.jwts, 2, 'refreshed once');
      const [first, second] = [...new Set(fake.accepted.map((a) => a.jwt))];
      assert.ok(JSON.parse(Buffer.from(second!.split('.')[1]!, 'base64url').toString()).iat > JSON.parse(Buffer.from(first!.split('.')[1]!, 'base64url').toString()).iat);
      assert.equal(fake.sessionsOpened - before.sessions, 1);
    } finally {
      await provider.close();
    }
  });

  it('after ExpiredProviderToken signs a fresh token once and delivers', async () => {
    fake.reset();
    const provider = new ApnsProvider(apnsOptions(fake));
    try {
      assert.equal((await provider.send(reg(), message())).kind, 'delivered');
      fake.expireSeenJwts();
      const outs = await Promise.all(Array.from({ length: 5 }, () => provider.send(reg(), message())));
      assert.deepEqual(outs.map((o) => o.kind), Array(5).fill('delivered'));
      assert.equal(provider.jwtsSigned, 2, 'one new token, however many sends heard "expired"');
      assert.equal(provider.health().status, 'ok');
    } finally {
      await provider.close();
    }
  });

  it('misconfigured lasts the configured pause, then lets a send probe; delivered clears it', async () => {
    fake.reset();
    const lines: { level: string; msg: string }[] = [];
    const provider = new ApnsProvider(apnsOptions(fake, { configPauseMs: 300, log: memoryLog(lines) }));
    try {
      fake.rejectJwts = true;
      assert.equal((await provider.send(reg(), message())).kind, 'config');
      assert.equal((await provider.send(reg(), message())).kind, 'config');
      assert.equal(provider.health().status, 'misconfigured');
      await sleep(350);
      const probing = provider.health();
      assert.equal(probing.status, 'ok');
      assert.match(probing.detail ?? '', /probing after a configuration error: 403 InvalidProviderToken/);
      assert.equal((await provider.send(reg(), message())).kind, 'config');
      assert.equal(provider.health().status, 'misconfigured');
      assert.equal(lines.filter((l) => l.level === 'error').length, 2, 'one error per fall, not per send');
      fake.rejectJwts = false;
      assert.equal((await provider.send(reg(), message())).kind, 'delivered');
      assert.deepEqual(provider.health(), { status: 'ok' });
    } finally {
      await provider.close();
    }
  });

  it('keeps streams in flight within its bound and within what the server allows', async () => {
    const slow = await FakeApns.start({ topics: [TOPIC], latencyMs: 25, maxStreams: 1000 });
    const provider = new ApnsProvider(apnsOptions(slow, { maxStreams: 4 }));
    const wide = new ApnsProvider(apnsOptions(slow, { maxStreams: 200 }));
    try {
      const outs = await Promise.all(Array.from({ length: 40 }, () => provider.send(reg(), message())));
      assert.ok(outs.every((o) => o.kind === 'delivered'));
      assert.equal(slow.maxConcurrentSeen, 4, 'exactly the bound once the server allowed more');
      slow.reset();
      // A fresh session: the server allows one stream until a token passed, then 1000.
      const many = await Promise.all(Array.from({ length: 150 }, () => wide.send(reg(), message())));
      assert.ok(many.every((o) => o.kind === 'delivered'), JSON.stringify(many.find((o) => o.kind !== 'delivered')));
      assert.ok(slow.maxConcurrentSeen > 4 && slow.maxConcurrentSeen <= 150, `concurrency ${slow.maxConcurrentSeen}`);
    } finally {
      await provider.close();
      await wide.close();
      await slow.close();
    }
  });

  it('opens a new session after GOAWAY; a stream lost when the server drops the connection is retry_provider', async () => {
    fake.reset();
    const before = fake.sessionsOpened;
    const provider = new ApnsProvider(apnsOptions(fake));
    try {
      assert.equal((await provider.send(reg(), message())).kind, 'delivered');
      fake.goaway();
      await sleep(50);
      assert.equal((await provider.send(reg(), message())).kind, 'delivered');
      assert.equal(fake.sessionsOpened - before, 2);

      fake.stall = true;
      const pending = provider.send(reg(), message());
      while (fake.stalledCount === 0) await sleep(5);
      const t0 = Date.now();
      fake.goaway({ drop: true });
      const out = await pending;
      assert.equal(out.kind, 'retry_provider', JSON.stringify(out));
      assert.ok(Date.now() - t0 < 1000, 'at once, not at the timeout');
      fake.stall = false;
      assert.equal((await provider.send(reg(), message())).kind, 'delivered');
      assert.equal(fake.sessionsOpened - before, 3);
    } finally {
      await provider.close();
    }
  });

  it('answers retry_provider at once when nothing listens at the origin', async () => {
    const gone = await FakeApns.start();
    const provider = new ApnsProvider(apnsOptions(gone));
    await gone.close();
    try {
      const t0 = Date.now();
      const out = await provider.send(reg(), message());
      const ms = Date.now() - t0;
      assert.equal(out.kind, 'retry_provider', JSON.stringify(out));
      assert.ok(ms < 1000, `took ${ms} ms`);
      // And again on the next send (a new connection attempt, no stuck session).
      assert.equal((await provider.send(reg(), message())).kind, 'retry_provider');
    } finally {
      await provider.close();
    }
  });

  it('drops a silent connection: no TLS within the timeout, or a PING left unanswered', async () => {
    const pki = testPki();
    const held = new Set<net.Socket>();
    const hold = (socket: net.Socket) => {
      held.add(socket);
      socket.on('close', () => held.delete(socket));
      socket.on('error', () => {});
    };
    let accepted = 0;
    // Accepts TCP and says nothing.
    const mute = net.createServer((socket) => {
      accepted++;
      hold(socket);
    });
    // Completes TLS (h2) and then says nothing: no SETTINGS, no PING answers.
    const deaf = tls.createServer({ key: pki.keyPem, cert: pki.certPem, ALPNProtocols: ['h2'] }, (socket) => {
      hold(socket);
      socket.on('data', () => {});
    });
    const listen = (srv: net.Server) => new Promise<number>((resolve) => srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port)));
    const [mutePort, deafPort] = [await listen(mute), await listen(deaf)];
    const p1 = new ApnsProvider(apnsOptions(fake, { origin: `https://127.0.0.1:${mutePort}`, timeoutMs: 400 }));
    const p2 = new ApnsProvider(apnsOptions(fake, { origin: `https://127.0.0.1:${deafPort}`, timeoutMs: 5000, pingMs: 100 }));
    try {
      let t0 = Date.now();
      assert.equal((await p1.send(reg(), message())).kind, 'retry_provider');
      assert.ok(Date.now() - t0 < 1000);
      assert.equal((await p1.send(reg(), message())).kind, 'retry_provider');
      assert.equal(accepted, 2, 'a new connection for the second send');
      t0 = Date.now();
      const out = await p2.send(reg(), message());
      assert.equal(out.kind, 'retry_provider', JSON.stringify(out));
      assert.ok(Date.now() - t0 < 2000, `dropped after ${Date.now() - t0} ms, before the 5 s timeout`);
    } finally {
      await p1.close();
      await p2.close();
      for (const s of held) s.destroy();
      await new Promise((r) => mute.close(r));
      await new Promise((r) => deaf.close(r));
    }
  });

  it('chooses Apple\'s origin by the registration\'s env unless APNS_ORIGIN is set', () => {
    assert.equal(apnsOrigin({ env: 'sandbox' }, null), APNS_SANDBOX);
    assert.equal(apnsOrigin({ env: 'production' }, null), APNS_PRODUCTION);
    assert.equal(apnsOrigin({}, null), APNS_PRODUCTION);
    assert.equal(apnsOrigin({ env: 'sandbox' }, 'https://127.0.0.1:9'), 'https://127.0.0.1:9');
    assert.equal(apnsOrigin({ env: 'production' }, 'https://127.0.0.1:9'), 'https://127.0.0.1:9');
  });
});

describe('fcm provider', () => {
  let fake: FakeFcm;
  before(async () => {
    fake = await FakeFcm.start();
  });
  after(async () => {
    await fake.close();
  });
  const reg = () => registration('fcm', `f0:${hex(24)}`);

  it('sends a data message with high priority, the TTL left and the collapse key; one OAuth token for many sends', async () => {
    fake.reset();
    const tokensBefore = fake.tokensIssued;
    const provider = fcmProvider(fake);
    try {
      const r = reg();
      const msg = message({ expireAt: Date.now() + 3_600_000, collapseId: 'conv-9' });
      assert.equal((await provider.send(r, msg)).kind, 'delivered');
      const outs = await Promise.all(Array.from({ length: 30 }, () => provider.send(reg(), message())));
      assert.ok(outs.every((o) => o.kind === 'delivered'));
      const sent = fake.acceptedFor(r.token)[0]!.message;
      assert.deepEqual(sent.data, { conv: msg.conv, seq: String(msg.seq) });
      const android = sent.android as { priority: string; ttl: string; collapse_key: string };
      assert.equal(android.priority, 'high');
      assert.equal(android.collapse_key, 'conv-9');
      const ttl = Number(android.ttl.replace(/s$/, ''));
      assert.ok(ttl > 3590 && ttl <= 3600, `ttl ${android.ttl}`);
      assert.equal(sent.notification, undefined);
      assert.ok(fake.tokensIssued - tokensBefore <= 1, 'the OAuth token came from the fake, once');
      assert.ok(fake.tokensIssued >= 1);
    } finally {
      await provider.close();
    }
  });

  it('a wrong project id is config (never token_dead), and marks the provider misconfigured', async () => {
    fake.reset();
    const lines: { level: string; msg: string }[] = [];
    const provider = fcmProvider(fake, { projectId: 'another-project', log: memoryLog(lines) });
    try {
      for (const token of [`dead:${hex()}`, `f0:${hex()}`]) {
        const out = await provider.send(registration('fcm', token), message());
        assert.equal(out.kind, 'config', JSON.stringify(out));
      }
      assert.equal(provider.health().status, 'misconfigured');
      assert.equal(lines.filter((l) => l.level === 'error').length, 1, 'said once');
    } finally {
      await provider.close();
    }
  });

  it('OAuth token refused by the token endpoint is config', async () => {
    const refusing = await FakeFcm.start();
    refusing.rejectAssertions = true;
    const provider = fcmProvider(refusing);
    try {
      const out = await provider.send(reg(), message());
      assert.equal(out.kind, 'config', JSON.stringify(out));
      assert.equal(provider.health().status, 'misconfigured');
      assert.equal(refusing.requests, 0, 'no send went out without a token');
    } finally {
      await provider.close();
      await refusing.close();
    }
  });

  it('a short 503 spell is ridden out by firebase-admin\'s own retry', async () => {
    fake.reset();
    const provider = fcmProvider(fake);
    try {
      assert.equal((await provider.send(reg(), message())).kind, 'delivered');
      fake.unavailableFor(300);
      const before = fake.requests;
      const out = await provider.send(reg(), message());
      assert.equal(out.kind, 'delivered', JSON.stringify(out));
      assert.ok(fake.requests - before >= 2, 'retried');
    } finally {
      await provider.close();
    }
  });

  it('answers retry_provider soon when nothing listens at the origin', async () => {
    const gone = await FakeFcm.start();
    const warm = fcmProvider(gone);
    assert.equal((await warm.send(reg(), message())).kind, 'delivered');
    await gone.close();
    const cold = new FcmProvider({ projectId: gone.projectId, serviceAccountFile: serviceAccount(gone.projectId).file, origin: gone.origin, caPem: testPki().caPem, log: memoryLog() });
    try {
      let t0 = Date.now();
      const out = await warm.send(reg(), message());
      const warmMs = Date.now() - t0;
      assert.equal(out.kind, 'retry_provider', JSON.stringify(out));
      assert.ok(warmMs < 1000, `with a token: ${warmMs} ms`);
      t0 = Date.now();
      const coldOut = await cold.send(reg(), message());
      const coldMs = Date.now() - t0;
      assert.equal(coldOut.kind, 'retry_provider', JSON.stringify(coldOut));
      assert.ok(coldMs < 10_000, `without a token: ${coldMs} ms`);
      assert.equal(cold.health().status, 'ok', 'unreachable is not misconfigured');
    } finally {
      await warm.close();
      await cold.close();
    }
  });

  it('each provider is its own app: two providers reach two services side by side', async () => {
    const other = await FakeFcm.start({ projectId: 'switchboard-other' });
    const a = fcmProvider(fake);
    const b = fcmProvider(other);
    try {
      fake.reset();
      const [ra, rb] = [reg(), reg()];
      assert.deepEqual([(await a.send(ra, message())).kind, (await b.send(rb, message())).kind], ['delivered', 'delivered']);
      assert.equal(fake.acceptedFor(ra.token).length, 1);
      assert.equal(other.acceptedFor(rb.token).length, 1);
      assert.equal(fake.acceptedFor(rb.token).length + other.acceptedFor(ra.token).length, 0);
    } finally {
      await a.close();
      await b.close();
      await other.close();
    }
  });

  it('refuses a service account file already used with another origin in this process', async () => {
    const first = fcmProvider(fake);
    try {
      assert.throws(
        () => new FcmProvider({ projectId: fake.projectId, serviceAccountFile: fake.account.file, origin: 'https://127.0.0.1:9', caPem: testPki().caPem, log: memoryLog() }),
        (err: unknown) => err instanceof FcmSetupError && /FCM_SERVICE_ACCOUNT_FILE/.test(err.message),
      );
    } finally {
      await first.close();
    }
  });
});

describe('recording provider', () => {
  it('records what APNs and FCM get, byte for byte for APNs and field for field for FCM', async () => {
    const apns = await FakeApns.start({ topics: [TOPIC] });
    const fcm = await FakeFcm.start();
    const real = [new ApnsProvider(apnsOptions(apns)), fcmProvider(fcm)];
    const recording = new RecordingProvider({ serves: ['apns', 'fcm'], apnsTopic: TOPIC });
    try {
      const msg = message({ preview: { from: 'bob', text: 'see you at 8' } });
      const ra = registration('apns', `a0${hex()}`, { user: 'carol' });
      const rf = registration('fcm', `f0:${hex()}`, { user: 'carol' });
      assert.equal((await real[0]!.send(ra, msg)).kind, 'delivered');
      assert.equal((await real[1]!.send(rf, msg)).kind, 'delivered');
      assert.equal((await recording.send(ra, msg)).kind, 'delivered');
      assert.equal((await recording.send(rf, msg)).kind, 'delivered');
      const [na, nf] = recording.recorded('carol');
      assert.ok(na?.payload.service === 'apns' && nf?.payload.service === 'fcm');
      assert.equal(na.payload.request.body, apns.acceptedFor(ra.token)[0]!.raw);
      assert.equal(na.payload.request.headers['apns-id'], apns.acceptedFor(ra.token)[0]!.apnsId);
      assert.equal(na.payload.request.headers['apns-topic'], TOPIC);
      const got = fcm.acceptedFor(rf.token)[0]!.message;
      assert.deepEqual(nf.payload.message.data, got.data);
      assert.equal(nf.payload.message.android?.collapseKey, (got.android as { collapse_key: string }).collapse_key);
      assert.deepEqual(recording.recorded('nobody'), []);
    } finally {
      for (const p of real) await p.close();
      await apns.close();
      await fcm.close();
    }
  });

  it('keeps the last notifications of each device, up to its bound', async () => {
    const recording = new RecordingProvider({ serves: ['fcm'], perDevice: 100 });
    const d1 = registration('fcm', 'tok-1', { user: 'dave', device: 'd1' });
    const d2 = registration('fcm', 'tok-2', { user: 'dave', device: 'd2' });
    for (let i = 1; i <= 105; i++) await recording.send(d1, message({ seq: i }));
    await recording.send(d2, message({ seq: 1000 }));
    const all = recording.recorded('dave');
    const seqs = all.filter((n) => n.reg.device === 'd1').map((n) => n.msg.seq);
    assert.equal(seqs.length, 100);
    assert.deepEqual(seqs, Array.from({ length: 100 }, (_, i) => i + 6));
    assert.equal(all.filter((n) => n.reg.device === 'd2').length, 1);
    await assert.rejects(recording.send(registration('apns', 'x'), message()), TypeError);
  });
});

// ---------------------------------------------------------------------------------------------

describe('providers-config', () => {
  const pki = testPki();
  const key = apnsKey();
  const account = serviceAccount('switchboard-cfg');
  const file = (name: string, text: string) => {
    const p = path.join(pki.dir, `cfg-${hex(4)}-${name}`);
    fs.writeFileSync(p, text);
    return p;
  };
  const apnsEnv = { APNS_KEY_FILE: key.file, APNS_KEY_ID: key.keyId, APNS_TEAM_ID: key.teamId, APNS_TOPIC: TOPIC };
  const fcmEnv = { FCM_PROJECT_ID: 'switchboard-cfg', FCM_SERVICE_ACCOUNT_FILE: account.file };
  const load = (env: Record<string, string>) => loadPushProvidersConfig(env, { fallback: 'recording' });
  const fails = (env: Record<string, string>, re: RegExp) =>
    assert.throws(() => load(env), (err: unknown) => err instanceof ConfigError && re.test(err.message) ? true : assert.fail(`${(err as Error).message} !~ ${re}`));

  it('nothing configured: the fallback serves both (recording), or nothing (off)', () => {
    const cfg = load({});
    assert.deepEqual([cfg.apns, cfg.fcm, cfg.fallback], [null, null, 'recording']);
    const { providers, recording } = createProviders(cfg, memoryLog());
    assert.equal(providers.length, 1);
    assert.ok(recording && providers[0] === recording);
    assert.deepEqual([...recording.serves].sort(), ['apns', 'fcm']);
    const off = createProviders(loadPushProvidersConfig({ PUSH_FALLBACK: 'off' }, { fallback: 'recording' }), memoryLog());
    assert.deepEqual([off.providers, off.recording], [[], null]);
    assert.equal(loadPushProvidersConfig({}, { fallback: 'off' }).fallback, 'off', 'the caller\'s default');
  });

  it('reads a complete APNs and FCM configuration', () => {
    const cfg = load({ ...apnsEnv, ...fcmEnv, APNS_ORIGIN: 'https://127.0.0.1:8443/', APNS_CA_FILE: pki.caFile, FCM_ORIGIN: 'https://localhost:9443', FCM_CA_FILE: pki.caFile });
    assert.equal(cfg.apns?.keyId, key.keyId);
    assert.equal(cfg.apns?.origin, 'https://127.0.0.1:8443');
    assert.equal(cfg.apns?.caPem, pki.caPem);
    assert.equal(cfg.fcm?.clientEmail, account.clientEmail);
    assert.equal(cfg.fcm?.origin, 'https://localhost:9443');
  });

  it('a partial APNs or FCM set names what is missing', () => {
    fails({ APNS_KEY_FILE: key.file, APNS_KEY_ID: key.keyId, APNS_TOPIC: TOPIC }, /^APNS_TEAM_ID: expected to be set/);
    fails({ APNS_TOPIC: TOPIC }, /APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID: expected/);
    fails({ FCM_PROJECT_ID: 'switchboard-cfg' }, /^FCM_SERVICE_ACCOUNT_FILE: expected to be set with FCM_PROJECT_ID/);
    fails({ FCM_SERVICE_ACCOUNT_FILE: account.file }, /^FCM_PROJECT_ID: expected/);
  });

  it('bad values name their variable and what was expected', () => {
    fails({ PUSH_FALLBACK: 'apns' }, /^PUSH_FALLBACK: expected one of recording, off/);
    fails({ ...apnsEnv, APNS_KEY_ID: 'short' }, /^APNS_KEY_ID: expected a 10-character key id/);
    fails({ ...apnsEnv, APNS_TEAM_ID: 'lowercase1' }, /^APNS_TEAM_ID: expected/);
    fails({ ...apnsEnv, APNS_TOPIC: 'not a bundle' }, /^APNS_TOPIC: expected a bundle id/);
    fails({ ...apnsEnv, APNS_ORIGIN: 'ftp://x' }, /^APNS_ORIGIN: expected a https: or http: origin/);
    fails({ ...apnsEnv, APNS_ORIGIN: 'https://x/3/device' }, /^APNS_ORIGIN: expected .* \(no path\)/);
    fails({ ...fcmEnv, FCM_ORIGIN: 'http://127.0.0.1:1' }, /^FCM_ORIGIN: expected a https: origin/);
    fails({ ...fcmEnv, FCM_PROJECT_ID: 'Bad_Project' }, /^FCM_PROJECT_ID: expected a Google Cloud project id/);
  });

  it('files must exist and parse: the .p8, the service account, the CAs', () => {
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const sec1 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    fails({ ...apnsEnv, APNS_KEY_FILE: '/nonexistent/AuthKey.p8' }, /^APNS_KEY_FILE: cannot read \/nonexistent\/AuthKey\.p8 \(ENOENT\)/);
    fails({ ...apnsEnv, APNS_KEY_FILE: file('rsa.p8', rsa) }, /^APNS_KEY_FILE: expected a P-256 private key in PKCS#8 PEM.*got a rsa key/);
    fails({ ...apnsEnv, APNS_KEY_FILE: file('p384.p8', p384) }, /^APNS_KEY_FILE: expected a P-256 .*secp384r1/);
    fails({ ...apnsEnv, APNS_KEY_FILE: file('sec1.p8', sec1) }, /^APNS_KEY_FILE: expected a P-256 private key in PKCS#8 PEM/);
    fails({ ...apnsEnv, APNS_KEY_FILE: file('junk.p8', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n') }, /^APNS_KEY_FILE: expected a P-256/);
    fails({ ...fcmEnv, FCM_SERVICE_ACCOUNT_FILE: file('sa.json', 'not json') }, /^FCM_SERVICE_ACCOUNT_FILE: expected a service account JSON file, .* is not JSON/);
    fails({ ...fcmEnv, FCM_SERVICE_ACCOUNT_FILE: file('sa.json', JSON.stringify({ private_key: rsa })) }, /^FCM_SERVICE_ACCOUNT_FILE: expected a service account JSON with "client_email"/);
    fails({ ...fcmEnv, FCM_SERVICE_ACCOUNT_FILE: file('sa.json', JSON.stringify({ client_email: 'a@b.c' })) }, /^FCM_SERVICE_ACCOUNT_FILE: expected a service account JSON with "private_key"/);
    fails({ ...fcmEnv, FCM_SERVICE_ACCOUNT_FILE: file('sa.json', JSON.stringify({ client_email: 'a@b.c', private_key: 'nope' })) }, /^FCM_SERVICE_ACCOUNT_FILE: expected "private_key" .* PEM private key/);
    fails({ ...apnsEnv, APNS_CA_FILE: file('ca.pem', 'hello') }, /^APNS_CA_FILE: expected PEM certificates/);
    fails({ ...fcmEnv, FCM_CA_FILE: file('ca.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') }, /^FCM_CA_FILE: expected PEM certificates/);
  });

  it('createProviders from the fakes\' environment: APNs and FCM deliver through them, the fallback covers what is missing', async () => {
    const apns = await FakeApns.start();
    const fcm = await FakeFcm.start();
    const both = createProviders(load({ ...apns.env(), ...fcm.env() }), memoryLog());
    const onlyApns = createProviders(load(apns.env()), memoryLog());
    try {
      assert.deepEqual(both.providers.map((p) => p.name), ['apns', 'fcm']);
      assert.equal(both.recording, null);
      const [ap, fp] = both.providers;
      assert.equal((await ap!.send(registration('apns', `a0${hex()}`, { env: 'sandbox' }), message())).kind, 'delivered');
      assert.equal((await fp!.send(registration('fcm', `f0:${hex()}`), message())).kind, 'delivered');
      assert.equal(apns.acceptedCount + fcm.acceptedCount, 2);
      assert.deepEqual(onlyApns.providers.map((p) => [p.name, p.serves]), [['apns', ['apns']], ['recording', ['fcm']]]);
    } finally {
      for (const p of [...both.providers, ...onlyApns.providers]) await p.close();
      await apns.close();
      await fcm.close();
    }
  });
});
