/** Removing what a benchmark's region created under its own NAMESPACE on the shared engines. */
import { deleteByPrefix } from '../../region/src/redis-keys.ts';

/** Drops what the region created for `namespace`: keyspace, topics, consumer group, Redis keys. */
export async function removeNamespace(namespace: string, env: Record<string, string>): Promise<void> {
  const withTimeout = <T>(p: Promise<T>, ms: number, what: string) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), ms).unref())]);
  const { default: cassandra } = await import('cassandra-driver');
  const { Kafka, logLevel } = await import('kafkajs');
  const { Redis } = await import('ioredis');
  const tasks: Promise<unknown>[] = [];
  tasks.push(
    withTimeout(
      (async () => {
        const client = new cassandra.Client({ contactPoints: env.CASSANDRA_CONTACT_POINTS!.split(','), localDataCenter: env.CASSANDRA_LOCAL_DC! });
        try {
          await client.execute(`DROP KEYSPACE IF EXISTS ${namespace.toLowerCase()}_chat`);
        } finally {
          await client.shutdown();
        }
      })(),
      60_000,
      'dropping the keyspace',
    ),
  );
  tasks.push(
    withTimeout(
      (async () => {
        const admin = new Kafka({ clientId: 'switchboard-bench-cleanup', brokers: env.KAFKA_BROKERS!.split(','), logLevel: logLevel.NOTHING }).admin();
        await admin.connect();
        try {
          const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${namespace}.`));
          if (topics.length) await admin.deleteTopics({ topics });
          await admin.deleteGroups([`${namespace}.fanout`]).catch(() => {});
        } finally {
          await admin.disconnect();
        }
      })(),
      30_000,
      'deleting the topics',
    ),
  );
  tasks.push(
    withTimeout(
      (async () => {
        const redis = new Redis(env.REDIS_URL!, { lazyConnect: true, maxRetriesPerRequest: 1 });
        await redis.connect();
        try {
          await deleteByPrefix(redis, `${namespace}:`);
        } finally {
          redis.disconnect();
        }
      })(),
      30_000,
      'deleting the Redis keys',
    ),
  );
  const results = await Promise.allSettled(tasks);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length) throw new Error(failed.map((f) => (f.reason as Error).message).join('; '));
}
