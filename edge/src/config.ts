import type { ConversationRpc } from './conversation/api.ts';
import type { GatewayRpc } from './gateway/api.ts';
import type { ReplayGuardRpc } from './internal/api.ts';
import type { RevocationsRpc } from './auth/revocations-api.ts';
import { authConfig, type AuthConfig, type AuthEnv } from './auth/auth-config.ts';
import { tracingConfig, type TracingConfig, type TracingEnv } from './tracing/tracing.ts';
import { readLimits, type LimitEnvVar, type Limits } from './limits/limits.ts';
import { parseRegions, type Regions } from './regions.ts';

type Namespace<T> = DurableObjectNamespace<T & Rpc.DurableObjectBranded>;

/**
 * Bindings and vars from wrangler.toml (secrets from `wrangler secret` or `--var` in dev). The
 * Durable Object namespaces are typed by their RPC interfaces, never by their classes, so the
 * objects do not import one another through this file.
 */
export interface Env extends AuthEnv, TracingEnv, Partial<Record<LimitEnvVar, string>> {
  GATEWAYS: Namespace<GatewayRpc>;
  CONVERSATIONS: Namespace<ConversationRpc>;
  REPLAY_GUARD: Namespace<ReplayGuardRpc>;
  /** Token revocation times per user (auth/revocations-do.ts). */
  REVOCATIONS: Namespace<RevocationsRpc>;
  ASSETS?: Fetcher;
  /** Workers Analytics Engine dataset for the edge's metrics (production; absent locally, where /internal/metrics serves them). */
  METRICS?: AnalyticsEngineDataset;
  AUTH_SECRET?: string;
  INTERNAL_SECRET?: string;
  REGION_URL?: string;
  /** Several regional cores: `name=url` pairs, the first the default (regions.ts). */
  REGIONS?: string;
  /** Each gateway placement's nearest region: `placement=region` pairs. */
  PLACEMENT_REGIONS?: string;
  EDGE_URL?: string;
  DEV_AUTH?: string;
  TOKEN_TTL_SECONDS?: string;
  ROUTE_REFRESH_SECONDS?: string;
  CONVERSATION_WINDOW?: string;
  RETRANSMIT_MS?: string;
  DELIVERY_WINDOW?: string;
  DELIVERY_WINDOW_BYTES?: string;
  LIVE_PUSH_MAX_MEMBERS?: string;
  MESSAGE_REQUESTS?: string;
  MAX_GROUP_MEMBERS?: string;
  E2E_MAX_MEMBERS?: string;
  PRESENCE_FLUSH_SECONDS?: string;
  DRAIN_COALESCE_MS?: string;
  GATEWAY_SHARDS?: string;
  GATEWAY_PLACEMENT?: string;
}

/** Sign-in settings (auth/auth-config.ts): AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE, … */
export interface EdgeConfig extends AuthConfig, TracingConfig {
  /** HS256 key for device tokens. */
  authSecret: string;
  /** HMAC key shared with the region for the internal API. */
  internalSecret: string;
  /** Base URL of the primary regional core, e.g. http://127.0.0.1:8788 (REGION_URL, or the first of REGIONS). */
  regionUrl: string;
  /** Every regional core and each placement's nearest (regions.ts); one, `primary`, without REGIONS. */
  regions: Regions;
  /** This edge's own base URL, as the region should call it back to deliver. */
  edgeUrl: string;
  /** `POST /v1/dev/token` mints tokens for anyone: development only. Default false. */
  devAuth: boolean;
  /** Lifetime of dev tokens. Default 86400 s. */
  tokenTtlSeconds: number;
  /** How often a gateway refreshes the routes of every socket it holds at the region. Default 60 s. */
  routeRefreshSeconds: number;
  /** Recent messages a ConversationDO keeps for fast sync. Default 1000. */
  conversationWindow: number;
  /** First retransmit of an unacked push after this many ms (doubling, capped at 30 s). Default 3000. */
  retransmitMs: number;
  /** Unacked pushes one device may have outstanding before it is told to resume. Default 1000. */
  deliveryWindow: number;
  /** And their size at most (characters of frame JSON, about bytes); one larger message alone still goes. Default 8 MiB. */
  deliveryWindowBytes: number;
  /**
   * Conversations with at most this many members push each message from their ConversationDO
   * straight to the members' gateways, one call per gateway (the live path); larger ones rely on
   * the region's fan-out alone. 0 turns the live path off. Default 5000: every group size.
   */
  livePushMaxMembers: number;
  /**
   * A conversation or invitation from someone a user shares no accepted conversation with arrives
   * as a message request (PROTOCOL.md, "Consent"). Default true; false for a deployment whose users
   * all know each other (blocks and presence visibility apply either way).
   */
  messageRequests: boolean;
  /** Members one group may have; adding past it is `group_full`. Default 5000 (LIMITS.maxMembers). */
  maxGroupMembers: number;
  /** Members of an end-to-end encrypted conversation at most (each of their devices is an MLS leaf). */
  e2eMaxMembers: number;
  /** How often a gateway sends the heartbeats of all its devices to the region, in one call. Default 30 s. */
  presenceFlushSeconds: number;
  /**
   * While the live path has reached every member, a ConversationDO drains its outbox this long
   * after the send that made it non-empty, so one request to the region carries every message of
   * that time, and a busy conversation waits this long between requests. A message some member
   * did not get live is drained at once (the region delivers it). 0 always drains at once.
   * Default 1000 ms: the region's copy is then at most about a second behind the edge's, which
   * holds every message durably meanwhile and serves sync and history from its window.
   */
  drainCoalesceMs: number;
  /**
   * Gateways per placement: a user's sockets live on gateway hash(user) mod this. Size it by
   * active devices (a few hundred busy devices per gateway), not by users. Changing it moves
   * users to other gateways as they reconnect; nothing is lost. Default 16.
   */
  gatewayShards: number;
  /**
   * The placement every gateway of this edge uses (`local` in development). Empty: each
   * connection's placement comes from where the request arrived (its Cloudflare location hint).
   * Several, comma-separated (development of several regions on one machine): a connection picks
   * one with `?placement=`, else gets the first.
   */
  gatewayPlacement: string;
  /** Rate limits and quotas (limits/limits.ts: LIMIT_TABLE, one `LIMIT_*` variable each). */
  limits: Limits;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const cache = new WeakMap<object, EdgeConfig>();

/** Reads and validates configuration once per isolate; a bad value names its variable. */
export function config(env: Env): EdgeConfig {
  const hit = cache.get(env);
  if (hit) return hit;
  const regions = parseRegions(env.REGIONS, () => url(env, 'REGION_URL'), env.PLACEMENT_REGIONS, (message) => new ConfigError(message));
  const cfg: EdgeConfig = {
    authSecret: secret(env, 'AUTH_SECRET'),
    internalSecret: secret(env, 'INTERNAL_SECRET'),
    regionUrl: regions.urls.get(regions.primary)!,
    regions,
    edgeUrl: url(env, 'EDGE_URL'),
    devAuth: bool(env, 'DEV_AUTH', false),
    tokenTtlSeconds: int(env, 'TOKEN_TTL_SECONDS', 86_400, 60, 30 * 86_400),
    routeRefreshSeconds: int(env, 'ROUTE_REFRESH_SECONDS', 60, 5, 3600),
    conversationWindow: int(env, 'CONVERSATION_WINDOW', 1000, 10, 100_000),
    retransmitMs: int(env, 'RETRANSMIT_MS', 3000, 100, 60_000),
    deliveryWindow: int(env, 'DELIVERY_WINDOW', 1000, 10, 100_000),
    deliveryWindowBytes: int(env, 'DELIVERY_WINDOW_BYTES', 8 * 1024 * 1024, 128 * 1024, 256 * 1024 * 1024),
    livePushMaxMembers: int(env, 'LIVE_PUSH_MAX_MEMBERS', 5000, 0, 100_000),
    messageRequests: bool(env, 'MESSAGE_REQUESTS', true),
    maxGroupMembers: int(env, 'MAX_GROUP_MEMBERS', 5000, 2, 100_000),
    e2eMaxMembers: int(env, 'E2E_MAX_MEMBERS', 1000, 2, 100_000),
    presenceFlushSeconds: int(env, 'PRESENCE_FLUSH_SECONDS', 30, 1, 300),
    drainCoalesceMs: int(env, 'DRAIN_COALESCE_MS', 1000, 0, 10_000),
    gatewayShards: int(env, 'GATEWAY_SHARDS', 16, 1, 4096),
    gatewayPlacement: placement(env, 'GATEWAY_PLACEMENT'),
    ...authConfig(env, ConfigError),
    ...tracingConfig(env, ConfigError),
    limits: readLimits(env, (message) => new ConfigError(message)),
  };
  cache.set(env, cfg);
  return cfg;
}

type Key = Exclude<keyof Env, 'GATEWAYS' | 'CONVERSATIONS' | 'REPLAY_GUARD' | 'REVOCATIONS' | 'ASSETS' | 'METRICS'>;

function secret(env: Env, name: Key): string {
  const v = env[name];
  if (!v || v.length < 16) throw new ConfigError(`${name}: expected a secret of at least 16 characters`);
  return v;
}

function url(env: Env, name: Key): string {
  const v = env[name];
  try {
    const u = new URL(v ?? '');
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    return u.origin;
  } catch {
    throw new ConfigError(`${name}: expected an http(s) URL, got ${JSON.stringify(v ?? null)}`);
  }
}

function bool(env: Env, name: Key, dflt: boolean): boolean {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`${name}: expected true or false, got ${JSON.stringify(v)}`);
}

function int(env: Env, name: Key, dflt: number, min: number, max: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name}: expected an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  return n;
}

function placement(env: Env, name: Key): string {
  const v = env[name] ?? '';
  if (v !== '' && !/^[a-z0-9-]{1,32}(,[a-z0-9-]{1,32})*$/.test(v)) throw new ConfigError(`${name}: expected 1-32 of [a-z0-9-] (or several, comma-separated) or empty, got ${JSON.stringify(v)}`);
  return v;
}
