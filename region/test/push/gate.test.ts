import { createLogger } from '../../src/log.ts';
import { MemoryPushGate } from '../../src/push/gate-memory.ts';
import { RedisPushGate } from '../../src/push/gate-redis.ts';
import { redisEngineSuites } from '../redis-engines.ts';
import { pushGateContract } from './gate.contract.ts';

pushGateContract('memory', async () => new MemoryPushGate());

redisEngineSuites('push gate', (engine, cfg) => {
  pushGateContract(engine, async () => new RedisPushGate(cfg, createLogger({ test: 'push-gate-redis' })));
});
