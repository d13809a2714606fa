/*
 * Key layout (works unchanged on Redis Cluster):
 *
 *   {prefix}route:{<user>}   hash   field = device id, value = JSON
 *                                   {"edge": <url>, "gw": <gateway id>, "conn": <connection id>, "expiresAt": <ms>}
 *   {prefix}routes:epoch     string a random id set once (SET NX); if Redis loses its data it is
 *                                   set anew, and edges learn that routes may have been lost
 *   {prefix}routes:epoch:{epoch<n>}  on a Redis Cluster, instead: one such id on each master
 *                                   (the first tag epoch0, epoch1, … whose slot that master
 *                                   serves); the epoch is them all, joined. A master that loses
 *                                   its data loses the routes in its slots, and its id with them.
 *
 * One hash per user, so `lookup` of a user is one HGETALL and a fan-out of N members is one
 * pipeline of N single-key commands. The user id sits inside a hash tag `{user}`: Redis Cluster
 * slots a key by the tagged part only, so every key that ever concerns one user (this hash, and
 * any per-user key added later, e.g. presence watchers) lands in the same slot and can be used
 * together in one script or MULTI; no command here ever touches two users' keys at once.
 *
 * Expiry: Redis 7.0 has no per-field TTL (HEXPIRE is 7.4+), so each field carries `expiresAt`,
 * stamped and checked with the Redis server's clock (TIME, inside the scripts) so region
 * processes with skewed clocks agree. Reads ignore and prune expired fields. The key itself gets
 * a PEXPIRE raised to the furthest field expiry on every `up`, so a user whose devices all went
 * away without `down` vanishes without a sweeper.
 *
 * On a Cluster the tags of the epoch ids follow the slot map: moving slots between masters
 * (resharding) may pick other tags, so the epoch changes and edges re-register once.
 *
 * `conn` goes up to 2^53 - 1 (a gateway starts its ids from the clock). Redis's cjson encodes
 * numbers with 14 significant digits, so the scripts never encode it: `up` writes the decimal
 * string it was given into the JSON, `lookup` hands the stored JSON to JavaScript to parse, and
 * `down` compares it decoded (a Lua number is a double: exact for every safe integer).
 * A value without `gw` and `conn` (written before routes named sockets) reads as expired.
 */
import { Cluster } from 'ioredis';
import type { RedisConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { closeRedis, createRedisClient, keySlot, pingAll, type RedisClient } from '../redis-client.ts';
import type { Route, Routes } from './routes.ts';

/** KEYS[1] hash; ARGV device, edge, gw, conn (decimal), ttlMs. Replaces the field and raises the key TTL to cover it. */
const UP = `
if not string.match(ARGV[4], '^%d+$') then return redis.error_reply('conn must be a decimal integer') end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[5])
local v = '{"edge":' .. cjson.encode(ARGV[2]) .. ',"gw":' .. cjson.encode(ARGV[3]) .. ',"conn":' .. ARGV[4] .. ',"expiresAt":' .. string.format('%d', now + ttl) .. '}'
redis.call('HSET', KEYS[1], ARGV[1], v)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1`;

/** KEYS[1] hash; ARGV device, edge, gw, conn. Deletes the field only while it names that socket (an unreadable one too). */
const DOWN = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local ok, e = pcall(cjson.decode, v)
if ok and type(e) == 'table' and (e.edge ~= ARGV[2] or e.gw ~= ARGV[3] or e.conn ~= tonumber(ARGV[4])) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1`;

/** KEYS[1] hash. Returns [device, JSON, device, JSON, ...] of live fields and prunes expired or unreadable ones. */
const LIVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out, dead = {}, {}
for i = 1, #all, 2 do
  local ok, e = pcall(cjson.decode, all[i + 1])
  if ok and type(e) == 'table' and type(e.expiresAt) == 'number' and e.expiresAt > now and type(e.edge) == 'string' and type(e.gw) == 'string' and type(e.conn) == 'number' then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  else
    dead[#dead + 1] = all[i]
  end
end
if #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end
return out`;

interface RouteCommands {
  routeUp(key: string, device: string, edge: string, gw: string, conn: string, ttlMs: number): Promise<number>;
  routeDown(key: string, device: string, edge: string, gw: string, conn: string): Promise<number>;
  routeLive(key: string): Promise<string[]>;
}

/** A connection id as the scripts take it: its decimal digits (never a float's exponent form). */
function connArg(conn: number): string {
  if (!Number.isSafeInteger(conn) || conn < 0) throw new RangeError(`conn must be a non-negative safe integer, got ${conn}`);
  return String(conn);
}

/** Routing registry in Redis: one hash per user, per-device expiry checked on read. */
export class RedisRoutes implements Routes {
  readonly name: string;
  private readonly redis: RedisClient & RouteCommands;

  constructor(
    private readonly cfg: RedisConfig,
    log: Logger,
  ) {
    this.name = cfg.clusterNodes ? 'redis-cluster' : 'redis';
    this.redis = createRedisClient<RouteCommands>(cfg, log, { routeUp: UP, routeDown: DOWN, routeLive: LIVE });
    // A new slot map (a failover, resharding, a MOVED) may put the epoch ids' slots elsewhere.
    if (this.redis instanceof Cluster) this.redis.on('refresh', () => (this.tags = null));
  }

  /** The user's hash key; exported shape is documented at the top of this file. */
  private key(user: string): string {
    return `${this.cfg.prefix}route:{${user}}`;
  }

  async up(r: Route, ttlMs: number): Promise<void> {
    await this.redis.routeUp(this.key(r.user), r.device, r.edge, r.gw, connArg(r.conn), Math.max(1, Math.ceil(ttlMs)));
  }

  async down(r: Route): Promise<void> {
    await this.redis.routeDown(this.key(r.user), r.device, r.edge, r.gw, connArg(r.conn));
  }

  /**
   * One round trip for many users: the per-user script calls are issued together and ioredis's
   * auto-pipelining sends them as one pipeline (on a Cluster client it splits the pipeline per
   * node, which an explicit MULTI/pipeline across slots could not do).
   */
  async lookup(users: string[]): Promise<Map<string, Route[]>> {
    const unique = [...new Set(users)];
    const replies = await Promise.all(unique.map((user) => this.redis.routeLive(this.key(user))));
    const out = new Map<string, Route[]>();
    unique.forEach((user, i) => {
      const flat = replies[i] ?? [];
      const routes: Route[] = [];
      for (let j = 0; j + 1 < flat.length; j += 2) {
        const { edge, gw, conn } = JSON.parse(flat[j + 1]!) as { edge: string; gw: string; conn: number };
        routes.push({ user, device: flat[j]!, edge, gw, conn });
      }
      if (routes.length) out.set(user, routes);
    });
    return out;
  }

  async epoch(): Promise<string> {
    if (!(this.redis instanceof Cluster)) return this.epochAt(`${this.cfg.prefix}routes:epoch`);
    const ids = await Promise.all((await this.epochTags(this.redis)).map((tag) => this.epochAt(`${this.cfg.prefix}routes:epoch:{${tag}}`)));
    return ids.join('.');
  }

  private async epochAt(key: string): Promise<string> {
    await this.redis.set(key, crypto.randomUUID(), 'NX');
    return (await this.redis.get(key)) ?? 'unknown';
  }

  /** Cluster: the epoch tags, one per master, for the slot map the client has (recomputed when it refreshes the map). */
  private tags: string[] | null = null;
  private async epochTags(cluster: Cluster): Promise<string[]> {
    if (!cluster.slots.some(Boolean)) await cluster.ping(); // not connected yet: waits for the slot map
    if (this.tags) return this.tags;
    const masters = new Set<string>();
    for (const nodes of cluster.slots) if (nodes?.[0]) masters.add(nodes[0]);
    const byMaster = new Map<string, string>();
    for (let i = 0; byMaster.size < masters.size && i < 1_000_000; i++) {
      const master = cluster.slots[keySlot(`epoch${i}`)]?.[0];
      if (master && !byMaster.has(master)) byMaster.set(master, `epoch${i}`);
    }
    if (!byMaster.size) throw new Error('redis cluster: no slot map');
    const tags = [...byMaster.values()].sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
    this.tags = tags;
    return tags;
  }

  async ping(): Promise<void> {
    await pingAll(this.redis);
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}
