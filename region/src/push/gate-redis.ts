/*
 * Key layout (one key per command, each under the user's hash tag, as routes-redis.ts):
 *
 *   {prefix}push:wake:{<user>}:<device>   string  the intent holding the device's outstanding wake
 *                                                 (set NX, PX hold); "<intent>\tsent" once sent
 *   {prefix}push:rate:{<user>}:<device>   hash    tokens, at (ms): the device's bucket; expires
 *                                                 once it would be full again
 *
 * Time is Redis's (TIME inside the script), so workers with skewed clocks share one bucket.
 */
import type { RedisConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { closeRedis, createRedisClient, pingAll, type RedisClient } from '../redis-client.ts';
import type { PushClaim, PushGate, PushRate, PushTake } from './gate.ts';

/** KEYS[1] wake; ARGV owner, holdMs. 1 when this owner holds the wake now (taken, or its own already), 2 when it sent it, 0 when another owner holds it. */
const CLAIM = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return 1 end
if v == ARGV[1] .. '\\tsent' then return 2 end
return 0`;

/** KEYS[1] wake; ARGV owner. Marks the owner's wake as sent, keeping its expiry. */
const SENT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1] .. '\\tsent', 'KEEPTTL') end
return 0`;

/** KEYS[1] bucket; ARGV perHour, burst. Returns {1} when a token was taken, else {0, ms until the next}. */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local perHour, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if b[1] then tokens = math.min(burst, tonumber(b[1]) + (now - tonumber(b[2])) * perHour / 3600000) end
if tokens < 1 then return {0, math.ceil((1 - tokens) * 3600000 / perHour)} end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 3600000 / perHour) + 1000)
return {1}`;

interface GateCommands {
  pushClaim(key: string, owner: string, holdMs: number): Promise<number>;
  pushSent(key: string, owner: string): Promise<number>;
  pushTake(key: string, perHour: number, burst: number): Promise<[number, number?]>;
}

/** The gate in Redis: a SET NX PX per outstanding wake, a token bucket per device. */
export class RedisPushGate implements PushGate {
  readonly name: string;
  private readonly redis: RedisClient & GateCommands;

  constructor(
    private readonly cfg: RedisConfig,
    log: Logger,
  ) {
    this.name = cfg.clusterNodes ? 'redis-cluster' : 'redis';
    this.redis = createRedisClient<GateCommands>(cfg, log, { pushTake: TAKE, pushClaim: CLAIM, pushSent: SENT });
  }

  private wakeKey = (user: string, device: string) => `${this.cfg.prefix}push:wake:{${user}}:${device}`;
  private rateKey = (user: string, device: string) => `${this.cfg.prefix}push:rate:{${user}}:${device}`;

  async claim(user: string, device: string, holdMs: number, owner: string): Promise<PushClaim> {
    const r = await this.redis.pushClaim(this.wakeKey(user, device), owner, Math.max(1, Math.ceil(holdMs)));
    return r === 1 ? 'claimed' : r === 2 ? 'sent' : 'held';
  }

  async sent(user: string, device: string, owner: string): Promise<void> {
    await this.redis.pushSent(this.wakeKey(user, device), owner);
  }

  async release(user: string, device: string): Promise<void> {
    await this.redis.del(this.wakeKey(user, device));
  }

  async take(user: string, device: string, rate: PushRate): Promise<PushTake> {
    const [ok, wait] = await this.redis.pushTake(this.rateKey(user, device), rate.perHour, rate.burst);
    return ok === 1 ? { ok: true } : { ok: false, retryAfterMs: Number(wait) };
  }

  async ping(): Promise<void> {
    await pingAll(this.redis);
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}
