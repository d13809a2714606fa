// Redis: region 1 prefers the machine's own Redis on 127.0.0.1:<REDIS_PORT> and starts `redis-server`
// only if nothing answers. Region 2 (`--regions 2`) and the Redis Cluster nodes (`--redis-cluster`)
// are always `redis-server`s of the stack's own, without persistence.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { HOST, type StackConfig } from './config.ts';
import type { Engine, EngineGroup, EngineName, ProbeResult } from './engine.ts';
import type { Logger } from './log.ts';
import { commandExists, commandLine, removeFile, spawnDetached } from './process.ts';

export type RespReply = string | number | null | RespReply[] | { error: string };

/** Parses one RESP2 reply at `at`; undefined if incomplete. */
function parseResp(buf: Buffer, at = 0): { value: RespReply; end: number } | undefined {
  const nl = buf.indexOf('\r\n', at);
  if (nl < 0) return undefined;
  const type = String.fromCharCode(buf[at]!);
  const line = buf.toString('utf8', at + 1, nl);
  switch (type) {
    case '+':
      return { value: line, end: nl + 2 };
    case '-':
      return { value: { error: line }, end: nl + 2 };
    case ':':
      return { value: Number(line), end: nl + 2 };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: nl + 2 };
      if (buf.length < nl + 2 + len + 2) return undefined;
      return { value: buf.toString('utf8', nl + 2, nl + 2 + len), end: nl + 2 + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: nl + 2 };
      const items: RespReply[] = [];
      let pos = nl + 2;
      for (let i = 0; i < n; i++) {
        const item = parseResp(buf, pos);
        if (!item) return undefined;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default:
      throw new Error(`unexpected RESP reply: ${buf.toString('utf8', at, Math.min(buf.length, at + 80))}`);
  }
}

/** One Redis command over a fresh socket (no client library; the stack needs a handful of commands). */
export function redisCommand(port: number, args: string[], host = HOST, timeoutMs = 2000): Promise<RespReply> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, reply?: RespReply) => {
      sock.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    sock.setTimeout(timeoutMs, () => done(new Error('timeout')));
    sock.once('error', (e) => done(e));
    sock.once('connect', () => sock.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      try {
        const r = parseResp(buf);
        if (r) done(null, r.value);
      } catch (e) {
        done(e as Error);
      }
    });
  });
}

/** `CLUSTER INFO` as a map (cluster_state, cluster_slots_assigned, cluster_known_nodes, …). */
export async function clusterInfo(port: number, host = HOST): Promise<Record<string, string>> {
  const r = await redisCommand(port, ['CLUSTER', 'INFO'], host);
  if (typeof r !== 'string') throw new Error(`CLUSTER INFO on ${host}:${port}: ${JSON.stringify(r)}`);
  return Object.fromEntries(
    r
      .split(/\r?\n/)
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
}

/** One redis-server of the stack. */
export interface RedisNode {
  name: EngineName;
  group: EngineGroup;
  port: number;
  dir: string;
  portEnv: string;
  /** region1: the machine's Redis if it answers, else an own one with AOF (today's behaviour). */
  mode: 'machine-or-own' | 'own' | 'cluster';
}

export function redisNodes(cfg: StackConfig): { region1: RedisNode; region2: RedisNode; cluster: RedisNode[] } {
  return {
    region1: { name: 'redis', group: 'region1', port: cfg.redis.port, dir: cfg.redis.dir, portEnv: 'REDIS_PORT', mode: 'machine-or-own' },
    region2: { name: 'region2-redis', group: 'region2', port: cfg.region2.redis.port, dir: cfg.region2.redis.dir, portEnv: 'REGION2_REDIS_PORT', mode: 'own' },
    cluster: cfg.redisCluster.ports.map((port, i) => ({
      name: `redis-cluster-${i + 1}` as EngineName,
      group: 'redis-cluster' as const,
      port,
      dir: path.join(cfg.redisCluster.dir, String(port)),
      portEnv: 'REDIS_CLUSTER_PORTS',
      mode: 'cluster' as const,
    })),
  };
}

/** `PING` as the reply line would read ("+PONG", or "-NOAUTH …", "-LOADING …"): anything but +PONG means not ready. */
export async function redisPing(port: number, host = HOST, timeoutMs = 1500): Promise<string> {
  const r = await redisCommand(port, ['PING'], host, timeoutMs);
  return typeof r === 'string' ? `+${r}` : r !== null && typeof r === 'object' && 'error' in r ? `-${r.error}` : JSON.stringify(r);
}

export function redisEngine(cfg: StackConfig, r: RedisNode = redisNodes(cfg).region1): Engine {
  const redisServer = process.env.REDIS_SERVER || 'redis-server';
  const nodesConf = path.join(r.dir, 'nodes.conf');
  return {
    name: r.name,
    kind: 'redis',
    group: r.group,
    host: HOST,
    port: r.port,
    portEnv: r.portEnv,
    // the cluster bus: port + 10000
    extraPorts: r.mode === 'cluster' ? [{ name: 'cluster bus', port: r.port + 10000, env: 'REDIS_CLUSTER_PORTS' }] : [],
    waitingFor: 'PING',
    timeoutMs: r.mode === 'cluster' ? cfg.redisCluster.timeoutMs : 20_000,
    pidFile: path.join(r.dir, 'redis.pid'),
    logFiles: [path.join(r.dir, 'redis.log'), path.join(r.dir, 'stdout.log')],

    ownsPid(pid) {
      const cmd = commandLine(pid);
      return cmd.includes('redis-server') && cmd.includes(`:${r.port}`);
    },

    async probe(): Promise<ProbeResult> {
      try {
        const reply = await redisPing(r.port);
        // "-NOAUTH ..." or "-LOADING ..." also mean "a Redis is there"; only +PONG is ready.
        if (reply !== '+PONG') return { ready: false, error: reply, info: { reply } };
        if (r.mode !== 'cluster') return { ready: true, info: { reply } };
        // A cluster node is up when it answers; whether the cluster is formed is the stack's next step.
        const ci = await clusterInfo(r.port).catch((e: Error) => ({ error: e.message }) as Record<string, string>);
        if (ci.error) return { ready: false, error: `not a cluster node? CLUSTER INFO: ${ci.error}`, info: { reply } };
        return { ready: true, info: { reply, cluster_state: ci.cluster_state, cluster_slots_assigned: Number(ci.cluster_slots_assigned), cluster_known_nodes: Number(ci.cluster_known_nodes) } };
      } catch (e) {
        return { ready: false, error: (e as Error).message };
      }
    },

    canStart() {
      return commandExists(redisServer)
        ? { ok: true }
        : { ok: false, reason: `nothing answers PING on ${HOST}:${r.port} and '${redisServer}' is not installed (apt-get install redis-server, or run Redis there yourself)` };
    },

    async prepare(log: Logger) {
      fs.mkdirSync(r.dir, { recursive: true });
      // Not running, so any nodes.conf is from a dead run: its peers' ids and slots are gone with their
      // (unpersisted) data. Start as a fresh node; the stack forms the cluster again.
      if (r.mode === 'cluster' && fs.existsSync(nodesConf)) {
        log.info('removing the cluster config of a previous run (the node starts fresh)', { file: nodesConf });
        removeFile(nodesConf);
      }
    },

    start(log) {
      // Loopback only, in the foreground (the stack tracks the process), logs and data in its dir.
      const common = ['--bind', HOST, '--port', String(r.port), '--protected-mode', 'yes', '--daemonize', 'no', '--dir', r.dir, '--logfile', path.join(r.dir, 'redis.log')];
      if (r.mode !== 'machine-or-own') {
        const args = [
          ...common,
          '--appendonly', 'no',
          '--save', '',
          ...(r.mode === 'cluster' ? ['--cluster-enabled', 'yes', '--cluster-config-file', nodesConf, '--cluster-node-timeout', '5000'] : []),
        ];
        log.info(r.mode === 'cluster' ? 'starting redis-server (cluster node, no persistence)' : 'starting redis-server (no persistence)', { dir: r.dir });
        return spawnDetached(redisServer, args, { cwd: r.dir, logFile: path.join(r.dir, 'stdout.log') });
      }
      const args = [...common, '--appendonly', 'yes', '--save', '60 1'];
      log.info('starting own redis-server (no Redis answered on the port)', { dir: r.dir });
      return spawnDetached(redisServer, args, { cwd: r.dir, logFile: path.join(r.dir, 'stdout.log') });
    },
  };
}

export function redisConnection(cfg: StackConfig, region: 1 | 2 = 1): { url: string } {
  return { url: `redis://${HOST}:${region === 1 ? cfg.redis.port : cfg.region2.redis.port}` };
}

export const CLUSTER_SLOTS = 16384;

export interface ClusterForm {
  state: 'formed' | 'already-formed';
  nodes: string[];
  took_ms: number;
}

/**
 * Forms the Redis Cluster of the stack's cluster nodes (all answering PING) and waits until every
 * node says cluster_state:ok. A healthy cluster of exactly these nodes is reused. Anything else
 * (fresh nodes, a half-formed or broken cluster) is reset (FLUSHALL + CLUSTER RESET HARD: these are
 * the stack's own nodes without persistence) when `mayReset`, and created again with redis-cli.
 */
export async function formRedisCluster(cfg: StackConfig, log: Logger, opts: { mayReset: boolean; signal?: AbortSignal }): Promise<ClusterForm> {
  const t0 = Date.now();
  const ports = cfg.redisCluster.ports;
  const nodes = ports.map((p) => `${HOST}:${p}`);
  const infos = await Promise.all(ports.map((p) => clusterInfo(p)));
  const healthy = (i: Record<string, string>) => i.cluster_state === 'ok' && Number(i.cluster_slots_assigned) === CLUSTER_SLOTS && Number(i.cluster_known_nodes) === ports.length;
  if (infos.every(healthy)) {
    // Same cluster on every node (not three healthy clusters that happen to have 3 nodes each)?
    const myIds = await Promise.all(ports.map((p) => redisCommand(p, ['CLUSTER', 'MYID'])));
    const seen = await redisCommand(ports[0]!, ['CLUSTER', 'NODES']);
    if (typeof seen === 'string' && myIds.every((id) => typeof id === 'string' && seen.includes(id))) {
      log.info('cluster already formed and healthy; reusing it', { nodes, cluster_state: 'ok' });
      return { state: 'already-formed', nodes, took_ms: Date.now() - t0 };
    }
  }
  if (!opts.mayReset) {
    throw new Error(`the Redis Cluster on ${nodes.join(', ')} is not healthy (cluster_state ${infos.map((i) => i.cluster_state).join('/')}) and not all its nodes were started by this stack; not touching it`);
  }
  const stale = infos.some((i) => Number(i.cluster_known_nodes) > 1 || Number(i.cluster_slots_assigned) > 0);
  if (stale) {
    log.warn('resetting a stale or broken cluster (its nodes forget each other and their data)', {
      states: infos.map((i, k) => `${nodes[k]} ${i.cluster_state} slots=${i.cluster_slots_assigned} known=${i.cluster_known_nodes}`),
    });
    for (const p of ports) {
      await redisCommand(p, ['FLUSHALL']);
      const r = await redisCommand(p, ['CLUSTER', 'RESET', 'HARD']);
      if (r !== 'OK') throw new Error(`CLUSTER RESET HARD on ${HOST}:${p}: ${JSON.stringify(r)}`);
    }
  }
  const redisCli = process.env.REDIS_CLI || 'redis-cli';
  if (!commandExists(redisCli)) throw new Error(`'${redisCli}' is not installed (apt-get install redis-tools); it creates the cluster`);
  const args = ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'];
  log.info('creating the cluster', { cmd: `${redisCli} ${args.join(' ')}` });
  const out = await new Promise<string>((resolve, reject) => {
    execFile(redisCli, args, { timeout: 60_000, signal: opts.signal }, (err, stdout, stderr) => {
      const text = `${stdout}${stderr}`;
      if (err) reject(new Error(`redis-cli --cluster create failed: ${err.message}\n${text.split('\n').slice(-15).join('\n')}`));
      else resolve(text);
    });
  });
  // eslint-disable-next-line no-control-regex
  const summary = out.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => l.trim()).filter((l) => /^\[OK\]|^\[ERR\]|^\[WARNING\]/.test(l));
  log.info('redis-cli --cluster create done', { output: summary.slice(-4) });

  const deadline = Date.now() + cfg.redisCluster.timeoutMs;
  let lastProgress = Date.now();
  for (;;) {
    const states = await Promise.all(ports.map((p) => clusterInfo(p).then((i) => i.cluster_state ?? '?', (e: Error) => e.message)));
    if (states.every((s) => s === 'ok')) break;
    if (Date.now() > deadline) throw new Error(`cluster not ok after ${Math.round(cfg.redisCluster.timeoutMs / 1000)}s: ${states.map((s, k) => `${nodes[k]} ${s}`).join(', ')}`);
    if (Date.now() - lastProgress >= 4000) {
      lastProgress = Date.now();
      log.info(`waiting for cluster_state:ok on every node… ${Math.round((Date.now() - t0) / 1000)}s`, { states });
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  log.info('cluster_state:ok on every node', { nodes, took_ms: Date.now() - t0 });
  return { state: 'formed', nodes, took_ms: Date.now() - t0 };
}

/** host:port of each cluster node. */
export function redisClusterNodes(cfg: StackConfig): string[] {
  return cfg.redisCluster.ports.map((p) => `${HOST}:${p}`);
}
