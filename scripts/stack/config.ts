// Where things live, which ports, which versions. Everything here can be overridden by env.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CASSANDRA_VERSION = '5.0.9';
export const KAFKA_VERSION = '3.9.2';
export const KAFKA_SCALA = '2.13';
/** Kafka 3.9 logs through slf4j 1.7 -> reload4j; the binding is not a runtime dependency of kafka_2.13. */
export const KAFKA_SLF4J_BINDING = { groupId: 'org.slf4j', artifactId: 'slf4j-reload4j', version: '1.7.36' };
export const MAVEN_DEPENDENCY_PLUGIN_VERSION = '3.8.1';

export const HOST = '127.0.0.1';
export const CASSANDRA_DATACENTER = 'datacenter1';
export const CASSANDRA_CLUSTER_NAME = 'switchboard';
/** Region 2 (`--regions 2`): a second Cassandra datacenter on a loopback alias (Linux routes 127/8 to lo). */
export const CASSANDRA_DATACENTER2 = 'datacenter2';
export const CASSANDRA_RACK = 'rack1';

export type Regions = 1 | 2;

export interface StackConfig {
  repoRoot: string;
  stackDir: string;
  enginesCache: string;
  /** Machine-wide folder recording which stack dir owns which port (lets other checkouts reuse a running stack). */
  runDir: string;
  java: string;
  mvn: string;
  cassandra: { port: number; storagePort: number; dir: string; heap: string; extraJvmOpts: string[]; timeoutMs: number; jmxPort: number };
  kafka: { port: number; controllerPort: number; dir: string; heap: string; extraJvmOpts: string[]; timeoutMs: number };
  redis: { port: number; dir: string };
  /** Region 2's engines (started only with `--regions 2`; status/down always look at them). */
  region2: {
    /** Second Cassandra node: same cluster, datacenter2, same ports as node 1 on another loopback address. */
    cassandra: { host: string; dir: string };
    kafka: { port: number; controllerPort: number; dir: string; heap: string; extraJvmOpts: string[]; timeoutMs: number };
    redis: { port: number; dir: string };
  };
  /** Redis Cluster (`--redis-cluster`): three masters, no replicas, no persistence. */
  redisCluster: { ports: number[]; dir: string; timeoutMs: number };
}

function envInt(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new Error(`${name}=${raw} is not a valid port`);
  return n;
}

function envSeconds(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt * 1000;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${raw} is not a number of seconds`);
  return n * 1000;
}

function envPorts(name: string, dflt: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const ports = raw.split(',').map((p) => p.trim());
  const out = ports.map((p) => Number(p));
  if (out.length !== 3 || out.some((n) => !Number.isInteger(n) || n <= 0 || n > 65535) || new Set(out).size !== 3) {
    throw new Error(`${name}=${raw} must be three distinct ports, comma-separated`);
  }
  return out;
}

/** `STACK_REGIONS` (1 or 2), the default of `stack:up --regions`. */
export function envRegions(env: NodeJS.ProcessEnv = process.env): Regions {
  const raw = env.STACK_REGIONS;
  if (raw === undefined || raw === '' || raw === '1') return 1;
  if (raw === '2') return 2;
  throw new Error(`STACK_REGIONS=${raw} must be 1 or 2`);
}

/** `STACK_REDIS_CLUSTER=1|true`, the default of `stack:up --redis-cluster`. */
export function envRedisCluster(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['1', 'true', 'yes'].includes((env.STACK_REDIS_CLUSTER ?? '').toLowerCase());
}

function splitOpts(raw: string | undefined): string[] {
  return (raw ?? '').split(/\s+/).filter(Boolean);
}

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function loadConfig(env: NodeJS.ProcessEnv = process.env): StackConfig {
  const stackDir = path.resolve(env.STACK_DIR || path.join(repoRoot, '.stack'));
  const cacheHome = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const enginesCache = path.resolve(env.ENGINES_CACHE || path.join(cacheHome, 'switchboard', 'engines'));
  const javaHome = env.JAVA_HOME;
  return {
    repoRoot,
    stackDir,
    enginesCache,
    runDir: path.join(cacheHome, 'switchboard', 'run'),
    java: javaHome ? path.join(javaHome, 'bin', 'java') : 'java',
    mvn: env.MVN || 'mvn',
    cassandra: {
      port: envInt('CASSANDRA_PORT', 9042),
      storagePort: envInt('CASSANDRA_STORAGE_PORT', 7000),
      dir: path.join(stackDir, 'cassandra'),
      heap: env.CASSANDRA_HEAP || '1G',
      extraJvmOpts: splitOpts(env.CASSANDRA_JVM_OPTS),
      timeoutMs: envSeconds('CASSANDRA_TIMEOUT_S', 180),
      // node 1's local-only JMX, on only once region 2 is in play (to make node 1 forget node 2)
      jmxPort: envInt('CASSANDRA_JMX_PORT', 7199),
    },
    kafka: {
      port: envInt('KAFKA_PORT', 9092),
      controllerPort: envInt('KAFKA_CONTROLLER_PORT', 9093),
      dir: path.join(stackDir, 'kafka'),
      heap: env.KAFKA_HEAP || '512m',
      extraJvmOpts: splitOpts(env.KAFKA_JVM_OPTS),
      timeoutMs: envSeconds('KAFKA_TIMEOUT_S', 90),
    },
    redis: {
      port: envInt('REDIS_PORT', 6379),
      dir: path.join(stackDir, 'redis'),
    },
    region2: {
      cassandra: {
        host: env.REGION2_CASSANDRA_HOST || '127.0.0.2',
        dir: path.join(stackDir, 'region2', 'cassandra'),
      },
      kafka: {
        port: envInt('REGION2_KAFKA_PORT', 9094),
        controllerPort: envInt('REGION2_KAFKA_CONTROLLER_PORT', 9095),
        dir: path.join(stackDir, 'region2', 'kafka'),
        heap: env.KAFKA_HEAP || '512m',
        extraJvmOpts: splitOpts(env.KAFKA_JVM_OPTS),
        timeoutMs: envSeconds('KAFKA_TIMEOUT_S', 90),
      },
      redis: {
        port: envInt('REGION2_REDIS_PORT', 6380),
        dir: path.join(stackDir, 'region2', 'redis'),
      },
    },
    redisCluster: {
      ports: envPorts('REDIS_CLUSTER_PORTS', [7379, 7380, 7381]),
      dir: path.join(stackDir, 'redis-cluster'),
      timeoutMs: envSeconds('REDIS_CLUSTER_TIMEOUT_S', 30),
    },
  };
}
