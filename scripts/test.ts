/**
 * `npm test`: every test file in protocol/, region/ and edge/ in one node:test run.
 *
 * Real engines: with CI=true the run first brings up Cassandra, Kafka and Redis and the Redis
 * Cluster (`ensureStack`, as `npm run stack:up -- --redis-cluster`) and runs every suite but
 * scripts/test's; then region 2 joins (`--regions 2`) and scripts/test's suites run with
 * TEST_REGION2_* set (see `needsRegion2`). A failure to start fails the run; the real-engine
 * suites can never be skipped. Without CI, the real-engine suites run when the stack is already up
 * (`npm run stack:up`; region 2's and the cluster's suites when those are up too) and are reported
 * as skipped, with the reason, when not.
 *
 *   npm test                       everything
 *   npm test -- e2e sequencer      only files whose path contains one of the words
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ROOT } from './lib/processes.ts';

const log = (msg: string, fields: Record<string, unknown> = {}) =>
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: 'info', svc: 'test', msg, ...fields }) + '\n');

/** Test files under the test folders and their subfolders (one per concept), in path order. */
function testFiles(filters: string[]): string[] {
  const out: string[] = [];
  for (const dir of ['protocol/test', 'region/test', 'edge/test', 'scripts/test']) {
    const abs = path.join(ROOT, dir);
    if (!fs.existsSync(abs)) continue;
    for (const f of (fs.readdirSync(abs, { recursive: true }) as string[]).sort()) {
      const rel = `${dir}/${f}`;
      if (f.endsWith('.test.ts') && (filters.length === 0 || filters.some((w) => rel.includes(w)))) out.push(rel);
    }
  }
  return out;
}

/**
 * Files that need region 2 (scripts/test). With CI=true they run after the others, once region 2
 * has joined: while Cassandra's datacenter2 is in the cluster, a SimpleStrategy keyspace (the
 * region's, in every other suite) has a token range there, and range scans of it at LOCAL_*
 * consistency are unavailable in datacenter1.
 */
const needsRegion2 = (file: string) => file.startsWith('scripts/test/');

/** Set when this run brought the engines up, so it also takes them down. */
let startedStack = false;

const stackLog = (line: string) => process.stderr.write(line.endsWith('\n') ? line : line + '\n');

type Info = Awaited<ReturnType<typeof import('./stack/index.ts').ensureStack>>;

function envOf(info: Info): Record<string, string> {
  const env: Record<string, string> = {
    TEST_CASSANDRA_CONTACT_POINTS: info.cassandra.contactPoints.join(','),
    TEST_CASSANDRA_LOCAL_DC: info.cassandra.localDataCenter,
    TEST_KAFKA_BROKERS: info.kafka.brokers.join(','),
    TEST_REDIS_URL: info.redis.url,
  };
  if (info.region2) {
    env.TEST_REGION2_CASSANDRA_CONTACT_POINTS = info.region2.cassandra.contactPoints.join(',');
    env.TEST_REGION2_CASSANDRA_LOCAL_DC = info.region2.cassandra.localDataCenter;
    env.TEST_REGION2_KAFKA_BROKERS = info.region2.kafka.brokers.join(',');
    env.TEST_REGION2_REDIS_URL = info.region2.redis.url;
  }
  if (info.redisCluster) env.TEST_REDIS_CLUSTER_NODES = info.redisCluster.nodes.join(',');
  return env;
}

/** CI: bring up region 1 and the Redis Cluster, or (`region2`) also region 2. */
async function ciEnv(region2: boolean): Promise<Record<string, string>> {
  const { ensureStack } = await import('./stack/index.ts');
  log(`CI=true: bringing up the real engines (${region2 ? 'two regions' : 'region 1'} and the Redis Cluster)`);
  const t0 = Date.now();
  const info = await ensureStack({ regions: region2 ? 2 : 1, redisCluster: true, log: stackLog });
  log('real engines ready', { ms: Date.now() - t0 });
  return envOf(info);
}

/** Without CI: whatever is up. */
async function localEnv(): Promise<Record<string, string>> {
  const { stackStatus, connectionInfo } = await import('./stack/index.ts');
  const status = await stackStatus();
  if (!status.region1) {
    log('real engines not running: their suites will be skipped (npm run stack:up to include them)');
    return {};
  }
  const info = connectionInfo({ regions: status.region2 ? 2 : 1, redisCluster: status.redisCluster });
  log('real engines are up: their suites will run', {
    region2: status.region2 || 'not up (npm run stack:up -- --regions 2 to include its suites)',
    redis_cluster: status.redisCluster || 'not up (npm run stack:up -- --redis-cluster to include its suites)',
  });
  if (status.region2) {
    log("region 2's Cassandra is joined: range scans of SimpleStrategy keyspaces at LOCAL_* consistency fail in datacenter1 (the region's storage suites); CI runs those before region 2 joins");
  }
  return envOf(info);
}

let child: ReturnType<typeof spawn> | undefined;

function runFiles(files: string[], env: NodeJS.ProcessEnv): Promise<number> {
  log('running tests', { files: files.length });
  const c = spawn(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=900000', ...files],
    { cwd: ROOT, env, stdio: 'inherit' },
  );
  child = c;
  return new Promise((resolve) => c.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

async function main(): Promise<void> {
  const ci = process.env.CI === 'true';
  const files = testFiles(process.argv.slice(2));
  if (files.length === 0) throw new Error('no test files matched');
  const forward = (sig: NodeJS.Signals) => child?.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  let code = 0;
  let interrupted = false;
  process.once('SIGINT', () => (interrupted = true));
  process.once('SIGTERM', () => (interrupted = true));
  try {
    if (ci) {
      const { stackStatus } = await import('./stack/index.ts');
      const status = await stackStatus();
      startedStack = !(status.region1 && status.region2 && status.redisCluster);
      const first = files.filter((f) => !needsRegion2(f));
      const second = files.filter(needsRegion2);
      if (first.length) {
        if (status.region2) log("region 2's Cassandra is already joined: SimpleStrategy range scans at LOCAL_* consistency will fail in datacenter1");
        code = await runFiles(first, { ...process.env, ...(await ciEnv(false)) });
      }
      if (second.length && !interrupted) {
        const c2 = await runFiles(second, { ...process.env, ...(await ciEnv(true)) });
        code = code || c2;
      }
    } else {
      code = await runFiles(files, { ...process.env, ...(await localEnv()) });
    }
  } finally {
    if (startedStack) {
      log('stopping the engines this run started');
      const { down } = await import('./stack/stack.ts');
      const { createLogger, stderrSink } = await import('./stack/log.ts');
      await down({ log: createLogger(stderrSink) }).catch((err) => log('stack:down failed', { err: String(err) }));
    }
  }
  process.exit(code);
}

main().catch((err) => {
  log('test run failed before the tests', { err: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
