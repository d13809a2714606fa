import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/log.ts';
import { MemoryPresence } from '../../src/presence/presence-memory.ts';
import type { Presence } from '../../src/presence/presence.ts';
import { DUE_SHARDS, dueShard, RedisPresence } from '../../src/presence/presence-redis.ts';
import { runId } from '../engines.ts';
import { clusterLayout, rawClient, redisEngineSuites } from '../redis-engines.ts';
import { presenceContract } from './presence.contract.ts';

// Instances share one store, as region processes share one Redis.
// Closing one must not clear the others' view, so `close` of a shared view does nothing.
const shared = new MemoryPresence();
const view = (): Presence =>
  new Proxy(shared, {
    get: (target, key) => (key === 'close' ? async () => {} : typeof target[key as keyof Presence] === 'function' ? (target as any)[key].bind(target) : (target as any)[key]),
  });
presenceContract('memory', async () => view());

redisEngineSuites('presence', (engine, cfg) => {
  const { prefix } = cfg;
  presenceContract(engine, async () => new RedisPresence(cfg, createLogger({ test: 'presence-redis' })));

  describe(`presence: ${engine} key layout`, () => {
    it('a watchers value is JSON {edge, gw}; a bare edge URL (from before gateways) is ignored', async () => {
      const redis = rawClient(cfg);
      const p = new RedisPresence(cfg, createLogger({ test: 'presence-redis-layout' }));
      try {
        const [w, x] = [`w${runId()}`, `x${runId()}`];
        const key = `${prefix}presence:watchers:{${x}}`;
        await p.watch({ user: w, device: 'd1', edge: 'https://e.example', gw: 'gw:local:2' }, [x], 10);
        assert.deepEqual(JSON.parse((await redis.hget(key, `${w}\nd1`))!), { edge: 'https://e.example', gw: 'gw:local:2' });
        await redis.hset(key, `${w}\nold`, 'https://e.example');
        assert.deepEqual(await p.watchers(x), [{ user: w, device: 'd1', edge: 'https://e.example', gw: 'gw:local:2' }]);
      } finally {
        await p.close();
        redis.disconnect();
      }
    });

    it('a sweep drains the unsharded due index of the previous version (a rolling deploy)', async () => {
      const redis = rawClient(cfg);
      const p = new RedisPresence(cfg, createLogger({ test: 'presence-redis-legacy' }));
      try {
        const u = `legacy${runId()}`;
        // As a region of the previous version left it: the device's deadline passed, indexed in the one zset.
        const beatAt = Date.now() - 5_000;
        await redis.hset(`${prefix}presence:{${u}}`, 'd:phone', `${beatAt + 1_000}:${beatAt}`, 'on', '1');
        await redis.zadd(`${prefix}presence:due`, beatAt + 1_000, `${u}\nphone`);
        let seen: { user: string; lastSeen: number | null }[] = [];
        for (let i = 0; i < 20 && !seen.some((c) => c.user === u); i++) seen = (await p.sweep(10_000)).changes;
        assert.deepEqual(seen.filter((c) => c.user === u), [{ user: u, status: 'offline', lastSeen: beatAt }]);
        assert.equal(await redis.zscore(`${prefix}presence:due`, `${u}\nphone`), null, 'its entry is removed');
      } finally {
        await p.close();
        redis.disconnect();
      }
    });

    it('a sweep ends at most its limit across shards, and repeated sweeps end every due device once', async () => {
      const p = new RedisPresence(cfg, createLogger({ test: 'presence-redis-limit' }));
      try {
        const run = runId();
        const users = Array.from({ length: 40 }, (_, i) => `limit${run}-${i}`);
        await p.beat(users.map((user) => ({ user, device: 'd' })), 300);
        await new Promise((r) => setTimeout(r, 600));
        const first = await p.sweep(10);
        assert.equal(first.ended.length, 10, 'the limit, with 40 devices due');
        const mine = new Set(first.ended.filter((e) => e.user.startsWith(`limit${run}-`)).map((e) => e.user));
        for (let i = 0; i < 50 && mine.size < 40; i++) {
          const r = await p.sweep(10);
          assert.ok(r.ended.length <= 10);
          for (const e of r.ended) if (e.user.startsWith(`limit${run}-`)) {
            assert.ok(!mine.has(e.user), `${e.user} ended once`);
            mine.add(e.user);
          }
        }
        assert.equal(mine.size, 40);
      } finally {
        await p.close();
      }
    });

    it('beats of many users go to the due shard of each user', async () => {
      const redis = rawClient(cfg);
      const p = new RedisPresence(cfg, createLogger({ test: 'presence-redis-shards' }));
      try {
        const run = runId();
        const users = Array.from({ length: 64 }, (_, i) => `shard${run}-${i}`);
        await p.beat(users.map((user) => ({ user, device: 'd' })), 3_600_000);
        const shards = new Set<number>();
        for (const user of users) {
          const shard = dueShard(user);
          shards.add(shard);
          assert.ok(Number(await redis.zscore(`${prefix}presence:due:{due${shard}}`, `${user}\nd`)) > Date.now(), `${user} in shard ${shard}`);
        }
        assert.ok(shards.size > DUE_SHARDS / 2, `64 users spread over the shards (${shards.size})`);
        assert.equal((await p.state(users)).filter((s) => s.status === 'online').length, 64);
      } finally {
        await p.close();
        redis.disconnect();
      }
    });
  });

  if (engine === 'redisCluster') {
    describe('presence: redisCluster slots', () => {
      it("a user's presence, watchers and watching keys are in its user's slot; users and due shards spread over several slots and masters", async () => {
        const p = new RedisPresence(cfg, createLogger({ test: 'presence-redis-slots' }));
        try {
          const run = runId();
          const users = Array.from({ length: 60 }, (_, i) => `slot${run}-${i}`);
          await p.beat(users.flatMap((user) => [{ user, device: 'd1' }, { user, device: 'd2' }]), 3_600_000);
          // Each user's d1 watches the next user: watching:{user}:d1 and watchers:{next}.
          await Promise.all(users.map((user, i) => p.watch({ user, device: 'd1', edge: 'https://e.example', gw: 'gw:local:1' }, [users[(i + 1) % users.length]!], 10)));
          const dueTags = Array.from({ length: DUE_SHARDS }, (_, i) => `due${i}`);
          const { keys, slotOf } = await clusterLayout(cfg, `${prefix}presence:`, [...users, ...dueTags]);
          const mine = keys.filter((k) => k.key.includes(`{slot${run}-`));
          assert.equal(mine.length, 60 * 3, 'a presence hash, a watchers hash and a watching set per user');
          for (const k of mine) assert.equal(k.slot, slotOf.get(/\{([^}]*)\}/.exec(k.key)![1]!), `${k.key} is in its user's slot`);
          assert.ok(new Set(mine.map((k) => k.slot)).size > 1, 'users are not all in one slot');
          assert.ok(new Set(mine.map((k) => k.node)).size > 1, 'users are not all on one master');
          const due = keys.filter((k) => /presence:due:\{due\d+\}$/.test(k.key));
          for (const k of due) assert.equal(k.slot, slotOf.get(/\{([^}]*)\}/.exec(k.key)![1]!), `${k.key} is in its shard's slot`);
          assert.ok(new Set(due.map((k) => k.node)).size > 1, `the due index is not on one master (${due.length} shards written)`);
          assert.equal((await p.state(users)).filter((s) => s.status === 'online').length, 60);
          await Promise.all(users.map((user) => p.endWatches({ user, device: 'd1' })));
          assert.deepEqual(await p.watchers(users[1]!), []);
        } finally {
          await p.close();
        }
      });
    });
  }
});
