import path from 'node:path';
import type { RegionConfig } from './config.ts';
import type { Logger } from './log.ts';
import type { Presence } from './presence/presence.ts';
import type { Queue, QueueObserver } from './queue/queue.ts';
import type { Routes } from './routes/routes.ts';
import type { Storage } from './storage/storage.ts';

export interface Backends {
  storage: Storage;
  queue: Queue;
  routes: Routes;
  presence: Presence;
}

/**
 * Chooses each implementation from configuration: a real engine when its variable is set,
 * else the embedded one. Real drivers are imported only when chosen.
 */
export async function createBackends(cfg: RegionConfig, log: Logger, opts: { queueObserver?: QueueObserver } = {}): Promise<Backends> {
  let storage: Storage;
  if (cfg.cassandra) {
    const { CassandraStorage } = await import('./storage/storage-cassandra.ts');
    storage = new CassandraStorage(cfg.cassandra, log.child({ component: 'cassandra' }));
  } else {
    const { SqliteStorage } = await import('./storage/storage-sqlite.ts');
    storage = new SqliteStorage(path.join(cfg.dataDir, 'region.sqlite'));
  }
  let queue: Queue;
  if (cfg.kafka) {
    const { KafkaQueue } = await import('./queue/queue-kafka.ts');
    queue = new KafkaQueue(cfg.kafka, log.child({ component: 'kafka' }), opts.queueObserver);
  } else {
    const { MemoryQueue } = await import('./queue/queue-memory.ts');
    queue = new MemoryQueue(log.child({ component: 'queue' }), opts.queueObserver);
  }
  let routes: Routes;
  if (cfg.redis) {
    const { RedisRoutes } = await import('./routes/routes-redis.ts');
    routes = new RedisRoutes(cfg.redis, log.child({ component: 'redis' }));
  } else {
    const { MemoryRoutes } = await import('./routes/routes-memory.ts');
    routes = new MemoryRoutes();
  }
  let presence: Presence;
  if (cfg.redis) {
    const { RedisPresence } = await import('./presence/presence-redis.ts');
    presence = new RedisPresence(cfg.redis, log.child({ component: 'redis-presence' }));
  } else {
    const { MemoryPresence } = await import('./presence/presence-memory.ts');
    presence = new MemoryPresence();
  }
  return { storage, queue, routes, presence };
}
