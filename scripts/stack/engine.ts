// What the orchestrator (stack.ts) needs to know about each engine.
import type { Logger } from './log.ts';
import type { SpawnedEngine } from './process.ts';

/** Region 1 keeps the historical names; region 2 and the Redis Cluster nodes have their own. */
export type EngineName = 'cassandra' | 'kafka' | 'redis' | 'region2-cassandra' | 'region2-kafka' | 'region2-redis' | `redis-cluster-${number}`;
export type EngineKind = 'cassandra' | 'kafka' | 'redis';
/** region1: always started by `up`; region2: `--regions 2`; redis-cluster: `--redis-cluster`. */
export type EngineGroup = 'region1' | 'region2' | 'redis-cluster';

export interface ProbeResult {
  ready: boolean;
  /** e.g. release_version, cluster id; shown in status */
  info?: Record<string, unknown>;
  error?: string;
}

export interface Engine {
  name: EngineName;
  kind: EngineKind;
  group: EngineGroup;
  /** Started only once this engine of the same run is ready (region 2's Cassandra joins node 1). */
  dependsOn?: EngineName;
  host: string;
  port: number;
  /** Other ports the engine binds (checked for conflicts before start). */
  extraPorts: { name: string; port: number; env: string }[];
  portEnv: string;
  /** What `up` waits for, shown in progress lines ("CQL", "broker metadata", "PING"). */
  waitingFor: string;
  timeoutMs: number;
  pidFile: string;
  /** Files whose tail is printed when the engine fails to start. */
  logFiles: string[];
  /** Does this live pid look like our engine (guards against pid reuse)? */
  ownsPid(pid: number): boolean;
  /** Quick readiness check of whatever answers on the port. */
  probe(): Promise<ProbeResult>;
  /** Can this machine start the engine at all? (Redis: is redis-server installed?) */
  canStart(): { ok: true } | { ok: false; reason: string };
  /** Download jars, write config, format storage… Everything before the process starts. */
  prepare(log: Logger, signal?: AbortSignal): Promise<void>;
  start(log: Logger): SpawnedEngine;
  /** Optional: after the first ready probe of a freshly started engine. */
  warmUp?(log: Logger): Promise<void>;
  /** Optional: extra check that the engine answering on the port is ours (e.g. Kafka cluster id). */
  describeForeign?(probe: ProbeResult): string | undefined;
}

export const JAVA_COMMON_OPTS = ['-XX:+UseG1GC', '-XX:+ExitOnOutOfMemoryError', '-Djava.awt.headless=true', '-Djava.net.preferIPv4Stack=true'];

/** Tag put on the java command line so `ownsPid` can recognise our own processes (match with a trailing space). */
export function stackTag(engine: EngineName, stackDir: string): string[] {
  return [`-Dswitchboard.engine=${engine}`, `-Dswitchboard.stack=${stackDir}`];
}

/** Is this command line our java process for `engine` in `stackDir` (main class and both tags)? */
export function isOurJava(cmd: string, mainClass: string, engine: EngineName, stackDir: string): boolean {
  const [engineTag, stackTagArg] = stackTag(engine, stackDir);
  return cmd.includes(mainClass) && cmd.includes(engineTag! + ' ') && cmd.includes(stackTagArg! + ' ');
}
