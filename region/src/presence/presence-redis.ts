/*
 * Key layout (per-user keys carry the user in a hash tag, as routes-redis.ts does, so every script
 * touches one key, hence one slot, and works unchanged on Redis Cluster):
 *
 *   {prefix}presence:{<user>}                 hash  d:<device> = "<deadline>:<lastBeat>" (ms),
 *                                                   on = "1" while watchers were told online,
 *                                                   seen = last seen (ms), kept when offline
 *   {prefix}presence:due:{due<n>}             zset  "<user>\n<device>" scored by its deadline:
 *                                                   the sweep's index of what may expire, in
 *                                                   DUE_SHARDS (16) shards; a user's devices are
 *                                                   always in shard dueShard(user)
 *   {prefix}presence:watchers:{<user>}        hash  "<watcher>\n<device>" = JSON {"edge": <url>, "gw": <gateway id>}
 *                                                   of the watching socket (a value of another shape,
 *                                                   from before gateways, is ignored)
 *   {prefix}presence:watching:{<user>}:<dev>  set   users that device watches (bounded)
 *
 * Every timestamp comes from the Redis server's clock (TIME inside the scripts), so region
 * processes with skewed clocks agree. Expiry is a sweep, never keyspace notifications: `sweep`
 * reads due entries from the zset, ends each device in its user's hash only if its deadline there
 * is still past (a script, so a concurrent heartbeat wins), and only then removes the zset entry
 * if it was not raised meanwhile. A sweeper that dies half-way leaves its entries for the next
 * one, and two sweepers report each change once (the hash's `on` flag flips once). The zset is
 * written before the hash on every heartbeat, so a device in a hash always has a due entry.
 *
 * Shards: every heartbeat writes the due index, so one zset would put the whole beat load of a
 * Redis Cluster on the one node holding it. Its 16 shards have their own hash tags `{due0}` …
 * `{due15}` (slots spread over the masters; 6, 5 and 5 of them on a 3-master cluster with the
 * default slot ranges): a batch of beats makes one script call per shard it touches, and a sweep
 * reads every shard. A deadline is stamped and compared with the clock of the node holding the
 * user's shard (DUE_ADD and DUE_SCAN run there), so node clocks need not agree for expiry.
 * Before the shards the index was the one key `{prefix}presence:due`: sweeps still drain it, so
 * devices indexed there by a region of the previous version (a rolling deploy) still expire. Drop
 * legacyDueKey once no such region runs and the key is gone.
 */
import type { RedisConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { closeRedis, createRedisClient, pingAll, type RedisClient } from '../redis-client.ts';
import type { Beat, Presence, PresenceState, Watcher } from './presence.ts';

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** KEYS[1] due zset; ARGV ttl, then member, age pairs. Raises each due score; returns now and the deadlines (0 = already stale). */
const DUE_ADD = `${NOW}
local ttl = tonumber(ARGV[1])
local out = { now }
for i = 2, #ARGV, 2 do
  local d = now - tonumber(ARGV[i + 1]) + ttl
  if d > now then redis.call('ZADD', KEYS[1], 'GT', d, ARGV[i]) else d = 0 end
  out[#out + 1] = d
end
return out`;

/** KEYS[1] user hash; ARGV device, deadline, lastBeat. Returns 1 when the user just came online. */
const BEAT = `
local f = 'd:' .. ARGV[1]
local cur = redis.call('HGET', KEYS[1], f)
local c = cur and tonumber(string.match(cur, '^(%d+):')) or 0
if c < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], f, ARGV[2] .. ':' .. ARGV[3]) end
if redis.call('HGET', KEYS[1], 'on') ~= '1' then
  redis.call('HSET', KEYS[1], 'on', '1')
  return 1
end
return 0`;

/** Shared tail: with devices ended, offline (once) if no device is left live; else returns `unchanged`. */
const SETTLE = `
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'd:' then
    local dl = tonumber(string.match(all[i + 1], '^(%d+):'))
    if dl and dl > now then return unchanged end
  end
end
if redis.call('HGET', KEYS[1], 'on') ~= '1' then return unchanged end
local prev = tonumber(redis.call('HGET', KEYS[1], 'seen') or '0') or 0
if prev > seenAt then seenAt = prev end
redis.call('HSET', KEYS[1], 'on', '0', 'seen', seenAt)
return seenAt`;

/** KEYS[1] user hash; ARGV device. A clean disconnect: returns last seen when the user went offline, else 0. */
const DOWN = `${NOW}
if redis.call('HDEL', KEYS[1], 'd:' .. ARGV[1]) == 0 then return 0 end
local seenAt = now
local unchanged = 0
${SETTLE}`;

/**
 * KEYS[1] user hash; ARGV device, now. Ends the device if its deadline passed: returns last seen
 * when the user went offline, -1 when the device ended without a change, 0 when it was not ended.
 */
const EXPIRE = `
local now = tonumber(ARGV[2])
local f = 'd:' .. ARGV[1]
local cur = redis.call('HGET', KEYS[1], f)
if not cur then return 0 end
local dl, beat = string.match(cur, '^(%d+):(%d+)$')
if tonumber(dl) > now then return 0 end
redis.call('HDEL', KEYS[1], f)
local seenAt = tonumber(beat)
local unchanged = -1
${SETTLE}`;

/** KEYS[1] due zset; ARGV limit. Returns now, then member, score pairs that are due. */
const DUE_SCAN = `${NOW}
local out = { now }
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
for i = 1, #due do out[#out + 1] = due[i] end
return out`;

/** KEYS[1] due zset; ARGV now, members. Removes each member still due at now (not raised meanwhile). */
const DUE_DONE = `
local now = tonumber(ARGV[1])
for i = 2, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) <= now then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 1`;

/** KEYS[1] user hash. Returns {live 0|1, lastSeen or -1} from deadlines at the server's now. */
const STATE = `${NOW}
local all = redis.call('HGETALL', KEYS[1])
local seen = tonumber(redis.call('HGET', KEYS[1], 'seen') or '-1') or -1
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'd:' then
    local dl, beat = string.match(all[i + 1], '^(%d+):(%d+)$')
    if tonumber(dl) > now then return { 1, -1 } end
    if tonumber(beat) > seen then seen = tonumber(beat) end
  end
end
return { 0, seen }`;

/** KEYS[1] watching set; ARGV max, users. Adds all, or none (returns 0) if the set would exceed max. */
const WATCH = `
local new = 0
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then new = new + 1 end
end
if redis.call('SCARD', KEYS[1]) + new > tonumber(ARGV[1]) then return 0 end
for i = 2, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
return 1`;

/** Shards of the due index (a change of it moves users between shards: a key format change). */
export const DUE_SHARDS = 16;

/** The due shard of a user: FNV-1a of its id, so every region process agrees. */
export function dueShard(user: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) h = Math.imul(h ^ user.charCodeAt(i), 0x01000193);
  return (h >>> 0) % DUE_SHARDS;
}

interface PresenceCommands {
  presenceDueAdd(key: string, ...args: (string | number)[]): Promise<number[]>;
  presenceBeat(key: string, device: string, deadline: number, beatAt: number): Promise<number>;
  presenceDown(key: string, device: string): Promise<number>;
  presenceExpire(key: string, device: string, now: number): Promise<number>;
  presenceDueScan(key: string, limit: number): Promise<(string | number)[]>;
  presenceDueDone(key: string, now: number, ...members: string[]): Promise<number>;
  presenceState(key: string): Promise<[number, number]>;
  presenceWatch(key: string, max: number, ...users: string[]): Promise<number>;
}

/** A watchers hash value → where to push; null for one this version cannot use (a bare edge URL, from before gateways). */
function parseWhere(v: string): { edge: string; gw: string } | null {
  if (!v.startsWith('{')) return null;
  try {
    const { edge, gw } = JSON.parse(v) as { edge?: unknown; gw?: unknown };
    return typeof edge === 'string' && typeof gw === 'string' ? { edge, gw } : null;
  } catch {
    return null;
  }
}

/** Presence in Redis: per-device deadlines in one hash per user, a due index swept periodically. */
export class RedisPresence implements Presence {
  readonly name: string;
  private readonly redis: RedisClient & PresenceCommands;

  constructor(
    private readonly cfg: RedisConfig,
    log: Logger,
  ) {
    this.name = cfg.clusterNodes ? 'redis-cluster' : 'redis';
    this.redis = createRedisClient<PresenceCommands>(cfg, log, {
      presenceDueAdd: DUE_ADD,
      presenceBeat: BEAT,
      presenceDown: DOWN,
      presenceExpire: EXPIRE,
      presenceDueScan: DUE_SCAN,
      presenceDueDone: DUE_DONE,
      presenceState: STATE,
      presenceWatch: WATCH,
    });
  }

  private userKey = (user: string) => `${this.cfg.prefix}presence:{${user}}`;
  private dueKey = (shard: number) => `${this.cfg.prefix}presence:due:{due${shard}}`;
  /** The unsharded index of the previous version, still drained by sweeps (see the key layout). */
  private get legacyDueKey() {
    return `${this.cfg.prefix}presence:due`;
  }
  private watchersKey = (user: string) => `${this.cfg.prefix}presence:watchers:{${user}}`;
  private watchingKey = (w: { user: string; device: string }) => `${this.cfg.prefix}presence:watching:{${w.user}}:${w.device}`;

  async beat(beats: Beat[], ttlMs: number): Promise<PresenceState[]> {
    if (!beats.length) return [];
    const ttl = Math.max(1, Math.ceil(ttlMs));
    // Beats by due shard, each shard's in one script call.
    const byShard = new Map<number, number[]>();
    beats.forEach((b, i) => {
      const shard = dueShard(b.user);
      const at = byShard.get(shard);
      if (at) at.push(i);
      else byShard.set(shard, [i]);
    });
    // The due index first: a device present in a hash always has an entry the sweep will find.
    const deadlines: number[] = new Array(beats.length);
    await Promise.all(
      [...byShard].map(async ([shard, at]) => {
        const args: (string | number)[] = [ttl];
        for (const i of at) args.push(`${beats[i]!.user}\n${beats[i]!.device}`, Math.max(0, Math.floor(beats[i]!.ageMs ?? 0)));
        const [, ...d] = await this.redis.presenceDueAdd(this.dueKey(shard), ...args);
        at.forEach((i, j) => (deadlines[i] = Number(d[j])));
      }),
    );
    const flips = await Promise.all(
      beats.map((b, i) => {
        const deadline = deadlines[i]!;
        if (!deadline) return 0;
        return this.redis.presenceBeat(this.userKey(b.user), b.device, deadline, deadline - ttl);
      }),
    );
    return beats.flatMap((b, i) => (flips[i] === 1 ? [{ user: b.user, status: 'online' as const, lastSeen: null }] : []));
  }

  async down(user: string, device: string): Promise<PresenceState | null> {
    const seen = Number(await this.redis.presenceDown(this.userKey(user), device));
    // Its due entry, if any, is now harmless: the sweep finds no device to end.
    return seen > 0 ? { user, status: 'offline', lastSeen: seen } : null;
  }

  /**
   * Reads every due shard (and the legacy index), ends at most `limit` of the entries due, the
   * longest overdue first, and removes from each shard the entries it handled that are still due
   * at that shard's now (the clock their deadlines were stamped with). A shard is read up to
   * twice its even share of `limit` (users hash evenly over shards, so a backlog does too), not
   * `limit` each: a backlog is not read 16 times over per call. The legacy index, a backlog in
   * one key, is read up to `limit`.
   */
  async sweep(limit: number): Promise<{ changes: PresenceState[]; ended: { user: string; device: string }[] }> {
    const perShard = Math.min(limit, Math.ceil((2 * limit) / DUE_SHARDS));
    const keys = [...Array.from({ length: DUE_SHARDS }, (_, i) => this.dueKey(i)), this.legacyDueKey];
    const scans = await Promise.all(keys.map((key) => this.redis.presenceDueScan(key, key === this.legacyDueKey ? limit : perShard)));
    const due: { key: string; now: number; member: string; score: number }[] = [];
    scans.forEach(([nowRaw, ...flat], k) => {
      for (let i = 0; i + 1 < flat.length; i += 2) due.push({ key: keys[k]!, now: Number(nowRaw), member: String(flat[i]), score: Number(flat[i + 1]) });
    });
    if (!due.length) return { changes: [], ended: [] };
    if (due.length > limit) due.sort((a, b) => a.score - b.score).splice(limit);
    const changes: PresenceState[] = [];
    const ended: { user: string; device: string }[] = [];
    const results = await Promise.all(
      due.map(({ member, now }) => {
        const [user, device = ''] = member.split('\n') as [string, string?];
        return this.redis.presenceExpire(this.userKey(user), device, now).then((r) => ({ user, device, r: Number(r) }));
      }),
    );
    for (const { user, device, r } of results) {
      if (r !== 0) ended.push({ user, device });
      if (r > 0) changes.push({ user, status: 'offline', lastSeen: r });
    }
    const done = new Map<string, { now: number; members: string[] }>();
    for (const d of due) {
      const entry = done.get(d.key);
      if (entry) entry.members.push(d.member);
      else done.set(d.key, { now: d.now, members: [d.member] });
    }
    await Promise.all([...done].map(([key, { now, members }]) => this.redis.presenceDueDone(key, now, ...members)));
    return { changes, ended };
  }

  async state(users: string[]): Promise<PresenceState[]> {
    const replies = await Promise.all(users.map((u) => this.redis.presenceState(this.userKey(u))));
    return users.map((user, i) => {
      const [live, seen] = replies[i]!.map(Number) as [number, number];
      return live ? { user, status: 'online', lastSeen: null } : { user, status: 'offline', lastSeen: seen > 0 ? seen : null };
    });
  }

  async watch(w: Watcher, users: string[], max: number): Promise<boolean> {
    const unique = [...new Set(users)];
    if (!unique.length) return true;
    // The device's own set first: it is what `endWatches` walks to remove the forward entries.
    if ((await this.redis.presenceWatch(this.watchingKey(w), max, ...unique)) !== 1) return false;
    const where = JSON.stringify({ edge: w.edge, gw: w.gw });
    await Promise.all(unique.map((u) => this.redis.hset(this.watchersKey(u), `${w.user}\n${w.device}`, where)));
    return true;
  }

  async unwatch(w: { user: string; device: string }, users: string[]): Promise<void> {
    const unique = [...new Set(users)];
    if (!unique.length) return;
    await Promise.all(unique.map((u) => this.redis.hdel(this.watchersKey(u), `${w.user}\n${w.device}`)));
    await this.redis.srem(this.watchingKey(w), ...unique);
  }

  async endWatches(w: { user: string; device: string }): Promise<void> {
    const users = await this.redis.smembers(this.watchingKey(w));
    await this.unwatch(w, users);
  }

  async watchers(user: string): Promise<Watcher[]> {
    const all = await this.redis.hgetall(this.watchersKey(user));
    return Object.entries(all).flatMap(([k, v]) => {
      const where = parseWhere(v);
      if (!where) return [];
      const [u, d] = k.split('\n') as [string, string];
      return [{ user: u, device: d ?? '', ...where }];
    });
  }

  async watching(w: { user: string; device: string }): Promise<number> {
    return this.redis.scard(this.watchingKey(w));
  }

  async ping(): Promise<void> {
    await pingAll(this.redis);
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}
