import type { Rate } from './token-buckets.ts';

/**
 * Every rate limit and quota of the edge, in one table: its name (the `limit` label of
 * switchboard_edge_rate_limited_total and the `limit` of a refusal), what it counts and per what,
 * its default and the variable that changes it. A value is `<burst>/<period>`: bursts of up to
 * `burst` pass, and a sustained flood gets `burst` per `period` (a token bucket); periods are
 * `<n>ms`, `<n>s`, `<n>m` or `<n>h` (at most 24 h). Documented in README.md and PROTOCOL.md.
 */
export const LIMIT_TABLE = {
  send_device: { env: 'LIMIT_SEND_DEVICE', default: '30/10s', per: 'device', counts: '`send` frames' },
  send_user: { env: 'LIMIT_SEND_USER', default: '60/10s', per: 'user', counts: '`send` frames of all the user’s devices' },
  connect_user: { env: 'LIMIT_CONNECT_USER', default: '30/1m', per: 'user', counts: 'WebSocket connects' },
  connect_ip: { env: 'LIMIT_CONNECT_IP', default: '300/1m', per: 'IP address', counts: 'WebSocket connects' },
  conversation_create: { env: 'LIMIT_CONVERSATION_CREATE', default: '60/1h', per: 'user', counts: 'conversations created (`POST /v1/conversations`; asking for a direct one that exists costs one too)' },
  member_add: { env: 'LIMIT_MEMBER_ADD', default: '1000/1h', per: 'user', counts: 'members added, one per user named (`POST …/members`, and the other members of a new group)' },
  read_cost: { env: 'LIMIT_READ_COST', default: '300/1m', per: 'user', counts: '`resume` and `history` frames and `GET /v1/conversations` pages' },
  watch: { env: 'LIMIT_WATCH', default: '1000/1m', per: 'device', counts: 'users named in `watch` and `unwatch` frames' },
  key_upload: { env: 'LIMIT_KEY_UPLOAD', default: '30/1h', per: 'device', counts: 'KeyPackage uploads (`PUT /v1/devices/:device/key-packages`)' },
  push_register: { env: 'LIMIT_PUSH_REGISTER', default: '30/1h', per: 'device', counts: 'push registrations (`PUT` and `DELETE /v1/devices/:device/push`)' },
} as const;

export type LimitName = keyof typeof LIMIT_TABLE;
export type LimitEnvVar = (typeof LIMIT_TABLE)[LimitName]['env'];
export type Limits = Record<LimitName, Rate>;

export const LIMIT_NAMES = Object.keys(LIMIT_TABLE) as LimitName[];

/**
 * Every LIMIT_* variable at a million per second: for the benches and test suites, which measure
 * capacity and behaviour, not the limits (edge/test/limits-embedded.test.ts tests those).
 */
export const RAISED_LIMITS = Object.fromEntries(LIMIT_NAMES.map((n) => [LIMIT_TABLE[n].env, '1000000/1s'])) as Record<LimitEnvVar, string>;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const MAX_PERIOD_MS = 86_400_000;

/** `<burst>/<period>` → a rate, or null if it is not one. */
export function parseRate(text: string): Rate | null {
  const m = /^\s*(\d{1,9})\s*\/\s*(\d{1,9})\s*(ms|s|m|h)\s*$/.exec(text);
  if (!m) return null;
  const burst = Number(m[1]);
  const periodMs = Number(m[2]) * UNIT_MS[m[3]!]!;
  if (burst < 1 || periodMs < 1 || periodMs > MAX_PERIOD_MS) return null;
  return { burst, periodMs };
}

/** Every limit from the environment (its default where unset); a bad value is `fail`ed, naming its variable. */
export function readLimits(env: Partial<Record<LimitEnvVar, string>>, fail: (message: string) => Error): Limits {
  const out = {} as Limits;
  for (const name of LIMIT_NAMES) {
    const def = LIMIT_TABLE[name];
    const text = env[def.env];
    const rate = parseRate(text === undefined || text === '' ? def.default : text);
    if (!rate) throw fail(`${def.env}: expected <burst>/<period> such as ${def.default} (burst ≥ 1, period in ms, s, m or h up to 24h), got ${JSON.stringify(text)}`);
    out[name] = rate;
  }
  return out;
}

/** A rate as its variable's value: `30/10s`. */
export function formatRate(r: Rate): string {
  const p = r.periodMs;
  const period = p % 3_600_000 === 0 ? `${p / 3_600_000}h` : p % 60_000 === 0 ? `${p / 60_000}m` : p % 1000 === 0 ? `${p / 1000}s` : `${p}ms`;
  return `${r.burst}/${period}`;
}

/** "30 per 10 s" for messages. */
export function describeRate(r: Rate): string {
  const p = r.periodMs;
  const period = p % 3_600_000 === 0 ? `${p / 3_600_000} h` : p % 60_000 === 0 ? `${p / 60_000} min` : p % 1000 === 0 ? `${p / 1000} s` : `${p} ms`;
  return `${r.burst} per ${period}`;
}
