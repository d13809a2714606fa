/**
 * Runs the edge Worker locally in workerd through Miniflare, configured from wrangler.toml:
 * the Worker is bundled exactly as `wrangler deploy` would ship it (`wrangler deploy --dry-run`),
 * then served on one port with its Durable Objects persisted on disk.
 *
 * Why not `wrangler dev`: it puts a proxy Worker in front of the real one and attaches the V8
 * inspector to stream logs, which together cost more CPU per message than the Worker itself and
 * add milliseconds to every hop (see `npm run bench:latency`). This runner has neither; the
 * Worker, its bindings and its storage are the same.
 *
 *   tsx scripts/edge-runner.ts --port 8787 --persist-to .data/edge [--var KEY:VALUE …]
 *
 * Devices reach the Worker on its own socket (Miniflare's `unsafeDirectSockets`, the Worker's `Edge`
 * entrypoint), not through Miniflare's entry and assets workers: those add a JavaScript hop to
 * every request and frame and negotiate WebSocket compression by their own compatibility date,
 * whatever wrangler.toml says. Cloudflare has neither in front of the Worker. The web client's
 * assets still come from the assets binding (the Worker falls back to it for non-API paths).
 *
 * EDGE_WS_COMPRESSION=true drops `no_web_socket_compression` from the compatibility flags, so
 * clients that offer permessage-deflate get it (to measure what it costs).
 * EDGE_INSPECTOR_PORT=9229 opens the V8 inspector on loopback, for `npm run profile:edge`.
 *
 * Logs are JSON lines on stdout (the Worker's own lines pass through as they are). SIGINT or
 * SIGTERM first drains the edge (signed `POST /internal/admin/drain`: every socket is closed with
 * 1012 and a reconnect hint spread over EDGE_DRAIN_SPREAD_MS, default 5000), then disposes of
 * workerd and exits 0.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';
import { signRequest } from '@switchboard/protocol';
import { ROOT } from './lib/processes.ts';

const log = (level: string, msg: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(JSON.stringify({ ts: new Date().toISOString(), level, svc: 'edge-runner', msg, ...fields }) + '\n');

function fail(msg: string): never {
  log('error', msg);
  process.exit(2);
}

interface Args {
  host: string;
  port: number;
  persistTo: string;
  vars: Record<string, string>;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { host: '127.0.0.1', port: 8787, persistTo: path.join(ROOT, '.data', 'edge'), vars: {} };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) fail(`${flag}: expected a value`);
    i++;
    if (flag === '--ip') out.host = value;
    else if (flag === '--port') {
      out.port = Number(value);
      if (!Number.isInteger(out.port) || out.port < 1 || out.port > 65_535) fail(`--port: expected 1..65535, got ${JSON.stringify(value)}`);
    } else if (flag === '--persist-to') out.persistTo = path.resolve(value);
    else if (flag === '--var') {
      const at = value.indexOf(':');
      if (at < 1) fail(`--var: expected KEY:VALUE, got ${JSON.stringify(value)}`);
      out.vars[value.slice(0, at)] = value.slice(at + 1);
    } else fail(`unknown argument ${flag} (expected --ip, --port, --persist-to, --var)`);
  }
  return out;
}

/** The Worker as `wrangler deploy` bundles it, in a fresh folder. */
function bundle(): string {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-edge-build-'));
  const t0 = Date.now();
  const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'wrangler'), ['deploy', '--dry-run', '--outdir', outdir], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  const main = path.join(outdir, 'index.js');
  if (r.status !== 0 || !fs.existsSync(main)) fail(`bundling the Worker failed:\n${(r.stdout + r.stderr).slice(-3000)}`);
  log('info', 'bundled the Worker', { ms: Date.now() - t0, bytes: fs.statSync(main).size });
  return outdir;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const outdir = bundle();
  // On every way out: Miniflare's own signal hook exits the process before an async stop could
  // get this far (each bench run and test edge left a bundle of ~1 MB behind in the temp dir).
  process.on('exit', () => fs.rmSync(outdir, { recursive: true, force: true }));
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, 'wrangler.toml'));
  const inspectorPort = process.env.EDGE_INSPECTOR_PORT ? Number(process.env.EDGE_INSPECTOR_PORT) : undefined;
  if (inspectorPort !== undefined && (!Number.isInteger(inspectorPort) || inspectorPort < 1 || inspectorPort > 65_535)) fail(`EDGE_INSPECTOR_PORT: expected 1..65535, got ${JSON.stringify(process.env.EDGE_INSPECTOR_PORT)}`);
  const compression = process.env.EDGE_WS_COMPRESSION === 'true';
  if (process.env.EDGE_WS_COMPRESSION !== undefined && !compression && process.env.EDGE_WS_COMPRESSION !== 'false') fail(`EDGE_WS_COMPRESSION: expected true or false, got ${JSON.stringify(process.env.EDGE_WS_COMPRESSION)}`);
  const compatibilityFlags = (workerOptions.compatibilityFlags ?? []).filter((f) => !(compression && f === 'no_web_socket_compression'));
  const mf = new Miniflare({
    // Miniflare's own entry socket, for its internal use only; devices use the direct socket below.
    host: '127.0.0.1',
    port: 0,
    // Off unless asked for (it costs CPU per message): `scripts/profile-edge.ts` profiles through it.
    ...(inspectorPort !== undefined ? { inspectorPort } : {}),
    // The same folder layout as `wrangler dev --persist-to`, so either can open the other's state.
    durableObjectsPersist: path.join(args.persistTo, 'v3', 'do'),
    workers: [
      {
        ...workerOptions,
        name: 'switchboard-edge',
        modules: true,
        modulesRoot: outdir,
        scriptPath: path.join(outdir, 'index.js'),
        compatibilityFlags,
        bindings: { ...workerOptions.bindings, ...args.vars },
        unsafeDirectSockets: [{ host: args.host, port: args.port, entrypoint: 'Edge' }],
      },
    ],
  } as ConstructorParameters<typeof Miniflare>[0]);
  await mf.ready;
  const origin = `http://${args.host}:${args.port}`;
  log('info', `Ready on ${origin}`, { url: origin, persist: args.persistTo, wsCompression: compression });

  const bindings = { ...workerOptions.bindings, ...args.vars } as Record<string, unknown>;
  const drain = async () => {
    const secret = bindings.INTERNAL_SECRET;
    if (typeof secret !== 'string' || !secret) return log('warn', 'no INTERNAL_SECRET: stopping without a drain');
    const spreadMs = Number(process.env.EDGE_DRAIN_SPREAD_MS ?? 5_000);
    const body = JSON.stringify({ spreadMs: Number.isInteger(spreadMs) && spreadMs >= 0 && spreadMs <= 60_000 ? spreadMs : 5_000 });
    try {
      const res = await fetch(`${origin}/internal/admin/drain`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await signRequest(secret, 'POST', '/internal/admin/drain', body)) },
        body,
        signal: AbortSignal.timeout(5_000),
      });
      log(res.ok ? 'info' : 'warn', 'drained', { status: res.status, ...((await res.json().catch(() => ({}))) as object) });
      // Room for the close frames to leave before the runtime goes.
      await new Promise((r) => setTimeout(r, 250));
    } catch (err) {
      log('warn', 'drain failed; stopping anyway', { err: String(err) });
    }
  };

  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stopping', { signal: sig });
    await drain();
    await mf.dispose().catch((err) => log('warn', 'dispose failed', { err: String(err) }));
    process.exit(0);
  };
  // Miniflare's own signal hook kills workerd and exits at once: no drain could run. Its `exit`
  // hook stays (workerd never outlives this process); the signals are ours.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.removeAllListeners(sig);
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => fail(`edge failed to start: ${err instanceof Error ? err.message : String(err)}`));
