import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildWeb } from '../../edge/web/build.ts';
import { waitForHttp } from './ports.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * Node with tsx loaded, as one process: a signal reaches the service itself (the tsx binary is a
 * second process that exits once it relayed a SIGTERM, before the service finished stopping).
 */
const node = (script: string): [string, string[]] => [process.execPath, ['--import', 'tsx', script]];

export interface Service {
  name: string;
  url: string;
  child: ChildProcess;
  /** Recent output lines, for failure messages. */
  tail: string[];
  stop(): Promise<void>;
  /** Synchronous SIGTERM to the whole process group, for exit handlers. */
  kill(): void;
}

export type LineSink = (svc: string, line: string) => void;

/** Structured passthrough: JSON lines stay as they are, anything else is wrapped as one. */
export const jsonLines: LineSink = (svc, line) => {
  if (!line.trim()) return;
  const out = line.startsWith('{') ? line : JSON.stringify({ ts: new Date().toISOString(), level: 'info', svc, msg: line.replace(/\x1b\[[0-9;]*m/g, '') });
  process.stdout.write(out + '\n');
};

function launch(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, url: string, sink?: LineSink): Service {
  // Own process group, so stop() reaches every grandchild (workerd under wrangler).
  const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const tail: string[] = [];
  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > 80) tail.shift();
    sink?.(name, line);
  };
  readline.createInterface({ input: child.stdout! }).on('line', onLine);
  readline.createInterface({ input: child.stderr! }).on('line', onLine);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.on('exit', () => ((exited = true), resolve())));
  return {
    name,
    url,
    child,
    tail,
    kill() {
      if (exited) return;
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {}
    },
    /**
     * SIGTERM to the service's own process only (tsx relays it to node), as a container runtime
     * sends it: the service stops gracefully (the edge runner drains its sockets before it stops
     * workerd; workerd must not get the signal first). Whatever is left of its group afterwards,
     * or everything after 20 s, gets SIGKILL.
     */
    async stop() {
      if (exited) return;
      const killGroup = () => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {}
      };
      try {
        process.kill(child.pid!, 'SIGTERM');
      } catch {}
      const timer = setTimeout(killGroup, 20_000);
      await exit;
      clearTimeout(timer);
      killGroup();
    },
  };
}

export async function ready(svc: Service, healthPath: string, timeoutMs: number): Promise<Service> {
  try {
    await waitForHttp(svc.url + healthPath, timeoutMs, () => svc.child.exitCode === null && svc.child.signalCode === null);
  } catch (err) {
    await svc.stop();
    throw new Error(`${svc.name} did not start: ${(err as Error).message}\n--- last output ---\n${svc.tail.slice(-30).join('\n')}`);
  }
  return svc;
}

export interface RegionOptions {
  port: number;
  dataDir: string;
  internalSecret: string;
  /** Extra environment: engine selection (CASSANDRA_CONTACT_POINTS …), NAMESPACE, LOG_LEVEL. */
  env?: Record<string, string>;
  sink?: LineSink;
  name?: string;
}

export async function startRegion(o: RegionOptions): Promise<Service> {
  const env = { ...process.env, HOST: '127.0.0.1', PORT: String(o.port), DATA_DIR: o.dataDir, INTERNAL_SECRET: o.internalSecret, ...o.env };
  const svc = launch(o.name ?? 'region', ...node(path.join(ROOT, 'region/src/main.ts')), env, `http://127.0.0.1:${o.port}`, o.sink);
  return ready(svc, '/healthz', 120_000);
}

export interface EdgeOptions {
  port: number;
  regionUrl: string;
  persistDir: string;
  authSecret: string;
  internalSecret: string;
  devAuth: boolean;
  vars?: Record<string, string>;
  sink?: LineSink;
}

/** The edge Worker in workerd, through Miniflare with wrangler.toml (scripts/edge-runner.ts); the web client is built first (its assets dir is not in git). */
export async function startEdge(o: EdgeOptions): Promise<Service> {
  await buildWeb();
  const url = `http://127.0.0.1:${o.port}`;
  const vars: Record<string, string> = {
    AUTH_SECRET: o.authSecret,
    INTERNAL_SECRET: o.internalSecret,
    REGION_URL: o.regionUrl,
    EDGE_URL: url,
    DEV_AUTH: String(o.devAuth),
    ...o.vars,
  };
  const args = [path.join(ROOT, 'scripts/edge-runner.ts'), '--ip', '127.0.0.1', '--port', String(o.port), '--persist-to', o.persistDir];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1', FORCE_COLOR: '0' };
  return ready(launch('edge', process.execPath, ['--import', 'tsx', ...args], env, url, o.sink), '/healthz', 120_000);
}
