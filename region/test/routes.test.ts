import { after } from 'node:test';
import { Redis } from 'ioredis';
import { deleteByPrefix } from '../src/redis-keys.ts';
import { createLogger } from '../src/log.ts';
import { MemoryRoutes } from '../src/routes-memory.ts';
import { RedisRoutes } from '../src/routes-redis.ts';
import { engineSuite, runId } from './engines.ts';
import { routesContract } from './routes.contract.ts';

routesContract('memory', async () => new MemoryRoutes());

engineSuite('routes', 'redis', (url) => {
  const prefix = `sbtest_${runId()}:`;
  routesContract('redis', async () => new RedisRoutes({ url, prefix }, createLogger({ test: 'routes-redis' })));

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
