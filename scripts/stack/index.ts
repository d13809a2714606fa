// Programmatic API of the local stack (Cassandra, Kafka, Redis), e.g. for the test runner:
//
//   import { ensureStack } from './stack/index.ts';
//   const { cassandra, kafka, redis } = await ensureStack({ log: (l) => console.error(l) });
//   const { region2, redisCluster } = await ensureStack({ regions: 2, redisCluster: true });
//
// `ensureStack` is `npm run stack:up` as a function: it starts what is not running (detached; the
// engines keep running after the caller exits) and resolves once every engine answers a real client
// request. Calls are cheap when the stack is already up (a CQL query, a metadata call, a PING).
import { cassandraConnection, cassandraEngine, cassandraNodes } from './cassandra.ts';
import { loadConfig, type Regions, type StackConfig } from './config.ts';
import type { Engine } from './engine.ts';
import { kafkaConnection, kafkaEngine, kafkaNodes } from './kafka.ts';
import { createLogger, stderrSink } from './log.ts';
import { isAlive, readPid } from './process.ts';
import { redisClusterNodes, redisConnection, redisEngine, redisNodes } from './redis.ts';
import { stackStatus as status, summarize, up, type EngineStatus } from './stack.ts';

export interface RegionInfo {
  cassandra: { contactPoints: string[]; localDataCenter: string };
  kafka: { brokers: string[] };
  redis: { url: string };
}

export interface StackInfo extends RegionInfo {
  /** Region 2 (`regions: 2`): Cassandra datacenter2 on 127.0.0.2 (same cluster), its own Kafka and Redis. */
  region2?: RegionInfo;
  /** The Redis Cluster (`redisCluster: true`): its three masters, host:port. */
  redisCluster?: { nodes: string[] };
}

export type { EngineStatus } from './stack.ts';

let inFlight: Promise<StackInfo> | undefined;
let inFlightKey = '';

/**
 * Bring the stack up if needed and return connection info. `log` receives JSON lines
 * (default: stderr). Concurrent calls in one process with the same selection share one attempt;
 * concurrent calls from several processes are serialised by a lock file in the stack dir.
 */
export function ensureStack(opts: { log?: (line: string) => void; signal?: AbortSignal; regions?: Regions; redisCluster?: boolean } = {}): Promise<StackInfo> {
  const regions = opts.regions ?? 1;
  const redisCluster = opts.redisCluster ?? false;
  const key = `${regions}/${redisCluster}`;
  if (inFlight && inFlightKey === key) return inFlight;
  const before = inFlight ?? Promise.resolve(undefined);
  const cfg = loadConfig();
  const attempt = (async () => {
    await before.catch(() => undefined);
    await up({ log: createLogger(opts.log ?? stderrSink), cfg, signal: opts.signal, regions, redisCluster });
    return connectionInfo({ regions, redisCluster });
  })().finally(() => {
    if (inFlight === attempt) inFlight = undefined;
  });
  inFlight = attempt;
  inFlightKey = key;
  return attempt;
}

/** Is a process of this stack (or of the checkout recorded as owning the port) running the engine? Cheap, synchronous, no readiness check. */
function processUp(e: Engine): boolean {
  const pid = readPid(e.pidFile);
  return pid !== undefined && isAlive(pid) && e.ownsPid(pid);
}

function region2Info(cfg: StackConfig): RegionInfo {
  return { cassandra: cassandraConnection(cfg, 2), kafka: kafkaConnection(cfg, 2), redis: redisConnection(cfg, 2) };
}

/**
 * Connection info for the configured stack. Region 1 always (doesn't check that it is running).
 * `region2` / `redisCluster`: when asked for (`regions: 2`, `redisCluster: true`), or, without
 * options, when this stack dir's processes for them are running (no readiness check: use
 * `stackStatus()` for that).
 */
export function connectionInfo(opts?: { regions?: Regions; redisCluster?: boolean }): StackInfo {
  const cfg = loadConfig();
  const info: StackInfo = { cassandra: cassandraConnection(cfg), kafka: kafkaConnection(cfg), redis: redisConnection(cfg) };
  const r = redisNodes(cfg);
  const withRegion2 = opts
    ? opts.regions === 2
    : [cassandraEngine(cfg, cassandraNodes(cfg).node2), kafkaEngine(cfg, kafkaNodes(cfg).region2), redisEngine(cfg, r.region2)].every(processUp);
  const withCluster = opts ? !!opts.redisCluster : r.cluster.map((n) => redisEngine(cfg, n)).every(processUp);
  if (withRegion2) info.region2 = region2Info(cfg);
  if (withCluster) info.redisCluster = { nodes: redisClusterNodes(cfg) };
  return info;
}

/**
 * State of each engine (region 1's, and region 2's / the cluster nodes' when up):
 * running/starting/stopped/external/conflict, pid, address, ready.
 * `ok`: region 1 ready and every optional part that is up (region 2, the Redis Cluster) ready;
 * `region1` / `region2` / `redisCluster`: that part is up and ready (cluster_state ok on every node).
 */
export async function stackStatus(): Promise<{ ok: boolean; engines: EngineStatus[]; region1: boolean; region2: boolean; redisCluster: boolean }> {
  const all = await status(loadConfig());
  const { ok, groups } = summarize(all);
  // Region 1's engines always; region 2's and the cluster's only when that part is up.
  const engines = all.filter((e) => e.group === 'region1' || groups[e.group].up);
  return { ok, engines, region1: groups.region1.ready, region2: groups.region2.ready, redisCluster: groups['redis-cluster'].ready };
}
