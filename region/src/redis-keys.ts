import { once } from 'node:events';
import { Cluster, type Redis } from 'ioredis';

/**
 * Deletes every key that starts with `prefix`, by SCAN pages (never KEYS): clean-up of a test run
 * or bench namespace. On a Redis Cluster it scans every master (a SCAN sees one node's keys) and
 * deletes there key by key in one pipeline per page (one DEL of keys in different slots is
 * refused with CROSSSLOT, even on one node).
 */
export async function deleteByPrefix(redis: Redis | Cluster, prefix: string): Promise<number> {
  if (!(redis instanceof Cluster)) return deleteOnNode(redis, prefix, (keys) => redis.del(...keys));
  if (redis.status === 'wait') await redis.connect();
  else if (redis.status !== 'ready') await once(redis, 'ready');
  let deleted = 0;
  for (const node of redis.nodes('master')) {
    deleted += await deleteOnNode(node, prefix, async (keys) => {
      const replies = (await node.pipeline(keys.map((k) => ['del', k])).exec()) ?? [];
      return replies.reduce((n, [err, r]) => n + (err ? 0 : Number(r)), 0);
    });
  }
  return deleted;
}

async function deleteOnNode(node: Redis, prefix: string, del: (keys: string[]) => Promise<number>): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) deleted += await del(keys);
    cursor = next;
  } while (cursor !== '0');
  return deleted;
}
