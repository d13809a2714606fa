import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KEY_LIMITS, KEY_UPLOAD_BODY_BYTES } from '@switchboard/protocol';
import { certifyDevice, checkKeyPackage, newIdentityKey, newKeyPackage, newSignatureKey, type IdentityKeyPair } from '@switchboard/protocol/mls';
import { startSystem, type Engines, type System } from './system.ts';
import { token } from './socket.ts';

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

/** A device as the SDK makes one: `packages(n)` are its KeyPackages, base64url, as uploaded. */
async function device(identity: IdentityKeyPair, user: string, name: string) {
  const sig = await newSignatureKey();
  const credential = await certifyDevice(identity, user, name, sig.publicKey);
  return { packages: (n: number) => Promise.all(Array.from({ length: n }, async () => b64((await newKeyPackage(credential, sig)).bytes))) };
}

/**
 * The key directory over HTTP, through the real edge (workerd) and a region process: devices
 * upload their own KeyPackages, other users claim them, refusals are typed.
 */
export function keysSuite(engines: Engines): void {
  describe(`key directory (${engines} engines)`, { timeout: 300_000 }, () => {
    let sys: System;
    let aliceId: IdentityKeyPair;
    const tokens = new Map<string, string>();
    /** `method path` as `user/device` (none: no token); the status, the JSON answer and the headers. */
    const http = async (who: string | null, method: string, path: string, body?: unknown) => {
      let auth: Record<string, string> = {};
      if (who) {
        if (!tokens.has(who)) tokens.set(who, await token(sys.edgeUrl, who.split('/')[0]!, who.split('/')[1]!));
        auth = { authorization: `Bearer ${tokens.get(who)}` };
      }
      const res = await fetch(`${sys.edgeUrl}${path}`, { method, headers: { 'content-type': 'application/json', ...auth }, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
      return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
    };

    before(async () => {
      // A small claim burst, so the rate limit is reached in a few requests (bob and carol stay under it).
      sys = await startSystem(engines, { regionEnv: { KEYS_CLAIM_PER_MINUTE: '60', KEYS_CLAIM_BURST: '8' } });
      aliceId = await newIdentityKey();
    });
    after(async () => {
      await sys?.stop();
    });

    it('a device uploads its KeyPackages and reads its count; no device may upload or count for another', async () => {
      const phone = await device(aliceId, 'alice', 'phone');
      const [a, b, c, lr] = await phone.packages(4);
      const up = await http('alice/phone', 'PUT', '/v1/devices/phone/key-packages', { keyPackages: [a, b, c], lastResort: lr });
      assert.equal(up.status, 200, JSON.stringify(up.body));
      assert.deepEqual(up.body, { count: 3, lastResort: true });
      assert.deepEqual((await http('alice/phone', 'GET', '/v1/devices/phone/key-packages/count')).body, { count: 3, lastResort: true });

      const other = await http('alice/phone', 'PUT', '/v1/devices/laptop/key-packages', { keyPackages: [a] });
      assert.equal(other.status, 403);
      assert.equal(other.body.error.code, 'forbidden');
      assert.equal((await http('alice/phone', 'GET', '/v1/devices/laptop/key-packages/count')).status, 403);
      assert.equal((await http('mallory/phone', 'PUT', '/v1/devices/phone/key-packages', { keyPackages: [a] })).body.error.code, 'invalid_key_package', "alice's packages are not mallory's");
      const anonymous = await http(null, 'PUT', '/v1/devices/phone/key-packages', { keyPackages: [a] });
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.body.error.code, 'unauthorized');

      const devices = await http('bob/d1', 'GET', '/v1/users/alice/devices');
      assert.equal(devices.status, 200);
      assert.equal(devices.body.user, 'alice');
      assert.deepEqual(devices.body.devices.map((d: any) => [d.device, d.identityKey]), [['phone', b64(aliceId.publicKey)]]);
      assert.equal(typeof devices.body.devices[0].uploadedAt, 'number');
    });

    it('another user claims them: one one-time package per device, handed out once, then the last-resort one; a device with none is missing', async () => {
      const tablet = await device(aliceId, 'alice', 'tablet');
      const uploaded = await tablet.packages(2);
      assert.equal((await http('alice/tablet', 'PUT', '/v1/devices/tablet/key-packages', { keyPackages: uploaded })).status, 200);
      const claim = async (who: string) => {
        const res = await http(who, 'POST', '/v1/key-packages/claim', { users: ['alice'] });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body as { packages: { user: string; device: string; keyPackage: string; lastResort: boolean }[]; missing: { user: string; device: string }[] };
      };
      const first = await claim('bob/d1');
      const fromTablet = first.packages.find((p) => p.device === 'tablet')!;
      assert.ok(uploaded.includes(fromTablet.keyPackage), 'one of the uploaded packages, byte for byte');
      assert.equal(fromTablet.lastResort, false);
      assert.ok((await checkKeyPackage(Buffer.from(fromTablet.keyPackage, 'base64url'), 'alice', 'tablet')).ok, 'it checks out on the claiming side');
      const second = await claim('carol/d1');
      const again = second.packages.find((p) => p.device === 'tablet')!;
      assert.ok(uploaded.includes(again.keyPackage));
      assert.notEqual(again.keyPackage, fromTablet.keyPackage, 'each one-time package goes to one claimer');
      const third = await claim('bob/d1');
      assert.deepEqual(third.missing, [{ user: 'alice', device: 'tablet' }], 'the tablet uploaded no last-resort package');
      const phone = third.packages.find((p) => p.device === 'phone')!;
      assert.equal(phone.lastResort, false, 'the phone still had one-time packages');
      assert.deepEqual((await http('alice/tablet', 'GET', '/v1/devices/tablet/key-packages/count')).body, { count: 0, lastResort: false });
      await claim('carol/d1');
      const last = await claim('bob/d1');
      assert.deepEqual(last.packages.map((p) => [p.device, p.lastResort]), [['phone', true]], "the phone's one-time packages are gone: its last-resort one");
      // The claiming device is never handed its own package.
      const own = await claim('alice/phone');
      assert.ok(!own.packages.some((p) => p.device === 'phone'));
    });

    it('refuses bad uploads and claims with typed errors, relayed from the region where it checks', async () => {
      const garbage = b64(new TextEncoder().encode('not a key package'));
      const bad = await http('dora/d1', 'PUT', '/v1/devices/d1/key-packages', { keyPackages: [garbage] });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body, { error: { code: 'invalid_key_package', message: 'keyPackages[0]: not an MLS KeyPackage' } });
      for (const body of [{}, { keyPackages: [] }, { keyPackages: ['a+b/'] }, { keyPackages: Array(101).fill('AAAA') }, { keyPackages: ['AAAA'], extra: 1 }]) {
        const res = await http('dora/d1', 'PUT', '/v1/devices/d1/key-packages', body);
        assert.equal(res.status, 400, JSON.stringify(body).slice(0, 60));
        assert.equal(res.body.error.code, 'invalid_frame');
      }
      assert.equal((await http('dora/d1', 'PUT', '/v1/devices/d1/key-packages', '{"keyPackages":')).body.error.code, 'bad_json');
      const tooMany = await http('dora/d1', 'POST', '/v1/key-packages/claim', { users: Array.from({ length: KEY_LIMITS.maxClaimUsers + 1 }, (_, i) => `u${i}`) });
      assert.equal(tooMany.body.error.code, 'invalid_frame');
      assert.equal((await http('dora/d1', 'GET', '/v1/users/no%20one/devices')).body.error.code, 'invalid_frame');

      // Bodies of up to about 2.2 MB pass the edge (100 packages at 16 KB): these reach the region's check.
      const big = Array.from({ length: 70 }, () => b64(new Uint8Array(KEY_LIMITS.maxKeyPackageBytes).fill(7)));
      const large = await http('dora/d1', 'PUT', '/v1/devices/d1/key-packages', { keyPackages: big });
      assert.ok(JSON.stringify({ keyPackages: big }).length > 1_500_000);
      assert.deepEqual(large.body.error, { code: 'invalid_key_package', message: 'keyPackages[0]: not an MLS KeyPackage' });
      const over = await http('dora/d1', 'PUT', '/v1/devices/d1/key-packages', JSON.stringify({ keyPackages: ['A'.repeat(KEY_UPLOAD_BODY_BYTES)] }));
      assert.equal(over.status, 413);
      assert.equal(over.body.error.code, 'too_large');
    });

    it('rate limits claims per claiming user, with Retry-After', async () => {
      const users = Array.from({ length: 8 }, (_, i) => `nobody${i}`);
      assert.equal((await http('greedy/d1', 'POST', '/v1/key-packages/claim', { users })).status, 200);
      const limited = await http('greedy/d1', 'POST', '/v1/key-packages/claim', { users: ['alice'] });
      assert.equal(limited.status, 429);
      assert.equal(limited.body.error.code, 'rate_limited');
      assert.ok(Number(limited.headers.get('retry-after')) >= 1, `retry-after ${limited.headers.get('retry-after')}`);
      assert.equal((await http('bob/d1', 'POST', '/v1/key-packages/claim', { users: ['nobody'] })).status, 200, 'other claimers are not held up');
    });

    it('answers unavailable while the region is down', async () => {
      await sys.stopRegion();
      try {
        for (const [method, path, body] of [
          ['POST', '/v1/key-packages/claim', { users: ['alice'] }],
          ['GET', '/v1/devices/phone/key-packages/count', undefined],
          ['GET', '/v1/users/alice/devices', undefined],
        ] as const) {
          const res = await http('alice/phone', method, path, body);
          assert.equal(res.status, 503, `${method} ${path}`);
          assert.deepEqual(res.body, { error: { code: 'unavailable', message: 'the key directory is unavailable; retry later' } });
        }
      } finally {
        await sys.startRegion();
      }
    });
  });
}
