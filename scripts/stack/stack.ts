// Orchestration of the local engines: up (idempotent, parallel, waits for readiness), down, status.
// Region 1 (Cassandra, Kafka, Redis) always; region 2 (`--regions 2`: a second Cassandra datacenter,
// Kafka, Redis) and the Redis Cluster (`--redis-cluster`) on request. status and down cover all.
import fs from 'node:fs';
import path from 'node:path';
import { cassandraEngine, cassandraNodes, forgetRegion2Node, node1WantsJmx } from './cassandra.ts';
import { loadConfig, type Regions, type StackConfig } from './config.ts';
import type { Engine, EngineGroup, EngineName, ProbeResult } from './engine.ts';
import { kafkaEngine, kafkaNodes } from './kafka.ts';
import type { Logger } from './log.ts';
import { AbortedError, commandLine, isAlive, portOpen, readPid, removeFile, sleep, stopProcess, tailFile, withLock, writePid, type SpawnedEngine } from './process.ts';
import { formRedisCluster, redisEngine, redisNodes, type ClusterForm } from './redis.ts';

/** Which optional parts `up` brings up (status and down always look at every engine). */
export interface StackSelection {
  regions?: Regions;
  redisCluster?: boolean;
}

/** The engines of the selection; without one, every engine the stack knows (for status and down). */
export function engines(cfg: StackConfig, sel?: StackSelection): Engine[] {
  const cass = cassandraNodes(cfg);
  const kafka = kafkaNodes(cfg);
  const redis = redisNodes(cfg);
  const all: Engine[] = [
    cassandraEngine(cfg, cass.node1, { jmx: node1WantsJmx(cfg, sel?.regions ?? 1) }),
    kafkaEngine(cfg, kafka.region1),
    redisEngine(cfg, redis.region1),
    cassandraEngine(cfg, cass.node2),
    kafkaEngine(cfg, kafka.region2),
    redisEngine(cfg, redis.region2),
    ...redis.cluster.map((n) => redisEngine(cfg, n)),
  ];
  if (!sel) return all;
  const groups = new Set<EngineGroup>(['region1']);
  if (sel.regions === 2) groups.add('region2');
  if (sel.redisCluster) groups.add('redis-cluster');
  return all.filter((e) => groups.has(e.group));
}

const address = (e: Engine) => `${e.host}:${e.port}`;

// ---------------------------------------------------------------------------------------------
// Machine-wide owner records (<runDir>/<engine>-<port>.json): lets a second checkout see that a
// running engine belongs to another stack dir, reuse it, and say whose it is.

interface OwnerRecord {
  engine: EngineName;
  pid: number;
  stackDir: string;
  port: number;
  startedAt: string;
}

const ownerFile = (cfg: StackConfig, e: Engine) => path.join(cfg.runDir, `${e.name}-${e.port}.json`);

function writeOwner(cfg: StackConfig, e: Engine, pid: number): void {
  try {
    fs.mkdirSync(cfg.runDir, { recursive: true });
    const rec: OwnerRecord = { engine: e.name, pid, stackDir: cfg.stackDir, port: e.port, startedAt: new Date().toISOString() };
    fs.writeFileSync(ownerFile(cfg, e), JSON.stringify(rec) + '\n');
  } catch {
    /* informative only */
  }
}

function readOwner(cfg: StackConfig, e: Engine): OwnerRecord | undefined {
  try {
    const rec = JSON.parse(fs.readFileSync(ownerFile(cfg, e), 'utf8')) as OwnerRecord;
    if (!isAlive(rec.pid)) return undefined;
    const cmd = commandLine(rec.pid);
    return cmd.includes(e.kind === 'redis' ? 'redis-server' : `-Dswitchboard.engine=${e.name} `) ? rec : undefined;
  } catch {
    return undefined;
  }
}

function removeOwner(cfg: StackConfig, e: Engine, pid: number): void {
  try {
    const rec = JSON.parse(fs.readFileSync(ownerFile(cfg, e), 'utf8')) as OwnerRecord;
    if (rec.pid === pid) removeFile(ownerFile(cfg, e));
  } catch {
    /* none */
  }
}

/** The live pid of this stack's own process for the engine, or undefined (stale pid files are reported). */
function ownPid(e: Engine): { pid?: number; stale?: number } {
  const pid = readPid(e.pidFile);
  if (pid === undefined) return {};
  if (isAlive(pid) && e.ownsPid(pid)) return { pid };
  return { stale: pid };
}

async function probeIfOpen(e: Engine): Promise<{ open: boolean; probe: ProbeResult }> {
  if (!(await portOpen(e.port, e.host))) return { open: false, probe: { ready: false, error: 'port closed' } };
  return { open: true, probe: await e.probe() };
}

// ---------------------------------------------------------------------------------------------
// status

export type EngineState = 'running' | 'starting' | 'stopped' | 'external' | 'conflict';

export interface EngineStatus {
  engine: EngineName;
  group: EngineGroup;
  state: EngineState;
  ready: boolean;
  address: string;
  /** true if this stack dir started it (and `down` will stop it) */
  managed: boolean;
  pid?: number;
  owner?: string;
  info?: Record<string, unknown>;
  error?: string;
  stalePidFile?: number;
}

export async function engineStatus(cfg: StackConfig, e: Engine): Promise<EngineStatus> {
  const { pid, stale } = ownPid(e);
  const { open, probe } = await probeIfOpen(e);
  const base = { engine: e.name, group: e.group, address: address(e), ready: probe.ready, info: probe.info, error: probe.ready ? undefined : probe.error, stalePidFile: stale };
  if (pid !== undefined) return { ...base, state: probe.ready ? 'running' : 'starting', managed: true, pid };
  if (probe.ready) {
    const owner = readOwner(cfg, e);
    return {
      ...base,
      state: 'external',
      managed: false,
      pid: owner?.pid,
      owner: owner ? `stack ${owner.stackDir}` : e.name === 'redis' ? "the machine's Redis" : 'unknown (not started by a switchboard stack)',
    };
  }
  return { ...base, state: open ? 'conflict' : 'stopped', managed: false };
}

/** Every engine the stack knows, region 1 first (region 2 and the cluster nodes are 'stopped' when not up). */
export async function stackStatus(cfg: StackConfig = loadConfig()): Promise<EngineStatus[]> {
  return Promise.all(engines(cfg).map((e) => engineStatus(cfg, e)));
}

export interface GroupStatus {
  /** Some engine of the group is not stopped. */
  up: boolean;
  /** Every engine of the group is ready (and, for the Redis Cluster, cluster_state is ok on every node). */
  ready: boolean;
}

/**
 * Region 1 must be ready; region 2 and the Redis Cluster count when any of their engines is up.
 * `ok`: region 1 ready and every group that is up is ready.
 */
export function summarize(all: EngineStatus[]): { ok: boolean; groups: Record<EngineGroup, GroupStatus> } {
  const group = (g: EngineGroup): GroupStatus => {
    const list = all.filter((s) => s.group === g);
    const ready = list.length > 0 && list.every((s) => s.ready && (g !== 'redis-cluster' || s.info?.cluster_state === 'ok'));
    return { up: list.some((s) => s.state !== 'stopped'), ready };
  };
  const groups = { region1: group('region1'), region2: group('region2'), 'redis-cluster': group('redis-cluster') };
  const ok = groups.region1.ready && (!groups.region2.up || groups.region2.ready) && (!groups['redis-cluster'].up || groups['redis-cluster'].ready);
  return { ok, groups };
}

// ---------------------------------------------------------------------------------------------
// up

export type UpState = 'started' | 'already-running' | 'was-starting' | 'external';

export interface EngineUp {
  engine: EngineName;
  state: UpState;
  address: string;
  pid?: number;
  took_ms: number;
  info?: Record<string, unknown>;
}

export interface LogTail {
  file: string;
  tail: string[];
}

export class EngineFailedError extends Error {
  constructor(
    readonly engine: EngineName,
    message: string,
    readonly logs: LogTail[] = [],
  ) {
    super(message);
  }
}

async function waitReady(
  e: Engine,
  log: Logger,
  pid: number,
  spawned: SpawnedEngine | undefined,
  since: number,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  spawned?.exited.then((x) => (exited = x), () => (exited = { code: null, signal: null }));
  const deadline = since + e.timeoutMs;
  let lastProgress = Date.now();
  let lastError = '';
  for (;;) {
    if (signal?.aborted) throw new AbortedError();
    const { probe } = await probeIfOpen(e);
    if (probe.ready) return probe;
    lastError = probe.error ?? lastError;
    if (exited || (!spawned && !isAlive(pid))) {
      const how = exited ? (exited.signal ? `signal ${exited.signal}` : `exit code ${exited.code}`) : 'unknown exit';
      throw new EngineFailedError(e.name, `${e.name} process ${pid} exited (${how}) before ${e.waitingFor} was ready`);
    }
    const now = Date.now();
    if (now > deadline) throw new EngineFailedError(e.name, `${e.name} not ready after ${Math.round(e.timeoutMs / 1000)}s (last probe: ${lastError || 'n/a'})`);
    if (now - lastProgress >= 4000) {
      lastProgress = now;
      log.info(`waiting for ${e.waitingFor}… ${Math.round((now - since) / 1000)}s`, { pid, last_probe: lastError || undefined });
    }
    await sleep(500, signal);
  }
}

/** Attach the last lines of each of the engine's log files (main log and captured stdout/stderr). */
function withLogTail(err: EngineFailedError, e: Engine): EngineFailedError {
  const logs = e.logFiles
    .filter((f) => fs.existsSync(f) && fs.statSync(f).size > 0)
    .map((file, i) => ({
      file,
      tail: tailFile(file, i === 0 ? 30 : 15)
        .split('\n')
        .map((l) => (l.length > 400 ? l.slice(0, 400) + '…' : l)),
    }));
  return new EngineFailedError(err.engine, err.message, logs);
}

interface Started {
  engine: Engine;
  pid: number;
}

async function upEngine(cfg: StackConfig, e: Engine, root: Logger, started: Started[], signal?: AbortSignal): Promise<EngineUp> {
  const t0 = Date.now();
  const log = root.child(e.name, t0);
  const took = () => Date.now() - t0;

  const { pid, stale } = ownPid(e);
  if (pid !== undefined) {
    const probe = (await probeIfOpen(e)).probe;
    if (probe.ready) {
      log.info('already running', { pid, address: address(e) });
      return { engine: e.name, state: 'already-running', address: address(e), pid, took_ms: took(), info: probe.info };
    }
    log.info('process is running but not ready yet; waiting for it', { pid });
    try {
      const p = await waitReady(e, log, pid, undefined, t0, signal);
      log.info('ready', { pid, address: address(e) });
      return { engine: e.name, state: 'was-starting', address: address(e), pid, took_ms: took(), info: p.info };
    } catch (err) {
      throw err instanceof EngineFailedError ? withLogTail(err, e) : err;
    }
  }
  if (stale !== undefined) {
    log.warn('removing stale pid file', { pid: stale, file: e.pidFile });
    removeFile(e.pidFile);
  }

  const { open, probe } = await probeIfOpen(e);
  if (open) {
    if (probe.ready) {
      const owner = readOwner(cfg, e);
      const foreign = e.describeForeign?.(probe);
      if (e.name === 'redis' && !owner) log.info("using the machine's Redis (not managed by this stack; `down` leaves it alone)", { address: address(e), reply: probe.info?.reply });
      else log.info('already served on this port by another process; using it (not managed by this stack dir)', { address: address(e), owner_stack: owner?.stackDir, owner_pid: owner?.pid, ...probe.info });
      if (foreign) log.warn(`the ${e.name} on ${address(e)} is not this stack's: ${foreign}`);
      return { engine: e.name, state: 'external', address: address(e), pid: owner?.pid, took_ms: took(), info: probe.info };
    }
    throw new EngineFailedError(e.name, `${address(e)} is in use by something that is not a ready ${e.name} (${probe.error}); free the port or set ${e.portEnv}`);
  }
  for (const extra of e.extraPorts) {
    if (await portOpen(extra.port, e.host)) throw new EngineFailedError(e.name, `${e.name} ${extra.name} port ${e.host}:${extra.port} is already in use; free it or set ${extra.env}`);
  }
  const can = e.canStart();
  if (!can.ok) throw new EngineFailedError(e.name, can.reason);

  try {
    await e.prepare(log, signal);
  } catch (err) {
    if (err instanceof AbortedError || signal?.aborted) throw new AbortedError();
    throw new EngineFailedError(e.name, `${e.name}: ${(err as Error).message}`);
  }
  if (signal?.aborted) throw new AbortedError();
  const spawned = e.start(log);
  writePid(e.pidFile, spawned.pid);
  writeOwner(cfg, e, spawned.pid);
  started.push({ engine: e, pid: spawned.pid });
  const tStart = Date.now();
  try {
    const p = await waitReady(e, log, spawned.pid, spawned, tStart, signal);
    log.info(`${e.waitingFor} ready`, { pid: spawned.pid, address: address(e), start_ms: Date.now() - tStart, ...p.info });
    if (e.warmUp) await e.warmUp(log);
    log.info('ready', { pid: spawned.pid, address: address(e) });
    return { engine: e.name, state: 'started', address: address(e), pid: spawned.pid, took_ms: took(), info: p.info };
  } catch (err) {
    if (err instanceof AbortedError) throw err;
    // Don't leave a half-started engine behind.
    const failed = err instanceof EngineFailedError ? withLogTail(err, e) : new EngineFailedError(e.name, (err as Error).message);
    log.error('failed to become ready; stopping it', { pid: spawned.pid });
    await stopProcess(spawned.pid, 10_000);
    removeFile(e.pidFile);
    removeOwner(cfg, e, spawned.pid);
    throw failed;
  }
}

export interface UpResult {
  engines: EngineUp[];
  /** With `redisCluster`: whether the cluster was formed now or reused. */
  redisCluster?: ClusterForm;
  total_ms: number;
}

/**
 * Bring every engine of the selection up (in parallel; region 2's Cassandra once node 1 is ready)
 * and wait until each answers a real client request. Idempotent. If `signal` aborts, engines
 * started by *this call* are stopped again.
 */
export async function up(opts: { log: Logger; signal?: AbortSignal; cfg?: StackConfig } & StackSelection): Promise<UpResult> {
  const cfg = opts.cfg ?? loadConfig();
  const { log, signal } = opts;
  const sel: StackSelection = { regions: opts.regions ?? 1, redisCluster: opts.redisCluster ?? false };
  const t0 = Date.now();
  fs.mkdirSync(cfg.stackDir, { recursive: true });
  const lockFile = path.join(cfg.stackDir, 'up.lock');
  return withLock(lockFile, { timeoutMs: 300_000, signal, onWait: () => log.info('another `stack:up` is running for this stack dir; waiting for it', { lock: lockFile }) }, async () => {
    log.info('stack up', { stack_dir: cfg.stackDir, engines_cache: cfg.enginesCache, regions: sel.regions, redis_cluster: sel.redisCluster });
    const started: Started[] = [];
    const list = engines(cfg, sel);
    const byName = new Map<EngineName, Promise<EngineUp>>();
    for (const e of list) {
      const dep = e.dependsOn ? byName.get(e.dependsOn) : undefined;
      const run = dep
        ? (async () => {
            log.child(e.name).info(`waiting for ${e.dependsOn} to be ready before starting`);
            try {
              await dep;
            } catch (err) {
              if (err instanceof AbortedError) throw err;
              throw new EngineFailedError(e.name, `${e.name} not started: ${e.dependsOn} failed`);
            }
            return upEngine(cfg, e, log, started, signal);
          })()
        : upEngine(cfg, e, log, started, signal);
      run.catch(() => undefined); // observed by allSettled below
      byName.set(e.name, run);
    }
    // The cluster is formed as soon as its three nodes answer (in parallel with the JVMs starting).
    let cluster: ClusterForm | undefined;
    const clusterNodes = [...byName.entries()].filter(([name]) => name.startsWith('redis-cluster-')).map(([, p]) => p);
    const forming = sel.redisCluster
      ? (async () => {
          const nodes = await Promise.all(clusterNodes).catch(() => undefined);
          if (!nodes || signal?.aborted) return; // a node failed: reported with its own error
          try {
            cluster = await formRedisCluster(cfg, log.child('redis-cluster'), { mayReset: nodes.every((n) => n.state !== 'external'), signal });
          } catch (err) {
            if (signal?.aborted) throw new AbortedError();
            throw new EngineFailedError('redis-cluster-1', `redis cluster: ${(err as Error).message}`);
          }
        })()
      : Promise.resolve();
    const settled = await Promise.allSettled([...byName.values()]);
    const formed = await Promise.allSettled([forming]);
    // Without region 2: a node 1 that still lists region 2's (stopped) node forgets it.
    const node1 = settled.find((s) => s.status === 'fulfilled' && s.value.engine === 'cassandra' && s.value.state !== 'external');
    if (sel.regions !== 2 && node1 && !signal?.aborted) await forgetNode2(cfg, log, 'up');
    const failures = [...settled, ...formed].flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
    if (signal?.aborted || failures.some((f) => f instanceof AbortedError)) {
      for (const s of started) {
        const how = await stopProcess(s.pid, 30_000);
        removeFile(s.engine.pidFile);
        removeOwner(cfg, s.engine, s.pid);
        log.warn('interrupted: stopped engine started by this run', { engine: s.engine.name, pid: s.pid, how });
      }
      throw new AbortedError();
    }
    if (failures.length > 0) {
      for (const f of failures) {
        if (f instanceof EngineFailedError) {
          log.error(f.message, { engine: f.engine, logs: f.logs.length ? f.logs : undefined });
        } else {
          log.error((f as Error).message ?? String(f));
        }
      }
      const ok = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.engine] : []));
      if (ok.length) log.info('these engines are up and left running', { engines: ok });
      const names = failures.map((f) => (f instanceof EngineFailedError ? f.engine : 'stack')).join(', ');
      throw new Error(`stack:up failed: ${names} (see the log lines above)`);
    }
    const result: UpResult = { engines: settled.map((s) => (s as PromiseFulfilledResult<EngineUp>).value), redisCluster: cluster, total_ms: Date.now() - t0 };
    // (a cluster node's own probe info predates the cluster: its state is the line after them)
    for (const r of result.engines) log.info('summary', { engine: r.engine, state: r.state, address: r.address, pid: r.pid, took_ms: r.took_ms, ...(r.engine.startsWith('redis-cluster-') ? {} : r.info) });
    if (cluster) log.info('summary', { engine: 'redis-cluster', state: cluster.state, nodes: cluster.nodes, took_ms: cluster.took_ms, cluster_state: 'ok' });
    log.info('stack is up', { total_ms: result.total_ms });
    return result;
  });
}

// ---------------------------------------------------------------------------------------------
// down

async function forgetNode2(cfg: StackConfig, log: Logger, when: 'up' | 'down'): Promise<void> {
  const clog = log.child('cassandra');
  try {
    const r = await forgetRegion2Node(cfg, clog);
    if (r === 'no-jmx' && when === 'down') clog.info("node 1 lists region 2's node and has no JMX to forget it now (started without --regions 2); it does at its next stack:up");
    if (r === 'no-jmx' && when === 'up') clog.warn("node 1 still lists region 2's stopped node and has no JMX to forget it: schema changes wait for it and SimpleStrategy scans fail until node 1 restarts (stack:down, stack:up)");
    if (r === 'node2-running') clog.info("region 2's Cassandra node is running and joined to node 1 (stack:down stops it)");
  } catch (err) {
    clog.warn("could not make node 1 forget region 2's node", { error: (err as Error).message });
  }
}

export interface EngineDown {
  engine: EngineName;
  result: 'stopped' | 'killed' | 'not-running' | 'left-running';
  pid?: number;
  took_ms: number;
}

async function downEngine(cfg: StackConfig, e: Engine, root: Logger): Promise<EngineDown> {
  const t0 = Date.now();
  const log = root.child(e.name, t0);
  const { pid, stale } = ownPid(e);
  if (pid !== undefined) {
    log.info('stopping (SIGTERM, up to 30s, then SIGKILL)', { pid });
    const how = await stopProcess(pid, 30_000);
    removeFile(e.pidFile);
    removeOwner(cfg, e, pid);
    const result = how === 'killed' ? 'killed' : 'stopped';
    (how === 'killed' ? log.warn : log.info)(how === 'killed' ? 'did not stop in 30s; killed' : 'stopped', { pid });
    return { engine: e.name, result, pid, took_ms: Date.now() - t0 };
  }
  if (stale !== undefined) {
    log.info('removing stale pid file', { pid: stale });
    removeFile(e.pidFile);
  }
  const { probe } = await probeIfOpen(e);
  if (probe.ready) {
    const owner = readOwner(cfg, e);
    log.info(
      owner ? `left running: it belongs to stack ${owner.stackDir} (run stack:down there)` : e.name === 'redis' ? "left running: the machine's Redis is not managed by this stack" : 'left running: not started by this stack',
      { address: address(e), owner_pid: owner?.pid },
    );
    return { engine: e.name, result: 'left-running', pid: owner?.pid, took_ms: Date.now() - t0 };
  }
  // (region 2 and the cluster nodes are usually not up: no line for each of them)
  if (e.group === 'region1') log.info('not running');
  return { engine: e.name, result: 'not-running', took_ms: Date.now() - t0 };
}

/**
 * Stops every engine this stack dir started, whatever `up` was asked for. Region 2's Cassandra node
 * stops first and node 1 then forgets it (so that region 1 alone works as before at its next
 * start) before stopping too; everything else stops in parallel.
 */
export async function down(opts: { log: Logger; cfg?: StackConfig }): Promise<EngineDown[]> {
  const cfg = opts.cfg ?? loadConfig();
  const list = engines(cfg);
  const node2 = list.find((e) => e.name === 'region2-cassandra')!;
  const node2Down = downEngine(cfg, node2, opts.log);
  return Promise.all(
    list.map(async (e) => {
      if (e === node2) return node2Down;
      if (e.name === 'cassandra') {
        const r2 = await node2Down.catch(() => undefined);
        if (r2?.result !== 'left-running' && ownPid(e).pid !== undefined && (await probeIfOpen(e)).probe.ready) await forgetNode2(cfg, opts.log, 'down');
      }
      return downEngine(cfg, e, opts.log);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// restart one engine (fault injection in tests)

export interface EngineRestart {
  engine: EngineName;
  /** The stack dir that owns the engine (this one, or the checkout that started it). */
  stackDir: string;
  oldPid: number;
  pid: number;
  how: 'terminated' | 'killed' | 'not-running';
  /** From the stop signal until it answers again. */
  took_ms: number;
}

/**
 * Stops one running engine (SIGTERM, or SIGKILL when `hard`) and starts it again from the stack
 * dir that started it (this one, or another checkout's, found by its owner record) on the same
 * ports and data, then waits until it answers a real client request. Only engines started by a
 * switchboard stack can be restarted (never the machine's Redis).
 */
export async function restartEngine(name: EngineName, opts: { log: Logger; hard?: boolean; downMs?: number; cfg?: StackConfig }): Promise<EngineRestart> {
  const cfg = opts.cfg ?? loadConfig();
  const find = (c: StackConfig) => engines(c).find((x) => x.name === name)!;
  const mine = find(cfg);
  let stackDir = cfg.stackDir;
  let pid = ownPid(mine).pid;
  if (pid === undefined) {
    const owner = readOwner(cfg, mine);
    if (!owner) throw new Error(`cannot restart ${name} on ${address(mine)}: no switchboard stack started it`);
    stackDir = owner.stackDir;
    pid = owner.pid;
  }
  const ownerCfg = stackDir === cfg.stackDir ? cfg : loadConfig({ ...process.env, STACK_DIR: stackDir });
  const e = find(ownerCfg);
  const log = opts.log.child(e.name);
  const t0 = Date.now();
  log.info(opts.hard ? 'restart: killing (SIGKILL)' : 'restart: stopping (SIGTERM)', { pid, stack_dir: stackDir });
  let how: EngineRestart['how'];
  if (opts.hard) {
    try {
      process.kill(pid, 'SIGKILL');
      how = 'killed';
    } catch {
      how = 'not-running';
    }
    for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(100);
  } else how = await stopProcess(pid, 30_000);
  removeFile(e.pidFile);
  removeOwner(ownerCfg, e, pid);
  for (let i = 0; i < 100 && (await portOpen(e.port, e.host)); i++) await sleep(100);
  if (opts.downMs) await sleep(opts.downMs);
  const lockFile = path.join(ownerCfg.stackDir, 'up.lock');
  const up = await withLock(lockFile, { timeoutMs: 300_000 }, () => upEngine(ownerCfg, e, opts.log, []));
  log.info('restart: ready again', { pid: up.pid, took_ms: Date.now() - t0 });
  return { engine: name, stackDir, oldPid: pid, pid: up.pid!, how, took_ms: Date.now() - t0 };
}
