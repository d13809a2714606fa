import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { KEY_LIMITS, LINK_LIMITS, ProtocolError } from '@switchboard/protocol';
import type { KeyClaim, KeyDirectory, StoredKeyPackage } from '../../src/keys/directory.ts';
import { runId } from '../engines.ts';

const DAY = 86_400_000;

/** A stand-in package: the directory stores bytes as they come (the region checked them before). */
function pkg(label: string, notAfter: number): StoredKeyPackage {
  const bytes = new TextEncoder().encode(`kp:${label}`);
  return { ref: createHash('sha256').update(bytes).digest('hex'), bytes, notAfter };
}
const label = (bytes: Uint8Array) => new TextDecoder().decode(bytes).slice(3);
/** The claim as `user/device:label` (one-time) or `user/device:label*` (last resort), and missing as `user/device`. */
const summary = (c: KeyClaim) => ({
  packages: c.packages.map((p) => `${p.user}/${p.device}:${label(p.bytes)}${p.lastResort ? '*' : ''}`).sort(),
  missing: c.missing.map((m) => `${m.user}/${m.device}`).sort(),
});

async function refused(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err) => err instanceof ProtocolError && err.code === code);
}

/**
 * The KeyDirectory contract (src/keys/directory.ts), for any implementation (regional storage).
 * `make` returns a new, not yet initialized instance over the same store each time: the
 * concurrent claims run on two instances at once, as two region processes would. Users are
 * unique per run, so a shared store is fine. Times are near the real clock: Cassandra expires rows
 * by TTL in real time.
 */
export function keyDirectoryContract(name: string, make: () => Promise<KeyDirectory & { init(): Promise<void>; close(): Promise<void> }>): void {
  describe(`key directory contract: ${name}`, () => {
    let dir: KeyDirectory & { close(): Promise<void> };
    const run = runId();
    let n = 0;
    const user = () => `k${run}_${++n}`;
    const T = Date.now();
    const LIVE = T + 90 * DAY;

    before(async () => {
      const d = await make();
      await d.init();
      dir = d;
    });
    after(async () => {
      await dir.close();
    });

    it('uploads one-time and last-resort packages, counts them, and lists the device with its identity key and upload time', async () => {
      const u = user();
      assert.deepEqual(await dir.countKeyPackages(u, 'phone', T), { count: 0, lastResort: false });
      const count = await dir.uploadKeyPackages(u, 'phone', 'ik-1', [pkg(`${u}-a`, LIVE), pkg(`${u}-b`, LIVE), pkg(`${u}-c`, LIVE)], pkg(`${u}-lr`, LIVE), T);
      assert.deepEqual(count, { count: 3, lastResort: true });
      assert.deepEqual(await dir.countKeyPackages(u, 'phone', T + 1), { count: 3, lastResort: true });
      await dir.uploadKeyPackages(u, 'laptop', 'ik-1', [pkg(`${u}-l`, LIVE)], null, T + 5);
      assert.deepEqual(await dir.devicesOf(u), [
        { device: 'laptop', identityKey: 'ik-1', uploadedAt: T + 5 },
        { device: 'phone', identityKey: 'ik-1', uploadedAt: T },
      ]);
      assert.deepEqual(await dir.countKeyPackages(u, 'laptop', T + 5), { count: 1, lastResort: false });
      assert.deepEqual(await dir.devicesOf(`nobody${run}`), []);
    });

    it('uploading the same packages again keeps one copy of each, and moves the upload time', async () => {
      const u = user();
      const ps = [pkg(`${u}-a`, LIVE), pkg(`${u}-b`, LIVE)];
      await dir.uploadKeyPackages(u, 'phone', 'ik', ps, null, T);
      assert.deepEqual(await dir.uploadKeyPackages(u, 'phone', 'ik', [...ps, ps[0]!], null, T + 10), { count: 2, lastResort: false });
      assert.equal((await dir.devicesOf(u))[0]?.uploadedAt, T + 10);
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + 20)).packages.length, 1);
      assert.deepEqual(await dir.countKeyPackages(u, 'phone', T + 20), { count: 1, lastResort: false });
    });

    it(`a device holds at most ${KEY_LIMITS.maxKeyPackagesPerDevice} one-time packages: an upload beyond is refused whole (too_many)`, async () => {
      const u = user();
      const max = KEY_LIMITS.maxKeyPackagesPerDevice;
      const ps = Array.from({ length: max }, (_, i) => pkg(`${u}-${i}`, LIVE));
      await dir.uploadKeyPackages(u, 'phone', 'ik', ps.slice(0, max - 2), null, T);
      await refused(dir.uploadKeyPackages(u, 'phone', 'ik', [pkg(`${u}-x`, LIVE), pkg(`${u}-y`, LIVE), pkg(`${u}-z`, LIVE)], pkg(`${u}-lr`, LIVE), T + 1), 'too_many');
      assert.deepEqual(await dir.countKeyPackages(u, 'phone', T + 1), { count: max - 2, lastResort: false }, 'nothing of the refused upload was kept');
      assert.deepEqual(await dir.uploadKeyPackages(u, 'phone', 'ik', ps.slice(max - 2), null, T + 2), { count: max, lastResort: false });
      // Packages already held are no new ones: a retried upload at the limit passes.
      assert.deepEqual(await dir.uploadKeyPackages(u, 'phone', 'ik', ps.slice(0, 10), pkg(`${u}-lr`, LIVE), T + 3), { count: max, lastResort: true });
      await refused(dir.uploadKeyPackages(u, 'phone', 'ik', [pkg(`${u}-over`, LIVE)], null, T + 4), 'too_many');
      // Claims make room.
      await dir.claimKeyPackages([u], T + 5);
      assert.deepEqual(await dir.uploadKeyPackages(u, 'phone', 'ik', [pkg(`${u}-over`, LIVE)], null, T + 6), { count: max, lastResort: true });
    });

    it('expired packages are not counted, never handed out, and free their place', async () => {
      const u = user();
      await dir.uploadKeyPackages(u, 'phone', 'ik', [pkg(`${u}-soon`, T + DAY), pkg(`${u}-late`, LIVE)], pkg(`${u}-lr`, T + 2 * DAY), T);
      assert.deepEqual(await dir.countKeyPackages(u, 'phone', T + DAY + 1), { count: 1, lastResort: true });
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + DAY + 1)), { packages: [`${u}/phone:${u}-late`], missing: [] }, 'the expired one is skipped');
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + DAY + 2)), { packages: [`${u}/phone:${u}-lr*`], missing: [] });
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + 3 * DAY)), { packages: [], missing: [`${u}/phone`] }, 'an expired last-resort package is not handed out');
      assert.deepEqual(await dir.countKeyPackages(u, 'phone', T + 3 * DAY), { count: 0, lastResort: false });
      // A device full of expired packages takes a full set of fresh ones.
      const v = user();
      const max = KEY_LIMITS.maxKeyPackagesPerDevice;
      await dir.uploadKeyPackages(v, 'phone', 'ik', Array.from({ length: max }, (_, i) => pkg(`${v}-old${i}`, T + DAY)), null, T);
      const later = T + DAY + 1;
      assert.deepEqual(await dir.uploadKeyPackages(v, 'phone', 'ik', Array.from({ length: max }, (_, i) => pkg(`${v}-new${i}`, later + 90 * DAY)), null, later), { count: max, lastResort: false });
    });

    it('a claim gives each device of each user one one-time package, soonest-expiring first, consumed; then the last-resort one, kept; then lists it missing', async () => {
      const [a, b] = [user(), user()];
      await dir.uploadKeyPackages(a, 'phone', 'ik-a', [pkg(`${a}-p2`, LIVE + 2), pkg(`${a}-p1`, LIVE + 1)], pkg(`${a}-plr`, LIVE), T);
      await dir.uploadKeyPackages(a, 'laptop', 'ik-a', [pkg(`${a}-l1`, LIVE)], null, T);
      await dir.uploadKeyPackages(b, 'phone', 'ik-b', [], pkg(`${b}-lr`, LIVE), T);
      assert.deepEqual(summary(await dir.claimKeyPackages([a, b, a, `nobody${run}`], T + 1)), {
        packages: [`${a}/laptop:${a}-l1`, `${a}/phone:${a}-p1`, `${b}/phone:${b}-lr*`],
        missing: [],
      });
      assert.deepEqual(summary(await dir.claimKeyPackages([a, b], T + 2)), { packages: [`${a}/phone:${a}-p2`, `${b}/phone:${b}-lr*`], missing: [`${a}/laptop`] });
      assert.deepEqual(summary(await dir.claimKeyPackages([a], T + 3)), { packages: [`${a}/phone:${a}-plr*`], missing: [`${a}/laptop`] });
      assert.deepEqual(summary(await dir.claimKeyPackages([a], T + 4)), { packages: [`${a}/phone:${a}-plr*`], missing: [`${a}/laptop`] }, 'the last-resort package stays');
      assert.deepEqual(await dir.countKeyPackages(a, 'phone', T + 4), { count: 0, lastResort: true });
      assert.deepEqual(summary(await dir.claimKeyPackages([`nobody${run}`], T)), { packages: [], missing: [] });
    });

    it("a new last-resort package replaces the old one; an upload without one keeps it", async () => {
      const u = user();
      await dir.uploadKeyPackages(u, 'phone', 'ik', [], pkg(`${u}-lr1`, LIVE), T);
      await dir.uploadKeyPackages(u, 'phone', 'ik', [], pkg(`${u}-lr2`, LIVE), T + 1);
      await dir.uploadKeyPackages(u, 'phone', 'ik', [pkg(`${u}-a`, LIVE)], null, T + 2);
      await dir.claimKeyPackages([u], T + 3);
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + 4)).packages, [`${u}/phone:${u}-lr2*`]);
    });

    it("skips the claiming device, and refuses (too_large) a claim over maxDevices before consuming anything", async () => {
      const u = user();
      for (const d of ['d1', 'd2', 'd3']) await dir.uploadKeyPackages(u, d, 'ik', [pkg(`${u}-${d}`, LIVE)], null, T);
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + 1, { skip: { user: u, device: 'd2' } })).packages, [`${u}/d1:${u}-d1`, `${u}/d3:${u}-d3`]);
      await dir.uploadKeyPackages(u, 'd1', 'ik', [pkg(`${u}-d1b`, LIVE)], null, T + 2);
      await refused(dir.claimKeyPackages([u], T + 3, { maxDevices: 2 }), 'too_large');
      assert.deepEqual(await dir.countKeyPackages(u, 'd1', T + 3), { count: 1, lastResort: false }, 'nothing consumed');
      assert.deepEqual(await dir.countKeyPackages(u, 'd2', T + 3), { count: 1, lastResort: false });
      assert.equal((await dir.claimKeyPackages([u], T + 3, { maxDevices: 3 })).packages.length, 2);
    });

    it('an upload naming another identity key drops what the device held before', async () => {
      const u = user();
      await dir.uploadKeyPackages(u, 'phone', 'ik-old', [pkg(`${u}-o1`, LIVE), pkg(`${u}-o2`, LIVE)], pkg(`${u}-olr`, LIVE), T);
      await dir.uploadKeyPackages(u, 'tablet', 'ik-old', [pkg(`${u}-t1`, LIVE)], null, T);
      assert.deepEqual(await dir.uploadKeyPackages(u, 'phone', 'ik-new', [pkg(`${u}-n1`, LIVE)], null, T + 1), { count: 1, lastResort: false });
      assert.deepEqual(await dir.devicesOf(u), [
        { device: 'phone', identityKey: 'ik-new', uploadedAt: T + 1 },
        { device: 'tablet', identityKey: 'ik-old', uploadedAt: T },
      ]);
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + 2)).packages, [`${u}/phone:${u}-n1`, `${u}/tablet:${u}-t1`]);
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + 3)).missing, [`${u}/phone`, `${u}/tablet`]);
    });

    it(`a user has at most ${KEY_LIMITS.maxDevicesPerUser} devices listed: a new one beyond is too_many`, async () => {
      const u = user();
      const max = KEY_LIMITS.maxDevicesPerUser;
      for (let i = 0; i < max; i += 20) await Promise.all(Array.from({ length: Math.min(20, max - i) }, (_, j) => dir.uploadKeyPackages(u, `d${i + j}`, 'ik', [], pkg(`${u}-${i + j}`, LIVE), T)));
      await refused(dir.uploadKeyPackages(u, 'one-more', 'ik', [pkg(`${u}-more`, LIVE)], null, T + 1), 'too_many');
      assert.deepEqual(await dir.uploadKeyPackages(u, 'd0', 'ik', [pkg(`${u}-d0`, LIVE)], null, T + 1), { count: 1, lastResort: true }, 'a listed device still uploads');
      assert.equal((await dir.devicesOf(u)).length, max);
    });

    it("removeDevice drops the device's packages and listing; uploading again starts afresh", async () => {
      const u = user();
      await dir.uploadKeyPackages(u, 'phone', 'ik', [pkg(`${u}-a`, LIVE)], pkg(`${u}-lr`, LIVE), T);
      await dir.uploadKeyPackages(u, 'laptop', 'ik', [pkg(`${u}-l`, LIVE)], null, T);
      await dir.removeDevice(u, 'phone');
      assert.deepEqual((await dir.devicesOf(u)).map((d) => d.device), ['laptop']);
      assert.deepEqual(await dir.countKeyPackages(u, 'phone', T), { count: 0, lastResort: false });
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + 1)), { packages: [`${u}/laptop:${u}-l`], missing: [] });
      await dir.removeDevice(u, 'never-uploaded');
      assert.deepEqual(await dir.uploadKeyPackages(u, 'phone', 'ik2', [pkg(`${u}-b`, LIVE)], null, T + 2), { count: 1, lastResort: false });
      assert.deepEqual((await dir.devicesOf(u)).map((d) => [d.device, d.identityKey]), [['laptop', 'ik'], ['phone', 'ik2']]);
    });

    it('revokeDevice drops the device for good: its uploads are refused (forbidden), isRevoked says so, other devices go on', async () => {
      const u = user();
      await dir.uploadKeyPackages(u, 'phone', 'ik', [pkg(`${u}-a`, LIVE)], pkg(`${u}-lr`, LIVE), T);
      await dir.uploadKeyPackages(u, 'laptop', 'ik', [pkg(`${u}-l`, LIVE)], null, T);
      assert.equal(await dir.isRevoked(u, 'phone'), false);
      await dir.revokeDevice(u, 'phone', T + 1);
      assert.equal(await dir.isRevoked(u, 'phone'), true);
      assert.equal(await dir.isRevoked(u, 'laptop'), false);
      assert.deepEqual((await dir.devicesOf(u)).map((d) => d.device), ['laptop']);
      await refused(dir.uploadKeyPackages(u, 'phone', 'ik', [pkg(`${u}-b`, LIVE)], null, T + 2), 'forbidden');
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + 3)), { packages: [`${u}/laptop:${u}-l`], missing: [] });
    });

    it('claims limited to `only` devices consume nothing of the others', async () => {
      const u = user();
      await dir.uploadKeyPackages(u, 'phone', 'ik', [pkg(`${u}-p`, LIVE)], null, T);
      await dir.uploadKeyPackages(u, 'laptop', 'ik', [pkg(`${u}-l`, LIVE)], null, T);
      assert.deepEqual(summary(await dir.claimKeyPackages([u], T + 1, { only: [{ user: u, device: 'laptop' }] })), { packages: [`${u}/laptop:${u}-l`], missing: [] });
      assert.deepEqual(await dir.countKeyPackages(u, 'phone', T + 2), { count: 1, lastResort: false });
    });

    it('a device link is taken once, by its own user, before it expires; at most LINK_LIMITS.maxOpenLinks wait at once', async () => {
      const u = user();
      const link = (id: string, expiresAt = T + 600_000) => ({ id: `${id}-${u}`.padEnd(16, 'x'), fromDevice: 'phone', envelope: `env-${id}`, expiresAt });
      await dir.putLink(u, link('a'), T);
      assert.equal(await dir.takeLink(user(), link('a').id, T + 1), null, 'another user');
      const taken = await Promise.all([dir.takeLink(u, link('a').id, T + 1), dir.takeLink(u, link('a').id, T + 1)]);
      assert.equal(taken.filter((t) => t !== null).length, 1, 'concurrent takes: exactly one');
      assert.deepEqual(taken.find((t) => t !== null), link('a'));
      assert.equal(await dir.takeLink(u, link('a').id, T + 2), null, 'taken already');
      await dir.putLink(u, link('late', T + 1000), T);
      assert.equal(await dir.takeLink(u, link('late').id, T + 2000), null, 'expired');
      for (let i = 0; i < LINK_LIMITS.maxOpenLinks; i++) await dir.putLink(u, link(`n${i}`), T);
      await refused(dir.putLink(u, link('one-more'), T), 'too_many');
    });

    it('20 concurrent claims (two instances) of a device with 5 packages: each package handed out exactly once, the other 15 get the last-resort one', async () => {
      const u = user();
      const other = await make();
      await other.init();
      try {
        await dir.uploadKeyPackages(u, 'phone', 'ik', Array.from({ length: 5 }, (_, i) => pkg(`${u}-${i}`, LIVE)), pkg(`${u}-lr`, LIVE), T);
        const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? other : dir).claimKeyPackages([u], T + 1)));
        const got = claims.flatMap((c) => c.packages.map((p) => `${label(p.bytes)}${p.lastResort ? '*' : ''}`));
        assert.equal(got.length, 20, 'every claim got a package');
        assert.deepEqual(got.filter((g) => !g.endsWith('*')).sort(), Array.from({ length: 5 }, (_, i) => `${u}-${i}`), 'each one-time package once');
        assert.deepEqual(got.filter((g) => g.endsWith('*')), Array(15).fill(`${u}-lr*`));
        assert.deepEqual(await dir.countKeyPackages(u, 'phone', T + 2), { count: 0, lastResort: true });
      } finally {
        await other.close();
      }
    });
  });
}
