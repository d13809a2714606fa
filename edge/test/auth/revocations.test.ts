import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { REVOCATION_CACHE_MS, SHARD_SNAPSHOT_MAX, clearRevocationCache, revocationShard, revoke, revokedBefore } from '../../src/auth/revocations.ts';

/** Revocation shards in memory, as RevocationsDO answers, counting the calls made to them. */
function fakeShards() {
  const stored = new Map<string, Map<string, number>>();
  const calls: string[] = [];
  const shard = (name: string) => {
    if (!stored.has(name)) stored.set(name, new Map());
    return stored.get(name)!;
  };
  const ns = {
    idFromName: (name: string) => name,
    get: (name: string) => ({
      async snapshot(max: number) {
        calls.push(`snapshot ${name}`);
        const m = shard(name);
        return m.size > max ? null : Object.fromEntries(m);
      },
      async revokedBefore(user: string) {
        calls.push(`user ${user}`);
        return shard(name).get(user) ?? 0;
      },
      async revoke(user: string, before: number) {
        calls.push(`revoke ${user}`);
        const now = Math.max(shard(name).get(user) ?? 0, before);
        shard(name).set(user, now);
        return now;
      },
    }),
  } as unknown as Parameters<typeof revokedBefore>[0];
  return { ns, calls, shard };
}

describe('revocation lookups (per isolate)', () => {
  beforeEach(() => clearRevocationCache());

  it('answers every user of a shard from one call while its list is short', async () => {
    const f = fakeShards();
    const users = Array.from({ length: 5000 }, (_, i) => `u${i}`);
    const sameShard = users.filter((u) => revocationShard(u) === revocationShard('u0'));
    assert.ok(sameShard.length > 5);
    for (const u of sameShard) assert.equal(await revokedBefore(f.ns, u, 1000), 0);
    assert.deepEqual(f.calls, [`snapshot ${revocationShard('u0')}`]);
  });

  it('sees a revocation made in this isolate at once, and one made elsewhere once the cache expires', async () => {
    const f = fakeShards();
    assert.equal(await revokedBefore(f.ns, 'alice', 1000), 0);
    await revoke(f.ns, 'alice', 500, 1000);
    assert.equal(await revokedBefore(f.ns, 'alice', 1001), 500);
    // Another isolate revokes bob (same store, not through this cache).
    f.shard(revocationShard('bob')).set('bob', 700);
    assert.equal(await revokedBefore(f.ns, 'bob', 1001 + REVOCATION_CACHE_MS + 1), 700);
  });

  it('asks per user when a shard holds more revocations than are cached whole', async () => {
    const f = fakeShards();
    const name = revocationShard('carol');
    for (let i = 0; i <= SHARD_SNAPSHOT_MAX; i++) f.shard(name).set(`x${i}`, 1);
    f.shard(name).set('carol', 42);
    assert.equal(await revokedBefore(f.ns, 'carol', 1000), 42);
    assert.deepEqual(f.calls, [`snapshot ${name}`, 'user carol']);
  });
});
