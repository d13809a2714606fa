/**
 * `npm start`: the whole system on this machine — the regional core (embedded backends by
 * default) and the edge Worker in workerd — with data kept under ./.data across restarts.
 *
 *   npm start                 embedded storage, queue and routes; no engines needed
 *   npm start -- --real       real Cassandra, Kafka and Redis (brought up like `npm run stack:up`)
 *   PORT=9000 npm start       edge on another port (REGION_PORT for the region, DATA_DIR for data)
 */
import path from 'node:path';
import { jsonLines, ROOT, startEdge, startRegion, type Service } from './lib/processes.ts';
import { devSecrets } from './lib/secrets.ts';

const log = (msg: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(JSON.stringify({ ts: new Date().toISOString(), level: 'info', svc: 'start', msg, ...fields }) + '\n');

function port(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    console.error(`${name}: expected a TCP port 1-65535, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const real = process.argv.includes('--real') || process.env.SWITCHBOARD_ENGINES === 'real';
  const edgePort = port('PORT', 8787);
  const regionPort = port('REGION_PORT', 8788);
  // Edge state and region storage belong together: each engine mode keeps its own pair.
  const dataDir = path.join(path.resolve(ROOT, process.env.DATA_DIR || '.data'), real ? 'real' : 'embedded');
  const secrets = devSecrets(dataDir);
  const services: Service[] = [];

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('stopping', { signal });
    for (const s of services.reverse()) await s.stop();
    log('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  // A closed stdout (the pager or tee died first) must not kill us before the children are stopped.
  process.stdout.on('error', () => {});
  // Whatever ends this process, no engine child outlives it.
  process.on('exit', () => {
    for (const s of services) s.kill();
  });

  let engineEnv: Record<string, string> = {};
  if (real) {
    log('bringing up the real engines (Cassandra, Kafka, Redis)');
    const { ensureStack } = await import('./stack/index.ts');
    const stack = await ensureStack({ log: (line) => process.stdout.write(line.endsWith('\n') ? line : line + '\n') });
    engineEnv = {
      CASSANDRA_CONTACT_POINTS: stack.cassandra.contactPoints.join(','),
      CASSANDRA_LOCAL_DC: stack.cassandra.localDataCenter,
      KAFKA_BROKERS: stack.kafka.brokers.join(','),
      REDIS_URL: stack.redis.url,
    };
  }

  const t0 = Date.now();
  log('starting region', { port: regionPort, engines: real ? 'real' : 'embedded' });
  services.push(
    await startRegion({ port: regionPort, dataDir: path.join(dataDir, 'region'), internalSecret: secrets.internalSecret, env: engineEnv, sink: jsonLines }),
  );
  log('starting edge (workerd via Miniflare)', { port: edgePort });
  services.push(
    await startEdge({
      port: edgePort,
      regionUrl: `http://127.0.0.1:${regionPort}`,
      persistDir: path.join(dataDir, 'edge'),
      authSecret: secrets.authSecret,
      internalSecret: secrets.internalSecret,
      devAuth: true,
      sink: jsonLines,
    }),
  );
  log('switchboard is up', {
    edge: `http://127.0.0.1:${edgePort}`,
    region: `http://127.0.0.1:${regionPort}`,
    engines: real ? 'real' : 'embedded',
    data: dataDir,
    startupMs: Date.now() - t0,
    try: `npm run chat -- --user alice --device d1 --with bob`,
  });
  for (const s of services) {
    s.child.on('exit', (code, signal) => {
      if (stopping) return;
      log(`${s.name} exited unexpectedly; stopping`, { code, signal });
      void stop('child-exit');
    });
  }
}

main().catch((err) => {
  console.error(JSON.stringify({ level: 'error', svc: 'start', msg: 'start failed', err: err instanceof Error ? err.message : String(err) }));
  process.exit(1);
});
