/**
 * `npm run bench:connections`: what idle connected users and a reconnect storm cost the edge,
 * against baselines measured the same way in the same run, one process at a time:
 *   1. raw: a plain Node `ws` server (scripts/bench/idle-ws-server.ts) holding the sockets;
 *   2. floor: the runtime's own floor, a minimal Worker + Durable Object in workerd through
 *      Miniflare (scripts/bench/floor-worker.js: hibernatable sockets over 16 objects by user,
 *      the compatibility date and flags of wrangler.toml, so no compression unless
 *      --compression), served on the Worker's own socket as scripts/edge-runner.ts serves the
 *      edge: the edge's memory target is against this one;
 *   3. edge: the edge in workerd (scripts/edge-runner.ts) beside a region (embedded engines;
 *      `--real`: the real ones of `npm run stack:up`), then the storm: its workerd killed with
 *      SIGKILL and the edge started again on the same port and state dir, as a crash or a
 *      redeploy would, while every device comes back through the SDK's own backoff.
 * Every device is its own user (`u<i>`, device `d1`) and a real SDK client (SwitchboardClient,
 * `ws` sockets, MemoryStore) in this process, with a token minted here with the run's AUTH_SECRET.
 * At most CONN_CONCURRENCY connects are in flight; a connect counts at `hello`. Memory is the
 * server process's RSS (VmRSS): before the first connect, once all are connected, at +5, +30 and
 * +CONN_SETTLE_SECONDS s, and after every socket is closed. The clients offer permessage-deflate,
 * as browsers do; what each server negotiated is recorded (`ws.extensions`). `--compression` drops
 * `no_web_socket_compression` for the edge (EDGE_WS_COMPRESSION=true) and the floor, and lets the
 * raw server negotiate too.
 * Prints progress while it runs, a table and the targets, and writes .bench/connections.json.
 * Ctrl-C or SIGTERM stops everything it started and removes its temp dirs (npm runs it with
 * `exec node --import tsx`: the tsx CLI kills a child that has not answered a relayed signal
 * within 30 ms, which a bench busy with thousands of sockets often has not, and a shell in
 * between would not pass SIGTERM on).
 *
 * One process keeps up: against the floor it made 2,000–3,100 SDK connects/s on this 2-core
 * machine (bench client at 80–115 % of one core), so the clients are not split over threads
 * (threads would not add cores). Where permessage-deflate is negotiated the ws client spends
 * about 3× the CPU per connect; the table says when the bench client may have been the limit.
 * The server process's open descriptors and memory mappings are shown against their limits: a
 * workerd that runs out of descriptors stops accepting, or dies (`accept: Too many open files`).
 *
 * | variable | default | |
 * |---|---|---|
 * | CONN_DEVICES | 10000 | devices (= users), one socket each |
 * | CONN_SETTLE_SECONDS | 60 | idle time after the last connect, before the memory figure |
 * | CONN_CONCURRENCY | 256 | connects in flight at most |
 * | CONN_TARGETS | raw,floor,edge | which to measure, in this order (the storm needs edge) |
 * | CONN_STORM | 1 | 0 skips the reconnect storm |
 * | CONN_CONNECT_TIMEOUT_SECONDS | 900 | devices not online by then are given up (as when none comes online for 60 s, or the server dies); the rest are measured and the target is NOT MET |
 * | CONN_STORM_TIMEOUT_SECONDS | 180 | how long to wait for every device to resume after the kill |
 * | CONN_CLOSED_SECONDS | 5 | after closing every socket, wait this long before the last sample |
 * | CONN_VERBOSE | 0 | 1 streams the region's and the edge's logs to stderr |
 * | BENCH_EDGE_STATE | tmpfs | where workerd keeps Durable Object storage, for the edge and the floor (edge-state.ts); the storm restarts the edge on it |
 * | BENCH_OUT | .bench/connections.json | |
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Miniflare } from 'miniflare';
import WebSocket from 'ws';
import { SwitchboardClient, type SocketLike } from '@switchboard/protocol/client';
import { mintToken } from '../../edge/src/http/auth.ts';
import { freePort, waitForHttp } from '../lib/ports.ts';
import { ROOT, startEdge, startRegion, type Service } from '../lib/processes.ts';
// Benches measure capacity, not the rate limits (edge/src/limits/limits.ts): raised for them.
import { BENCH_EDGE_VARS } from './edge-vars.ts';
import { removeNamespace } from './cleanup.ts';
import { cpuPercent, cpuSnapshot, pidsOf, type Target } from './cpu.ts';
import { edgeState, edgeStateDir } from './edge-state.ts';
import { num } from './env-number.ts';

// ---- configuration ----------------------------------------------------------------------------

const TARGETS = ['raw', 'floor', 'edge'] as const;
type TargetName = (typeof TARGETS)[number];

function targets(): TargetName[] {
  const v = process.env.CONN_TARGETS?.trim() || TARGETS.join(',');
  const list = v.split(',').map((s) => s.trim());
  if (list.some((t) => !(TARGETS as readonly string[]).includes(t))) {
    console.error(`CONN_TARGETS: expected a comma-separated subset of ${TARGETS.join(',')}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return TARGETS.filter((t) => list.includes(t));
}

const flag = (name: string, dflt: boolean) => (process.env[name] === undefined || process.env[name] === '' ? dflt : !['0', 'false', 'no'].includes(process.env[name]!.toLowerCase()));

const CFG = {
  devices: Math.round(num('CONN_DEVICES', 10_000, 1, 100_000)),
  settleSeconds: num('CONN_SETTLE_SECONDS', 60, 1, 3600),
  concurrency: Math.round(num('CONN_CONCURRENCY', 256, 1, 10_000)),
  targets: targets(),
  storm: flag('CONN_STORM', true),
  connectTimeoutSeconds: num('CONN_CONNECT_TIMEOUT_SECONDS', 900, 10, 7200),
  stormTimeoutSeconds: num('CONN_STORM_TIMEOUT_SECONDS', 180, 10, 3600),
  closedSeconds: num('CONN_CLOSED_SECONDS', 5, 0, 600),
  verbose: flag('CONN_VERBOSE', false),
  // The storm kills workerd and starts it again on this state: tmpfs keeps it across a process
  // crash, as Cloudflare's replicated storage would, without a disk sync per commit.
  edgeState: edgeState('tmpfs'),
  compression: process.argv.includes('--compression'),
  real: process.argv.includes('--real'),
  out: path.resolve(ROOT, process.env.BENCH_OUT || '.bench/connections.json'),
};

/** The targets: the edge's memory per idle socket within this factor of the floor's, connects per second, the storm. */
const GOALS = { memoryVsFloor: 1.25, connectsPerSec: 1000, stormSeconds: 30 };
/** Seconds after the last connect at which RSS is sampled (and CONN_SETTLE_SECONDS). */
const SAMPLE_AT = [...new Set([5, 30, 60].filter((s) => s < CFG.settleSeconds).concat(CFG.settleSeconds))];

const progress = (msg: string) => process.stderr.write(`bench:connections: ${msg}\n`);
const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);
const r1 = (x: number) => Math.round(x * 10) / 10;
const secondsSince = (t: number) => r1((performance.now() - t) / 1000);

// ---- lifecycle: everything started is stopped, also on Ctrl-C -------------------------------

class Aborted extends Error {
  constructor() {
    super('interrupted');
  }
}
const abort = new AbortController();
const check = () => {
  if (abort.signal.aborted) throw new Aborted();
};
/** Waits `ms`, or less when interrupted (then throws). */
async function sleep(ms: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      abort.signal.removeEventListener('abort', done);
      resolve();
    }
    abort.signal.addEventListener('abort', done, { once: true });
  });
  check();
}

const services = new Set<Service>();
const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let floorMf: Miniflare | null = null;
let firstSignalAt = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (firstSignalAt === 0) {
      firstSignalAt = Date.now();
      progress(`${sig}: stopping (again to kill at once)`);
      abort.abort();
    } else if (Date.now() - firstSignalAt > 1000) process.exit(130);
    // else: the same Ctrl-C arriving twice (the terminal's process group, and tsx relaying it)
  });
}
// The last resort when the process exits without the orderly stop (a second Ctrl-C, a crash).
process.on('exit', () => {
  for (const s of services) s.kill();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of floorMf ? pidsOf({ pgrp: ownPgrp(), comm: 'workerd' }) : []) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  for (const d of dirs) removeDir(d);
});

/**
 * Runs `fn` and takes off the SIGINT/SIGTERM listeners it added: importing wrangler and creating a
 * Miniflare each add one that exits at once, before this bench has stopped what it started (the
 * orderly stop disposes of Miniflare, which takes its own hooks off).
 */
async function ownSignals<T>(fn: () => T | Promise<T>): Promise<T> {
  const before = new Map((['SIGINT', 'SIGTERM'] as const).map((sig) => [sig, new Set(process.listeners(sig))]));
  try {
    return await fn();
  } finally {
    for (const [sig, had] of before) for (const l of process.listeners(sig)) if (!had.has(l)) process.off(sig, l);
  }
}

/** Removes a temp dir; a process still exiting may write into it meanwhile, so retried, and never throws. */
function removeDir(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  } catch (err) {
    progress(`could not remove ${dir}: ${(err as Error).message}`);
  }
}

/** Stops a service and waits until nothing of its process group is left (workerd may outlive the runner). */
async function stopService(svc: Service): Promise<void> {
  await svc.stop().catch(() => {});
  const pgrp = svc.child.pid!;
  for (let i = 0; pidsOf({ pgrp }).length > 0; i++) {
    if (i === 100) {
      try {
        process.kill(-pgrp, 'SIGKILL');
      } catch {}
    }
    if (i > 150) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  services.delete(svc);
}

function ownPgrp(): number {
  return Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[2]);
}

// ---- memory and limits --------------------------------------------------------------------------

/** Resident set of `pid` in KB (VmRSS), or null if it is gone. */
function rssKb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The soft limit on open files of this process, which the servers it starts inherit. */
function openFilesLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return !m ? null : m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return null;
  }
}

/** What a server process holds: open descriptors and memory mappings, and its limits on them. */
interface ProcFigures {
  fds: number | null;
  fdLimit: number | null;
  maps: number | null;
  mapLimit: number | null;
}

function procFigures(pid: number): ProcFigures {
  if (!fs.existsSync(`/proc/${pid}`)) throw new Error(`process ${pid} is gone`);
  const read = <T>(f: () => T): T | null => {
    try {
      return f();
    } catch {
      return null;
    }
  };
  return {
    fds: read(() => fs.readdirSync(`/proc/${pid}/fd`).length),
    fdLimit: read(() => Number(/^Max open files\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))![1])),
    maps: read(() => fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').length - 1),
    mapLimit: read(() => Number(fs.readFileSync('/proc/sys/vm/max_map_count', 'utf8'))),
  };
}

const fmtProc = (p: ProcFigures) => `${p.fds ?? '-'}/${p.fdLimit ?? '-'} fds, ${p.maps ?? '-'}/${p.mapLimit ?? '-'} maps`;

/** Fails up front when this process (client sockets) or a server (accepted sockets) cannot hold them all. */
function checkLimits(): void {
  const need = CFG.devices + 512;
  const limit = openFilesLimit();
  if (limit !== null && limit < need) {
    console.error(
      `open files: the limit is ${limit} (ulimit -n), but CONN_DEVICES=${CFG.devices} sockets need about ${need} descriptors in this process and as many in each server. ` +
        `Raise it (ulimit -n ${need}) or lower CONN_DEVICES.`,
    );
    process.exit(2);
  }
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (hi! - lo! + 1 < CFG.devices + 256) {
      console.error(`ephemeral ports: ${lo}-${hi} (net.ipv4.ip_local_port_range) cannot hold CONN_DEVICES=${CFG.devices} client sockets to one server port; lower CONN_DEVICES`);
      process.exit(2);
    }
  } catch {}
}

interface Sample {
  point: string;
  /** Seconds after the last device came online (null: before the first connect or after the close). */
  afterConnectedS: number | null;
  pid: number;
  rssKb: number | null;
  /** Open descriptors and memory mappings of the process. */
  fds: number | null;
  maps: number | null;
}

function takeSample(point: string, afterConnectedS: number | null, pid: number): Sample {
  let proc: ProcFigures | null = null;
  try {
    proc = procFigures(pid);
  } catch {}
  return { point, afterConnectedS, pid, rssKb: rssKb(pid), fds: proc?.fds ?? null, maps: proc?.maps ?? null };
}

// ---- the devices: one SDK client each -----------------------------------------------------------

interface Device {
  user: string;
  token: string;
  client: SwitchboardClient;
  /** The current socket (the SDK opens a new one per attempt). */
  ws: WebSocket | null;
  /** What the server negotiated on the socket that last came online (`ws.extensions`, '' = none). */
  extensions: string;
  /** Sockets opened (connect attempts) in all. */
  attempts: number;
  /** performance.now() of the last `hello`, and of the last completed resume (onResumed). */
  onlineAt: number;
  resumedAt: number;
}

/** One SDK client per device against `url`, all in this process. */
class Fleet {
  devices: Device[];
  private droppedAttempts = 0;
  constructor(url: string, tokens: string[]) {
    this.devices = tokens.map((token, i) => {
      const d: Device = { user: `u${i}`, token, client: null as unknown as SwitchboardClient, ws: null, extensions: '', attempts: 0, onlineAt: 0, resumedAt: 0 };
      d.client = new SwitchboardClient({
        url,
        token: () => d.token,
        // The `ws` client offers permessage-deflate, as browsers do.
        socket: (u) => {
          d.attempts++;
          d.ws = new WebSocket(u);
          return d.ws as unknown as SocketLike;
        },
        onStatus: (s) => {
          if (s !== 'online') return;
          d.onlineAt = performance.now();
          d.extensions = d.ws?.extensions ?? '';
        },
        onResumed: () => {
          d.resumedAt = performance.now();
        },
      });
      return d;
    });
  }

  /** Connect attempts in all, of the devices given up too. */
  attempts(): number {
    return this.devices.reduce((n, d) => n + d.attempts, this.droppedAttempts);
  }

  count(pred: (d: Device) => boolean): number {
    let n = 0;
    for (const d of this.devices) if (pred(d)) n++;
    return n;
  }

  /** What the server negotiated on each device's last socket to come online: `ws.extensions` values and their counts ('' = none). */
  extensions(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const d of this.devices) out[d.extensions] = (out[d.extensions] ?? 0) + 1;
    return out;
  }

  /** Gives up the devices that are not online: closed (no more retries), and no longer counted. */
  keepOnline(): void {
    const [keep, drop] = [this.devices.filter((d) => d.onlineAt > 0), this.devices.filter((d) => d.onlineAt === 0)];
    for (const d of drop) {
      d.client.close();
      d.ws?.terminate();
      this.droppedAttempts += d.attempts;
    }
    this.devices = keep;
  }

  /** At once, on the way out: no close handshake, no reconnect. */
  dropAll(): void {
    for (const d of this.devices) {
      d.client.close();
      d.ws?.terminate();
    }
  }

  /** Closes every client (a 1000 close each), then drops any socket still open after 15 s. */
  async closeAll(): Promise<void> {
    for (const d of this.devices) d.client.close();
    const deadline = performance.now() + 15_000;
    while (this.count((d) => d.ws !== null && d.ws.readyState !== WebSocket.CLOSED) > 0 && performance.now() < deadline) await sleep(100);
    for (const d of this.devices) d.ws?.terminate();
  }
}

/**
 * When to stop waiting for resumes: every device online and none has completed a resume for
 * longer than the SDK's request timeout (10 s), so the rest failed. The SDK does not retry a
 * failed resume until the device's next connect (it catches up the conversations it follows).
 */
class ResumeStall {
  static readonly MS = 20_000;
  private last = -1;
  private since = performance.now();
  why: string | null = null;

  stalled(resumed: number, allOnline: boolean): boolean {
    const now = performance.now();
    if (resumed !== this.last || !allOnline) {
      this.last = resumed;
      this.since = now;
      return false;
    }
    if (now - this.since < ResumeStall.MS) return false;
    this.why = `every device online and no resume completed for ${ResumeStall.MS / 1000} s: the rest failed, and the SDK resumes again only at the next connect`;
    return true;
  }
}

// ---- one target: connect all, settle, sample, close ---------------------------------------------

interface ConnectFigures {
  /** Devices asked to connect, and those that came online (the rest were given up: `stopReason`). */
  requested: number;
  devices: number;
  stopReason: string | null;
  concurrency: number;
  /** First attempt → last `hello`. */
  seconds: number;
  /** Online devices / seconds. */
  perSec: number;
  /** First attempt → 90 % of the devices online (null: never), and the rate until then: a tail of stragglers shows as the gap to `perSec`. */
  to90Seconds: number | null;
  perSecTo90: number | null;
  /** Sockets opened in all (more than `devices`: the SDK retried). */
  attempts: number;
  /** First attempt → every device's first resume completed. */
  allResumedSeconds: number | null;
  /** CPU % of one core while connecting. */
  cpuPercent: Record<string, number | null>;
  /** The server process at its busiest: open descriptors and memory mappings, and their limits. */
  peak: ProcFigures | null;
}

interface TargetResult {
  target: TargetName;
  process: string;
  pid: number;
  connect: ConnectFigures;
  /** `ws.extensions` of the sockets, once all were connected. */
  extensions: Record<string, number>;
  compressionNegotiated: boolean;
  samples: Sample[];
  /** RSS growth from before the first connect to +CONN_SETTLE_SECONDS s, per socket. */
  perSocketKb: number | null;
  /** The region's and the edge's warn/error lines over the run (storm included), by message. */
  serviceLogLines?: Record<string, number>;
  /** The server process died (why, from its last output): nothing after that was measured. */
  died: string | null;
}

interface Server {
  url: string;
  /** The process that holds the sockets (its RSS is the figure), looked up again when asked. */
  pid(): number;
  describe: string;
  cpu: Map<string, Target>;
  /** Its last lines of output, when it has stopped answering. */
  tail?: () => string[];
}

/** Bench client CPU (% of one core) while connecting above which its connect rate may be its own limit. */
const CLIENT_BUSY_PERCENT = 90;

/** Connecting gives up on the devices not yet online when none came online for this long. */
const CONNECT_STALL_SECONDS = 60;

/**
 * Connects every device, at most CONN_CONCURRENCY at a time. A server that stops taking devices
 * (none online for CONNECT_STALL_SECONDS, its process gone, or CONN_CONNECT_TIMEOUT_SECONDS) is a
 * result, not a crash: the devices not online are given up and the rest go on being measured.
 */
async function connectAll(name: TargetName, fleet: Fleet, server: Server): Promise<ConnectFigures> {
  const n = fleet.devices.length;
  let next = 0;
  let online = 0;
  let lastHelloAt = 0;
  let at90 = 0;
  let stopReason: string | null = null;
  const server_ = { gone: false };
  let peak: ProcFigures | null = null;
  let giveUp: (reason: string) => void = () => {};
  const stopped = new Promise<void>((resolve) => (giveUp = (reason) => ((stopReason ??= reason), resolve())));
  const t0 = performance.now();
  const cpu0 = cpuSnapshot(server.cpu);
  let lastTick = { at: t0, online: 0 };
  let lastGain = t0;
  const ticker = setInterval(() => {
    const now = performance.now();
    const rate = ((online - lastTick.online) * 1000) / (now - lastTick.at);
    if (online > lastTick.online) lastGain = now;
    lastTick = { at: now, online };
    let proc: ProcFigures | null = null;
    try {
      proc = procFigures(server.pid());
    } catch {
      server_.gone = true;
      giveUp(`the server process is gone${server.tail ? `; its last output:\n${server.tail().slice(-12).join('\n')}` : ''}`);
    }
    if (proc && (peak === null || (proc.fds ?? 0) > (peak.fds ?? 0))) peak = proc;
    progress(
      `${name}: ${online}/${n} online (${Math.round(rate)}/s now, ${Math.round((online * 1000) / (now - t0))}/s since the first), ${fleet.attempts()} attempts, ${Math.min(CFG.concurrency, n - online)} in flight` +
        (proc ? `; server ${fmtProc(proc)}` : ''),
    );
    if (now - lastGain > CONNECT_STALL_SECONDS * 1000) giveUp(`no device came online for ${CONNECT_STALL_SECONDS} s${proc ? ` (server ${fmtProc(proc)})` : ''}`);
  }, 1000);
  const timer = setTimeout(() => giveUp(`CONN_CONNECT_TIMEOUT_SECONDS=${CFG.connectTimeoutSeconds} passed`), CFG.connectTimeoutSeconds * 1000);
  const lane = async () => {
    while (next < n && !abort.signal.aborted && stopReason === null) {
      const d = fleet.devices[next++]!;
      try {
        await d.client.connect();
      } catch {
        continue; // closed here after giving up
      }
      online++;
      lastHelloAt = performance.now();
      if (online === Math.ceil(n * 0.9)) at90 = lastHelloAt;
    }
  };
  try {
    await Promise.race([
      Promise.all(Array.from({ length: Math.min(CFG.concurrency, n) }, lane)),
      stopped,
      new Promise<never>((_, reject) => abort.signal.addEventListener('abort', () => reject(new Aborted()), { once: true })),
    ]);
  } finally {
    clearInterval(ticker);
    clearTimeout(timer);
  }
  if (stopReason !== null) {
    progress(`${name}: giving up on the ${n - online} devices not online: ${stopReason}`);
    fleet.keepOnline();
  }
  const cpu = cpuPercent(cpu0, cpuSnapshot(server.cpu));
  const seconds = (lastHelloAt - t0) / 1000;
  // The resume that follows each connect (the SDK's `onResumed`); none from a server that is gone.
  const stall = new ResumeStall();
  const deadline = server_.gone ? 0 : performance.now() + 120_000;
  while (fleet.count((d) => d.resumedAt === 0) > 0 && performance.now() < deadline && !stall.stalled(fleet.count((d) => d.resumedAt > 0), true)) await sleep(50);
  const lastResumed = Math.max(...fleet.devices.map((d) => d.resumedAt));
  const unresumed = fleet.count((d) => d.resumedAt === 0);
  if (unresumed) progress(`${name}: ${unresumed} devices not resumed (${server_.gone ? 'the server is gone' : (stall.why ?? 'not within 120 s')})`);
  const figures: ConnectFigures = {
    requested: n,
    devices: online,
    stopReason,
    concurrency: CFG.concurrency,
    seconds: r1(seconds),
    perSec: online ? Math.round(online / seconds) : 0,
    to90Seconds: at90 ? r1((at90 - t0) / 1000) : null,
    perSecTo90: at90 ? Math.round((Math.ceil(n * 0.9) * 1000) / (at90 - t0)) : null,
    attempts: fleet.attempts(),
    allResumedSeconds: unresumed || !online ? null : r1((lastResumed - t0) / 1000),
    cpuPercent: cpu,
    peak,
  };
  progress(
    `${name}: ${online}${online < n ? ` of ${n}` : ''} online in ${figures.seconds} s: ${figures.perSec} connects/s (${figures.attempts} attempts; all resumed at ${figures.allResumedSeconds ?? '-'} s); ` +
      `CPU % of one core: ${fmtCpu(cpu)}${peak ? `; server at most ${fmtProc(peak)}` : ''}`,
  );
  if (online === 0) throw new Error(`${name}: no device came online (${stopReason})`);
  return figures;
}

const fmtCpu = (cpu: Record<string, number | null>) =>
  Object.entries(cpu)
    .filter(([k]) => k !== 'capacity')
    .map(([k, v]) => `${k} ${v ?? '-'}`)
    .join(', ');

/** Connects every device to `server`, lets them sit idle, samples RSS along the way; leaves them connected. */
async function measure(name: TargetName, server: Server, tokens: string[]): Promise<{ result: TargetResult; fleet: Fleet }> {
  const fleet = new Fleet(server.url, tokens);
  const samples: Sample[] = [];
  let died: string | null = null;
  /** A sample, or null once the server process is gone (then `died` says why). */
  const sample = (point: string, afterConnectedS: number | null): Sample | null => {
    let pid: number;
    try {
      pid = server.pid();
    } catch (err) {
      died ??= `its process is gone (${(err as Error).message})`;
      return null;
    }
    const s = takeSample(point, afterConnectedS, pid);
    samples.push(s);
    progress(`${name}: RSS ${point}: ${mb(s.rssKb)} MB (pid ${s.pid}, ${s.fds ?? '-'} fds, ${s.maps ?? '-'} maps)`);
    return s;
  };
  // Its code loaded and running before the baseline sample, as the edge's is.
  await waitForHttp(`${server.url}/healthz`, 30_000);
  await sleep(2000);
  const before = sample('before', null)!;
  const connect = await connectAll(name, fleet, server);
  const connectedAt = performance.now();
  sample('connected', 0);
  const extensions = fleet.extensions();
  progress(`${name}: negotiated extensions: ${fmtExtensions(extensions)}`);
  let last: Sample | null = null;
  for (const s of SAMPLE_AT) {
    if (died) break;
    await sleep(Math.max(0, connectedAt + s * 1000 - performance.now()));
    last = sample(`+${s} s`, s);
  }
  if (died) {
    died = crashLine(connect.stopReason) ?? died;
    progress(`${name}: the server died: ${died}`);
  }
  const online = fleet.count((d) => d.client.status === 'online');
  if (!died && online < fleet.devices.length) progress(`${name}: only ${online}/${fleet.devices.length} devices online at +${CFG.settleSeconds} s`);
  const perSocketKb = last?.rssKb != null && before.rssKb !== null && last.pid === before.pid ? r1((last.rssKb - before.rssKb) / fleet.devices.length) : null;
  if (!died) progress(`${name}: ${perSocketKb ?? '-'} KB per idle socket (RSS growth at +${CFG.settleSeconds} s / ${fleet.devices.length})`);
  const compressionNegotiated = Object.entries(extensions).some(([e, count]) => count > 0 && e.includes('permessage-deflate'));
  return { result: { target: name, process: server.describe, pid: before.pid, connect, extensions, compressionNegotiated, samples, perSocketKb, died }, fleet };
}

/** The line of a dead server's last output that says why (workerd's fatal exception), if any. */
function crashLine(reason: string | null): string | null {
  const lines = (reason ?? '').split('\n');
  return lines.reverse().find((l) => /fatal|uncaught|too many open files|out of memory/i.test(l))?.slice(0, 200) ?? null;
}

/** Closes every socket, waits CONN_CLOSED_SECONDS and takes the last sample (none from a dead server). */
async function closeAndSample(name: TargetName, fleet: Fleet, server: Server, result: TargetResult): Promise<void> {
  progress(`${name}: closing every socket …`);
  if (result.died) return fleet.dropAll();
  await fleet.closeAll();
  await sleep(CFG.closedSeconds * 1000);
  let pid: number;
  try {
    pid = server.pid();
  } catch {
    return;
  }
  const s = takeSample(`closed +${CFG.closedSeconds} s`, null, pid);
  result.samples.push(s);
  progress(`${name}: RSS ${s.point}: ${mb(s.rssKb)} MB (pid ${s.pid}, ${s.fds ?? '-'} fds)`);
}

const mb = (kb: number | null | undefined) => (kb === null || kb === undefined ? '-' : (kb / 1024).toFixed(1));
const fmtExtensions = (e: Record<string, number>) =>
  Object.entries(e)
    .map(([k, v]) => `${k || 'none'} × ${v}`)
    .join(', ');

// ---- the baselines ------------------------------------------------------------------------------

async function raw(tokens: string[]): Promise<TargetResult> {
  progress(`raw: a ws server in its own Node process${CFG.compression ? ' (permessage-deflate)' : ''} …`);
  const child = spawn(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(ROOT, 'scripts/bench/idle-ws-server.ts'), ...(CFG.compression ? ['--compression'] : [])], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let fleet: Fleet | null = null;
  try {
    const { port, pid } = await new Promise<{ port: number; pid: number }>((resolve, reject) => {
      readline.createInterface({ input: child.stdout! }).once('line', (l) => resolve(JSON.parse(l) as { port: number; pid: number }));
      child.once('exit', (code) => reject(new Error(`idle-ws-server exited (${code})`)));
    });
    const server: Server = { url: `http://127.0.0.1:${port}`, pid: () => pid, describe: 'node (ws)', cpu: new Map<string, Target>([['bench client', { self: true }], ['ws server', { pid }]]) };
    const m = await measure('raw', server, tokens);
    fleet = m.fleet;
    await closeAndSample('raw', m.fleet, server, m.result);
    return m.result;
  } finally {
    fleet?.dropAll();
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    }
    children.delete(child);
  }
}

/** The compatibility date and flags of wrangler.toml, which the floor runs with as the edge does. */
async function wranglerCompatibility(): Promise<{ date: string; flags: string[] }> {
  const { experimental_readRawConfig } = await ownSignals(() => import('wrangler'));
  const { rawConfig } = experimental_readRawConfig({ config: path.join(ROOT, 'wrangler.toml') });
  if (!rawConfig.compatibility_date) throw new Error('wrangler.toml has no compatibility_date');
  return { date: rawConfig.compatibility_date, flags: rawConfig.compatibility_flags ?? [] };
}

/**
 * The floor worker in workerd through Miniflare, on a socket of the Worker itself
 * (`unsafeDirectSockets`), with wrangler.toml's compatibility date and flags: served exactly as
 * scripts/edge-runner.ts serves the edge (Miniflare's own entry Worker in front would add a hop
 * and negotiate permessage-deflate by its own compatibility date).
 */
async function floor(tokens: string[]): Promise<TargetResult> {
  const name = 'floor';
  progress(`${name}: floor-worker.js in workerd through Miniflare, hibernatable sockets over 16 objects, on the Worker's own socket${CFG.compression ? ', compression on' : ''} …`);
  const compat = await wranglerCompatibility();
  const dir = edgeStateDir(CFG.edgeState);
  dirs.add(dir);
  const [port, directPort] = [await freePort(), await freePort()];
  const flags = compat.flags.filter((f) => !(CFG.compression && f === 'no_web_socket_compression'));
  const mf = await ownSignals(() => new Miniflare({
    host: '127.0.0.1',
    port,
    modules: true,
    scriptPath: path.join(ROOT, 'scripts/bench/floor-worker.js'),
    compatibilityDate: compat.date,
    compatibilityFlags: flags,
    durableObjects: { GATEWAYS: { className: 'Gateway', useSQLite: true } },
    durableObjectsPersist: dir,
    unsafeDirectSockets: [{ host: '127.0.0.1', port: directPort }],
  }));
  floorMf = mf;
  let fleet: Fleet | null = null;
  try {
    await mf.ready;
    const url = (await mf.unsafeGetDirectURL()).origin;
    const pgrp = ownPgrp();
    const pid = () => {
      const pids = pidsOf({ pgrp, comm: 'workerd' });
      if (pids.length !== 1) throw new Error(`floor: expected one workerd process in this process group, found ${pids.length}`);
      return pids[0]!;
    };
    const server: Server = { url, pid, describe: 'workerd', cpu: new Map<string, Target>([['bench client', { self: true }], ['floor workerd', { pgrp, comm: 'workerd' }]]) };
    const m = await measure(name, server, tokens);
    fleet = m.fleet;
    await closeAndSample(name, m.fleet, server, m.result);
    return m.result;
  } finally {
    fleet?.dropAll();
    await mf.dispose().catch(() => {});
    floorMf = null;
    removeDir(dir);
    dirs.delete(dir);
  }
}

// ---- the edge and the storm ---------------------------------------------------------------------

interface StormResult {
  devices: number;
  /** Seconds from the SIGKILL: the edge listening again, every device online (`hello`), every device resumed. */
  edgeListeningSeconds: number | null;
  allOnlineSeconds: number | null;
  allResumedSeconds: number | null;
  /** From the edge listening again to every device resumed: the part that is the edge's and the SDK's. */
  listeningToAllResumedSeconds: number | null;
  notOnline: number;
  notResumed: number;
  /** Why the wait ended before every device resumed (null: all resumed, or CONN_STORM_TIMEOUT_SECONDS). */
  stopReason: string | null;
  /** Sockets the SDK clients opened after the kill, in all (refused ones included). */
  reconnectAttempts: number;
  attemptsPerDevice: number;
  maxAttemptsOneDevice: number;
  extensions: Record<string, number>;
  /** The restarted edge's workerd at its most descriptors during the storm. */
  peak: ProcFigures | null;
  /** RSS of the restarted edge's workerd once every device resumed. */
  rssKbAfter: number | null;
  met: boolean;
}

async function edge(tokens: string[], authSecret: string): Promise<{ result: TargetResult; storm: StormResult | null }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-conn-'));
  dirs.add(dir);
  const edgeDir = edgeStateDir(CFG.edgeState);
  dirs.add(edgeDir);
  const internalSecret = crypto.randomBytes(24).toString('base64url');
  const namespace = `bc_${crypto.randomBytes(4).toString('hex')}`;
  const regionEnv: Record<string, string> = { NAMESPACE: namespace, LOG_LEVEL: 'warn' };
  if (CFG.real) {
    progress('real engines: ensureStack …');
    const { ensureStack } = await import('../stack/index.ts');
    const stack = await ensureStack({ signal: abort.signal, log: (l) => CFG.verbose && progress(`stack: ${l}`) });
    Object.assign(regionEnv, {
      CASSANDRA_CONTACT_POINTS: stack.cassandra.contactPoints.join(','),
      CASSANDRA_LOCAL_DC: stack.cassandra.localDataCenter,
      CASSANDRA_CONSISTENCY: 'LOCAL_ONE',
      KAFKA_BROKERS: stack.kafka.brokers.join(','),
      REDIS_URL: stack.redis.url,
    });
  }
  const logLines: Record<string, number> = {};
  let listeningAt = 0;
  const sink = (svc: string, line: string) => {
    if (CFG.verbose) process.stderr.write(`[${svc}] ${line}\n`);
    if (svc === 'edge' && line.includes('Ready on')) listeningAt = performance.now();
    // Counted by message, so a storm's lines say what happened: JSON lines at warn/error, and
    // workerd's own error lines (an exhausted resource shows there, e.g. SQLITE_NOMEM).
    const level = /"level":"(warn|error)"/.exec(line)?.[1];
    const runtime = !line.startsWith('{') && /\berror: /.exec(line) ? line.replace(/^.*?\berror: (e = )?/, '').replace(/\S+\.c\+\+:\d+: /g, '').slice(0, 100) : null;
    if (!level && !runtime) return;
    // Ids and numbers taken out, so one kind of line is one count.
    const key = (level ? `${svc} ${level}: ${/"msg":"([^"]{1,80})/.exec(line)?.[1] ?? 'other'}` : `${svc} runtime error: ${runtime}`).replace(/\b[0-9a-f]{8,}\b/g, '…');
    logLines[key] = (logLines[key] ?? 0) + 1;
  };
  let fleet: Fleet | null = null;
  let region: Service | null = null;
  let edgeSvc: Service | null = null;
  try {
    const [regionPort, edgePort] = [await freePort(), await freePort()];
    progress(`edge: region on ${CFG.real ? `the real engines (NAMESPACE=${namespace})` : 'the embedded engines'} …`);
    region = await startRegion({ port: regionPort, dataDir: path.join(dir, 'region'), internalSecret, env: regionEnv, sink });
    services.add(region);
    check();
    // The edge runner drops `no_web_socket_compression` with EDGE_WS_COMPRESSION=true.
    if (CFG.compression) process.env.EDGE_WS_COMPRESSION = 'true';
    const launchEdge = async () => {
      // A restart right after a kill may lose a race for the port: tried again.
      for (let attempt = 1; ; attempt++) {
        try {
          const svc = await startEdge({ port: edgePort, regionUrl: region!.url, persistDir: edgeDir, authSecret, internalSecret, devAuth: false, vars: BENCH_EDGE_VARS, sink });
          services.add(svc);
          return svc;
        } catch (err) {
          if (attempt >= 3 || abort.signal.aborted) throw err;
          await sleep(1000);
        }
      }
    };
    progress(`edge: the edge in workerd (scripts/edge-runner.ts${CFG.compression ? ', EDGE_WS_COMPRESSION=true' : ''}; state on ${CFG.edgeState}) …`);
    edgeSvc = await launchEdge();
    check();
    const workerdOf = (svc: Service) => () => {
      const pids = pidsOf({ pgrp: svc.child.pid!, comm: 'workerd' });
      if (pids.length !== 1) throw new Error(`edge: expected one workerd process under the edge runner, found ${pids.length}`);
      return pids[0]!;
    };
    const server: Server = {
      url: edgeSvc.url,
      pid: workerdOf(edgeSvc),
      describe: 'workerd (edge)',
      tail: () => edgeSvc?.tail ?? [],
      cpu: new Map<string, Target>([
        ['bench client', { self: true }],
        ['edge workerd', { pgrp: edgeSvc.child.pid!, comm: 'workerd' }],
        ['region', { pgrp: region.child.pid! }],
      ]),
    };
    const m = await measure('edge', server, tokens);
    fleet = m.fleet;
    m.result.serviceLogLines = logLines;
    let storm: StormResult | null = null;
    if (CFG.storm && m.result.died) progress('storm: not run, the edge is gone');
    else if (CFG.storm) {
      const s = await reconnectStorm(m.fleet, edgeSvc, server.pid(), async () => {
        edgeSvc = await launchEdge();
        return edgeSvc;
      }, () => listeningAt);
      storm = s.result;
      server.pid = workerdOf(s.edge);
    }
    await closeAndSample('edge', m.fleet, server, m.result);
    return { result: m.result, storm };
  } finally {
    fleet?.dropAll();
    // The edge first: the region would otherwise be asked for routes by a draining edge.
    for (const svc of [edgeSvc, region]) {
      if (!svc) continue;
      await stopService(svc as Service);
    }
    for (const d of [dir, edgeDir]) {
      removeDir(d);
      dirs.delete(d);
    }
    if (CFG.real) await removeNamespace(namespace, regionEnv).catch((err) => progress(`cleanup of ${namespace} incomplete: ${(err as Error).message}`));
  }
}

/**
 * Every socket dropped at once: the edge's workerd is killed with SIGKILL, its runner stopped, and
 * the edge started again on the same port and state dir, while every device comes back through
 * the SDK's own backoff. Done when every device has completed the resume after its reconnect.
 */
async function reconnectStorm(fleet: Fleet, edgeSvc: Service, workerdPid: number, relaunch: () => Promise<Service>, listening: () => number): Promise<{ result: StormResult; edge: Service }> {
  const n = fleet.devices.length;
  const attemptsBefore = fleet.devices.map((d) => d.attempts);
  progress(`storm: SIGKILL to the edge's workerd (pid ${workerdPid}) with ${fleet.count((d) => d.client.status === 'online')} devices online …`);
  const killAt = performance.now();
  process.kill(workerdPid, 'SIGKILL');
  // The runner (Node, Miniflare) is not where sockets live: stopped so it cleans up, then everything starts again.
  const restarted = (async () => {
    await stopService(edgeSvc);
    return relaunch();
  })();
  const restart: { failed: Error | null } = { failed: null };
  restarted.catch((err: Error) => (restart.failed = err));
  const online = () => fleet.count((d) => d.onlineAt > killAt);
  const resumed = () => fleet.count((d) => d.resumedAt > killAt);
  const attempts = () => fleet.devices.reduce((a, d, i) => a + d.attempts - attemptsBefore[i]!, 0);
  const deadline = killAt + CFG.stormTimeoutSeconds * 1000;
  let nextTick = killAt + 1000;
  const stall = new ResumeStall();
  let peak: ProcFigures | null = null;
  const restartedWorkerd = () => {
    const svc = [...services].find((x) => x !== edgeSvc && x.url === edgeSvc.url);
    const pid = svc ? pidsOf({ pgrp: svc.child.pid!, comm: 'workerd' })[0] : undefined;
    try {
      return pid === undefined ? null : procFigures(pid);
    } catch {
      return null;
    }
  };
  try {
    while (resumed() < n && performance.now() < deadline && !restart.failed && !stall.stalled(resumed(), online() === n)) {
      await sleep(50);
      if (performance.now() >= nextTick) {
        nextTick += 1000;
        const up = listening() > killAt ? `edge listening since +${r1((listening() - killAt) / 1000)} s` : 'edge down';
        const proc = restartedWorkerd();
        if (proc && (peak === null || (proc.fds ?? 0) > (peak.fds ?? 0))) peak = proc;
        progress(`storm +${secondsSince(killAt)} s: ${up}; ${online()}/${n} online, ${resumed()}/${n} resumed, ${attempts()} reconnect attempts${proc ? `; server ${fmtProc(proc)}` : ''}`);
      }
    }
  } catch (err) {
    // Interrupted: the edge being started again must be known before the caller stops everything.
    await restarted.catch(() => {});
    throw err;
  }
  const edge = await restarted;
  const last = (pick: (d: Device) => number) => {
    const ts = fleet.devices.map(pick);
    return ts.every((t) => t > killAt) ? r1((Math.max(...ts) - killAt) / 1000) : null;
  };
  const perDevice = fleet.devices.map((d, i) => d.attempts - attemptsBefore[i]!);
  const listeningS = listening() > killAt ? r1((listening() - killAt) / 1000) : null;
  const allResumedSeconds = last((d) => d.resumedAt);
  let rssKbAfter: number | null = null;
  const pids = pidsOf({ pgrp: edge.child.pid!, comm: 'workerd' });
  if (pids.length === 1) rssKbAfter = rssKb(pids[0]!);
  const result: StormResult = {
    devices: n,
    edgeListeningSeconds: listeningS,
    allOnlineSeconds: last((d) => d.onlineAt),
    allResumedSeconds,
    listeningToAllResumedSeconds: allResumedSeconds !== null && listeningS !== null ? r1(allResumedSeconds - listeningS) : null,
    notOnline: n - online(),
    notResumed: n - resumed(),
    stopReason: resumed() === n ? null : (stall.why ?? `CONN_STORM_TIMEOUT_SECONDS=${CFG.stormTimeoutSeconds} passed`),
    reconnectAttempts: attempts(),
    attemptsPerDevice: r1(attempts() / n),
    maxAttemptsOneDevice: Math.max(...perDevice),
    extensions: fleet.extensions(),
    peak,
    rssKbAfter,
    met: allResumedSeconds !== null && allResumedSeconds < GOALS.stormSeconds,
  };
  progress(
    `storm: ${stormTimes(result)}; ${result.reconnectAttempts} reconnect attempts (${result.attemptsPerDevice} per device, at most ${result.maxAttemptsOneDevice}); restarted workerd RSS ${mb(rssKbAfter)} MB`,
  );
  return { result, edge };
}

/** The storm's times from the kill, in words. */
function stormTimes(r: StormResult): string {
  const at = (x: number | null, what: string) => (x === null ? `not all ${what}` : `all ${what} at +${x} s`);
  return (
    `edge listening again at +${r.edgeListeningSeconds ?? '-'} s, ${at(r.allOnlineSeconds, 'online')}, ${at(r.allResumedSeconds, 'resumed')}` +
    (r.listeningToAllResumedSeconds !== null ? ` (listening → all resumed ${r.listeningToAllResumedSeconds} s)` : '') +
    (r.notOnline || r.notResumed ? `; ${r.notOnline} not online, ${r.notResumed} not resumed${r.stopReason ? ` (${r.stopReason})` : ''}` : '')
  );
}

// ---- the run ------------------------------------------------------------------------------------

async function mintTokens(secret: string): Promise<string[]> {
  const t0 = performance.now();
  const tokens: string[] = [];
  for (let i = 0; i < CFG.devices; i++) tokens.push(await mintToken(secret, { user: `u${i}`, device: 'd1' }, 7 * 86_400));
  progress(`${tokens.length} tokens minted in ${Math.round(performance.now() - t0)} ms`);
  return tokens;
}

function report(results: TargetResult[], storm: StormResult | null, startedAt: Date, loadAtStart: number[]): void {
  const by = (t: TargetName) => results.find((r) => r.target === t);
  const [fl, ed] = [by('floor'), by('edge')];
  const memoryRatio = ed?.perSocketKb != null && fl?.perSocketKb ? Math.round((ed.perSocketKb / fl.perSocketKb) * 100) / 100 : null;
  const partial = (r: TargetResult | undefined) => (r && r.connect.devices < r.connect.requested ? ` (only ${r.connect.devices} of ${r.connect.requested} devices came online)` : '');
  const goals = [
    {
      goal: `edge memory per idle socket within ${GOALS.memoryVsFloor}× the floor`,
      measured: ed?.died ? `the edge's workerd died with ${ed.connect.devices} sockets: ${ed.died}` : memoryRatio === null ? null : `${ed!.perSocketKb} KB vs ${fl!.perSocketKb} KB: ${memoryRatio}×${partial(ed)}${partial(fl)}`,
      met: ed?.died ? false : memoryRatio === null ? null : memoryRatio <= GOALS.memoryVsFloor,
    },
    {
      goal: `connects per second ≥ ${GOALS.connectsPerSec}`,
      measured: ed ? `${ed.connect.perSec}/s${partial(ed)}` : null,
      met: ed ? ed.connect.perSec >= GOALS.connectsPerSec && ed.connect.devices === ed.connect.requested : null,
    },
    {
      goal: `reconnect storm: every device back and resumed in < ${GOALS.stormSeconds} s`,
      measured: ed?.died && CFG.storm ? 'not run: the edge died while connecting' : storm ? (storm.allResumedSeconds === null ? `${storm.notResumed} of ${storm.devices} devices not resumed: ${storm.stopReason}` : `${storm.allResumedSeconds} s`) + (storm.devices < CFG.devices ? ` (over the ${storm.devices} devices that came online)` : '') : null,
      met: ed?.died && CFG.storm ? false : storm ? storm.met && storm.devices === CFG.devices : null,
    },
  ];
  const mismatch = fl && ed && fl.compressionNegotiated !== ed.compressionNegotiated;
  const record = {
    at: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    config: { ...CFG, out: undefined, sampleAtSeconds: SAMPLE_AT },
    host: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
    loadAvg: { atStart: loadAtStart, atEnd: load() },
    setup: `${CFG.devices} SDK clients (user u<i>, device d1) in one Node process, offering permessage-deflate; at most ${CFG.concurrency} connects in flight; raw = ws server in its own Node process; floor = scripts/bench/floor-worker.js in workerd through Miniflare, on its own socket; edge = scripts/edge-runner.ts (workerd through Miniflare, on its own socket), region on ${CFG.real ? 'real' : 'embedded'} engines; Durable Object state on ${CFG.edgeState}`,
    definitions: {
      perSocketKb: `RSS (VmRSS) of the server process at +${CFG.settleSeconds} s after the last hello, minus before the first connect, divided by the sockets`,
      connectsPerSec: 'devices / (last hello − first connect attempt)',
      storm: 'from the SIGKILL of the edge workerd to the last device completing the resume that follows its reconnect (SDK onResumed); the edge restart (bundling, Miniflare, workerd) is in it',
    },
    compression: { requested: CFG.compression, negotiated: Object.fromEntries(results.map((r) => [r.target, r.compressionNegotiated])), mismatchFloorEdge: mismatch || false },
    results,
    storm,
    goals,
  };
  fs.mkdirSync(path.dirname(CFG.out), { recursive: true });
  fs.writeFileSync(CFG.out, JSON.stringify(record, null, 2) + '\n');

  const pad = (s: string | number | null | undefined, n: number) => String(s ?? '-').padStart(n);
  const points = ['before', 'connected', ...SAMPLE_AT.map((s) => `+${s} s`)];
  const lines = [
    '',
    `== bench:connections: ${CFG.devices} devices, idle ${CFG.settleSeconds} s, ${CFG.concurrency} connects in flight; compression ${CFG.compression ? 'on (--compression)' : 'off (default)'}, clients offer permessage-deflate; ` +
      `edge state on ${CFG.edgeState}; region on ${CFG.real ? 'real' : 'embedded'} engines; load average ${loadAtStart.join(' ')} at start, ${load().join(' ')} at end, ${os.cpus().length} CPUs`,
    `${'target'.padEnd(13)}${'process'.padEnd(17)}${pad('connects/s', 10)}${pad('online s', 9)}${pad('resumed s', 10)}${pad('deflate', 8)}${pad('KB/socket', 10)}${pad('× floor', 8)}   RSS MB: ${points.map((p) => pad(p, 10)).join('')}${pad('closed', 10)}`,
  ];
  for (const r of results) {
    const rss = (p: string) => mb(r.samples.find((s) => s.point === p)?.rssKb);
    const closed = r.samples.find((s) => s.point.startsWith('closed'));
    const vsFloor = r.perSocketKb !== null && fl?.perSocketKb ? `${(r.perSocketKb / fl.perSocketKb).toFixed(2)}` : '-';
    lines.push(
      `${r.target.padEnd(13)}${r.process.padEnd(17)}${pad(r.connect.perSec, 10)}${pad(r.connect.seconds, 9)}${pad(r.connect.allResumedSeconds, 10)}${pad(r.compressionNegotiated ? 'yes' : 'no', 8)}${pad(r.perSocketKb, 10)}${pad(vsFloor, 8)}           ` +
        `${points.map((p) => pad(rss(p), 10)).join('')}${pad(mb(closed?.rssKb) + (closed && closed.pid !== r.pid ? '*' : ''), 10)}`,
    );
  }
  if (results.some((r) => r.samples.some((s) => s.pid !== r.pid))) lines.push('  * after the storm: the restarted edge workerd, not the process of the earlier samples');
  for (const r of results) {
    lines.push(
      `  ${r.target}: ${r.connect.devices === r.connect.requested ? `all ${r.connect.devices}` : `only ${r.connect.devices} of ${r.connect.requested}`} devices online` +
        `${r.connect.to90Seconds !== null ? ` (90 % at ${r.connect.to90Seconds} s: ${r.connect.perSecTo90}/s)` : ''}, ${r.connect.attempts} connect attempts; ` +
        `extensions ${fmtExtensions(r.extensions)}; CPU % of one core while connecting: ${fmtCpu(r.connect.cpuPercent)}${r.connect.peak ? `; server at most ${fmtProc(r.connect.peak)}` : ''}`,
    );
    if (r.died) lines.push(`    the server process died while connecting: ${r.died}`);
    else if (r.connect.stopReason) lines.push(`    gave up on the rest: ${r.connect.stopReason.split('\n')[0]}`);
    const client = r.connect.cpuPercent['bench client'];
    if (client != null && client >= CLIENT_BUSY_PERCENT)
      lines.push(`    the bench client used ${client} % of a core while connecting: this rate may be the client's limit, not the server's${r.compressionNegotiated ? ' (permessage-deflate costs the ws client about 3× the CPU per connect)' : ''}`);
  }
  if (!CFG.compression && results.some((r) => r.compressionNegotiated))
    lines.push(`  NOTE: compression was asked to be off, yet ${results.filter((r) => r.compressionNegotiated).map((r) => r.target).join(', ')} negotiated permessage-deflate`);
  if (mismatch) lines.push(`  NOTE: the edge ${ed!.compressionNegotiated ? 'negotiated' : 'did not negotiate'} permessage-deflate and the floor ${fl!.compressionNegotiated ? 'did' : 'did not'}: the memory comparison is not like for like`);
  if (ed?.serviceLogLines && Object.keys(ed.serviceLogLines).length) {
    lines.push('  warn/error lines of the edge and the region over the run (storm included; CONN_VERBOSE=1 shows them):');
    const kinds = Object.entries(ed.serviceLogLines).sort((a, b) => b[1] - a[1]);
    for (const [k, v] of kinds.slice(0, 12)) lines.push(`    ${String(v).padStart(7)}  ${k}`);
    if (kinds.length > 12) lines.push(`    … and ${kinds.length - 12} more kinds (${path.relative(process.cwd(), CFG.out) || CFG.out} has them all)`);
  }
  if (storm) {
    lines.push(
      `storm (SIGKILL of the edge's workerd, restarted on the same port and state): ${stormTimes(storm)}`,
      `  ${storm.reconnectAttempts} reconnect attempts by the SDK clients (${storm.attemptsPerDevice} per device, at most ${storm.maxAttemptsOneDevice}); extensions ${fmtExtensions(storm.extensions)}; restarted workerd RSS ${mb(storm.rssKbAfter)} MB${storm.peak ? `, at most ${fmtProc(storm.peak)}` : ''}`,
    );
  }
  for (const g of goals) lines.push(`target: ${g.goal}: ${g.met === null ? 'not measured' : g.met ? 'MET' : 'NOT MET'}${g.measured ? ` (${g.measured})` : ''}`);
  lines.push(`written to ${path.relative(process.cwd(), CFG.out) || CFG.out}`);
  process.stdout.write(lines.join('\n') + '\n');
}

async function main(): Promise<void> {
  checkLimits();
  const startedAt = new Date();
  const loadAtStart = load();
  progress(
    `load average ${loadAtStart.join(' ')} on ${os.cpus().length} CPUs; ${CFG.devices} devices, ${CFG.concurrency} connects in flight, idle ${CFG.settleSeconds} s; targets ${CFG.targets.join(', ')}${CFG.storm && CFG.targets.includes('edge') ? ' + storm' : ''}; ` +
      `compression ${CFG.compression ? 'on' : 'off'}; edge state on ${CFG.edgeState}; region on ${CFG.real ? 'real' : 'embedded'} engines`,
  );
  const authSecret = crypto.randomBytes(24).toString('base64url');
  const tokens = await mintTokens(authSecret);
  const results: TargetResult[] = [];
  let storm: StormResult | null = null;
  for (const t of CFG.targets) {
    check();
    if (t === 'raw') results.push(await raw(tokens));
    else if (t === 'floor') results.push(await floor(tokens));
    else {
      const e = await edge(tokens, authSecret);
      results.push(e.result);
      storm = e.storm;
    }
    await sleep(1000);
  }
  report(results, storm, startedAt, loadAtStart);
}

main().then(
  () => process.exit(0),
  (err) => {
    if (err instanceof Aborted) {
      progress('interrupted; everything it started is stopped');
      process.exit(130);
    }
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
