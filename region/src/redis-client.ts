/*
 * The one place a Redis client is made, for routes, presence and the push gate: one Redis
 * (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES). Both run the same store code: every
 * command and script of the stores touches keys of one hash slot (the tags are described in
 * each store's key layout), and commands over many users are issued one per user, which the
 * auto-pipelining of either client batches (per node on a Cluster). What must not be sent to a
 * Cluster as one command (a DEL or MGET of many keys, a SCAN of the keyspace) lives here.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from './config.ts';
import { errorFields, type Logger } from './log.ts';

export type RedisClient = Redis | Cluster;

/** The options of every node connection: a command fails after 3 reconnect attempts rather than queueing forever. */
const NODE_OPTIONS: RedisOptions = { maxRetriesPerRequest: 3 };

/** A seed node as ioredis takes it: `host:port`, an IPv6 host in brackets. */
export function seedNode(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(hostPort.slice(i + 1)) };
}

/**
 * A client for `cfg`, its connection errors logged as warnings, with `commands` (name → one-key
 * Lua script) defined on it. Callers close it with `closeRedis`.
 */
export function createRedisClient<T extends object = object>(cfg: RedisConfig, log: Logger, commands: Record<string, string> = {}): RedisClient & T {
  const client: RedisClient = cfg.clusterNodes
    ? new Cluster(cfg.clusterNodes.map(seedNode), {
        redisOptions: NODE_OPTIONS,
        enableAutoPipelining: true,
        // Reads go to masters too: presence and route reads must see the writes just made.
        scaleReads: 'master',
      })
    : new Redis(cfg.url, { ...NODE_OPTIONS, enableAutoPipelining: true });
  for (const [name, lua] of Object.entries(commands)) client.defineCommand(name, { numberOfKeys: 1, lua });
  client.on('error', (err) => log.warn('redis connection error', errorFields(err)));
  // A Cluster reports a node's failure as `node error` as well as (once it gives up) `error`.
  if (client instanceof Cluster) client.on('node error', (err, node) => log.warn('redis cluster node error', { node, ...errorFields(err) }));
  return client as RedisClient & T;
}

/**
 * The hash slot of `key` as Redis Cluster computes it: CRC16 (XMODEM) of the key, or of its hash
 * tag (the text between the first `{` and the next `}`, when not empty), modulo 16384.
 */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key);
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) [start, end] = [open + 1, close];
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i]! << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** QUIT (every node of a Cluster), or drop the connections if that fails. */
export async function closeRedis(client: RedisClient): Promise<void> {
  await client.quit().catch(() => client.disconnect());
}

/** The masters to address one by one (SCAN, health): the client itself for one Redis. */
export function masters(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

/**
 * PING every master: a Cluster is healthy only if each of its shards answers. A master the client
 * dropped (unreachable) while the slot map still names it, or a slot no master serves, fails it
 * too: the users in those slots have no routes, presence or push gate.
 */
export async function pingAll(client: RedisClient): Promise<void> {
  if (!(client instanceof Cluster)) {
    await client.ping();
    return;
  }
  if (!client.slots.some(Boolean)) await client.ping(); // not connected yet: a keyless command waits for the slot map
  const owners = new Set<string>();
  let unserved = 0;
  for (let slot = 0; slot < 16384; slot++) {
    const owner = client.slots[slot]?.[0];
    if (owner) owners.add(owner);
    else unserved++;
  }
  if (unserved) throw new Error(`redis cluster: ${unserved} slots have no master`);
  const nodes = new Map(masters(client).map((n) => [`${n.options.host}:${n.options.port}`, n]));
  const missing = [...owners].filter((o) => !nodes.has(o));
  if (missing.length) throw new Error(`redis cluster: master ${missing.join(', ')} unreachable`);
  await Promise.all([...owners].map((o) => nodes.get(o)!.ping()));
}
