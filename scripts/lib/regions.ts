import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { signRequest } from '@switchboard/protocol';
import { RAISED_LIMITS } from '../../edge/src/limits/limits.ts';
import { freePort } from './ports.ts';
import { startEdge, startRegion, type LineSink, type Service } from './processes.ts';

/**
 * Two regional cores and one edge, for the two-region tests and `npm run bench:regions`: `eu` (the
 * primary) and `us`. Gateways in placement `weur` are near `eu`, in `enam` near `us` (a client
 * picks one with `?placement=`). With real engines each region has its own Cassandra datacenter
 * (one keyspace replicated to both), its own Kafka and its own Redis; embedded, each its own
 * SQLite, queue and routes.
 */
export const REGION_NAMES = ['eu', 'us'] as const;
export type RegionName = (typeof REGION_NAMES)[number];
export const PLACEMENT_OF: Record<RegionName, string> = { eu: 'weur', us: 'enam' };

export interface RegionEngines {
  contactPoints: string;
  localDc: string;
  kafka: string;
  redis: string;
}

/**
 * Both regions' engines from the test runner's variables (region 1's TEST_*, region 2's
 * TEST_REGION2_*, exported from `npm run stack:up -- --regions 2`); null when any is missing.
 */
export function twoRegionEngines(env: NodeJS.ProcessEnv = process.env): Record<RegionName, RegionEngines> | null {
  const eu = { contactPoints: env.TEST_CASSANDRA_CONTACT_POINTS, localDc: env.TEST_CASSANDRA_LOCAL_DC || 'datacenter1', kafka: env.TEST_KAFKA_BROKERS, redis: env.TEST_REDIS_URL };
  const us = { contactPoints: env.TEST_REGION2_CASSANDRA_CONTACT_POINTS, localDc: env.TEST_REGION2_CASSANDRA_LOCAL_DC || 'datacenter2', kafka: env.TEST_REGION2_KAFKA_BROKERS, redis: env.TEST_REGION2_REDIS_URL };
  const whole = (r: typeof eu): r is RegionEngines => Boolean(r.contactPoints && r.kafka && r.redis);
  return whole(eu) && whole(us) ? { eu, us } : null;
}

export interface Regions {
  edgeUrl: string;
  internalSecret: string;
  url(region: RegionName): string;
  stopRegion(region: RegionName, opts?: { hard?: boolean }): Promise<void>;
  startRegion(region: RegionName): Promise<void>;
  /** Where the edge keeps its Durable Object state. */
  edgeStateDir: string;
  /** A signed POST to one region's internal API. */
  call<T>(region: RegionName, path: string, body: unknown): Promise<T>;
  stop(): Promise<void>;
}

const quiet = process.env.E2E_VERBOSE ? (svc: string, line: string) => process.stderr.write(`[${svc}] ${line}\n`) : () => {};

/**
 * Starts both regions (embedded when `real` is null) and the edge. Everything lives under a temp
 * dir on disk (the edge's Durable Object state included), removed by `stop`.
 */
export async function startRegions(real: Record<RegionName, RegionEngines> | null, opts: { edgeVars?: Record<string, string>; sink?: LineSink; edgeDir?: string } = {}): Promise<Regions> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-regions-'));
  const namespace = `rg_${crypto.randomBytes(4).toString('hex')}`;
  const internalSecret = crypto.randomBytes(24).toString('base64url');
  const sink = opts.sink ?? quiet;
  const dcs = real ? [...new Set([real.eu.localDc, real.us.localDc])] : [];
  const envOf = (region: RegionName): Record<string, string> => {
    const base = { REGION_NAME: region, NAMESPACE: namespace, LOG_LEVEL: process.env.E2E_REGION_LOG_LEVEL || 'warn' };
    if (!real) return base;
    const e = real[region];
    return {
      ...base,
      CASSANDRA_CONTACT_POINTS: e.contactPoints,
      CASSANDRA_LOCAL_DC: e.localDc,
      CASSANDRA_KEYSPACE: `${namespace}_chat`,
      CASSANDRA_REPLICATION: dcs.map((dc) => `${dc}=1`).join(','),
      CASSANDRA_CONSISTENCY: 'LOCAL_QUORUM',
      KAFKA_BROKERS: e.kafka,
      // Each region's own topics and keys, even where a developer points both at one engine.
      KAFKA_TOPIC_PREFIX: `${namespace}.${region}.`,
      REDIS_URL: e.redis,
      REDIS_PREFIX: `${namespace}:${region}:`,
    };
  };
  const ports = { eu: await freePort(), us: await freePort() };
  const services: Partial<Record<RegionName, Service | null>> = {};
  const launch = async (region: RegionName) => {
    services[region] = await startRegion({ name: `region-${region}`, port: ports[region], dataDir: path.join(dir, region), internalSecret, env: envOf(region), sink });
  };
  // One after the other: the first applies the keyspace's migrations, the second finds them done.
  await launch('eu');
  await launch('us');
  const url = (region: RegionName) => `http://127.0.0.1:${ports[region]}`;
  const edge = await startEdge({
    port: await freePort(),
    regionUrl: url('eu'),
    persistDir: opts.edgeDir ?? path.join(dir, 'edge'),
    authSecret: crypto.randomBytes(24).toString('base64url'),
    internalSecret,
    devAuth: true,
    vars: {
      REGIONS: REGION_NAMES.map((r) => `${r}=${url(r)}`).join(','),
      GATEWAY_PLACEMENT: REGION_NAMES.map((r) => PLACEMENT_OF[r]).join(','),
      PLACEMENT_REGIONS: REGION_NAMES.map((r) => `${PLACEMENT_OF[r]}=${r}`).join(','),
      ROUTE_REFRESH_SECONDS: '5',
      RETRANSMIT_MS: '1000',
      // Groups of 3+ reach members through their home region's fan-out, not the live path.
      LIVE_PUSH_MAX_MEMBERS: '2',
      MESSAGE_REQUESTS: 'false',
      ...RAISED_LIMITS,
      ...opts.edgeVars,
    },
    sink,
  });
  const stopRegion = async (region: RegionName, opts: { hard?: boolean } = {}) => {
    const svc = services[region];
    if (!svc) return;
    services[region] = null;
    if (opts.hard) {
      const exited = new Promise((r) => svc.child.once('exit', r));
      process.kill(-svc.child.pid!, 'SIGKILL');
      await exited;
    } else await svc.stop();
  };
  return {
    edgeUrl: edge.url,
    edgeStateDir: opts.edgeDir ?? path.join(dir, 'edge'),
    internalSecret,
    url,
    stopRegion,
    startRegion: launch,
    async call<T>(region: RegionName, p: string, body: unknown): Promise<T> {
      const text = JSON.stringify(body);
      const res = await fetch(url(region) + p, { method: 'POST', headers: { 'content-type': 'application/json', ...(await signRequest(internalSecret, 'POST', p, text)) }, body: text });
      if (!res.ok) throw new Error(`${region} ${p}: HTTP ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    },
    async stop() {
      await edge.stop();
      await Promise.all(REGION_NAMES.map((r) => stopRegion(r)));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
