import { RAISED_LIMITS } from '../src/limits/limits.ts';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeApns } from '../../region/test/push/fakes/fake-apns.ts';
import { FakeFcm } from '../../region/test/push/fakes/fake-fcm.ts';
import { freePort } from '../../scripts/lib/ports.ts';
import { startEdge, startRegion, type Service } from '../../scripts/lib/processes.ts';
import { killWorker, spawnWorker } from './region-worker.ts';
import { TestSocket, createConversation, token } from './socket.ts';
import { realEngineEnv } from './system.ts';

/**
 * Push notifications end to end on the real engines: the edge in workerd, the region API with
 * fan-out (REGION_ROLE=api,fanout), and two push worker processes (REGION_ROLE=push) in one Kafka
 * consumer group, sending to a local fake APNs (HTTP/2, TLS, checks JWTs and headers) and a fake
 * FCM HTTP v1. What each worker did is read from its debug log ("push sent", "push skipped").
 */
const env = realEngineEnv(`push_${crypto.randomBytes(3).toString('hex')}`);

interface PushEvent {
  worker: string;
  msg: string;
  user: string;
  device: string;
  seq?: number;
  result?: string;
  reason?: string;
  at: number;
}
const events: PushEvent[] = [];
/** A push worker (REGION_ROLE=push) whose "push …" log lines become `events`. */
function pushWorker(name: string, vars: Record<string, string>) {
  return spawnWorker({
    name,
    role: 'push',
    vars,
    readyLine: '"msg":"push workers started"',
    onLine: (line) => {
      if (!line.includes('"msg":"push ')) return;
      try {
        const f = JSON.parse(line) as Omit<PushEvent, 'worker' | 'at'>;
        events.push({ worker: name, msg: f.msg, user: f.user, device: f.device, seq: f.seq, result: f.result, reason: f.reason, at: Date.now() });
      } catch {}
    },
  });
}

const kill = killWorker;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, pred: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Runs `fn` over `items`, `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/**
 * A device token as the platforms give them: 64 hex characters (APNs) or a longer opaque string
 * (FCM). The fakes read `dead…`, `bad…` and `busy…` as behaviours, so ordinary ones start otherwise.
 */
const apnsToken = (user: string, prefix = 'c0') => prefix + crypto.createHash('sha256').update(user).digest('hex').slice(prefix.length);
const fcmToken = (user: string) => `f${crypto.createHash('sha256').update(`fcm:${user}`).digest('hex')}:APA91b${user.replace(/[^A-Za-z0-9]/g, '')}`;

if (!env) {
  if (process.env.CI === 'true') it('push notifications (real engines)', () => assert.fail('CI requires the real engines'));
  else it('push notifications (real engines)', { skip: 'real engines not running: npm run stack:up, then npm test' }, () => {});
} else {
  describe('push notifications through two push workers (real engines, fake APNs and FCM)', { timeout: 600_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-push-'));
    const internalSecret = crypto.randomBytes(24).toString('base64url');
    const authSecret = crypto.randomBytes(24).toString('base64url');
    const services: Service[] = [];
    const workers = new Map<string, ChildProcess>();
    const sockets: TestSocket[] = [];
    // Each push worker has its own fake APNs and FCM (index 0 for push-1, 1 for push-2), so what
    // one worker has in flight is known.
    const apns: FakeApns[] = [];
    const fcm: FakeFcm[] = [];
    const fakes = () => [...apns, ...fcm];
    let edgeUrl = '';
    let regionUrl = '';
    let workerVars: Record<string, string>[] = [];
    const tokens = new Map<string, string>();

    const tok = async (user: string, device: string) => {
      const k = `${user}/${device}`;
      if (!tokens.has(k)) tokens.set(k, await token(edgeUrl, user, device));
      return tokens.get(k)!;
    };
    const devicePush = async (method: 'PUT' | 'GET', user: string, device: string, body?: unknown) => {
      const res = await fetch(`${edgeUrl}/v1/devices/${device}/push`, {
        method,
        headers: { authorization: `Bearer ${await tok(user, device)}`, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const json = (await res.json()) as Record<string, any>;
      assert.equal(res.status, 200, `${method} /v1/devices/${device}/push for ${user}: ${JSON.stringify(json)}`);
      return json;
    };
    /** Registers `user`'s phone with APNs (even index) or FCM (odd), returning its device token. */
    const register = async (user: string, service: 'apns' | 'fcm', tokenValue = service === 'apns' ? apnsToken(user) : fcmToken(user)) => {
      await devicePush('PUT', user, 'phone', { provider: service, token: tokenValue, ...(service === 'apns' ? { env: 'production' } : {}) });
      return tokenValue;
    };
    const connect = async (user: string) => {
      const s = await TestSocket.open(edgeUrl, await tok(user, 'phone'));
      sockets.push(s);
      return s;
    };
    /** Notifications the fakes accepted for a device token (both services). */
    const acceptedFor = (t: string) => [...apns.flatMap((f) => f.acceptedFor(t)), ...fcm.flatMap((f) => f.acceptedFor(t))];
    const apnsAcceptedFor = (t: string) => apns.flatMap((f) => f.acceptedFor(t));
    /** The push workers' events for a user's phone. */
    const eventsOf = (user: string) => events.filter((e) => e.user === user && e.device === 'phone');
    const pushJobs = async () => {
      const text = await (await fetch(`${regionUrl}/metrics`)).text();
      const line = text.split('\n').find((l) => /^\S*push_jobs\S*\s/.test(l));
      return line ? Number(line.split(/\s+/).pop()) : 0;
    };

    before(async () => {
      for (let i = 0; i < 2; i++) apns.push(await FakeApns.start({ keep: 100_000 })), fcm.push(await FakeFcm.start({ keep: 100_000 }));
      const providers = (i: number) => ({ ...apns[i]!.env(), ...fcm[i]!.env(), PUSH_RETRY_BASE_MS: '500' });
      const api = await startRegion({
        port: await freePort(),
        dataDir: path.join(dir, 'region'),
        internalSecret,
        env: { ...env, ...providers(0), REGION_ROLE: 'api,fanout', LOG_LEVEL: 'warn' },
      });
      services.push(api);
      regionUrl = api.url;
      workerVars = [0, 1].map((i) => ({ ...env, ...providers(i), INTERNAL_SECRET: internalSecret, DATA_DIR: path.join(dir, `push-${i + 1}`) }));
      const edge = await startEdge({ port: await freePort(), regionUrl: api.url, persistDir: path.join(dir, 'edge'), authSecret, internalSecret, devAuth: true, vars: { ...RAISED_LIMITS, RETRANSMIT_MS: '1000' } });
      services.push(edge);
      edgeUrl = edge.url;
    });
    after(async () => {
      await Promise.all(sockets.map((s) => s.close()));
      for (const w of workers.values()) kill(w, 'SIGTERM');
      for (const s of services.reverse()) await s.stop().catch(() => {});
      await Promise.all(fakes().map((f) => f.close()));
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('a device that comes online before its push is sent gets none', async () => {
      const [sender, dev] = ['b-sender', 'b-dev'];
      const t = await register(dev, 'apns');
      const s = await connect(sender);
      const conv = (await createConversation(edgeUrl, await tok(sender, 'phone'), [dev])).id;
      const jobs = await pushJobs();
      await s.request({ t: 'send', conv, cmid: 'b1', body: 'wake up' });
      // Fan-out published the intent (the device had no socket) while no push worker runs.
      const deadline = Date.now() + 30_000;
      while ((await pushJobs()) <= jobs) {
        if (Date.now() > deadline) assert.fail('fan-out published no push intent within 30 s');
        await sleep(100);
      }
      await connect(dev); // its hello comes once its route is up in the region
      // Now the push workers start; the intent is there, the device is online.
      const w = [pushWorker('push-1', workerVars[0]!), pushWorker('push-2', workerVars[1]!)];
      workers.set('push-1', w[0]!.child).set('push-2', w[1]!.child);
      await Promise.all(w.map((x) => x.ready));
      await waitFor('the intent to be handled', () => eventsOf(dev).length > 0, 90_000);
      assert.deepEqual(
        eventsOf(dev).map((e) => [e.msg, e.result]),
        [['push skipped', 'online']],
      );
      assert.equal(acceptedFor(t).length, 0, 'APNs got nothing for it');
    });

    it('1,000 members, 300 connected and 700 offline (half APNs, half FCM): one content-free push to each offline device, none to the connected', async () => {
      const N = 1000;
      const CONNECTED = 300;
      const users = Array.from({ length: N }, (_, i) => `a${String(i).padStart(4, '0')}`);
      const service = (i: number) => (i % 2 === 0 ? 'apns' : 'fcm') as 'apns' | 'fcm';
      const deviceTokens = new Map<string, string>();
      let done = 0;
      await pool(users.map((u, i) => [u, i] as const), 24, async ([u, i]) => {
        deviceTokens.set(u, await register(u, service(i)));
        if (++done % 250 === 0) console.log(`registered ${done}/${N} devices`);
      });
      const sender = await connect(users[0]!);
      const connected: TestSocket[] = [sender];
      await pool(users.slice(1, CONNECTED), 24, async (u) => void connected.push(await connect(u)));
      const conv = (await createConversation(edgeUrl, await tok(users[0]!, 'phone'), users.slice(1))).id;
      // The group's creation reaches every connected member first; then one message.
      await sleep(1000);
      const sent = Date.now();
      await sender.request({ t: 'send', conv, cmid: 'a1', body: 'hello, all' });
      const offline = users.slice(CONNECTED);
      const online = users.slice(0, CONNECTED);
      await waitFor('a push to each of 700 offline devices', () => offline.every((u) => acceptedFor(deviceTokens.get(u)!).length >= 1), 120_000);
      const took = Date.now() - sent;
      // Then a quiet moment: nothing more may come.
      await sleep(3000);
      for (const [i, u] of offline.entries()) {
        const got = acceptedFor(deviceTokens.get(u)!);
        assert.equal(got.length, 1, `${u}: exactly one push`);
        assert.ok(got[0]!.contentFree, `${u}: content-free (${JSON.stringify('payload' in got[0]! ? got[0].payload : got[0]!.message)})`);
        assert.equal(service(i + CONNECTED) === 'apns', apnsAcceptedFor(deviceTokens.get(u)!).length === 1, `${u}: through its own provider`);
      }
      for (const u of online) assert.equal(acceptedFor(deviceTokens.get(u)!).length, 0, `${u} is connected: no push`);
      const counts = { apns: offline.filter((_, i) => service(i + CONNECTED) === 'apns').length, fcm: offline.filter((_, i) => service(i + CONNECTED) === 'fcm').length };
      assert.deepEqual(counts, { apns: 350, fcm: 350 });
      await Promise.all(connected.map((s) => s.close()));
      console.log(`# 700 offline devices woken in ${took} ms (message sent → last push accepted by the fakes)`);
    });

    it('a burst of 20 messages gives each offline device one wake, not 20', async () => {
      const users = Array.from({ length: 100 }, (_, i) => `burst${String(i).padStart(3, '0')}`);
      const deviceTokens = new Map<string, string>();
      await pool(users.slice(1), 24, async (u) => void deviceTokens.set(u, await register(u, Number(u.slice(5)) % 2 ? 'fcm' : 'apns')));
      const s = await connect(users[0]!);
      const conv = (await createConversation(edgeUrl, await tok(users[0]!, 'phone'), users.slice(1))).id;
      await Promise.all(Array.from({ length: 20 }, (_, i) => s.request({ t: 'send', conv, cmid: `burst${i}`, body: `burst ${i}` }, 30_000)));
      // Every intent handled: 20 seqs per device, one sent, the rest coalesced.
      const handled = (u: string) => new Set(eventsOf(u).map((e) => e.seq)).size;
      await waitFor('every intent of the burst to be handled', () => users.slice(1).every((u) => handled(u) === 20), 120_000).catch((err) => {
        const short = users.slice(1).filter((u) => handled(u) !== 20);
        throw new Error(`${err.message}: ${short.length} devices short, e.g. ${JSON.stringify(short.slice(0, 3).map((u) => eventsOf(u).map((e) => [e.seq, e.result])))}`);
      });
      for (const u of users.slice(1)) {
        assert.equal(acceptedFor(deviceTokens.get(u)!).length, 1, `${u}: one wake`);
        const sent = eventsOf(u).filter((e) => e.msg === 'push sent');
        assert.deepEqual(sent.map((e) => e.result), ['delivered'], `${u}: one send`);
        assert.equal(eventsOf(u).filter((e) => e.result === 'coalesced').length, 19, `${u}: the other 19 coalesced`);
      }
    });

    it('410 Unregistered deletes a token registered before its timestamp and keeps one registered after it', async () => {
      const [sender, stale, fresh] = ['c-sender', 'c-stale', 'c-fresh'];
      const staleToken = await register(stale, 'apns', apnsToken(stale, 'dead'));
      await sleep(50);
      for (const f of apns) f.deadAt = Date.now(); // Apple's "last known unregistered" time: after stale's, before fresh's registration
      await sleep(50);
      const freshToken = await register(fresh, 'apns', apnsToken(fresh, 'dead'));
      const s = await connect(sender);
      const conv = (await createConversation(edgeUrl, await tok(sender, 'phone'), [stale, fresh])).id;
      await s.request({ t: 'send', conv, cmid: 'c1', body: 'are you there' });
      const dead = (u: string) => eventsOf(u).some((e) => e.msg === 'push sent' && e.result === 'token_dead');
      await waitFor('both 410s', () => dead(stale) && dead(fresh), 60_000);
      await sleep(500);
      assert.equal((await devicePush('GET', stale, 'phone')).registration, null, 'registered before the timestamp: deleted');
      const kept = (await devicePush('GET', fresh, 'phone')).registration;
      assert.equal(kept?.provider, 'apns', 'registered after the timestamp: kept');
      assert.equal(acceptedFor(staleToken).length + acceptedFor(freshToken).length, 0);
    });

    it('429 is retried after its delay, and a 30 s outage (503 from APNs and FCM) loses nothing: each push arrives once after it', async () => {
      // 429: APNs throttles one device once.
      const throttled = 'd-throttled';
      const throttledToken = await register(throttled, 'apns');
      let throttledAt = 0;
      for (const f of apns) f.respond = ({ token: t }) => (t === throttledToken && !throttledAt ? ((throttledAt = Date.now()), { status: 429, reason: 'TooManyRequests' }) : null);
      const ds = await connect('d-sender');
      const dConv = (await createConversation(edgeUrl, await tok('d-sender', 'phone'), [throttled])).id;
      await ds.request({ t: 'send', conv: dConv, cmid: 'd1', body: 'slow down' });
      await waitFor('the 429', () => throttledAt > 0, 60_000);

      // 503 for 30 s from both providers, while 40 devices are to be woken.
      const users = Array.from({ length: 40 }, (_, i) => `e${String(i).padStart(2, '0')}`);
      const deviceTokens = new Map<string, string>();
      await pool(users, 16, async (u) => void deviceTokens.set(u, await register(u, Number(u.slice(1)) % 2 ? 'fcm' : 'apns')));
      const es = await connect('e-sender');
      const eConv = (await createConversation(edgeUrl, await tok('e-sender', 'phone'), users)).id;
      const outageStart = Date.now();
      for (const f of fakes()) f.unavailableFor(30_000);
      const requests = (fs: { requests: number }[]) => fs.reduce((n, f) => n + f.requests, 0);
      const before = { apns: requests(apns), fcm: requests(fcm) };
      await es.request({ t: 'send', conv: eConv, cmid: 'e1', body: 'outage' });
      await waitFor('every device of the outage to get its push', () => users.every((u) => acceptedFor(deviceTokens.get(u)!).length >= 1), 180_000);
      await waitFor('the throttled device to get its push', () => acceptedFor(throttledToken).length >= 1, 180_000);
      await sleep(3000);
      assert.ok(requests(apns) > before.apns && requests(fcm) > before.fcm, 'both providers were asked during the outage');
      for (const u of users) {
        const got = acceptedFor(deviceTokens.get(u)!);
        assert.equal(got.length, 1, `${u}: exactly one push`);
        assert.ok(got[0]!.at >= outageStart + 30_000, `${u}: accepted after the outage`);
      }
      const failures = eventsOf(users[0]!).filter((e) => e.msg === 'push sent' && e.result === 'retry_provider').length + eventsOf(users[1]!).filter((e) => e.msg === 'push sent' && e.result === 'retry_provider').length;
      assert.ok(failures > 0, 'the outage was answered and retried');
      const deadLettered = events.filter((e) => e.msg === 'push intent dead-lettered' && (users.includes(e.user) || e.user === throttled));
      assert.deepEqual(deadLettered, [], 'nothing dead-lettered');

      const got = acceptedFor(throttledToken);
      assert.equal(got.length, 1, 'the throttled device: exactly one push');
      assert.ok(got[0]!.at - throttledAt >= 60_000, `retried after the 60 s a 429 asks for at least (${got[0]!.at - throttledAt} ms)`);
      assert.deepEqual(
        eventsOf(throttled).filter((e) => e.msg === 'push sent').map((e) => e.result),
        ['retry_device', 'delivered'],
      );
      for (const f of apns) f.respond = null;
    });

    it('kill -9 of a push worker mid-stream loses nothing and repeats at most the pushes it had in flight', async (t) => {
      const N = 600;
      const users = Array.from({ length: N }, (_, i) => `k${String(i).padStart(3, '0')}`);
      const deviceTokens = new Map<string, string>();
      await pool(users, 24, async (u) => void deviceTokens.set(u, await register(u, Number(u.slice(1)) % 2 ? 'fcm' : 'apns')));
      const s = await connect('k-sender');
      const conv = (await createConversation(edgeUrl, await tok('k-sender', 'phone'), users)).id;
      for (const f of fakes()) f.latencyMs = 300;
      const sentBy = (w: string) => events.filter((e) => e.worker === w && e.msg === 'push sent' && e.user.startsWith('k')).length;
      const inFlightOf = (w: string) => (w === 'push-1' ? [apns[0]!, fcm[0]!] : [apns[1]!, fcm[1]!]).reduce((n, f) => n + f.answering, 0);
      await s.request({ t: 'send', conv, cmid: 'k1', body: 'kill' });
      // Kill a worker that has sent some of the stream and has requests in flight at its providers.
      const ready = (w: string) => sentBy(w) >= 10 && inFlightOf(w) > 0;
      await waitFor('a worker mid-stream', () => ready('push-1') || ready('push-2'), 60_000);
      const victim = ready('push-1') ? 'push-1' : 'push-2';
      const killedAt = Date.now();
      kill(workers.get(victim)!, 'SIGKILL');
      const sentBefore = sentBy(victim);
      await waitFor('a push to every device', () => users.every((u) => acceptedFor(deviceTokens.get(u)!).length >= 1), 120_000);
      for (const f of fakes()) f.latencyMs = 0;
      await sleep(3000);
      const copies = users.map((u) => acceptedFor(deviceTokens.get(u)!));
      const repeated = copies.filter((c) => c.length > 1);
      // In flight at the kill: sends the killed worker made (its fakes accepted them) and never
      // finished (it logs "push sent" only after marking the device's wake sent). That includes
      // answers that reached it but were not handled yet: under load its event loop lags.
      const streamTokens = new Set(deviceTokens.values());
      const tokenOf = new Map(users.map((u) => [u, deviceTokens.get(u)!]));
      const finished = new Set(events.filter((e) => e.worker === victim && e.msg === 'push sent').map((e) => tokenOf.get(e.user)));
      const victimFakes = victim === 'push-1' ? [apns[0]!, fcm[0]!] : [apns[1]!, fcm[1]!];
      const unanswered = new Set(victimFakes.flatMap((f) => f.accepted.filter((a) => streamTokens.has(a.token) && !finished.has(a.token)).map((a) => a.token)));
      const inFlight = unanswered.size;
      t.diagnostic(`killed ${victim} after it logged ${sentBefore} sends, with ${inFlight} requests in flight; ${repeated.length} of ${N} devices got a second push`);
      console.log(`# kill -9 of a push worker: ${repeated.length} repeated pushes of ${N} devices; it had ${inFlight} requests in flight`);
      const survivor = victim === 'push-1' ? 'push-2' : 'push-1';
      assert.ok(events.some((e) => e.worker === survivor && e.at > killedAt && e.msg === 'push sent' && e.user.startsWith('k')), 'the survivor took over');
      assert.ok(copies.every((c) => c.length <= 2), 'no device got more than two');
      // Structurally: a worker has at most 16 devices' intents in flight per partition (8 here).
      assert.ok(inFlight <= 16 * 8, `in flight (${inFlight}) within the worker's concurrency`);
      assert.ok(repeated.length <= inFlight, `repeats (${repeated.length}) at most the requests the killed worker had in flight (${inFlight})`);
      for (const c of repeated) assert.ok(unanswered.has(c[0]!.token), `a repeat is of a push the killed worker had in flight (${c[0]!.token})`);
      workers.delete(victim);
    });
  });
}
