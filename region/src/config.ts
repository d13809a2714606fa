import fs from 'node:fs';
import path from 'node:path';
import { KEY_LIMITS } from '@switchboard/protocol';
import { ConfigError } from './config-error.ts';
import { loadPushProvidersConfig, type PushProvidersConfig } from './push/providers-config.ts';
import { noteDefault } from './settings-trace.ts';

/** Regional core configuration, read from the environment once at startup. */
export interface RegionConfig {
  /**
   * This region's name (REGION_NAME, default `primary`), as the edge's REGIONS names it: the home
   * region of the conversations it stores. Reported by /healthz and on every log line.
   */
  name: string;
  /** HTTP listen address. HOST default 127.0.0.1, PORT default 8788. */
  host: string;
  port: number;
  /**
   * METRICS_PORT (default 0: none): a listener on HOST serving only `GET /metrics`, for processes
   * without the `api` role (fan-out and push workers), whose metrics are otherwise not served.
   */
  metricsPort: number;
  /**
   * OTEL_EXPORTER_OTLP_ENDPOINT (default unset: no tracing): an OTLP/HTTP collector's base URL;
   * spans of traced messages (store, fanout, deliver) go to `<it>/v1/traces`.
   */
  otlpEndpoint: string | null;
  /**
   * HMAC key shared with the edge (INTERNAL_SECRET, at least 16 characters). Required. Or
   * INTERNAL_SECRET_FILE: a file holding it (a Docker or Compose secret; one trailing newline dropped).
   */
  internalSecret: string;
  /**
   * What this process runs (REGION_ROLE: `all`, the default, or a comma-separated list of):
   * `api` (the internal HTTP API), `fanout` (fan-out workers and the presence sweep), `push`
   * (push workers). Several processes of a role share its work.
   */
  roles: ReadonlySet<RegionRole>;
  /** Embedded data folder (DATA_DIR, default ./.data/region): the SQLite file lives here. */
  dataDir: string;
  /** Route entries expire unless refreshed (ROUTE_TTL_SECONDS, default 180). */
  routeTtlSeconds: number;
  /** Fan-out records of one conversation handled together at most (the queue's batch); 1: one by one. */
  fanoutBatch: number;
  /**
   * Presence: a device is online until PRESENCE_TTL_SECONDS (default 90) after its last heartbeat;
   * the expiry sweep runs every PRESENCE_SWEEP_MS (default 1000). A device whose heartbeats stop is
   * offline within TTL + sweep interval (+ the push to watchers). The TTL must exceed the client
   * heartbeat interval plus the edge's batching interval (30 + 30 s by default).
   */
  presence: { ttlSeconds: number; sweepMs: number };
  /** Real engines; each absent → its embedded implementation. */
  cassandra: null | {
    contactPoints: string[];
    localDataCenter: string;
    keyspace: string;
    consistency: string;
    /**
     * Replicas per datacenter of a keyspace it creates (NetworkTopologyStrategy):
     * CASSANDRA_REPLICATION (`datacenter1=3,datacenter2=3`; a region per datacenter), default the
     * local datacenter with CASSANDRA_REPLICATION_FACTOR (1). An existing keyspace is left as is.
     */
    replication: Record<string, number>;
  };
  kafka: null | {
    brokers: string[];
    clientId: string;
    topicPrefix: string;
    partitions: number;
    replicationFactor: number;
  };
  /**
   * REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (Redis Cluster seed nodes, `host:port,…`); never
   * both (a ConfigError names the two). Neither: in-memory routes, presence and push gate.
   * REDIS_PREFIX (default `<namespace>:`) starts every key.
   */
  redis: null | RedisConfig;
  /** Key/topic prefix so parallel test runs never collide (NAMESPACE, default "sb"). */
  namespace: string;
  /**
   * Push notifications: PUSH_PREVIEW (default false: content-free, conversation and seq only),
   * PUSH_COALESCE_SECONDS (900: one wake per device outstanding at most this long, unless it
   * comes online), PUSH_RATE_PER_HOUR (60) and PUSH_RATE_BURST (10) per device, PUSH_MAX_ATTEMPTS
   * (10 sends of an intent, then the dead-letter topic), PUSH_RETRY_BASE_MS (2000: the first retry
   * when a provider gave no delay, doubling up to 5 min), and the providers (providers-config.ts;
   * PUSH_FALLBACK defaults to `recording` on embedded storage, `off` on Cassandra).
   */
  push: { preview: boolean; coalesceSeconds: number; ratePerHour: number; rateBurst: number; maxAttempts: number; retryBaseMs: number; providers: PushProvidersConfig };
  /**
   * The key directory: users whose KeyPackages one user may claim, KEYS_CLAIM_PER_MINUTE (60) with
   * bursts of KEYS_CLAIM_BURST (200), per API process (keys/claim-rate.ts).
   */
  keys: { claimPerMinute: number; claimBurst: number };
}

/** Where routes, presence and the push gate live: one Redis by URL, or a Redis Cluster by its seed nodes. */
export type RedisConfig = { prefix: string } & ({ url: string; clusterNodes?: undefined } | { clusterNodes: string[]; url?: undefined });

export { ConfigError };

type EnvMap = Record<string, string | undefined>;

/**
 * Validates everything up front; the first bad value throws naming its variable. Tools that never
 * serve the internal API (`npm run migrate`) pass `needSecret: false`.
 */
export function loadConfig(env: EnvMap = process.env, opts: { needSecret?: boolean } = {}): RegionConfig {
  const namespace = str(env, 'NAMESPACE', 'sb', /^[a-z0-9_]{1,32}$/i, 'letters, digits, _ (1-32)');
  const name = str(env, 'REGION_NAME', 'primary', /^[a-z0-9-]{1,32}$/, '1-32 of [a-z0-9-]');
  const cassandraPoints = env.CASSANDRA_CONTACT_POINTS?.trim();
  const kafkaBrokers = env.KAFKA_BROKERS?.trim();
  const redisUrl = env.REDIS_URL?.trim();
  const redisClusterNodes = env.REDIS_CLUSTER_NODES?.trim();
  noteDefault(env, 'CASSANDRA_CONTACT_POINTS', 'unset: embedded SQLite');
  noteDefault(env, 'KAFKA_BROKERS', 'unset: in-process queue');
  noteDefault(env, 'REDIS_URL', 'unset: in-memory routes and presence');
  noteDefault(env, 'REDIS_CLUSTER_NODES', 'unset: no Redis Cluster');
  if (redisUrl && redisClusterNodes) throw new ConfigError('REDIS_URL, REDIS_CLUSTER_NODES: expected one Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES), not both');
  noteDefault(env, 'DATA_DIR', '.data/region');
  return {
    name,
    host: str(env, 'HOST', '127.0.0.1', /^[\w.:-]+$/, 'a host name or IP'),
    port: int(env, 'PORT', 8788, 0, 65535),
    metricsPort: int(env, 'METRICS_PORT', 0, 0, 65535),
    otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() ? urlish(env.OTEL_EXPORTER_OTLP_ENDPOINT.trim(), 'OTEL_EXPORTER_OTLP_ENDPOINT', ['http:', 'https:']) : (noteDefault(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', 'unset: no tracing'), null),
    internalSecret: opts.needSecret === false ? (env.INTERNAL_SECRET ?? '') : required(env, 'INTERNAL_SECRET', 16),
    roles: roles(env, 'REGION_ROLE'),
    dataDir: path.resolve(env.DATA_DIR || '.data/region'),
    routeTtlSeconds: int(env, 'ROUTE_TTL_SECONDS', 180, 10, 86_400),
    fanoutBatch: int(env, 'FANOUT_BATCH', 50, 1, 1000),
    presence: { ttlSeconds: int(env, 'PRESENCE_TTL_SECONDS', 90, 2, 86_400), sweepMs: int(env, 'PRESENCE_SWEEP_MS', 1000, 50, 60_000) },
    namespace,
    push: {
      preview: bool(env, 'PUSH_PREVIEW', false),
      coalesceSeconds: int(env, 'PUSH_COALESCE_SECONDS', 900, 1, 86_400),
      ratePerHour: int(env, 'PUSH_RATE_PER_HOUR', 60, 1, 100_000),
      rateBurst: int(env, 'PUSH_RATE_BURST', 10, 1, 10_000),
      maxAttempts: int(env, 'PUSH_MAX_ATTEMPTS', 10, 1, 50),
      retryBaseMs: int(env, 'PUSH_RETRY_BASE_MS', 2000, 10, 600_000),
      providers: loadPushProvidersConfig(env, { fallback: cassandraPoints ? 'off' : 'recording' }),
    },
    keys: { claimPerMinute: int(env, 'KEYS_CLAIM_PER_MINUTE', KEY_LIMITS.claimUsersPerMinute, 1, 1_000_000), claimBurst: int(env, 'KEYS_CLAIM_BURST', KEY_LIMITS.claimBurst, 1, 1_000_000) },
    cassandra: cassandraPoints ? cassandra(env, cassandraPoints, namespace) : null,
    kafka: kafkaBrokers
      ? {
          brokers: list(kafkaBrokers, 'KAFKA_BROKERS'),
          clientId: str(env, 'KAFKA_CLIENT_ID', 'switchboard-region', /^[\w.-]+$/, 'a client id'),
          topicPrefix: str(env, 'KAFKA_TOPIC_PREFIX', `${namespace}.`, /^[\w.-]*$/, 'a topic prefix'),
          partitions: int(env, 'KAFKA_PARTITIONS', 8, 1, 10_000),
          replicationFactor: int(env, 'KAFKA_REPLICATION_FACTOR', 1, 1, 9),
        }
      : null,
    redis: redisUrl
      ? { url: urlish(redisUrl, 'REDIS_URL', ['redis:', 'rediss:']), prefix: str(env, 'REDIS_PREFIX', `${namespace}:`, /^[\w:.-]*$/, 'a key prefix') }
      : redisClusterNodes
        ? { clusterNodes: hostPorts(redisClusterNodes, 'REDIS_CLUSTER_NODES'), prefix: str(env, 'REDIS_PREFIX', `${namespace}:`, /^[\w:.-]*$/, 'a key prefix') }
        : null,
  };
}

function required(env: EnvMap, name: string, minLength: number): string {
  noteDefault(env, name, null, { secret: true });
  const fileName = `${name}_FILE`;
  const file = env[fileName]?.trim();
  if (file && env[name]) throw new ConfigError(`${fileName}: expected ${name} or ${fileName}, not both`);
  const v = file ? secretFile(file, fileName) : env[name];
  if (!v || v.length < minLength) throw new ConfigError(`${file ? fileName : name}: expected a secret of at least ${minLength} characters${file ? ` in ${file}` : ''}`);
  return v;
}

function secretFile(file: string, name: string): string {
  try {
    return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

function str(env: EnvMap, name: string, dflt: string, re: RegExp, what: string): string {
  noteDefault(env, name, dflt);
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  if (!re.test(v)) throw new ConfigError(`${name}: expected ${what}, got ${JSON.stringify(v)}`);
  return v;
}

export const REGION_ROLES = ['api', 'fanout', 'push'] as const;
export type RegionRole = (typeof REGION_ROLES)[number];

function roles(env: EnvMap, name: string): ReadonlySet<RegionRole> {
  noteDefault(env, name, 'all');
  const v = env[name]?.trim() || 'all';
  if (v === 'all') return new Set(REGION_ROLES);
  const list = v.split(',').map((x) => x.trim());
  const bad = list.filter((x) => !(REGION_ROLES as readonly string[]).includes(x));
  if (bad.length || list.length === 0) throw new ConfigError(`${name}: expected all or a comma-separated list of ${REGION_ROLES.join(', ')}, got ${JSON.stringify(v)}`);
  return new Set(list as RegionRole[]);
}

function bool(env: EnvMap, name: string, dflt: boolean): boolean {
  noteDefault(env, name, dflt);
  const v = env[name]?.trim();
  if (!v) return dflt;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`${name}: expected true or false, got ${JSON.stringify(v)}`);
}

function int(env: EnvMap, name: string, dflt: number, min: number, max: number): number {
  noteDefault(env, name, dflt);
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name}: expected an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  return n;
}

function oneOf<T extends string>(env: EnvMap, name: string, dflt: T, options: readonly T[]): T {
  noteDefault(env, name, dflt);
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  if (!(options as readonly string[]).includes(v)) throw new ConfigError(`${name}: expected one of ${options.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function list(v: string, name: string): string[] {
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!/^[\w.-]+(:\d{1,5})?$/.test(item)) throw new ConfigError(`${name}: expected comma-separated host[:port], got ${JSON.stringify(item)}`);
  }
  if (items.length === 0) throw new ConfigError(`${name}: expected at least one host[:port]`);
  return items;
}

/** Comma-separated host:port, the port required (Redis Cluster seed nodes). */
function hostPorts(v: string, name: string): string[] {
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    const m = /^([\w.-]+|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/.exec(item);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) throw new ConfigError(`${name}: expected comma-separated host:port, got ${JSON.stringify(item)}`);
  }
  if (items.length === 0) throw new ConfigError(`${name}: expected at least one host:port`);
  return items;
}

function urlish(v: string, name: string, protocols: string[]): string {
  try {
    const u = new URL(v);
    if (!protocols.includes(u.protocol)) throw new Error();
    return v;
  } catch {
    throw new ConfigError(`${name}: expected a ${protocols.join(' or ')} URL, got ${JSON.stringify(v)}`);
  }
}

function cassandra(env: EnvMap, points: string, namespace: string): NonNullable<RegionConfig['cassandra']> {
  const localDataCenter = str(env, 'CASSANDRA_LOCAL_DC', 'datacenter1', /^[\w.-]+$/, 'a datacenter name');
  return {
    contactPoints: list(points, 'CASSANDRA_CONTACT_POINTS'),
    localDataCenter,
    keyspace: str(env, 'CASSANDRA_KEYSPACE', `${namespace}_chat`.toLowerCase(), /^[a-z][a-z0-9_]{0,47}$/, 'a CQL keyspace name'),
    consistency: oneOf(env, 'CASSANDRA_CONSISTENCY', 'LOCAL_QUORUM', ['ONE', 'LOCAL_ONE', 'QUORUM', 'LOCAL_QUORUM', 'EACH_QUORUM', 'ALL'] as const),
    replication: replication(env, localDataCenter, int(env, 'CASSANDRA_REPLICATION_FACTOR', 1, 1, 9)),
  };
}

/** CASSANDRA_REPLICATION: `dc=replicas` pairs, comma-separated; default `{local: factor}`. */
function replication(env: EnvMap, localDc: string, factor: number): Record<string, number> {
  const v = env.CASSANDRA_REPLICATION?.trim();
  noteDefault(env, 'CASSANDRA_REPLICATION', `${localDc}=${factor}`);
  if (!v) return { [localDc]: factor };
  const out: Record<string, number> = {};
  for (const item of v.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([\w.-]+)=(\d)$/.exec(item);
    if (!m || Number(m[2]) < 1) throw new ConfigError(`CASSANDRA_REPLICATION: expected datacenter=replicas (1-9), comma-separated, got ${JSON.stringify(item)}`);
    out[m[1]!] = Number(m[2]);
  }
  if (!(localDc in out)) throw new ConfigError(`CASSANDRA_REPLICATION: lists no replicas in the local datacenter ${localDc} (CASSANDRA_LOCAL_DC)`);
  return out;
}
