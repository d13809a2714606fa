import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/log.ts';
import { MemoryPresence } from '../../src/presence/presence-memory.ts';
import type { Presence } from '../../src/presence/presence.ts';
import { RedisPresence } from '../../src/presence/presence-redis.ts';
import { runId } from '../engines.ts';
import { rawClient, redisEngineSuites } from '../redis-engines.ts';
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
  });
});
