import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cluster } from 'ioredis';
import { createLogger } from '../../src/log.ts';
import { MemoryRoutes } from '../../src/routes/routes-memory.ts';
import { RedisRoutes } from '../../src/routes/routes-redis.ts';
import { runId } from '../engines.ts';
import { clusterLayout, rawClient, redisEngineSuites } from '../redis-engines.ts';
import { routesContract } from './routes.contract.ts';

routesContract('memory', async () => new MemoryRoutes());

redisEngineSuites('routes', (engine, cfg) => {
  const { prefix } = cfg;
  routesContract(engine, async () => new RedisRoutes(cfg, createLogger({ test: 'routes-redis' })));

  describe(`routes: ${engine} key layout`, () => {
    it('a hash value is JSON {edge, gw, conn, expiresAt} with conn exact; one without gw and conn reads as expired and is pruned', async () => {
      const redis = rawClient(cfg);
      const routes = new RedisRoutes(cfg, createLogger({ test: 'routes-redis-layout' }));
      try {
        const user = `layout${runId()}`;
        const key = `${prefix}route:{${user}}`;
        const conn = 1_764_000_000_000_123;
        await routes.up({ user, device: 'new', edge: 'https://edge-a.example', gw: 'gw:weur:3', conn }, 3_600_000);
        const stored = JSON.parse((await redis.hget(key, 'new'))!) as Record<string, unknown>;
        assert.deepEqual({ ...stored, expiresAt: typeof stored.expiresAt }, { edge: 'https://edge-a.example', gw: 'gw:weur:3', conn, expiresAt: 'number' });
        assert.ok((stored.expiresAt as number) > Date.now() + 3_000_000);
        // A route written before routes named sockets (no gw, no conn), still unexpired.
        await redis.hset(key, 'old', JSON.stringify({ edge: 'https://edge-a.example', expiresAt: Date.now() + 3_600_000 }));
        assert.deepEqual((await routes.lookup([user])).get(user), [{ user, device: 'new', edge: 'https://edge-a.example', gw: 'gw:weur:3', conn }]);
        assert.equal(await redis.hexists(key, 'old'), 0, 'pruned');
      } finally {
        await routes.close();
        redis.disconnect();
      }
    });
  });

  if (engine === 'redisCluster') {
    describe('routes: redisCluster slots', () => {
      it("a user's route hash is in its user's slot (hash tag {user}); users spread over several slots and masters", async () => {
        const routes = new RedisRoutes(cfg, createLogger({ test: 'routes-redis-slots' }));
        try {
          const run = runId();
          const users = Array.from({ length: 60 }, (_, i) => `slot${run}-${i}`);
          await Promise.all(users.map((user) => routes.up({ user, device: 'd', edge: 'https://edge-a.example', gw: 'gw:local:1', conn: 7 }, 3_600_000)));
          assert.equal((await routes.lookup(users)).size, 60, 'one lookup of users in many slots');
          const { keys, slotOf } = await clusterLayout(cfg, `${prefix}route:{slot${run}-`, users);
          assert.equal(keys.length, 60);
          for (const k of keys) assert.equal(k.slot, slotOf.get(/\{([^}]*)\}/.exec(k.key)![1]!), `${k.key} is in its user's slot`);
          assert.ok(new Set(keys.map((k) => k.slot)).size > 1, 'users are not all in one slot');
          assert.ok(new Set(keys.map((k) => k.node)).size > 1, 'users are not all on one master');
        } finally {
          await routes.close();
        }
      });

      it('the epoch is an id on each master, and changes when one master loses its data', async () => {
        const routes = new RedisRoutes(cfg, createLogger({ test: 'routes-redis-epoch' }));
        const other = new RedisRoutes(cfg, createLogger({ test: 'routes-redis-epoch' }));
        const redis = rawClient(cfg);
        try {
          const e = await routes.epoch();
          assert.equal(await other.epoch(), e, 'region processes agree');
          const { keys } = await clusterLayout(cfg, `${prefix}routes:epoch`);
          await redis.ping(); // connected: the masters are known
          const masters = (redis as Cluster).nodes('master').length;
          assert.equal(keys.length, masters, 'one id per master');
          assert.equal(new Set(keys.map((k) => k.node)).size, masters, 'on distinct masters');
          assert.equal(e.split('.').length, masters);
          // The master holding the last id loses its data (restarted without persistence).
          await redis.del(keys.at(-1)!.key);
          const after = await routes.epoch();
          assert.notEqual(after, e);
          assert.equal(await other.epoch(), after);
          assert.equal(await routes.epoch(), after, 'stable again');
        } finally {
          await routes.close();
          await other.close();
          redis.disconnect();
        }
      });
    });
  }
});
