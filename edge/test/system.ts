import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../scripts/lib/ports.ts';
import { startEdge, startRegion, type LineSink, type Service } from '../../scripts/lib/processes.ts';
import { RAISED_LIMITS } from '../src/limits/limits.ts';

export type Engines = 'embedded' | 'real';

export interface System {
  engines: Engines;
  edgeUrl: string;
  regionUrl: string;
  authSecret: string;
  internalSecret: string;
  regionEnv: Record<string, string>;
  /** Where the region's and the edge's state live (edge Durable Objects under `edge/`). */
  dir: string;
  stop(): Promise<void>;
  /** Stops the region (as kill -9 when `hard`) and starts it again on the same port and data. */
  restartRegion(opts?: { hard?: boolean; downMs?: number }): Promise<void>;
  stopRegion(opts?: { hard?: boolean }): Promise<void>;
  startRegion(): Promise<void>;
  /**
   * Stops the edge runtime (the edge runner and its workerd; as kill -9 when `hard`) and starts it
   * again on the same port, persist dir, secrets and vars. Every device socket drops.
   */
  restartEdge(opts?: { hard?: boolean; downMs?: number }): Promise<void>;
}

/** Engine settings for the real stack, from the test runner (scripts/test.ts); null if absent. */
export function realEngineEnv(namespace: string): Record<string, string> | null {
  const c = process.env.TEST_CASSANDRA_CONTACT_POINTS;
  const k = process.env.TEST_KAFKA_BROKERS;
  const r = process.env.TEST_REDIS_URL;
  if (!c || !k || !r) return null;
  return { CASSANDRA_CONTACT_POINTS: c, KAFKA_BROKERS: k, REDIS_URL: r, NAMESPACE: namespace, CASSANDRA_CONSISTENCY: 'LOCAL_ONE' };
}

/** Every LIMIT_* variable at 1,000,000 per second: no suite but the limits' own meets one. */
export const TEST_LIMITS: Record<string, string> = RAISED_LIMITS;

const quiet = process.env.E2E_VERBOSE ? undefined : () => {};
const verbose = (svc: string, line: string) => process.stderr.write(`[${svc}] ${line}\n`);

/** A whole system for one test file: region (embedded or real engines) and the edge in workerd. */
/**
 * `edgeRegionUrl`: where the edge calls the region, when a test puts something (a fault proxy) in
 * between; default the region itself.
 */
export async function startSystem(
  engines: Engines,
  opts: { edgeVars?: Record<string, string>; regionEnv?: Record<string, string>; sink?: LineSink; edgeRegionUrl?: string } = {},
): Promise<System> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-e2e-'));
  const namespace = `e2e_${crypto.randomBytes(4).toString('hex')}`;
  let regionEnv: Record<string, string> = { NAMESPACE: namespace, LOG_LEVEL: 'warn', ...opts.regionEnv };
  if (engines === 'real') {
    const env = realEngineEnv(namespace);
    if (!env) throw new Error('real engines requested but TEST_CASSANDRA_CONTACT_POINTS / TEST_KAFKA_BROKERS / TEST_REDIS_URL are not set');
    regionEnv = { ...regionEnv, ...env };
  }
  const [regionPort, edgePort] = [await freePort(), await freePort()];
  const authSecret = crypto.randomBytes(24).toString('base64url');
  const internalSecret = crypto.randomBytes(24).toString('base64url');
  const sink = opts.sink ?? (process.env.E2E_VERBOSE ? verbose : quiet);
  const launchRegion = () => startRegion({ port: regionPort, dataDir: path.join(dir, 'region'), internalSecret, env: regionEnv, sink });
  let region: Service | null = await launchRegion();
  const regionUrl = region.url;
  const launchEdge = () =>
    startEdge({
      port: edgePort,
      regionUrl: opts.edgeRegionUrl ?? regionUrl,
      persistDir: path.join(dir, 'edge'),
      authSecret,
      internalSecret,
      devAuth: true,
      // A small window makes sync and history cross from the edge's window into region storage.
      // Live path for direct conversations only: groups of 3+ go through the region's fan-out.
      // Message requests off unless a test asks: the other suites pin delivery between users who never accepted anything.
      // Rate limits far above what any suite does (suites create thousands of conversations and
      // open hundreds of sockets from one address); edge/test/limits-embedded.test.ts sets its own low ones.
      vars: { ROUTE_REFRESH_SECONDS: '5', CONVERSATION_WINDOW: '10', RETRANSMIT_MS: '1000', LIVE_PUSH_MAX_MEMBERS: '2', MESSAGE_REQUESTS: 'false', ...TEST_LIMITS, ...opts.edgeVars },
      sink,
    });
  let edge: Service = await launchEdge();
  const stopRegion = async (opts: { hard?: boolean } = {}) => {
    if (!region) return;
    if (opts.hard) {
      process.kill(-region.child.pid!, 'SIGKILL');
      await new Promise((r) => region!.child.once('exit', r));
    } else await region.stop();
    region = null;
  };
  const system: System = {
    engines,
    edgeUrl: edge.url,
    regionUrl: `http://127.0.0.1:${regionPort}`,
    authSecret,
    internalSecret,
    regionEnv,
    dir,
    stopRegion,
    async startRegion() {
      region = await launchRegion();
    },
    async restartRegion(opts = {}) {
      await stopRegion(opts);
      if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
      region = await launchRegion();
    },
    async restartEdge(opts = {}) {
      if (opts.hard) {
        const exited = new Promise((r) => edge.child.once('exit', r));
        try {
          process.kill(-edge.child.pid!, 'SIGKILL');
        } catch {}
        if (edge.child.exitCode === null && edge.child.signalCode === null) await exited;
      } else await edge.stop();
      if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
      // The port was just released; a start that loses a race for it is tried again.
      for (let attempt = 1; ; attempt++) {
        try {
          edge = await launchEdge();
          return;
        } catch (err) {
          if (attempt >= 3) throw err;
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    },
    async stop() {
      await edge.stop();
      await stopRegion();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return system;
}
