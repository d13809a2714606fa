import { once } from 'node:events';
import { after } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../src/config.ts';
import { seedNode } from '../src/redis-client.ts';
import { deleteByPrefix } from '../src/redis-keys.ts';
import { engineSuite, runId } from './engines.ts';

/** The Redis engines the routes, presence and push gate suites run on: one Redis, and a Redis Cluster. */
export const REDIS_ENGINES = ['redis', 'redisCluster'] as const;
export type RedisEngine = (typeof REDIS_ENGINES)[number];

/** A store's configuration for the engine's address (TEST_REDIS_URL, or TEST_REDIS_CLUSTER_NODES). */
export function redisTestConfig(engine: RedisEngine, address: string, prefix: string): RedisConfig {
  return engine === 'redisCluster' ? { clusterNodes: address.split(',').map((s) => s.trim()).filter(Boolean), prefix } : { url: address, prefix };
}

/** A plain client to read and write the engine's keys behind a store's back. */
export function rawClient(cfg: RedisConfig): Redis | Cluster {
  return cfg.clusterNodes ? new Cluster(cfg.clusterNodes.map(seedNode)) : new Redis(cfg.url);
}

/**
 * Registers `register(cfg)` for each Redis engine (see engineSuite: skipped, or failing in CI,
 * when its variable is unset), with a prefix unique to the run whose keys are deleted after.
 */
export function redisEngineSuites(suite: string, register: (engine: RedisEngine, cfg: RedisConfig) => void): void {
  for (const engine of REDIS_ENGINES) {
    engineSuite(suite, engine, (address) => {
      const cfg = redisTestConfig(engine, address, `sbtest_${runId()}:`);
      register(engine, cfg);
      after(async () => {
        // Every key this run wrote starts with its unique prefix.
        const redis = rawClient(cfg);
        try {
          await deleteByPrefix(redis, cfg.prefix);
        } finally {
          await redis.quit();
        }
      });
    });
  }
}

/**
 * Every key under `prefix` on every master of a Cluster, with its slot as the server computes it
 * (CLUSTER KEYSLOT) and the master holding it, and the slot of each of `ids` (user ids): the slot
 * every key tagged `{id}` must land in. What a wrong hash tag would show.
 */
export async function clusterLayout(cfg: RedisConfig, prefix: string, ids: string[] = []): Promise<{ keys: { key: string; slot: number; node: string }[]; slotOf: Map<string, number> }> {
  const cluster = new Cluster(cfg.clusterNodes!.map(seedNode));
  const keySlot = async (key: string) => Number(await cluster.call('CLUSTER', 'KEYSLOT', key));
  try {
    if (cluster.status !== 'ready') await once(cluster, 'ready');
    const keys: { key: string; slot: number; node: string }[] = [];
    for (const node of cluster.nodes('master')) {
      let cursor = '0';
      do {
        const [next, page] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        for (const key of page) keys.push({ key, slot: await keySlot(key), node: `${node.options.host}:${node.options.port}` });
        cursor = next;
      } while (cursor !== '0');
    }
    const slotOf = new Map<string, number>();
    for (const id of ids) slotOf.set(id, await keySlot(id));
    return { keys, slotOf };
  } finally {
    await cluster.quit();
  }
}
