import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { signRequest } from '@switchboard/protocol';
import { certifyDevice, checkKeyPackage, newIdentityKey, newKeyPackage, newSignatureKey, type IdentityKeyPair } from '@switchboard/protocol/mls';
import { createApp } from '../../src/app.ts';
import type { ClaimRate } from '../../src/keys/claim-rate.ts';
import { createLogger } from '../../src/log.ts';
import { MemoryQueue } from '../../src/queue/queue-memory.ts';
import { MemoryRoutes } from '../../src/routes/routes-memory.ts';
import { SqliteStorage } from '../../src/storage/storage-sqlite.ts';

const SECRET = 'keys-api-test-secret-0123456789';
const DAY = 86_400_000;
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

/** The region app over SQLite, with a clock the test moves. */
async function setup(claimRate: ClaimRate = { perMinute: 60, burst: 200 }) {
  const log = createLogger({ test: 'keys-api' });
  const storage = new SqliteStorage(':memory:');
  await storage.init();
  const clock = { now: Date.now() };
  const app = createApp({ storage, queue: new MemoryQueue(log), routes: new MemoryRoutes(), log, internalSecret: SECRET, routeTtlMs: 60_000, keys: { claimRate, now: () => clock.now } });
  const post = async (path: string, payload: unknown) => {
    const body = JSON.stringify(payload);
    const headers = { 'content-type': 'application/json', ...(await signRequest(SECRET, 'POST', path, body)) };
    const res = await app.request(path, { method: 'POST', headers, body });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
  };
  return { storage, clock, post };
}

/** A device as the SDK makes one: its signature key certified by its user's identity key. */
async function device(identity: IdentityKeyPair, user: string, name: string) {
  const sig = await newSignatureKey();
  const credential = await certifyDevice(identity, user, name, sig.publicKey);
  return { user, device: name, packages: async (n: number, now = Date.now()) => Promise.all(Array.from({ length: n }, async () => b64((await newKeyPackage(credential, sig, now)).bytes))) };
}

describe('/internal/keys', () => {
  let alice: IdentityKeyPair;
  let bob: IdentityKeyPair;
  before(async () => {
    [alice, bob] = await Promise.all([newIdentityKey(), newIdentityKey()]);
  });

  it('takes a device\'s packages made with the SDK, counts them and lists the device with its identity key', async () => {
    const { post, clock } = await setup();
    const phone = await device(alice, 'alice', 'phone');
    const [one, two, three, lr] = await phone.packages(4);
    const up = await post('/internal/keys/upload', { user: 'alice', device: 'phone', keyPackages: [one, two, three], lastResort: lr });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    assert.deepEqual(up.body, { count: 3, lastResort: true });
    const again = await post('/internal/keys/upload', { user: 'alice', device: 'phone', keyPackages: [one, two, three] });
    assert.deepEqual(again.body, { count: 3, lastResort: true }, 'a retried upload stores nothing twice');
    assert.deepEqual((await post('/internal/keys/count', { user: 'alice', device: 'phone' })).body, { count: 3, lastResort: true });
    assert.deepEqual((await post('/internal/keys/count', { user: 'alice', device: 'laptop' })).body, { count: 0, lastResort: false });
    const devices = await post('/internal/keys/devices', { user: 'alice' });
    assert.deepEqual(devices.body, { user: 'alice', devices: [{ device: 'phone', identityKey: b64(alice.publicKey), uploadedAt: clock.now }] });
  });

  it('refuses the whole upload when any package fails its check, naming which and why', async () => {
    const { post } = await setup();
    const phone = await device(alice, 'alice', 'phone');
    const tablet = await device(alice, 'alice', 'tablet');
    const mallory = await device(bob, 'alice', 'phone'); // certified by another identity key than alice's
    const [good] = await phone.packages(1);
    const [elsewhere] = await tablet.packages(1);
    const tampered = Buffer.from(good!, 'base64url');
    tampered[tampered.length - 1]! ^= 1; // inside the signature
    const [expired] = await phone.packages(1, Date.now() - 91 * DAY);
    const cases: [unknown, string][] = [
      [[good, elsewhere], 'keyPackages[1]: credential names alice/tablet, not the uploader'],
      [[good, b64(tampered)], 'keyPackages[1]: bad KeyPackage signature'],
      [[b64(new TextEncoder().encode('not a key package at all'))], 'keyPackages[0]: not an MLS KeyPackage'],
      [['AB'], 'keyPackages[0]: not valid base64url'],
      [[good, good, expired], 'keyPackages[2]: lifetime does not cover now'],
      [[good, (await mallory.packages(1))[0]], 'keyPackages[1]: certified by another identity key than keyPackages[0]'],
    ];
    for (const [keyPackages, message] of cases) {
      const res = await post('/internal/keys/upload', { user: 'alice', device: 'phone', keyPackages });
      assert.equal(res.status, 400);
      assert.deepEqual(res.body, { error: { code: 'invalid_key_package', message } });
    }
    const lr = await post('/internal/keys/upload', { user: 'alice', device: 'phone', keyPackages: [good], lastResort: elsewhere });
    assert.deepEqual(lr.body.error, { code: 'invalid_key_package', message: 'lastResort: credential names alice/tablet, not the uploader' });
    const twin = await post('/internal/keys/upload', { user: 'alice', device: 'phone', keyPackages: [good], lastResort: good });
    assert.equal(twin.body.error.code, 'invalid_key_package');
    assert.match(twin.body.error.message, /^lastResort: the same KeyPackage as keyPackages\[0\]/);
    assert.deepEqual((await post('/internal/keys/count', { user: 'alice', device: 'phone' })).body, { count: 0, lastResort: false }, 'nothing was stored');
    assert.deepEqual((await post('/internal/keys/devices', { user: 'alice' })).body.devices, []);
  });

  it('refuses bodies that do not match the schema (invalid_frame) and a device over its 100 packages (too_many)', async () => {
    const { post } = await setup();
    const phone = await device(alice, 'alice', 'phone');
    for (const bad of [{ user: 'alice', device: 'phone' }, { user: 'alice', device: 'phone', keyPackages: [] }, { user: 'alice', device: 'phone', keyPackages: Array(101).fill('AAAA') }, { user: 'al ice', device: 'phone', keyPackages: ['AAAA'] }]) {
      const res = await post('/internal/keys/upload', bad);
      assert.equal(res.status, 400, JSON.stringify(bad).slice(0, 80));
      assert.equal(res.body.error.code, 'invalid_frame');
    }
    assert.equal((await post('/internal/keys/claim', { user: 'bob', device: 'd1', users: [] })).body.error.code, 'invalid_frame');
    const hundred = await phone.packages(100);
    assert.deepEqual((await post('/internal/keys/upload', { user: 'alice', device: 'phone', keyPackages: hundred })).body, { count: 100, lastResort: false });
    const over = await post('/internal/keys/upload', { user: 'alice', device: 'phone', keyPackages: await phone.packages(1) });
    assert.equal(over.status, 409);
    assert.deepEqual(over.body.error, { code: 'too_many', message: 'a device holds at most 100 one-time KeyPackages: it holds 100 and the upload adds 1' });
  });

  it('a claim hands each one-time package to one claimer, then the last-resort one, and lists devices with none as missing', async () => {
    const { post, clock } = await setup();
    const phone = await device(alice, 'alice', 'phone');
    const laptop = await device(alice, 'alice', 'laptop');
    const uploaded = await phone.packages(2);
    const [lr] = await phone.packages(1);
    await post('/internal/keys/upload', { user: 'alice', device: 'phone', keyPackages: uploaded, lastResort: lr });
    await post('/internal/keys/upload', { user: 'alice', device: 'laptop', keyPackages: await laptop.packages(1) });
    const claim = () => post('/internal/keys/claim', { user: 'bob', device: 'd1', users: ['alice'] });

    const first = await claim();
    assert.equal(first.status, 200);
    assert.deepEqual(first.body.packages.map((p: any) => [p.user, p.device, p.lastResort]), [['alice', 'laptop', false], ['alice', 'phone', false]]);
    const got = first.body.packages.find((p: any) => p.device === 'phone').keyPackage;
    assert.ok(uploaded.includes(got), 'one of the uploaded packages, byte for byte');
    const checked = await checkKeyPackage(Buffer.from(got, 'base64url'), 'alice', 'phone');
    assert.ok(checked.ok, 'the claimer can check it as the region did');
    assert.deepEqual(first.body.missing, []);

    const second = await claim();
    assert.deepEqual(second.body.packages.map((p: any) => [p.device, p.lastResort]), [['phone', false]]);
    assert.notEqual(second.body.packages[0].keyPackage, got, 'a one-time package goes to one claim only');
    assert.deepEqual(second.body.missing, [{ user: 'alice', device: 'laptop' }]);
    for (let i = 0; i < 2; i++) {
      const last = await claim();
      assert.deepEqual(last.body.packages, [{ user: 'alice', device: 'phone', keyPackage: lr, lastResort: true }], 'the last-resort package, again and again');
    }
    assert.deepEqual((await post('/internal/keys/count', { user: 'alice', device: 'phone' })).body, { count: 0, lastResort: true });

    // The claiming device never gets its own package; the user's other devices do.
    const own = await post('/internal/keys/claim', { user: 'alice', device: 'phone', users: ['alice'] });
    assert.deepEqual(own.body, { packages: [], missing: [{ user: 'alice', device: 'laptop' }] });
    // Past their lifetime nothing is handed out.
    clock.now += 91 * DAY;
    assert.deepEqual((await claim()).body, { packages: [], missing: [{ user: 'alice', device: 'laptop' }, { user: 'alice', device: 'phone' }] });
    assert.deepEqual((await post('/internal/keys/claim', { user: 'bob', device: 'd1', users: ['nobody'] })).body, { packages: [], missing: [] });
  });

  it('rate limits claims per claiming user, one token per user named, with Retry-After', async () => {
    const { post, clock } = await setup({ perMinute: 60, burst: 3 });
    const claim = (who: string, users: string[]) => post('/internal/keys/claim', { user: who, device: 'd1', users });
    assert.equal((await claim('bob', ['u1', 'u2', 'u2'])).status, 200, 'two users named: two tokens');
    assert.equal((await claim('bob', ['u3'])).status, 200);
    const limited = await claim('bob', ['u4']);
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, 'rate_limited');
    assert.match(limited.body.error.message, /at most 60 users a minute; retry in 1 s/);
    assert.equal(limited.headers.get('retry-after'), '1');
    assert.equal((await claim('carol', ['u1', 'u2', 'u3'])).status, 200, 'another claimer has its own bucket');
    clock.now += 1_000;
    assert.equal((await claim('bob', ['u4'])).status, 200, 'a token a second');
    const big = await claim('bob', ['a', 'b', 'c']);
    assert.equal(big.status, 429);
    assert.equal(big.headers.get('retry-after'), '3');
  });
});
