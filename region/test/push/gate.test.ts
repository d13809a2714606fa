import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/log.ts';
import { MemoryPushGate } from '../../src/push/gate-memory.ts';
import { RedisPushGate } from '../../src/push/gate-redis.ts';
import { runId } from '../engines.ts';
import { clusterLayout, redisEngineSuites } from '../redis-engines.ts';
import { pushGateContract } from './gate.contract.ts';

pushGateContract('memory', async () => new MemoryPushGate());

redisEngineSuites('push gate', (engine, cfg) => {
  pushGateContract(engine, async () => new RedisPushGate(cfg, createLogger({ test: 'push-gate-redis' })));

  if (engine === 'redisCluster') {
    describe('push gate: redisCluster slots', () => {
      it("a device's wake and bucket are in its user's slot (hash tag {user}); users spread over several slots and masters", async () => {
        const gate = new RedisPushGate(cfg, createLogger({ test: 'push-gate-redis-slots' }));
        try {
          const run = runId();
          const users = Array.from({ length: 40 }, (_, i) => `slot${run}_${i}`);
          await Promise.all(users.flatMap((u) => ['phone', 'tablet'].flatMap((d) => [gate.claim(u, d, 60_000, 'intent'), gate.take(u, d, { perHour: 60, burst: 10 })])));
          const { keys, slotOf } = await clusterLayout(cfg, `${cfg.prefix}push:`, users);
          const mine = keys.filter((k) => k.key.includes(`{slot${run}_`));
          assert.equal(mine.length, 40 * 2 * 2, 'a wake and a bucket per device');
          for (const k of mine) assert.equal(k.slot, slotOf.get(/\{([^}]*)\}/.exec(k.key)![1]!), `${k.key} is in its user's slot`);
          assert.ok(new Set(mine.map((k) => k.slot)).size > 1, 'users are not all in one slot');
          assert.ok(new Set(mine.map((k) => k.node)).size > 1, 'users are not all on one master');
        } finally {
          await gate.close();
        }
      });
    });
  }
});
