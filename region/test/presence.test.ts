import { after } from 'node:test';
import { Redis } from 'ioredis';
import { deleteByPrefix } from '../src/redis-keys.ts';
import { createLogger } from '../src/log.ts';
import { MemoryPresence } from '../src/presence-memory.ts';
import type { Presence } from '../src/presence.ts';
import { RedisPresence } from '../src/presence-redis.ts';
import { engineSuite, runId } from './engines.ts';
import { presenceContract } from './presence.contract.ts';

// Instances share one store, as region processes share one Redis.
// Closing one must not clear the others' view, so `close` of a shared view does nothing.
const shared = new MemoryPresence();
const view = (): Presence =>
  new Proxy(shared, {
    get: (target, key) => (key === 'close' ? async () => {} : typeof target[key as keyof Presence] === 'function' ? (target as any)[key].bind(target) : (target as any)[key]),
  });
presenceContract('memory', async () => view());

engineSuite('presence', 'redis', (url) => {
  const prefix = `sbtest_${runId()}:`;
  presenceContract('redis', async () => new RedisPresence({ url, prefix }, createLogger({ test: 'presence-redis' })));

  after(async () => {
    // Every key this run wrote starts with its unique prefix.
    const redis = new Redis(url);
    try {
      await deleteByPrefix(redis, prefix);
    } finally {
      await redis.quit();
    }
  });
});
