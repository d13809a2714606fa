/*
 * Key layout (works unchanged on Redis Cluster):
 *
 *   {prefix}route:{<user>}   hash   field = device id, value = JSON {"edge": <url>, "expiresAt": <ms>}
 *   {prefix}routes:epoch     string a random id set once (SET NX); if Redis loses its data it is
 *                                   set anew, and edges learn that routes may have been lost
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
 */
import { Redis } from 'ioredis';
import type { RegionConfig } from './config.ts';
import { errorFields, type Logger } from './log.ts';
import type { Route, Routes } from './routes.ts';

/** KEYS[1] hash; ARGV device, edge, ttlMs. Sets the field and raises the key TTL to cover it. */
const UP = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({ edge = ARGV[2], expiresAt = now + ttl }))
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1`;

/** KEYS[1] hash; ARGV device, edge. Deletes the field only if it still points at that edge. */
const DOWN = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local ok, e = pcall(cjson.decode, v)
if ok and type(e) == 'table' and e.edge ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1`;

/** KEYS[1] hash. Returns [device, edge, device, edge, ...] of live fields and prunes expired ones. */
const LIVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out, dead = {}, {}
for i = 1, #all, 2 do
  local ok, e = pcall(cjson.decode, all[i + 1])
  if ok and type(e) == 'table' and type(e.expiresAt) == 'number' and e.expiresAt > now and type(e.edge) == 'string' then
    out[#out + 1] = all[i]
    out[#out + 1] = e.edge
  else
    dead[#dead + 1] = all[i]
  end
end
if #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end
return out`;

interface RouteCommands {
  routeUp(key: string, device: string, edge: string, ttlMs: number): Promise<number>;
  routeDown(key: string, device: string, edge: string): Promise<number>;
  routeLive(key: string): Promise<string[]>;
}

/** Routing registry in Redis: one hash per user, per-device expiry checked on read. */
export class RedisRoutes implements Routes {
  readonly name = 'redis';
  private readonly redis: Redis & RouteCommands;

  constructor(
    private readonly cfg: NonNullable<RegionConfig['redis']>,
    private readonly log: Logger,
  ) {
    const redis = new Redis(cfg.url, { maxRetriesPerRequest: 3, enableAutoPipelining: true });
    redis.defineCommand('routeUp', { numberOfKeys: 1, lua: UP });
    redis.defineCommand('routeDown', { numberOfKeys: 1, lua: DOWN });
    redis.defineCommand('routeLive', { numberOfKeys: 1, lua: LIVE });
    redis.on('error', (err) => this.log.warn('redis connection error', errorFields(err)));
    this.redis = redis as Redis & RouteCommands;
  }

  /** The user's hash key; exported shape is documented at the top of this file. */
  private key(user: string): string {
    return `${this.cfg.prefix}route:{${user}}`;
  }

  async up(r: Route, ttlMs: number): Promise<void> {
    await this.redis.routeUp(this.key(r.user), r.device, r.edge, Math.max(1, Math.ceil(ttlMs)));
  }

  async down(r: Route): Promise<void> {
    await this.redis.routeDown(this.key(r.user), r.device, r.edge);
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
      for (let j = 0; j + 1 < flat.length; j += 2) routes.push({ user, device: flat[j]!, edge: flat[j + 1]! });
      if (routes.length) out.set(user, routes);
    });
    return out;
  }

  async epoch(): Promise<string> {
    const key = `${this.cfg.prefix}routes:epoch`;
    await this.redis.set(key, crypto.randomUUID(), 'NX');
    return (await this.redis.get(key)) ?? 'unknown';
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
