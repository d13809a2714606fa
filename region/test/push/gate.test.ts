import { after } from 'node:test';
import { Redis } from 'ioredis';
import { deleteByPrefix } from '../../src/redis-keys.ts';
import { createLogger } from '../../src/log.ts';
import { MemoryPushGate } from '../../src/push/gate-memory.ts';
import { RedisPushGate } from '../../src/push/gate-redis.ts';
import { engineSuite, runId } from '../engines.ts';
import { pushGateContract } from './gate.contract.ts';

pushGateContract('memory', async () => new MemoryPushGate());

engineSuite('push gate', 'redis', (url) => {
  const prefix = `sbtest_${runId()}:`;
  pushGateContract('redis', async () => new RedisPushGate({ url, prefix }, createLogger({ test: 'push-gate-redis' })));
  after(async () => {
    const redis = new Redis(url);
    try {
      await deleteByPrefix(redis, prefix);
    } finally {
      await redis.quit();
    }
  });
});
