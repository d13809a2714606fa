/**
 * `npm test`: every test file in protocol/, region/ and edge/ in one node:test run.
 *
 * Real engines: with CI=true the run first brings up two regions of Cassandra, Kafka and Redis and
 * the Redis Cluster (`ensureStack`, as `npm run stack:up -- --regions 2 --redis-cluster`) and runs
 * every suite with TEST_*, TEST_REGION2_* and TEST_REDIS_CLUSTER_NODES set. A failure to start
 * fails the run; the real-engine suites can never be skipped. Without CI, the real-engine suites
 * run when the stack is already up (`npm run stack:up`; region 2's and the cluster's suites when
 * those are up too) and are reported as skipped, with the reason, when not. The region creates
 * its keyspaces with NetworkTopologyStrategy in its own datacenter, so region 2's joined
 * datacenter holds no replica of a single-region suite's data.
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

/** CI: bring up both regions and the Redis Cluster. */
async function ciEnv(): Promise<Record<string, string>> {
  const { ensureStack } = await import('./stack/index.ts');
  log('CI=true: bringing up the real engines (two regions and the Redis Cluster)');
  const t0 = Date.now();
  const info = await ensureStack({ regions: 2, redisCluster: true, log: stackLog });
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
  try {
    if (ci) {
      const { stackStatus } = await import('./stack/index.ts');
      const status = await stackStatus();
      startedStack = !(status.region1 && status.region2 && status.redisCluster);
      code = await runFiles(files, { ...process.env, ...(await ciEnv()) });
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
